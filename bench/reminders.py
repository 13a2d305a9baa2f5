"""Reminder bench: schedule 10,000 shift reminders, restart, then let 1,000 fall due at once against a
fake Slack that enforces 1 message/s per channel and 600 messages/min per workspace (429 +
Retry-After), and measure how late they arrive.

    .venv/bin/python -m bench.reminders                 # scale 1: Slack's real limits (a few minutes)
    .venv/bin/python -m bench.reminders --scale 10      # limits 10x faster (shorter run)
    .venv/bin/python -m bench.reminders --backend postgresql   # on PostgreSQL (CREWCALL_TEST_PG)
    .venv/bin/python -m bench.reminders --processes 3 --scale 10   # the burst on 3 bot processes (PostgreSQL)

Reports scheduling time, re-registration time at restart, resident memory, and for the burst:
delivered / lost / repeated, 429s, lateness p50/p99/max, how long after the earliest moment the
limits allow the last reminder arrived, and the bot's CPU time per reminder of the burst (less
sensitive than wall-clock figures to whatever else the machine runs). The baseline, measured in the same run, is the same burst
with pacing off (SLACK_POSTS_PER_MIN=0): the WebClient alone waits out 429s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy.engine import make_url
from sqlmodel import func, select

from bench.throughput import cpu_seconds
from core.authz import Actor
from core.clock import FakeClock
from db.engine import Database
from db.migrate import upgrade
from db.models import Member, ShiftReminder
from domain import shifts
from domain.shifts import JobPlan, NewShift
from jobs import shifts as shift_jobs
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness
from sandbox.scratch_db import scratch_database

START = datetime.fromisoformat("2026-01-05T09:00:00+00:00")
ZONES = ("Asia/Manila", "Europe/Lisbon", "America/Chicago")
PER_SHIFT = 100
REMIND = timedelta(minutes=30)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def earliest_schedule(dues: list[float], budget: int, window: float, gap: float) -> list[float]:
    """When each message could be accepted at the earliest under the fake's limits (sliding window of
    `budget` per `window`, every message to its own channel so `gap` never binds): a zero-latency,
    perfectly informed sender."""
    accepted: list[float] = []
    for due in sorted(dues):
        at = due if len(accepted) < budget else max(due, accepted[-budget] + window)
        accepted.append(at)
    return accepted


class RemoteFake:
    """The fake Slack, run in a process of its own: in production Slack's side costs the bot no CPU,
    so here it must not share the bot's interpreter (and GIL) either."""

    def __init__(self, rate_limits: dict[str, float]) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve_fake, args=(child, rate_limits), daemon=True
        )
        self._process.start()
        self.api_url: str = self._conn.recv()
        self.users: dict[str, object] = {}

    def ask(self, command: str) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self._process.join(timeout=10)


def _serve_fake(conn: Any, rate_limits: dict[str, float]) -> None:
    fake = FakeSlack(rate_limits=rate_limits).start()
    conn.send(fake.api_url)

    def reminders() -> list[tuple[float, str]]:
        return [
            (c.ts, str(c.response.get("channel")))
            for c in fake.calls_to("chat.postMessage")
            if c.ok and str(c.params.get("text", "")).startswith("Reminder:")
        ]

    while True:
        command = conn.recv()
        if command == "clear":
            fake.clear()
            conn.send(True)
        elif command == "count":
            conn.send(len(reminders()))
        elif command == "report":
            conn.send((reminders(), fake.rate_limited_count))
        elif command == "stop":
            fake.stop()
            conn.send(True)
            return


