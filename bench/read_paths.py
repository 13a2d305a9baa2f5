"""Read paths at a community's size (issue 18; issue 14's data-scale table): what members and leads
ask for every day, and the lead's weekly report, on a seeded store, against a 50-member store.

    .venv/bin/python -m bench.seed --members 30000 --tasks 100000 --assignments 300000 --entries 1000000 \\
        --database-url URL
    .venv/bin/python -m bench.seed --members 50 --tasks 167 --assignments 500 --entries 1667 --referrals 33 \\
        --database-url SMALL_URL
    .venv/bin/python -m bench.read_paths --database-url URL --small-url SMALL_URL [--runs 200] [--reports 5] \
        [--only "Home publish"]

Stores made by `bench.seed` (the bot migrates them at start-up, as in production). The real bot,
`bot.py` in its own process (sandbox.bot_process), answers signed requests sent one at a time
through its HTTP door; the fake Slack and the driver run in this process, so their Python (parsing a
2.6 MB upload, say) doesn't share the bot's GIL, as Slack's wouldn't. Each figure is server-side,
from sending the request to the fake Slack receiving the answer. One line per figure:
- `/hours report` for last week: the command's acknowledgement, and the time to the bot's "Sent …
  to your DMs" (the CSV built and uploaded), p50 / p99 / max;
- `/tasks` sent over and over while reports run one after another (from another thread), until
  `--runs` of them answered: p50 / p99 / max, beside `--runs` of them sent just before with no
  report running (on a shared machine, what the machine alone does to the same request);
- the data-scale table, `--runs` of each at size and on the small store: `/tasks`, `/tasks mine`, a
  Claim click (the "is yours" answer; each claim released again before the next, not timed),
  `/hours`, `/referrals`, a lead's and a contractor's Home publish (the `app_home_opened` event to
  `views.publish`): p50, p99, against the 50 ms target, and the ratio of the p99s (issue 18: ≤ 1.5).
`--only TEXT` measures just the figures of the table whose name contains TEXT (no reports).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bench.seed import CONTRACTOR, LEAD, ZONES
from db.engine import Database
from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack

Measure = Callable[[], float]  # one request; its latency in seconds
TARGET_MS = 50.0
REPORT_TARGET_MS = 2000.0
DURING_TARGET_MS = 100.0
RATIO_TARGET = 1.5


def pct(values: list[float], p: float) -> float:
    """The p-quantile in milliseconds (nearest rank: the 99th of 200 is the second slowest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def spread(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5):.0f} ms, p99 {pct(values, 0.99):.0f} ms, max {max(values) * 1000:.0f} ms"


def verdict(value_ms: float, target_ms: float) -> str:
    return "met" if value_ms < target_ms else "MISSED"


class Bench:
    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = "postgresql" if url.startswith("postgresql") else "sqlite"
        self.fake = FakeSlack()
        self.fake.start()
        self.fake.add_user(LEAD, name="lead", tz="UTC")
        self.fake.add_user(CONTRACTOR, name="user1", tz=ZONES[1])
        # As BotHarness does: a bench acts faster than people, so the fair-share limits are off.
        self.bot = BotProcess(
            self.fake, url, env={"MEMBER_COMMANDS_PER_MIN": "1000000", "MEMBER_QUESTIONS_PER_MIN": "1000000"}
        ).start()
        self.driver = self.bot.driver
        self.db = Database(url, pool_size=1)  # the bench's own look at the store
        # Every skill of the catalogue, so that the small store's few open tasks are claimable too.
        with self.db.read() as session:
            skills = " ".join(
                slug for (slug,) in session.execute(text("SELECT slug FROM skill ORDER BY slug"))
            )
        self.command(LEAD, "/crew", f"skill <@{CONTRACTOR}> {skills}", "skills are now")
        self._claimable = itertools.cycle(self._claimable_tasks())

    def close(self) -> None:
        self.bot.stop()
        self.db.dispose()
        self.fake.stop()

    def command(self, user: str, command: str, text: str, expect: str) -> float:
        return self.acked_command(user, command, text, expect)[1]

    def acked_command(self, user: str, command: str, text: str, expect: str) -> tuple[float, float]:
        """The acknowledgement's latency and the answer's (through the response_url), in seconds."""
        url = self.fake.new_response_url()
        started = time.time()
        response = self.driver.command(user, command, text, response_url=url)
        acked = time.time() - started
        return acked, self._answer(response.body, url, started, f"{command} {text}", expect)

    def click(self, user: str, action: str, value: str, expect: str) -> float:
        url = self.fake.new_response_url()
        started = time.time()
        response = self.driver.click(user, action, value, response_url=url)
        return self._answer(response.body, url, started, f"{action} {value}", expect)

    def _answer(self, body: str, url: str, started: float, what: str, expect: str) -> float:
        if expect in body:  # answered in the ack itself
            return time.time() - started
        if body.strip() and (json.loads(body).get("text") or json.loads(body).get("blocks")):
            raise SystemExit(f"{what}: unexpected answer in the ack {body[:300]!r}")
        call = self.fake.wait_for(
            "response_url", predicate=lambda c: c.params.get("_url") == url, timeout=120
        )[0]
        if expect not in str(call.params):
            raise SystemExit(f"{what}: unexpected answer {str(call.params)[:300]!r}")
        return call.ts - started

    def home(self, user: str) -> float:
        started = time.time()
        self.driver.home_opened(user)
        call = self.fake.wait_for(
            "views.publish", predicate=lambda c: c.params["user_id"] == user and c.ts >= started, timeout=60
        )[-1]
        return call.ts - started

    def claim(self) -> float:
        """Claim the next open task the contractor may take (its answer timed), then release it (a
        released task may be claimed again, so a small store's few open tasks come round again)."""
        task_id = str(next(self._claimable))
        elapsed = self.click(CONTRACTOR, "task_claim", task_id, "is yours")
        self.click(CONTRACTOR, "task_release", task_id, "You released")
        return elapsed

    def _claimable_tasks(self) -> list[int]:
        """Open tasks with a free slot, in one of the contractor's skills (or none), not held by them."""
        with self.db.read() as session:
            rows = session.execute(
                text(
                    "SELECT t.id FROM task t WHERE t.state = 'open' AND t.claimed + t.approved < t.slots"
                    " AND (t.skill IS NULL OR t.skill IN (SELECT skill FROM member_skill WHERE user_id = :u))"
                    " AND (t.due IS NULL OR t.due > :today)"
                    " AND t.id NOT IN (SELECT task_id FROM assignment WHERE user_id = :u AND state IN ('claimed', 'submitted'))"
                    " ORDER BY t.id"
                ),
                {"u": CONTRACTOR, "today": datetime.now(UTC).date() + timedelta(days=1)},
            )
            return [int(task_id) for (task_id,) in rows]

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


