"""Slack API failures never crash the bot nor drop work silently; the scheduler runs on the bot's clock."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from db.models import ProcessedEvent
from sandbox.harness import BotHarness


def test_429_with_retry_after_is_waited_out(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    assert "is now a lead" in bot.command("UADMIN", "/crew", "lead <@U1>").text
    bot.wait_dm("U1", "made you a crewcall lead")
    assert time.monotonic() - started >= 1.0
    statuses = [c.status for c in bot.fake.calls_to("chat.postMessage")]
    assert statuses == [429, 200]


def test_server_errors_are_retried(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    bot.fake.fail_next("chat.postMessage", status=503)
    bot.command("UADMIN", "/crew", "lead <@U1>")
    bot.wait_dm("U1", "made you a crewcall lead")


@pytest.mark.parametrize("error", ["user_not_found", "channel_not_found", "account_inactive"])
def test_permanent_failures_are_logged_and_the_user_still_gets_an_answer(
    sqlite_bot: BotHarness, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    bot.fake.fail_next("conversations.open", error)
    with caplog.at_level(logging.ERROR, logger="crewcall.slack"):
        assert "is now a lead" in bot.command("UADMIN", "/crew", "lead <@U1>").text
        deadline = time.monotonic() + 5
        while not any(error in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert any(error in r.getMessage() and "U1" in r.getMessage() for r in caplog.records)
    assert "lead" in bot.command("U1", "/crew", "me")  # the change itself stands


def test_reply_falls_back_when_the_response_url_fails(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    bot.fake.fail_next("response_url", status=404, times=3)
    assert bot.driver is not None
    bot.driver.command("U1", "/crew", "me", channel_id="C0GENERAL")
    ephemeral = bot.fake.wait_for("chat.postEphemeral")[0]
    assert ephemeral.params["user"] == "U1" and ephemeral.params["channel"] == "C0GENERAL"


def test_scheduled_jobs_run_on_the_bot_clock_without_waiting(bot: BotHarness) -> None:
    now = bot.clock.now()
    with bot.services.db.session() as session:
        session.add(ProcessedEvent(event_id="Ev-old", received_at=now - timedelta(days=8)))
        session.add(ProcessedEvent(event_id="Ev-new", received_at=now - timedelta(hours=1)))
    job = bot.services.scheduler.get("maintenance:prune-processed-events")
    assert job is not None and job.next_run_time == now + timedelta(hours=6)
    bot.restart()  # the job is in the database: re-registering it replaces, never duplicates
    assert len(bot.services.scheduler.jobs("maintenance:")) == 1
    bot.clock.advance(hours=6, seconds=1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with bot.services.db.session() as session:
            left = set(session.exec(select(ProcessedEvent.event_id)))
        if left == {"Ev-new"}:
            break
        time.sleep(0.05)
    assert left == {"Ev-new"}


def test_the_scheduler_sleeps_until_its_next_job_on_the_bot_clock(sqlite_bot: BotHarness) -> None:
    """With jobs hours away on the bot's clock, the scheduler waits instead of polling its store."""
    aps = sqlite_bot.services.scheduler._aps  # noqa: SLF001
    passes = 0
    process_jobs = aps._process_jobs  # noqa: SLF001

    def counted() -> float | None:
        nonlocal passes
        passes += 1
        return process_jobs()

    aps._process_jobs = counted  # noqa: SLF001
    aps.wakeup()
    time.sleep(0.5)
    assert 1 <= passes <= 3
    wait = process_jobs()
    assert wait is not None and wait > 60  # the next job is at least an hour away


def test_one_scheduler_leads_per_postgresql_database_and_a_standby_takes_over(templates) -> None:  # type: ignore[no-untyped-def]
    from core.clock import FakeClock
    from db.engine import Database
    from jobs.scheduler import Scheduler

    url = templates.postgresql()
    first_db, second_db, other_db = Database(url), Database(url), Database(templates.postgresql())
    clock = FakeClock()
    first, second, other = (Scheduler(d.engine, clock) for d in (first_db, second_db, other_db))
    for s in (first, second, other):
        s.LEADER_POLL = 0.1
    try:
        first.start()
        second.start()
        other.start()
        assert first.is_leader and not second.is_leader
        assert other.is_leader  # another database has its own leader
        first.shutdown()
        deadline = time.monotonic() + 5
        while not second.is_leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.is_leader
    finally:
        for s in (first, second, other):
            s.shutdown()
        for d in (first_db, second_db, other_db):
            d.dispose()
