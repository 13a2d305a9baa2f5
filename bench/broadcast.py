"""Broadcast bench: `/announce everyone` to 30,000 people through the real bot process, against a fake
Slack that enforces 1 message per second per channel and 600 per minute per workspace (time
compressed by --scale), with the bot SIGKILLed half-way and started again.

    .venv/bin/python -m bench.broadcast                      # 30,000 recipients, scale 10, SQLite
    .venv/bin/python -m bench.broadcast --db postgresql      # the same on PostgreSQL
    .venv/bin/python -m bench.broadcast --recipients 3000    # a quick run
    .venv/bin/python -m bench.broadcast --processes 3        # 3 processes on PostgreSQL, the leader killed

Reports throughput as a fraction of the allowed rate (600/min × scale), duplicates and misses
(each recipient must get exactly one DM), and, measured in the same run against a fresh fake with
the same limits, two baselines without any outbox: a bare paced loop (the ceiling of this machine
and fake) and a naive sender that does not pace and leans on 429 Retry-After instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import func
from sqlmodel import col, select

from bench.throughput import cpu_seconds
from db.engine import Database
from db.models import AnnouncementDelivery
from jobs.announcements import EVENT_TYPE, EvenPacer
from sandbox.bot_process import BotProcess
from sandbox.cluster import Cluster
from sandbox.fake_slack import Call, FakeSlack
from sandbox.scratch_db import scratch_database


def limits(scale: float) -> dict[str, float]:
    return {"per_channel_per_sec": 1, "workspace_per_min": 600, "scale": scale}


class Tally:
    """Accepted announcement DMs seen by the fake, counted incrementally (the call list is long)."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.seen = 0
        self.per_recipient: Counter[str] = Counter()
        self.stamps: list[float] = []

    def update(self) -> int:
        calls = self.fake.calls
        for call in calls[self.seen :]:
            recipient = _recipient(call)
            if recipient is not None:
                self.per_recipient[recipient] += 1
                self.stamps.append(call.ts)
        self.seen = len(calls)
        return len(self.stamps)


def _recipient(call: Call) -> str | None:
    if call.method != "chat.postMessage" or not call.ok:
        return None
    meta = call.params.get("metadata")
    if isinstance(meta, dict) and meta.get("event_type") == EVENT_TYPE:
        return str(meta["event_payload"]["recipient"])
    return None


# ---- databases -----------------------------------------------------------------------------------


