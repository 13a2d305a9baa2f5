"""What a Prometheus scrape of /metrics costs when the queues are long: the three queue depths are
COUNTs read at scrape time (domain/backlog.py), each over at most 100,000 rows.

    .venv/bin/python -m bench.metrics_scrape                          # SQLite
    .venv/bin/python -m bench.metrics_scrape --backend postgresql     # PostgreSQL (CREWCALL_TEST_PG)

Baseline, measured in the same run: the same scrapes on the empty store. Seeded: an announcement
sending with --outbox pending messages beside a finished one with as many sent; --reminders shift
reminders, a tenth of them due and pending, the rest sent; --questions policy questions, a quarter
escalated. Prints one line: scrape latency p50 / max through the HTTP door, both stores.
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from datetime import timedelta
from statistics import median
from typing import Any

from sqlalchemy import insert

from db.models import Announcement, AnnouncementDelivery, PolicyQuestion, Shift, ShiftReminder
from sandbox.harness import BotHarness
from sandbox.scratch_db import scratch_database

BATCH = 10_000


def scrape_ms(url: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
            resp.read()
        times.append((time.perf_counter() - started) * 1000)
    return times


def seed(bot: BotHarness, outbox: int, reminders: int, questions: int) -> None:
    now = bot.clock.now()
    engine = bot.services.db.engine

    def rows(model: Any, template: dict[str, Any], count: int, vary: Any) -> None:
        for start in range(0, count, BATCH):
            batch = [{**template, **vary(n)} for n in range(start, min(count, start + BATCH))]
            with engine.begin() as conn:
                conn.execute(insert(model), batch)

    with bot.services.db.write() as session:
        sending, done = (
            Announcement(
                author_id="ULEAD",
                text="hi",
                audience_kind="everyone",
                send_at=now,
                created_at=now,
                state=state,
            )
            for state in ("sending", "done")
        )
        shift = Shift(
            name="Night",
            tz="UTC",
            first_starts_at=now,
            first_ends_at=now + timedelta(hours=2),
            starts_at=now,
            ends_at=now + timedelta(hours=2),
            slots=1,
            remind_minutes=30,
            channel_id="C0SHIFTS",
            creator_id="ULEAD",
            created_at=now,
            updated_at=now,
        )
        session.add_all([sending, done, shift])
        session.flush()
        assert sending.id is not None and done.id is not None and shift.id is not None
        ids = (sending.id, done.id, shift.id)
    delivery = AnnouncementDelivery(announcement_id=0, kind="dm", target="U").model_dump(exclude={"id"})
    for announcement_id, state in ((ids[0], "pending"), (ids[1], "sent")):
        rows(
            AnnouncementDelivery,
            {**delivery, "announcement_id": announcement_id, "state": state},
            outbox,
            lambda n: {"target": f"U{n:07d}"},
        )
    reminder = ShiftReminder(shift_id=ids[2], occurrence=0, user_id="U", due_at=now).model_dump(
        exclude={"id"}
    )
    rows(
        ShiftReminder,
        reminder,
        reminders,
        lambda n: {
            "occurrence": n // 1000,
            "user_id": f"U{n % 1000:05d}",
            "due_at": now - timedelta(minutes=1) if n % 10 == 0 else now - timedelta(days=1),
            "state": "pending" if n % 10 == 0 else "sent",
        },
    )
    question = PolicyQuestion(asker_id="U1", text="q", via="command", asked_at=now).model_dump(exclude={"id"})
    rows(PolicyQuestion, question, questions, lambda n: {"state": "escalated" if n % 4 == 0 else "answered"})


def run(backend: str, outbox: int, reminders: int, questions: int, runs: int) -> str:
    # The sender would work through the outbox meanwhile: one message a minute keeps it as seeded.
    with scratch_database(backend) as url, BotHarness(url, env={"ANNOUNCE_RATE_PER_MIN": "1"}) as bot:
        scrape_ms(bot.url, 3)  # warm
        empty = scrape_ms(bot.url, runs)
        seed(bot, outbox, reminders, questions)
        scrape_ms(bot.url, 3)
        full = scrape_ms(bot.url, runs)
    return (
        f"{backend}: empty p50 {median(empty):.1f} ms max {max(empty):.1f} ms; "
        f"seeded p50 {median(full):.1f} ms max {max(full):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--outbox", type=int, default=60_000)
    parser.add_argument("--reminders", type=int, default=300_000)
    parser.add_argument("--questions", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    result = run(args.backend, args.outbox, args.reminders, args.questions, args.runs)
    print(
        f"/metrics scrape, {args.runs} scrapes ({args.outbox:,} outbox pending + {args.outbox:,} sent, "
        f"{args.reminders:,} reminders ({args.reminders // 10:,} due), {args.questions:,} questions "
        f"({(args.questions + 3) // 4:,} escalated)): {result}"
    )


if __name__ == "__main__":
    main()
