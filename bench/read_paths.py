"""Read paths at a community's size: the lead's weekly report, a /tasks sent while it runs, a lead's
Home, and what members ask for every day, against the same requests on a 50-member store.

    .venv/bin/python -m bench.seed --members 30000 --tasks 100000 --assignments 300000 --entries 1000000
    .venv/bin/python -m bench.seed --members 50 --tasks 167 --assignments 500 --entries 1667 --referrals 33
    .venv/bin/python -m bench.read_paths --database-url sqlite:///data/bench-30000.db \\
        --small-url sqlite:///data/bench-50.db [--runs 50] [--reports 3]

Stores made by `bench.seed` (the bot migrates them at start-up, as it would in production). The real
bot (sandbox.harness.BotHarness: create_app, waitress on a free port, the fake Slack, the system
clock) answers signed requests sent one at a time through its HTTP door. Figures, one line each:
- `/hours report` for last week (a full week): from sending the command to the bot's answer "Sent
  … to your DMs" (the report read, the CSV written and uploaded to the fake): median and max;
- on SQLite, `/tasks` sent over and over while such a report runs (from another thread): p50, max;
- a lead's Home: from the `app_home_opened` event to the fake receiving `views.publish`: p50, p99;
- `/tasks`, `/tasks mine`, `/hours`, `/referrals` (the answer through response_url) and a
  contractor's Home, on this store and on the small one: p50, p99, and the ratio of the p99s.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bench.seed import CONTRACTOR, LEAD, ZONES
from core.clock import Clock
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness

Measure = Callable[[], float]  # one request; its latency in seconds


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


class Bench:
    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = "postgresql" if url.startswith("postgresql") else "sqlite"
        self.fake = FakeSlack()
        self.fake.start()
        self.fake.add_user(LEAD, name="lead", tz="UTC")
        self.fake.add_user(CONTRACTOR, name="user1", tz=ZONES[1])
        self.bot = BotHarness(url, fake=self.fake, clock=Clock(), admins=("UADMIN",))
        self.bot.start()

    def close(self) -> None:
        self.bot.close()
        self.fake.stop()

    def command(self, user: str, command: str, text: str, expect: str) -> float:
        started = time.perf_counter()
        reply = self.bot.command(user, command, text, timeout=120)
        elapsed = time.perf_counter() - started
        if expect not in reply.all_text:
            raise SystemExit(f"{command} {text}: unexpected answer {reply.text[:200]!r}")
        return elapsed

    def home(self, user: str) -> float:
        assert self.bot.driver is not None
        self.fake.clear()
        started = time.time()
        self.bot.driver.home_opened(user)
        call = self.fake.wait_for(
            "views.publish", predicate=lambda c: c.params["user_id"] == user, timeout=60
        )[0]
        return call.ts - started

    def runs(self, measure: Measure, n: int) -> list[float]:
        measure()  # warm-up
        values = []
        for _ in range(n):
            self.fake.clear()
            values.append(measure())
        return values

    def last_week(self) -> str:
        monday = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday() + 7)
        return monday.isoformat()


def daily_requests(bench: Bench) -> dict[str, Measure]:
    return {
        "/tasks": lambda: bench.command(CONTRACTOR, "/tasks", "", "tasks"),
        "/tasks mine": lambda: bench.command(CONTRACTOR, "/tasks", "mine", ""),
        "/hours": lambda: bench.command(CONTRACTOR, "/hours", "", "This week"),
        "/referrals": lambda: bench.command(CONTRACTOR, "/referrals", "", ""),
        "contractor Home": lambda: bench.home(CONTRACTOR),
    }


def report_figures(bench: Bench, label: str, reports: int) -> None:
    week = bench.last_week()
    timings = [
        bench.command(LEAD, "/hours", f"report week={week}", "Sent `hours-week-of") for _ in range(reports)
    ]
    print(
        f"{label}: /hours report week={week}: median {statistics.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms (n={reports})",
        flush=True,
    )
    if bench.backend != "sqlite":
        return
    during: list[float] = []
    reporting = threading.Thread(
        target=bench.command, args=(LEAD, "/hours", f"report week={week}", "Sent `hours-week-of")
    )
    reporting.start()
    while reporting.is_alive():
        during.append(bench.command(CONTRACTOR, "/tasks", "", "tasks"))
    reporting.join()
    print(
        f"{label}: /tasks while a report runs: p50 {pct(during, 0.5):.0f} ms, max {max(during) * 1000:.0f} ms "
        f"(n={len(during)})",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True, help="the seeded store at size")
    p.add_argument("--small-url", required=True, help="the seeded 50-member store")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--reports", type=int, default=3)
    p.add_argument("--label", default="")
    args = p.parse_args()

    big = Bench(args.database_url)
    label = f"{args.label}{big.backend}".strip()
    try:
        report_figures(big, label, args.reports)
        home = big.runs(lambda: big.home(LEAD), args.runs)
        print(
            f"{label}: lead Home publish: p50 {pct(home, 0.5):.0f} ms, p99 {pct(home, 0.99):.0f} ms (n={len(home)})",
            flush=True,
        )
        at_size = {name: big.runs(m, args.runs) for name, m in daily_requests(big).items()}
    finally:
        big.close()
    small = Bench(args.small_url)
    try:
        at_small = {name: small.runs(m, args.runs) for name, m in daily_requests(small).items()}
    finally:
        small.close()
    for name, values in at_size.items():
        base = at_small[name]
        print(
            f"{label}: {name}: p50 {pct(values, 0.5):.0f} ms, p99 {pct(values, 0.99):.0f} ms at size; "
            f"p50 {pct(base, 0.5):.0f} ms, p99 {pct(base, 0.99):.0f} ms at 50 members; "
            f"p99 ratio {pct(values, 0.99) / pct(base, 0.99):.2f} (n={len(values)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