def requests_of(bench: Bench) -> dict[str, Measure]:
    return {
        "/tasks": lambda: bench.command(CONTRACTOR, "/tasks", "", "tasks"),
        "/tasks mine": lambda: bench.command(CONTRACTOR, "/tasks", "mine", ""),
        "Claim click": bench.claim,
        "/hours": lambda: bench.command(CONTRACTOR, "/hours", "", "This week"),
        "/referrals": lambda: bench.command(CONTRACTOR, "/referrals", "", ""),
        "lead Home publish": lambda: bench.home(LEAD),
        "contractor Home publish": lambda: bench.home(CONTRACTOR),
    }


def report_figures(bench: Bench, label: str, reports: int, runs: int) -> None:
    week = bench.last_week()

    def report() -> tuple[float, float]:
        return bench.acked_command(LEAD, "/hours", f"report week={week}", "Sent `hours-week-of")

    report()  # warm-up: starts the report worker
    timed = [report() for _ in range(reports)]
    acks, files = [a for a, _ in timed], [f for _, f in timed]
    print(
        f"{label}: /hours report week={week}: ack {spread(acks)} "
        f"(< {TARGET_MS:.0f} ms: {verdict(pct(acks, 0.99), TARGET_MS)}); to the file {spread(files)} "
        f"(< {REPORT_TARGET_MS:.0f} ms: {verdict(pct(files, 0.99), REPORT_TARGET_MS)}) (n={reports})",
        flush=True,
    )
    helpers = descendants(bench.bot.pid)
    print(
        f"{label}: RSS after {reports + 1} reports: the bot {rss_mb(bench.bot.pid):.0f} MB; its report worker "
        f"and multiprocessing's resource tracker {sum(rss_mb(p) for p in helpers):.0f} MB ({len(helpers)} processes)",
        flush=True,
    )
    alone = bench.runs(
        lambda: bench.command(CONTRACTOR, "/tasks", "", "tasks"), runs
    )  # the same machine, no report
    during: list[float] = []
    reported = 0
    while len(during) < runs:
        reporting = threading.Thread(target=report)
        reporting.start()
        while reporting.is_alive():
            during.append(bench.command(CONTRACTOR, "/tasks", "", "tasks"))
        reporting.join()
        reported += 1
    print(
        f"{label}: /tasks while a report runs: {spread(during)} "
        f"(max < {DURING_TARGET_MS:.0f} ms: {verdict(max(during) * 1000, DURING_TARGET_MS)}) "
        f"(n={len(during)}, {reported} reports); alone just before: {spread(alone)} (n={len(alone)})",
        flush=True,
    )


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:  # Linux
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def descendants(pid: int) -> list[int]:
    """The processes started by `pid` and by them (the report worker, the resource tracker)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True, help="the seeded store at size")
    p.add_argument("--small-url", required=True, help="the seeded 50-member store")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--reports", type=int, default=5)
    p.add_argument("--label", default="")
    p.add_argument("--only", default="", help="just the table's figures whose name contains this")
    args = p.parse_args()

    def chosen(bench: Bench) -> dict[str, Measure]:
        return {name: m for name, m in requests_of(bench).items() if args.only in name}

    big = Bench(args.database_url)
    label = f"{args.label}{big.backend}".strip()
    try:
        if not args.only:
            report_figures(big, label, args.reports, args.runs)
        at_size = {name: big.runs(m, args.runs) for name, m in chosen(big).items()}
    finally:
        big.close()
    small = Bench(args.small_url)
    try:
        at_small = {name: small.runs(m, args.runs) for name, m in chosen(small).items()}
    finally:
        small.close()
    for name, values in at_size.items():
        base, p99 = at_small[name], pct(values, 0.99)
        ratio = p99 / pct(base, 0.99)
        print(
            f"{label}: {name}: p50 {pct(values, 0.5):.0f} ms, p99 {p99:.0f} ms at size "
            f"(< {TARGET_MS:.0f} ms: {verdict(p99, TARGET_MS)}); p50 {pct(base, 0.5):.0f} ms, "
            f"p99 {pct(base, 0.99):.0f} ms at 50 members; p99 ratio {ratio:.2f} "
            f"(≤ {RATIO_TARGET}: {'met' if ratio <= RATIO_TARGET else 'MISSED'}) (n={len(values)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
