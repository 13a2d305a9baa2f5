"""The hours report is summed by the database: the same figures as adding up each entry's part of
the week, to the microsecond, on both backends; and no entry outlasts the 12-hour close, which is
what lets the report read only the entries that started up to 12 hours before the week."""

from __future__ import annotations

import os
import signal
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from core.money import pay_cents
from db.engine import Database
from db.models import Member, Task, TimeEntry
from domain import hours
from jobs import reports
from sandbox.harness import BotHarness, reply_to
from tests.shift_helpers import LEAD, add_member, add_task, eventually, make_lead

START = datetime(2026, 3, 9, tzinfo=UTC)  # a Monday
END = START + timedelta(days=7)
US = timedelta(microseconds=1)


def _entries(task_a: int, task_b: int) -> list[TimeEntry]:
    def e(
        user: str, started: datetime, length: timedelta, task: int | None, flagged: bool = False
    ) -> TimeEntry:
        return TimeEntry(
            user_id=user, task_id=task, started_at=started, ended_at=started + length, flagged=flagged
        )

    return [
        e(
            "U1",
            START + timedelta(hours=9, microseconds=123_457),
            timedelta(hours=2, microseconds=876_543),
            task_a,
        ),
        e("U1", START + timedelta(days=1, hours=9), timedelta(hours=1, seconds=0.4), task_a),
        e("U1", START + timedelta(days=1, hours=11), timedelta(minutes=45, seconds=0.6), task_a),
        e("U1", START - timedelta(hours=11, minutes=59), timedelta(hours=12), task_b),  # 1 minute inside
        e("U1", START - timedelta(hours=12), timedelta(hours=12), task_b),  # ends as the week starts
        e("U1", END - timedelta(hours=1), timedelta(hours=3), None),  # 1 hour inside, no task
        e("U1", START + timedelta(days=2), timedelta(hours=12), task_b, flagged=True),
        e("U2", START + timedelta(days=3), timedelta(hours=41, microseconds=-1), None),  # over 40 h
        e("U2", START + timedelta(days=8), timedelta(hours=2), task_a),  # next week
        e("U2", START - timedelta(days=3), timedelta(hours=2), task_a),  # last week
    ]