def outbox_states(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.read() as session:
            rows = session.exec(
                select(AnnouncementDelivery.state, func.count()).group_by(col(AnnouncementDelivery.state))
            ).all()
            return {state: count for state, count in rows}
    finally:
        db.dispose()


# ---- the run through crewcall --------------------------------------------------------------------


def crewcall_run(args: argparse.Namespace, processes: int = 1) -> dict[str, float | int | str]:
    """The broadcast through crewcall. One process: SIGKILLed half-way and started again. Several
    (PostgreSQL): the announcement is asked of a standby, the scheduling leader (which sends) is
    SIGKILLed half-way and a standby takes over; `restart_s` is then the takeover time."""
    allowed = 600 * args.scale / 60
    rate_per_min = int(600 * args.scale * args.rate_fraction)
    with FakeSlack(rate_limits=limits(args.scale)) as fake, scratch_database(args.db) as url:
        people = [u["id"] for u in fake.add_users(args.recipients - 1)]  # + the admin who sends it
        fake.add_user("UBOTX", is_bot=True)
        fake.add_user("UGONEX", deleted=True)
        expected = set(people) | {"UADMIN"}
        # The workspace budget the bot keeps to is the fake's, compressed the same way.
        env = {"ANNOUNCE_RATE_PER_MIN": str(rate_per_min), "SLACK_RATE_SCALE": f"{args.scale:g}"}
        cluster = (
            Cluster(fake, url, processes, env={**env, "LOG_LEVEL": "WARNING"}) if processes > 1 else None
        )
        if cluster is not None:
            cluster.start()
            bot, _ = cluster.wait_leader()
            door = next(b for b in cluster.bots if b is not bot)
        else:
            bot = door = BotProcess(fake, url, env={**env, "LOG_LEVEL": "WARNING"})
            bot.start()
        tally = Tally(fake)
        try:
            sent_at, sent_wall = time.monotonic(), time.time()
            assert (
                door.driver.command("UADMIN", "/announce", "everyone Broadcast bench: please ignore").status
                == 200
            )
            while tally.update() < args.recipients // 2:
                time.sleep(0.2)
                if time.monotonic() - sent_at > 3600:
                    raise RuntimeError("the first half took more than an hour")
            first_dm_after = tally.stamps[0] - sent_wall
            cpu_first_half = cpu_seconds(bot.pid)
            bot.kill()
            killed = time.time()
            states_at_kill = outbox_states(url)
            tally.update()
            delivered_at_kill = len(tally.stamps)
            if cluster is not None:
                cluster.wait_leader(exclude=bot)
            else:
                bot.start()
            restarted = time.time()
            while not _done(fake):
                time.sleep(0.5)
                if time.monotonic() - sent_at > 7200:
                    raise RuntimeError("the broadcast did not finish in two hours")
            tally.update()
        finally:
            if cluster is not None:
                cluster.stop()
            else:
                bot.stop()
        states = outbox_states(url)
    stamps = sorted(tally.stamps)
    span = stamps[-1] - stamps[0]
    after_kill = [t for t in stamps if t > killed]
    gap = (after_kill[0] - max(t for t in stamps if t <= killed)) if after_kill else 0.0
    throughput = (len(stamps) - 1) / span
    return {
        "recipients": args.recipients,
        "allowed_per_s": allowed,
        "configured_per_min": rate_per_min,
        "first_dm_after_s": round(first_dm_after, 1),
        "span_s": round(span, 1),
        "throughput_per_s": round(throughput, 2),
        "fraction": round(throughput / allowed, 4),
        "fraction_without_outage": round((len(stamps) - 1) / (span - gap) / allowed, 4),
        "outage_s": round(gap, 1),
        "restart_s": round(restarted - killed, 1),
        "delivered_at_kill": delivered_at_kill,
        "in_doubt_at_kill": states_at_kill.get("sending", 0),
        "duplicates": sum(n - 1 for n in tally.per_recipient.values() if n > 1),
        "misses": len(expected - set(tally.per_recipient)),
        "strangers": len(set(tally.per_recipient) - expected),
        "rate_limited_429": fake.rate_limited_count,
        "bot_cpu_ms_per_message": round(1000 * cpu_first_half / delivered_at_kill, 2),
        "outbox_states": ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
    }


def _done(fake: FakeSlack) -> bool:
    update = fake.last("chat.update")
    return update is not None and str(update.params.get("text", "")).startswith("Announcement A-1: done")


# ---- baselines (same fake limits, no outbox, no database) ----------------------------------------


def bare_paced_loop(args: argparse.Namespace, n: int) -> dict[str, float | int]:
    """The same pacing as crewcall's sender, posting straight from memory: the ceiling."""
    allowed = 600 * args.scale / 60
    with FakeSlack(rate_limits=limits(args.scale)) as fake:
        users = [u["id"] for u in fake.add_users(n)]
        client = WebClient(
            token="xoxb-bench", base_url=fake.api_url, retry_handlers=[RateLimitErrorRetryHandler()]
        )
        pacer, stop = EvenPacer(600 * args.scale * args.rate_fraction / 60), threading.Event()
        slots = threading.Semaphore(4)

        def post(user: str) -> None:
            try:
                client.chat_postMessage(channel=user, text="bench")
            finally:
                slots.release()

        threads = []
        for user in users:
            pacer.wait(stop)
            slots.acquire()
            thread = threading.Thread(target=post, args=(user,))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        return _measure(fake, allowed)


def naive_unpaced(args: argparse.Namespace, n: int) -> dict[str, float | int]:
    """Four threads posting as fast as they can, waiting out 429 Retry-After (slack_sdk's handler)."""
    allowed = 600 * args.scale / 60
    with FakeSlack(rate_limits=limits(args.scale)) as fake:
        users = [u["id"] for u in fake.add_users(n)]
        client = WebClient(
            token="xoxb-bench",
            base_url=fake.api_url,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=100)],
        )
        chunks = [users[i::4] for i in range(4)]

        def run(chunk: list[str]) -> None:
            for user in chunk:
                client.chat_postMessage(channel=user, text="bench")

        threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return _measure(fake, allowed)


