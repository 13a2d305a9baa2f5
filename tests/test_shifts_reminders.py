"""Reminders, occurrences and attendance on the injected clock: the right instant in three
timezones, weekly shifts across a DST change, downtime and restarts (exactly once, no duplicate
jobs), the start post, and no-shows."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from db.models import Shift, ShiftIncident, ShiftReminder
from domain.shifts import window_of
from sandbox.harness import BotHarness
from tests.shift_helpers import LEAD, add_member, at, eventually, make_lead, new_shift, reminders_to, settle


def _job_time(bot: BotHarness, job_id: str) -> str:
    job = bot.services.scheduler.get(job_id)
    assert job is not None, job_id
    return job.next_run_time.isoformat()


def test_reminders_at_the_right_instant_in_three_timezones(bot: BotHarness) -> None:
    make_lead(bot, tz="America/Chicago")
    people = {"UMNL": "Asia/Manila", "ULIS": "Europe/Lisbon", "UCHI": "America/Chicago"}
    for user, tz in people.items():
        add_member(bot, user, tz)
    # 22:00–02:00 Chicago time (CST, UTC−6): 04:00–08:00 UTC.
    new_shift(bot, "Night review start=2026-01-06T22:00 end=2026-01-07T02:00 slots=5 remind=45m")
    for user in people:
        assert "You're on" in bot.command(user, "/shifts", "join S-1").text
        assert _job_time(bot, f"reminder:S-1:0:{user}") == "2026-01-07T03:15:00+00:00"
    bot.clock.set(at("2026-01-07T03:14:59"))
    settle()
    assert all(reminders_to(bot, u) == [] for u in people)
    bot.clock.set(at("2026-01-07T03:15:00"))
    expected = {
        "UMNL": "Wed 07 Jan, 12:00 PST",  # Philippine Standard Time, UTC+8
        "ULIS": "Wed 07 Jan, 04:00 WET",
        "UCHI": "Tue 06 Jan, 22:00 CST",
    }
    for user, local in expected.items():
        dm = bot.wait_dm(user, "Reminder: S-1")
        assert local in dm.params["text"] and "in 45 min" in dm.params["text"]
        assert "shift_cant_make_it" in str(dm.params["blocks"])
    settle()
    assert all(len(reminders_to(bot, u)) == 1 for u in people)
    with bot.services.db.write() as session:
        assert {r.state for r in session.exec(select(ShiftReminder))} == {"sent"}


def test_weekly_shift_keeps_its_wall_clock_time_across_dst(bot: BotHarness) -> None:
    bot.clock.set(at("2026-03-02T12:00:00"))
    make_lead(bot, tz="America/Chicago")
    add_member(bot, "ULIS", "Europe/Lisbon")  # Lisbon changes clocks three weeks after Chicago
    new_shift(bot, "Weekly sync start=2026-03-03T22:00 end=2026-03-04T01:00 repeat=weekly remind=30m")
    bot.command("ULIS", "/shifts", "join S-1")
    # Week 1: 22:00 CST = 04:00 UTC.
    assert _job_time(bot, "reminder:S-1:0:ULIS") == "2026-03-04T03:30:00+00:00"
    bot.clock.set(at("2026-03-04T03:30:00"))
    assert "Wed 04 Mar, 04:00 WET" in bot.wait_dm("ULIS", "Reminder: S-1").params["text"]
    bot.clock.set(at("2026-03-04T04:00:00"))
    started = bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: "is starting now" in c.params.get("text", "")
    )
    assert "<@ULIS>" in started[0].params["text"]
    # Chicago moves to CDT on 8 March: week 2 is still 22:00 Chicago, now 03:00 UTC.
    eventually(lambda: bot.services.scheduler.get("reminder:S-1:1:ULIS"))
    assert _job_time(bot, "reminder:S-1:1:ULIS") == "2026-03-11T02:30:00+00:00"
    assert _job_time(bot, "shift:S-1:1:start") == "2026-03-11T03:00:00+00:00"
    with bot.services.db.write() as session:
        shift = session.get(Shift, 1)
        assert shift is not None and shift.occurrence == 1
        assert shift.starts_at.isoformat() == "2026-03-11T03:00:00+00:00"
    # The card now shows the next occurrence (each reader's own time; this is the UTC fallback).
    eventually(lambda: "2026-03-11 03:00 UTC" in str(bot.fake.messages["C0SHIFTS"][0]["blocks"]))
    bot.clock.set(at("2026-03-11T02:30:00"))
    assert (
        "Wed 11 Mar, 03:00 WET"
        in eventually(lambda: [c for c in reminders_to(bot, "ULIS") if "11 Mar" in c.params["text"]])[
            0
        ].params["text"]
    )
    # Week 4, after Lisbon's change too (29 March): 22:00 CDT = 03:00 UTC = 04:00 WEST.
    with bot.services.db.write() as session:
        shift = session.get(Shift, 1)
        assert shift is not None
        assert window_of(shift, 4)[0].isoformat() == "2026-04-01T03:00:00+00:00"


def test_reminder_due_during_downtime_is_sent_once_after_restart(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "Europe/Lisbon")
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 remind=1h")
    bot.command("U1", "/shifts", "join S-1")
    bot.stop()
    bot.clock.set(at("2026-01-05T19:40:00"))  # the reminder fell due at 19:00 while the bot was down
    bot.start()
    dm = bot.wait_dm("U1", "Reminder: S-1")
    assert "in 20 min" in dm.params["text"]
    bot.restart()
    bot.clock.set(at("2026-01-05T19:59:00"))
    settle()
    assert len(reminders_to(bot, "U1")) == 1
    assert bot.services.scheduler.jobs("reminder:") == []


def test_reminder_missed_until_after_the_start_is_skipped_and_logged(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 remind=1h")
    bot.command("U1", "/shifts", "join S-1")
    bot.stop()
    bot.clock.set(at("2026-01-05T20:10:00"))
    with caplog.at_level(logging.WARNING):
        bot.start()
        bot.fake.wait_for(
            "chat.postMessage", predicate=lambda c: "is starting now" in c.params.get("text", "")
        )
        settle()
    assert reminders_to(bot, "U1") == []
    assert any("reminder:S-1:0:U1 missed its run time" in r.getMessage() for r in caplog.records)
    with bot.services.db.write() as session:
        assert session.exec(select(ShiftReminder.state)).one() == "skipped"


def test_restart_re_registers_without_duplicates_and_recovers_a_lost_job(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    add_member(bot, "U2", "UTC")
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 slots=2 remind=1h")
    bot.command("U1", "/shifts", "join S-1")
    bot.command("U2", "/shifts", "join S-1")
    before = sorted(j.id for j in bot.services.scheduler.jobs())
    # A crash after APScheduler handed the job to a worker (and deleted it) but before it ran:
    bot.services.scheduler.remove("reminder:S-1:0:U2")
    bot.restart()
    bot.restart()
    assert sorted(j.id for j in bot.services.scheduler.jobs()) == before
    bot.clock.set(at("2026-01-05T19:00:00"))
    bot.wait_dm("U1", "Reminder: S-1")
    bot.wait_dm("U2", "Reminder: S-1")
    bot.restart()  # after they went out: registering again must not send them again
    bot.clock.set(at("2026-01-05T19:30:00"))
    settle()
    assert len(reminders_to(bot, "U1")) == 1 and len(reminders_to(bot, "U2")) == 1


def test_many_reminders_due_at_once_go_out_once_each(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    members = [add_member(bot, f"U{n}", "UTC") for n in range(10)]
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 slots=10 remind=1h")
    for member in members:
        bot.command(member, "/shifts", "join S-1")
    bot.clock.set(at("2026-01-05T19:00:00"))
    eventually(lambda: all(reminders_to(bot, m) for m in members))
    bot.restart()
    bot.clock.set(at("2026-01-05T19:10:00"))
    settle()
    assert [len(reminders_to(bot, m)) for m in members] == [1] * 10
    assert bot.services.scheduler.jobs("reminder:") == []
    with bot.services.db.write() as session:
        assert set(session.exec(select(ShiftReminder.state))) == {"sent"}


def test_a_reminder_cut_off_between_claim_and_send_goes_out_once_after_a_quick_restart(
    bot: BotHarness,
) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 remind=1h")
    bot.command("U1", "/shifts", "join S-1")
    # What a crash right after the claim leaves: the job gone from the store, the ledger "sending".
    bot.services.scheduler.remove("reminder:S-1:0:U1")
    with bot.services.db.write() as session:
        session.exec(  # type: ignore[call-overload]
            update(ShiftReminder).values(state="sending", claimed_at=at("2026-01-05T19:00:00"), attempts=1)
        )
    bot.stop()
    bot.clock.set(at("2026-01-05T19:00:30"))
    bot.start()  # within STALE_SENDING: it may still be in flight elsewhere, so not yet
    settle()
    assert reminders_to(bot, "U1") == []
    bot.clock.set(at("2026-01-05T19:02:01"))
    bot.wait_dm("U1", "Reminder: S-1")
    bot.restart()
    bot.clock.set(at("2026-01-05T19:10:00"))
    settle()
    assert len(reminders_to(bot, "U1")) == 1
    with bot.services.db.write() as session:
        assert session.exec(select(ShiftReminder.state)).one() == "sent"


def test_failed_reminder_is_retried_before_the_start(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 remind=1h")
    bot.command("U1", "/shifts", "join S-1")
    bot.fake.fail_next("chat.postMessage", "internal_error", status=500)  # the client never repeats a post
    bot.clock.set(at("2026-01-05T19:00:00"))
    eventually(lambda: bot.services.scheduler.jobs("reminder:S-1:0:U1:retry"))
    bot.clock.set(at("2026-01-05T19:01:00"))
    bot.wait_dm("U1", "Reminder: S-1")
    settle()
    assert len(reminders_to(bot, "U1")) == 1


def test_start_post_lists_who_is_on_and_no_shows_are_recorded(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    for user in ("U1", "U2", "U3"):
        add_member(bot, user, "UTC")
    new_shift(bot, "First start=2026-01-05T12:00 end=2026-01-05T14:00 slots=3")
    for user in ("U1", "U2", "U3"):
        bot.command(user, "/shifts", "join S-1")
    bot.command("U3", "/shifts", "leave S-1")  # left: not a no-show (a late cancellation instead)
    bot.clock.set(at("2026-01-05T12:00:00"))
    post = bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: "is starting now" in c.params.get("text", "")
    )[0]
    assert post.params["channel"] == "C0SHIFTS"
    assert (
        "<@U1>" in post.params["text"]
        and "<@U2>" in post.params["text"]
        and "<@U3>" not in post.params["text"]
    )
    bot.clock.set(at("2026-01-05T12:10:00"))
    bot.command("U1", "/hours", "in")
    bot.clock.set(at("2026-01-05T14:00:00"))
    bot.wait_dm("U2", "recorded as a no-show")
    eventually(lambda: "ended" in str(bot.fake.messages["C0SHIFTS"][0]["blocks"]))
    with bot.services.db.write() as session:
        kinds = {(i.user_id, i.kind) for i in session.exec(select(ShiftIncident))}
    assert kinds == {("U2", "no_show"), ("U3", "late_cancel")}
    assert [c for c in bot.dms_to(LEAD) if "no-shows" in c.params["text"]] == []
    # A second no-show within 30 days tells the lead.
    new_shift(bot, "Second start=2026-01-20T12:00 end=2026-01-20T13:00")
    bot.command("U2", "/shifts", "join S-2")
    bot.clock.set(at("2026-01-20T12:00:00"))
    bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: "S-2 Second is starting" in c.params.get("text", "")
    )
    bot.clock.set(at("2026-01-20T13:00:00"))
    alert = bot.wait_dm(LEAD, "no-shows in the last 30 days")
    assert "<@U2>" in alert.params["text"] and "2 no-shows" in alert.params["text"]
    bot.restart()  # judging is done once
    settle()
    assert len([c for c in bot.dms_to("U2") if "no-show" in c.params["text"]]) == 2


def test_daily_shift_moves_on_after_downtime_across_several_days(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    new_shift(bot, "Daily start=2026-01-05T18:00 end=2026-01-05T19:00 repeat=daily remind=30m")
    bot.command("U1", "/shifts", "join S-1")
    bot.stop()
    bot.clock.set(at("2026-01-08T10:00:00"))  # three occurrences passed while down
    bot.start()
    eventually(lambda: bot.services.scheduler.get("reminder:S-1:3:U1"))
    assert _job_time(bot, "reminder:S-1:3:U1") == "2026-01-08T17:30:00+00:00"
    settle()
    assert reminders_to(bot, "U1") == []
    assert not [c for c in bot.dms_to("U1") if "no-show" in c.params["text"]]  # nobody is judged for downtime
    bot.clock.advance(timedelta(hours=7, minutes=30))
    bot.wait_dm("U1", "Reminder: S-1")