def _by_hand(entries: list[TimeEntry]) -> dict[tuple[str, int | None], tuple[int, int]]:
    """Each entry's part of the week, added up per member and task: (counted, flagged) µs."""
    sums: dict[tuple[str, int | None], list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        assert entry.ended_at is not None
        part = min(entry.ended_at, END) - max(entry.started_at, START)
        if part > timedelta(0):
            sums[(entry.user_id, entry.task_id)][1 if entry.flagged else 0] += part // US
    return {k: (v[0], v[1]) for k, v in sums.items()}


def _cents_by_hand(entries: list[TimeEntry], rates: dict[int, int]) -> dict[tuple[str, int | None], int]:
    """Each counted entry's pay for its part of the week, rounded on its own (issue 17's rule: half-up
    to the cent per entry), added up per member and task."""
    sums: dict[tuple[str, int | None], int] = defaultdict(int)
    for entry in entries:
        assert entry.ended_at is not None
        part = min(entry.ended_at, END) - max(entry.started_at, START)
        if part > timedelta(0) and not entry.flagged and entry.task_id is not None:
            sums[(entry.user_id, entry.task_id)] += pay_cents(
                part // timedelta(seconds=1), rates[entry.task_id]
            )
    return dict(sums)


def test_report_sums_in_the_database_what_each_entry_adds(database_url: str) -> None:
    db = Database(database_url)
    with db.write() as session:
        session.add(Member(user_id="U1", name="ana", real_name="Ana Silva", created_at=START))
        session.add(Member(user_id="U2", name="bo", created_at=START))
        tasks = [Task(title=t, rate_cents=r, slots=1, creator_id=LEAD, created_at=START, updated_at=START)
                 for t, r in (("Contract review", 12_000), ("Triage", 8_750))]  # fmt: skip
        session.add_all(tasks)
        session.flush()
        task_a, task_b = (t.id or 0 for t in tasks)
        entries = _entries(task_a, task_b)
        session.add_all(entries)
    expected = _by_hand(entries)
    with db.read() as session:
        rows = hours.report(session, START, END)
    db.dispose()
    got = {(r.user_id, r.line.task_id): (r.line.counted // US, r.line.flagged // US) for r in rows}
    assert got == expected
    assert [(r.user_id, r.name, r.line.task_id) for r in rows] == [
        ("U1", "Ana Silva", task_a),
        ("U1", "Ana Silva", task_b),
        ("U1", "Ana Silva", None),  # no task last
        ("U2", "bo", None),
    ]
    contract = rows[0].line
    assert contract.hours == hours.as_hours(expected[("U1", task_a)][0] // 1_000_000)
    # Paid per entry, each rounded half-up on its own (issue 17), not once on the line's total:
    # 7200 s + 3600 s + 2700 s at $120/h is $450.00, where the line's 13,501 s would round to $450.03.
    cents = _cents_by_hand(entries, {task_a: 12_000, task_b: 8_750})
    assert contract.earnings_cents == cents[("U1", task_a)] == 45_000
    assert rows[1].line.earnings_cents == cents[("U1", task_b)] == 146  # 60 s at $87.50/h, rounded up
    assert rows[2].line.earnings_cents == rows[3].line.earnings_cents == 0  # no task: no rate
    assert rows[1].line.flagged_hours == hours.as_hours(12 * 3600)
    u1_counted = sum(v[0] for (user, _), v in expected.items() if user == "U1")
    assert {r.week_hours for r in rows[:3]} == {hours.as_hours(u1_counted // 1_000_000)}
    assert not rows[0].over_limit
    assert rows[3].over_limit and rows[3].week_hours == hours.as_hours(41 * 3600 - 1)


def test_a_clock_out_after_12_hours_closes_at_the_mark_and_flags(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    task = add_task(bot, "Contract review", 12_000, holder="U1")
    started = bot.clock.now()
    assert "Clocked in" in bot.command("U1", "/hours", f"in T-{task}").text
    bot.services.scheduler.shutdown(wait=True)  # the automatic close doesn't run (the bot was down)
    bot.clock.advance(hours=15)
    out = bot.command("U1", "/hours", "out").text
    assert "was open for 12 hours" in out and "12.00 h" in out and "flagged (E-1)" in out
    with bot.services.db.read() as session:
        entry = hours.flagged_entries(session)[0]
    assert entry.ended_at == started + hours.AUTO_CLOSE_AFTER and entry.task_title == "Contract review"
    eventually(lambda: any("/hours approve E-1" in c.params["text"] for c in bot.dms_to("UADMIN")))
    assert "No tracked time yet" in bot.command("U1", "/hours").all_text  # flagged: counts nowhere


def test_reports_are_built_in_a_worker_process_that_comes_back_after_dying(sqlite_bot: BotHarness) -> None:
    """The CSV is built outside the bot's process (its Python would hold the bot's GIL), and a worker
    killed (out of memory, say) is replaced at the next report instead of failing every report after."""
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    assert "0 member(s)" in bot.command(LEAD, "/hours", "report").text
    worker = reports._executor
    assert worker is not None
    pids = list(worker._processes)  # the pool's worker process
    assert pids and os.getpid() not in pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: worker._broken)  # the pool notices its worker died
    assert "0 member(s)" in bot.command(LEAD, "/hours", "report").text
    assert reports._executor is not worker


def test_a_report_is_acknowledged_before_it_is_built(sqlite_bot: BotHarness, monkeypatch: Any) -> None:
    """Building a report takes a second or more at size: the command is acknowledged (empty) before
    the report is built, not held for it (the answer's hold, handlers.kit.ack, lasts up to 1.5 s),
    and the answer follows through the response_url."""
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    acknowledged = threading.Event()
    seen_while_building: list[bool] = []
    worker = reports._worker

    class AfterTheAck:
        """The report's worker, starting once the command's acknowledgement has come back."""

        def submit(self, *args: Any) -> Any:
            seen_while_building.append(acknowledged.wait(timeout=1.4))  # within the hold's 1.5 s
            return worker().submit(*args)

    monkeypatch.setattr(reports, "_worker", AfterTheAck)
    assert bot.driver is not None
    url = bot.fake.new_response_url()
    response = bot.driver.command(LEAD, "/hours", "report", response_url=url)
    acknowledged.set()
    assert response.status == 200 and not response.body.strip()
    assert "0 member(s)" in reply_to(bot.fake, response, url).text
    assert seen_while_building == [True]