def _measure(fake: FakeSlack, allowed: float) -> dict[str, float | int]:
    stamps = sorted(c.ts for c in fake.calls_to("chat.postMessage") if c.ok)
    per_channel = Counter(c.response["channel"] for c in fake.calls_to("chat.postMessage") if c.ok)
    throughput = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return {
        "sent": len(stamps),
        "throughput_per_s": round(throughput, 2),
        "fraction": round(throughput / allowed, 4),
        "rate_limited_429": fake.rate_limited_count,
        "duplicates": sum(n - 1 for n in per_channel.values() if n > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=30_000)
    parser.add_argument("--scale", type=float, default=10.0, help="time compression of the fake's limits")
    parser.add_argument(
        "--rate-fraction",
        type=float,
        default=0.98,
        help="ANNOUNCE_RATE_PER_MIN as a fraction of the allowed rate",
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--baseline", type=int, default=3_000, help="messages per baseline (0 skips them)")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="above 1: on PostgreSQL, that many bot processes (sandbox.cluster), the sending leader "
        "SIGKILLed half-way and replaced by a standby, beside one process (killed and restarted) in the "
        "same run; one line",
    )
    args = parser.parse_args()
    if args.processes > 1:
        return main_processes(args)

    print(
        f"crewcall: {args.recipients:,} recipients, scale {args.scale:g}, {args.db}, SIGKILL half-way",
        flush=True,
    )
    result = crewcall_run(args)
    for key, value in result.items():
        print(f"  {key}: {value}", flush=True)
    if args.baseline:
        bare = bare_paced_loop(args, args.baseline)
        print(f"baseline, bare paced loop ({args.baseline:,} messages, no outbox): {bare}", flush=True)
        naive = naive_unpaced(args, args.baseline)
        print(
            f"baseline, naive unpaced sender leaning on 429 ({args.baseline:,} messages): {naive}", flush=True
        )
        print(
            f"crewcall throughput / bare paced loop: {float(result['throughput_per_s']) / bare['throughput_per_s']:.3f}"
        )
    ok = (
        float(result["fraction"]) >= 0.95
        and result["duplicates"] == 0
        and result["misses"] == 0
        and result["strangers"] == 0
    )
    print("targets (fraction >= 0.95, 0 duplicates, 0 misses):", "MET" if ok else "NOT MET", flush=True)
    return 0 if ok else 1


def main_processes(args: argparse.Namespace) -> int:
    args.db = "postgresql"
    one = crewcall_run(args, 1)
    many = crewcall_run(args, args.processes)

    def figures(r: dict[str, float | int | str], back: str) -> str:
        return (
            f"{r['throughput_per_s']}/s = {r['fraction']} of allowed ({r['fraction_without_outage']} without the "
            f"outage), outage {r['outage_s']} s, {back} {r['restart_s']} s, in doubt at kill {r['in_doubt_at_kill']}, "
            f"duplicates {r['duplicates']}, misses {r['misses']}, 429s {r['rate_limited_429']}"
        )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"broadcast, PostgreSQL, {args.recipients:,} recipients, scale {args.scale:g}, sender SIGKILLed half-way: "
        f"{args.processes} processes: {figures(many, 'takeover')} | 1 process (same run): {figures(one, 'restart')} "
        f"| {os.cpu_count()} cores, load {load}"
    )
    ok = all(r["duplicates"] == 0 and r["misses"] == 0 and r["strangers"] == 0 for r in (one, many))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
