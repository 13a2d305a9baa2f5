"""Slack API failures never crash the bot nor drop work silently; the scheduler runs on the bot's clock."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from db.engine import Database
from db.models import ProcessedEvent
from jobs import maintenance, runtime
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
    with bot.services.db.write() as session:
        session.add(ProcessedEvent(event_id="Ev-old", received_at=now - timedelta(days=8)))
        session.add(ProcessedEvent(event_id="Ev-new", received_at=now - timedelta(hours=1)))
    job = bot.services.scheduler.get("maintenance:prune-processed-events")
    assert job is not None and job.next_run_time == now + timedelta(hours=6)
    bot.restart()  # the job is in the database: re-registering it replaces, never duplicates
    assert len(bot.services.scheduler.jobs("maintenance:")) == 1
    bot.clock.advance(hours=6, seconds=1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with bot.services.db.write() as session:
            left = set(session.exec(select(ProcessedEvent.event_id)))
        if left == {"Ev-new"}:
            break
        time.sleep(0.05)
    assert left == {"Ev-new"}


def test_the_scheduler_sleeps_until_its_next_job_on_a_fake_clock(sqlite_bot: BotHarness) -> None:
    """Its loop must wait for the next job (or a move of the clock), not spin on the job store."""
    scheduler = sqlite_bot.services.scheduler
    soonest = min(j.next_run_time for j in scheduler.jobs() if j.next_run_time is not None)
    wait = scheduler._aps._process_jobs()  # noqa: SLF001
    assert wait == pytest.approx((soonest - sqlite_bot.clock.now()).total_seconds(), abs=1)


_job_started = threading.Event()
_job_may_finish = threading.Event()


def _job_that_reschedules_as_the_bot_stops() -> None:
    """A job that touches the job store after the bot began to stop (as hours' auto-close does)."""
    _job_started.set()
    _job_may_finish.wait(10)
    runtime.services().scheduler.remove("test:another")


def test_stopping_waits_for_a_running_job_that_uses_the_job_store(sqlite_bot: BotHarness) -> None:
    scheduler = sqlite_bot.services.scheduler
    now = sqlite_bot.clock.now()
    scheduler.at("test:another", maintenance.prune_processed_events, now + timedelta(days=1))
    scheduler.at("test:running", _job_that_reschedules_as_the_bot_stops, now + timedelta(minutes=1))
    sqlite_bot.clock.advance(minutes=1)
    assert _job_started.wait(5)
    stopping = threading.Thread(target=scheduler.shutdown)
    stopping.start()
    time.sleep(0.2)  # the shutdown is under way while the job still runs
    _job_may_finish.set()
    stopping.join(10)
    assert not stopping.is_alive(), "shutdown deadlocked on the job store"
    assert not scheduler.running


def test_due_one_off_jobs_leave_the_store_as_they_are_fetched(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    now = bot.clock.now()
    for n in range(5):
        bot.services.scheduler.at(
            f"test:prune:{n}", maintenance.prune_processed_events, now + timedelta(minutes=1)
        )
    with bot.services.db.write() as session:
        session.add(ProcessedEvent(event_id="Ev-old", received_at=now - timedelta(days=8)))
    bot.clock.advance(minutes=1)
    deadline = time.monotonic() + 5
    while bot.services.scheduler.jobs("test:") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bot.services.scheduler.jobs("test:") == []
    assert bot.services.scheduler.get("maintenance:prune-processed-events") is not None  # repeating: kept
    while time.monotonic() < deadline:
        with bot.services.db.write() as session:
            if not session.exec(select(ProcessedEvent)).all():
                break
        time.sleep(0.02)
    with bot.services.db.write() as session:
        assert session.exec(select(ProcessedEvent)).all() == []


def test_sqlite_writers_queue_in_process_and_every_way_out_frees_the_lock(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    with db.write() as session:
        session.exec(text("CREATE TABLE counter (n INTEGER NOT NULL)"))  # type: ignore[call-overload]
        session.exec(text("INSERT INTO counter VALUES (0)"))  # type: ignore[call-overload]
    with pytest.raises(RuntimeError), db.write() as session:  # rolled back
        session.exec(text("UPDATE counter SET n = n + 100"))  # type: ignore[call-overload]
        raise RuntimeError
    with db.engine.connect() as conn:  # a read, closed without commit
        conn.execute(text("SELECT n FROM counter"))

    def bump() -> None:
        for _ in range(25):
            with db.write() as session:  # read, then write: BEGIN IMMEDIATE keeps it whole
                n = session.exec(text("SELECT n FROM counter")).one()[0]  # type: ignore[call-overload]
                session.exec(text("UPDATE counter SET n = :n"), params={"n": n + 1})  # type: ignore[call-overload]

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)  # a lock left held would keep them waiting SQLITE_BUSY_TIMEOUT_S
    assert not any(t.is_alive() for t in threads)
    with db.write() as session:
        assert session.exec(text("SELECT n FROM counter")).one()[0] == 200  # type: ignore[call-overload]
    db.dispose()


def test_one_scheduler_leads_per_postgresql_database_and_a_standby_takes_over(templates) -> None:  # type: ignore[no-untyped-def]
    from core.clock import FakeClock
    from db.engine import Database
    from jobs.scheduler import Scheduler

    url = templates.postgresql()
    first_db, second_db, other_db = Database(url), Database(url), Database(templates.postgresql())
    clock = FakeClock()
    first, second, other = (
        Scheduler(d.engine, clock, standby_retry=0.1) for d in (first_db, second_db, other_db)
    )
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