def run(label: str, scale: float, paced: bool, reminders: int, burst: int, url: str) -> dict[str, object]:
    fake = RemoteFake({"per_channel_per_sec": 1, "workspace_per_min": 600, "scale": scale})
    clock = FakeClock(START)
    env = {
        "SLACK_RATE_SCALE": str(scale),
        "SLACK_POSTS_PER_MIN": "600" if paced else "0",
        "LOG_LEVEL": "ERROR",
    }
    bot = BotHarness(url, env=env, clock=clock, fake=fake, admins=()).start()  # type: ignore[arg-type]
    services = bot.services
    users = [f"UB{i:05d}" for i in range(reminders)]
    with services.db.write() as session:
        for i, user in enumerate(users):
            session.add(Member(user_id=user, name=user.lower(), tz=ZONES[i % len(ZONES)], created_at=START))
    lead = Actor("UBLEAD", tz="UTC")
    first_start = START + timedelta(hours=2)
    shift_count = reminders // PER_SHIFT
    due_now = burst // PER_SHIFT  # these shifts' reminders all fall due at the same instant

    t0 = time.perf_counter()
    shift_ids = []
    for s in range(shift_count):
        begins = first_start + (timedelta(0) if s < due_now else timedelta(hours=1 + s))
        local = begins.replace(tzinfo=None)
        spec = NewShift(
            f"Bench {s}", local, local + timedelta(hours=2), "UTC", PER_SHIFT, None, "none", REMIND, "C0BENCH"
        )
        with services.db.write() as session:
            created, plan = shifts.create(session, lead, spec, START, "bench")
        shift_jobs.register(services.scheduler, plan)
        shift_ids.append(created.id)
    for i, user in enumerate(users):
        with services.db.write() as session:
            joined = shifts.join(session, Actor(user), shift_ids[i // PER_SHIFT], START, "bench")
        assert joined.reminder is not None
        shift_jobs.register(services.scheduler, JobPlan(reminders=[joined.reminder]))
    scheduling_s = time.perf_counter() - t0
    rss_scheduled = rss_mib()

    t0 = time.perf_counter()
    bot.restart()  # registers every outstanding job again from the ledger
    restart_s = time.perf_counter() - t0
    services = bot.services
    reminder_jobs = len(services.scheduler.jobs("reminder:"))

    fake.ask("clear")
    due_users = set(users[:burst])
    due_wall = time.time()
    cpu = time.process_time()  # the fake runs in its own process: this is the bot's
    clock.set(first_start - REMIND)
    window = 60.0 / scale
    deadline = time.time() + window * 6 + 120

    while fake.ask("count") < burst and time.time() < deadline:
        time.sleep(0.1)
    burst_cpu = time.process_time() - cpu
    time.sleep(1.0)  # anything extra (a repeat) would show up now
    calls, rate_limited = fake.ask("report")
    per_user = Counter("U" + channel[1:] for _, channel in calls)
    lateness = [ts - due_wall for ts, _ in calls]
    ideal_last = earliest_schedule([due_wall] * burst, 600, window, 1.0 / scale)[-1]
    last = max((ts for ts, _ in calls), default=float("nan"))
    with services.db.read() as session:
        states = dict(
            session.exec(select(ShiftReminder.state, func.count()).group_by(ShiftReminder.state)).all()  # type: ignore[arg-type]
        )
    result = {
        "label": label,
        "backend": make_url(url).get_backend_name(),
        "paced": paced,
        "scale": scale,
        "reminders_scheduled": reminders,
        "reminder_jobs_after_restart": reminder_jobs,
        "scheduling_s": round(scheduling_s, 2),
        "scheduling_ms_per_reminder": round(scheduling_s / reminders * 1000, 3),
        "restart_reregister_s": round(restart_s, 2),
        "rss_after_scheduling_mib": round(rss_scheduled, 1),
        "rss_after_burst_mib": round(rss_mib(), 1),
        "burst": burst,
        "delivered": len(per_user.keys() & due_users),
        "lost": len(due_users - per_user.keys()),
        "repeated": sum(n - 1 for n in per_user.values() if n > 1),
        "rate_limited_429": rate_limited,
        "lateness_p50_s": round(median(lateness), 3) if lateness else None,
        "lateness_p99_s": round(pct(lateness, 99), 3) if lateness else None,
        "lateness_max_s": round(max(lateness), 3) if lateness else None,
        "earliest_possible_last_s": round(ideal_last - due_wall, 3),
        "last_after_earliest_s": round(last - ideal_last, 3),
        "last_after_earliest_slack_s": round((last - ideal_last) * scale, 3),
        "bot_cpu_ms_per_burst_reminder": round(burst_cpu / burst * 1000, 2),
        "ledger": states,
    }
    bot.close()
    fake.stop()
    return result


def run_processes(processes: int, scale: float, burst: int, due_in: float) -> dict[str, Any]:
    """The burst on `processes` real bot processes (sandbox.cluster) on a fresh PostgreSQL database,
    on the real clock: `burst` reminders written to the ledger before the processes start (each
    registers them at start-up; the leader runs them), all due `due_in` seconds after seeding."""
    from sandbox.cluster import Cluster

    with (
        scratch_database("postgresql") as url,
        FakeSlack(rate_limits={"per_channel_per_sec": 1, "workspace_per_min": 600, "scale": scale}) as fake,
    ):
        users = [u["id"] for u in fake.add_users(burst, prefix="UB")]
        db = Database(url)
        upgrade(db.engine)
        now = datetime.now(UTC)
        due = now + timedelta(seconds=due_in)
        with db.write() as session:
            for user in users:
                session.add(Member(user_id=user, name=user.lower(), tz="UTC", created_at=now))
        lead = Actor("UBLEAD", tz="UTC")
        for s in range(burst // PER_SHIFT):
            local = (due + REMIND).replace(tzinfo=None)
            spec = NewShift(
                f"Bench {s}",
                local,
                local + timedelta(hours=2),
                "UTC",
                PER_SHIFT,
                None,
                "none",
                REMIND,
                "C0BENCH",
            )
            with db.write() as session:
                created, _ = shifts.create(session, lead, spec, now, "bench")
            for user in users[s * PER_SHIFT : (s + 1) * PER_SHIFT]:
                with db.write() as session:
                    shifts.join(session, Actor(user), created.id or 0, now, "bench")
        db.dispose()
        env = {"SLACK_RATE_SCALE": str(scale), "SLACK_POSTS_PER_MIN": "600", "LOG_LEVEL": "ERROR"}
        with Cluster(fake, url, processes=processes, env=env, admins=()) as cluster:
            started_before_due = due.timestamp() - time.time()
            fake.clear()
            deadline = time.time() + due_in + 60.0 / scale * 6 + 120
            while time.time() < deadline:
                sent = [
                    c
                    for c in fake.calls_to("chat.postMessage")
                    if c.ok and str(c.params.get("text", "")).startswith("Reminder:")
                ]
                if len(sent) >= burst:
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # anything extra (a repeat) would show up now
            calls = [
                c
                for c in fake.calls_to("chat.postMessage")
                if c.ok and str(c.params.get("text", "")).startswith("Reminder:")
            ]
            rate_limited = fake.rate_limited_count
            leader = cluster.leader()
            leader_cpu = cpu_seconds(leader.pid) if leader else float("nan")
    per_user = Counter(str(c.params.get("channel")) for c in calls)
    due_wall = due.timestamp()
    lateness = [c.ts - due_wall for c in calls]
    ideal_last = earliest_schedule([due_wall] * burst, 600, 60.0 / scale, 1.0 / scale)[-1]
    last = max((c.ts for c in calls), default=float("nan"))
    return {
        "processes": processes,
        "ready_before_due_s": round(started_before_due, 1),
        "delivered": len(per_user.keys() & set(users)),
        "lost": len(set(users) - per_user.keys()),
        "repeated": sum(n - 1 for n in per_user.values() if n > 1),
        "rate_limited_429": rate_limited,
        "lateness_p50_s": round(median(lateness), 3) if lateness else None,
        "lateness_p99_s": round(pct(lateness, 99), 3) if lateness else None,
        "last_after_earliest_s": round(last - ideal_last, 3),
        "leader_cpu_s_total": round(leader_cpu, 2),
    }


def main_processes(args: argparse.Namespace) -> None:
    one = run_processes(1, args.scale, args.burst, args.due_in)
    many = run_processes(args.processes, args.scale, args.burst, args.due_in)

    def figures(r: dict[str, Any]) -> str:
        return (
            f"delivered {r['delivered']}, lost {r['lost']}, repeated {r['repeated']}, 429s {r['rate_limited_429']}, "
            f"lateness p50 {r['lateness_p50_s']} s p99 {r['lateness_p99_s']} s, last {r['last_after_earliest_s']} s "
            f"after the earliest possible (processes ready {r['ready_before_due_s']} s before the burst)"
        )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"reminders, PostgreSQL, burst of {args.burst} due at once, scale {args.scale:g}: "
        f"{args.processes} processes: {figures(many)} | 1 process (same run): {figures(one)} | "
        f"{os.cpu_count()} cores, load {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="speed-up of the fake's limits (1 = Slack's)"
    )
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="above 1: the burst on that many real bot processes on PostgreSQL (sandbox.cluster, real "
        "clock), beside one process run the same way; one line",
    )
    parser.add_argument("--due-in", type=float, default=45.0, help="with --processes: seconds to the burst")
    args = parser.parse_args()
    if args.processes > 1:
        main_processes(args)
        return
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    runs = [("paced", True, args.reminders)]
    if not args.no_baseline:
        # The baseline measures the burst only: it schedules just the reminders that fall due.
        runs.append(("baseline", False, args.burst))
    results: list[dict[str, Any]] = []
    for label, paced, reminders in runs:
        with scratch_database(args.backend) as url:
            results.append(run(label, args.scale, paced, reminders, args.burst, url))
        print(json.dumps(results[-1], indent=2), flush=True)
    print(f"peak RSS of the whole bench process: {peak_rss_mib():.1f} MiB; cpus: {os.cpu_count()}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if len(results) == 2:
        paced_run, baseline_run = results
        print(
            "baseline/paced, last reminder's lateness: "
            f"{baseline_run['lateness_max_s'] / paced_run['lateness_max_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
