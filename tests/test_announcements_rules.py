"""The announcement rules and the sender's parts, directly: times, audiences, the outbox's
conditional claims under real threads (on SQLite and PostgreSQL), pacing, failure verdicts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient

from core.authz import Actor, Role
from core.config import ConfigError, load_config
from core.errors import UserError
from core.people import Profile
from core.slack import SlackGateway
from db.engine import Database
from domain import announcements as rules
from jobs.announcements import (
    IN_DOUBT,
    PERMANENT,
    RATELIMITED,
    RETRY,
    EvenPacer,
    backoff,
    outcome,
    workspace_members,
)
from sandbox.fake_slack import FakeSlack
from views.announcements import progress_bar

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEAD = Actor("ULEAD", Role.LEAD, tz="America/New_York", name="Lea")


def test_send_time_is_read_in_the_leads_timezone() -> None:
    when = rules.local_send_time(datetime(2026, 1, 12, 9, 0), "America/New_York", NOW)
    assert when == datetime(2026, 1, 12, 14, 0, tzinfo=UTC)
    # The autumn night that happens twice: the first 01:30 is taken.
    assert rules.local_send_time(
        datetime(2026, 11, 1, 1, 30), "America/New_York", datetime(2026, 10, 1, tzinfo=UTC)
    )
    with pytest.raises(UserError, match="does not exist in America/New_York"):
        rules.local_send_time(datetime(2026, 3, 8, 2, 30), "America/New_York", NOW)
    with pytest.raises(UserError, match="has already passed"):
        rules.local_send_time(datetime(2026, 1, 5, 3, 59), "America/New_York", NOW)
    with pytest.raises(UserError, match="at most 90 days"):
        rules.local_send_time(datetime(2026, 4, 6, 9, 0), "America/New_York", NOW)


def test_text_limits() -> None:
    assert rules.check_text("  hi *there*\n") == "hi *there*"
    with pytest.raises(UserError, match="no text"):
        rules.check_text(" \n ")
    assert rules.check_text("x" * rules.MAX_TEXT)
    with pytest.raises(UserError, match="3,001 characters"):
        rules.check_text("x" * (rules.MAX_TEXT + 1))


def test_audiences() -> None:
    assert rules.Audience.channels(["C1", "C2", "C1"]).ids == ("C1", "C2")
    assert rules.Audience.skills(["medicine", "legal", "legal"]).ids == ("legal", "medicine")
    with pytest.raises(UserError):
        rules.Audience.channels([])
    with pytest.raises(UserError, match="At most 20 channels"):
        rules.Audience.channels([f"C{i}" for i in range(21)])
    people = [
        Profile("U1", "a", "A", "UTC", None),
        Profile("U2", "b", "B", "UTC", None, is_bot=True),
        Profile("U3", "c", "C", "UTC", None, deleted=True),
        Profile("USLACKBOT", "slackbot", "Slackbot", "UTC", None),
        Profile("U1", "a", "A", "UTC", None),
        Profile("U4", "d", "D", "UTC", None),
    ]
    assert rules.reachable(people) == ["U1", "U4"]


def test_everyone_is_read_from_every_page_of_users_list(fake: FakeSlack) -> None:
    ids = [u["id"] for u in fake.add_users(10)]
    slack = SlackGateway(WebClient(token="xoxb-t", base_url=fake.api_url))
    profiles = workspace_members(slack, page_size=3)
    assert [p.user_id for p in profiles] == ["U0BOT", *ids]
    assert len(fake.calls_to("users.list")) == 4
    assert rules.reachable(profiles) == ids


def test_failure_verdicts() -> None:
    assert outcome("ratelimited") == RATELIMITED
    for error in ("user_not_found", "account_inactive", "cannot_dm_bot", "channel_not_found", "is_archived"):
        assert outcome(error) == PERMANENT
    for error in ("internal_error", "fatal_error", "transport: TimeoutError", "502"):
        assert outcome(error) == IN_DOUBT
    for error in ("service_unavailable", "request_timeout", "something_new"):
        assert outcome(error) == RETRY
    assert [backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(30) == 60.0


def test_pacer_spaces_sends_evenly_and_honours_a_pause() -> None:
    pacer, stop = EvenPacer(per_second=200), threading.Event()
    started = time.monotonic()
    stamps = []
    for _ in range(41):
        assert pacer.wait(stop)
        stamps.append(time.monotonic())
    # At most CATCH_UP slots ahead of an even spacing, never more.
    assert stamps[-1] - started >= (40 - EvenPacer.CATCH_UP) / 200 - 0.001
    for i in range(len(stamps)):
        in_window = [t for t in stamps[i:] if t - stamps[i] < 0.05]
        assert len(in_window) <= 0.05 * 200 + EvenPacer.CATCH_UP + 1
    pacer.pause(0.3)
    paused = time.monotonic()
    for _ in range(3):
        assert pacer.wait(stop)
    assert time.monotonic() - paused >= 0.29
    stop.set()
    pacer.pause(5)
    assert not pacer.wait(stop)  # a stop ends the wait at once


def test_progress_bar() -> None:
    assert progress_bar(0, 10, width=10) == "`░░░░░░░░░░` 0%"
    assert progress_bar(5, 10, width=10) == "`█████░░░░░` 50%"
    assert progress_bar(10, 10, width=10) == "`██████████` 100%"
    assert progress_bar(0, 0, width=4) == "`████` 100%"


# ---- the outbox under concurrency, on both backends ----------------------------------------------


def _running_announcement(db: Database, n: int) -> int:
    profiles = [Profile(f"U{i:04d}", "p", "P", "UTC", None) for i in range(n)]
    with db.write() as session:
        announcement = rules.create(
            session,
            by=LEAD,
            text="hello",
            audience=rules.Audience.everyone(),
            ask_ack=True,
            send_at=None,
            now=NOW,
            source="test",
        )
    assert announcement.id is not None
    with db.write() as session:
        assert rules.materialize(session, announcement.id, NOW, profiles)
    return announcement.id


def test_each_row_is_claimed_by_exactly_one_of_many_workers(database_url: str) -> None:
    db = Database(database_url)
    try:
        announcement_id = _running_announcement(db, 60)
        with db.write() as session:
            ids = rules.pending_after(session, announcement_id, 0, 1000)
        assert len(ids) == 60
        won: dict[str, list[int]] = {}
        barrier = threading.Barrier(4)

        def worker(name: str) -> None:
            barrier.wait()
            mine = won.setdefault(name, [])
            for delivery_id in ids:
                with db.write() as session:
                    if rules.claim(session, delivery_id, name, NOW):
                        mine.append(delivery_id)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        claimed = [i for mine in won.values() for i in mine]
        assert sorted(claimed) == sorted(ids)  # every row once, none twice
        with db.write() as session:
            assert rules.in_doubt(session, [announcement_id], not_claimed_by="w0") == sorted(
                i for name, mine in won.items() if name != "w0" for i in mine
            )
    finally:
        db.dispose()


def test_an_announcement_goes_out_once_however_many_try_to_start_it(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.write() as session:
            announcement = rules.create(
                session,
                by=LEAD,
                text="once",
                audience=rules.Audience.everyone(),
                ask_ack=False,
                send_at=NOW + timedelta(hours=1),
                now=NOW,
                source="test",
            )
        later = NOW + timedelta(hours=2)
        profiles = [Profile(f"U{i}", "p", "P", "UTC", None) for i in range(30)]
        results: list[bool] = []
        barrier = threading.Barrier(3)

        def start() -> None:
            barrier.wait()
            with db.write() as session:
                results.append(rules.materialize(session, announcement.id or 0, later, profiles))

        threads = [threading.Thread(target=start) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, True]
        with db.write() as session:
            assert len(rules.pending_after(session, announcement.id or 0, 0, 1000)) == 30
            assert rules.materialize(session, announcement.id or 0, later, profiles) is False
    finally:
        db.dispose()


def test_cancel_and_claim_race_for_each_row_and_one_wins(database_url: str) -> None:
    db = Database(database_url)
    try:
        announcement_id = _running_announcement(db, 40)
        with db.write() as session:
            ids = rules.pending_after(session, announcement_id, 0, 1000)
        claimed: list[int] = []
        stopped: list[int] = []
        barrier = threading.Barrier(2)

        def claimer() -> None:
            barrier.wait()
            for delivery_id in ids:
                with db.write() as session:
                    if rules.claim(session, delivery_id, "w", NOW):
                        claimed.append(delivery_id)

        def canceller() -> None:
            barrier.wait()
            time.sleep(0.01)
            with db.write() as session:
                stopped.append(rules.cancel(session, announcement_id, LEAD, NOW, "test").stopped)

        threads = [threading.Thread(target=claimer), threading.Thread(target=canceller)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(claimed) + stopped[0] == 40
        with db.write() as session:
            progress = rules.progress(session, announcement_id)
        assert progress is not None
        assert (progress.sending, progress.cancelled, progress.pending) == (len(claimed), stopped[0], 0)
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("name", "value"),
    [("ANNOUNCE_RATE_PER_MIN", "0"), ("ANNOUNCE_RATE_PER_MIN", "fast"), ("ANNOUNCE_INDOUBT_WAIT", "-1")],
)
def test_announcement_settings_refuse_bad_values(name: str, value: str) -> None:
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    config = load_config(env=base, dotenv_path=None)
    assert (config.announce_rate_per_min, config.announce_indoubt_wait) == (480, 10.0)
    with pytest.raises(ConfigError, match=name):
        load_config(env={**base, name: value}, dotenv_path=None)
