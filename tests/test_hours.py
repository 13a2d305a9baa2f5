"""/hours through the HTTP endpoint on the injected clock: clocking in and out, the week's totals and
earnings, the 10 h reminder and 12 h auto-close (also across downtime), the 40 h alert, the lead's
CSV report, approving flagged time, the hours.recorded event, and malformed input."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from sqlmodel import select

from core import events
from db.models import TimeEntry
from domain import hours
from sandbox.harness import BotHarness
from tests.shift_helpers import LEAD, add_member, add_task, at, eventually, make_lead, settle


def _work(bot: BotHarness, user: str, duration: timedelta, task: int | None = None) -> str:
    reply = bot.command(user, "/hours", f"in T-{task}" if task else "in")
    assert "Clocked in" in reply.text, reply.text
    bot.clock.advance(duration)
    return bot.command(user, "/hours", "out").text


def test_clock_in_out_totals_and_earnings(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "Europe/Lisbon")
    contract = add_task(bot, "Contract review", 12_000, holder="U1")  # $120.00/h
    triage = add_task(bot, "Triage", 8_750, holder="U1")  # $87.50/h
    recorded: list[str] = []
    bot.services.events.on(events.HOURS_RECORDED, lambda user_id: recorded.append(user_id))
    out = _work(bot, "U1", timedelta(hours=2, minutes=30), contract)
    assert "2.50 h on T-1 Contract review, $300.00 at $120.00/h" in out
    eventually(lambda: recorded == ["U1"])
    assert "1.25 h" in _work(bot, "U1", timedelta(hours=1, minutes=15), triage)
    assert "1.00 h" in _work(bot, "U1", timedelta(hours=1))
    bot.command("U1", "/hours", f"in T-{contract}")
    bot.clock.advance(minutes=30)
    week = bot.command("U1", "/hours")
    text = week.all_text
    assert "T-1 Contract review: 2.50 h × $120.00/h = *$300.00*" in text
    assert "T-2 Triage: 1.25 h × $87.50/h = *$109.38*" in text  # 109.375, rounded half-up
    assert "No task: 1.00 h (no rate)" in text
    assert "Total: 4.75 h · $409.38" in text
    assert "Clocked in on T-1 Contract review since Mon 05 Jan, 13:45 WET (0.50 h so far)" in text
    assert "Mon 05 Jan – Sun 11 Jan" in text
    with bot.services.db.write() as session:
        assert hours.tracked_hours(session, "U1") == Decimal("4.75")


def test_week_is_the_iso_week_in_the_members_own_timezone(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    add_member(bot, "UMNL", "Asia/Manila")
    # Sunday 11 Jan 16:00 UTC is Monday 12 Jan 00:00 in Manila (UTC+8): a new week there.
    bot.clock.set(at("2026-01-11T15:00:00"))
    _work(bot, "UMNL", timedelta(hours=2))  # 15:00–17:00 UTC: one hour in each Manila week
    week = bot.command("UMNL", "/hours").all_text
    assert "Mon 12 Jan – Sun 18 Jan" in week and "Total: 1.00 h" in week


def test_ten_hour_reminder_and_twelve_hour_auto_close(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    bot.command("U1", "/hours", "in")
    bot.clock.advance(hours=9, minutes=59)
    settle()
    assert not [c for c in bot.dms_to("U1") if "10 hours" in c.params["text"]]
    bot.clock.advance(minutes=1)
    bot.wait_dm("U1", "clocked in for 10 hours")
    bot.clock.advance(hours=2)
    bot.wait_dm("U1", "open for 12 hours")
    bot.wait_dm("UADMIN", "closed automatically")  # no LEADS_CHANNEL: admins are told
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert entry.ended_at == entry.started_at + timedelta(hours=12)
        assert entry.flagged and "12 hours" in entry.flag_reason
        assert hours.tracked_hours(session, "U1") == Decimal("0.00")  # flagged: not counted yet
    assert "not clocked in" in bot.command("U1", "/hours", "out").text
    assert "12.00 h flagged for review" in bot.command("U1", "/hours").all_text
    assert f"E-{entry.id}" in bot.command(LEAD, "/hours", "flagged").all_text
    assert "Only leads" in bot.command("U1", "/hours", f"approve E-{entry.id}").text
    assert "Approved" in bot.command(LEAD, "/hours", f"approve E-{entry.id}").text
    with bot.services.db.write() as session:
        assert hours.tracked_hours(session, "U1") == Decimal("12.00")
    assert "isn't flagged" in bot.command(LEAD, "/hours", f"approve E-{entry.id}").text


def test_auto_close_after_downtime_closes_at_twelve_hours(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    bot.command("U1", "/hours", "in")
    bot.stop()
    bot.clock.advance(hours=15)  # both the 10 h reminder and the 12 h close fell due while down
    bot.start()
    bot.wait_dm("U1", "open for 12 hours")
    settle()
    assert not [c for c in bot.dms_to("U1") if "clocked in for 10 hours" in c.params["text"]]
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert entry.ended_at == at("2026-01-05T21:00:00") and entry.flagged  # not 15 h


def test_clocking_out_cancels_the_reminders(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    add_member(bot, "U1", "UTC")
    bot.command("U1", "/hours", "in")
    assert bot.services.scheduler.get("hours:E-1:close") is not None
    bot.clock.advance(hours=3)
    bot.command("U1", "/hours", "out")
    assert bot.services.scheduler.jobs("hours:") == []
    bot.clock.advance(hours=12)
    settle()
    assert not [c for c in bot.dms_to("U1") if "hours" in c.params["text"]]


def test_over_forty_hours_in_a_week_tells_the_lead_once(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    bot.command(LEAD, "/crew", "cap <@U1> 50")  # the default cap (40) would stop the clock at 40
    for day in range(5):  # Mon–Fri, 9 h a day: 36 h after Thursday, 45 h after Friday
        bot.clock.set(at(f"2026-01-{5 + day:02d}T08:00:00"))
        _work(bot, "U1", timedelta(hours=9))
        if day == 3:
            settle()
            assert not [c for c in bot.dms_to("UADMIN") if "over 40" in c.params["text"]]
    alert = bot.wait_dm("UADMIN", "over 40")
    assert "<@U1> has 45.00 tracked hours in the week starting Mon 05 Jan" in alert.params["text"]
    bot.clock.set(at("2026-01-10T08:00:00"))
    _work(bot, "U1", timedelta(hours=2))
    settle()
    assert len([c for c in bot.dms_to("UADMIN") if "over 40" in c.params["text"]]) == 1
    assert "Over 40 hours this week" in bot.command("U1", "/hours").all_text


def test_lead_report_is_a_csv_uploaded_to_the_lead(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    add_member(bot, "U2", "UTC")
    task = add_task(bot, "Contract review", 12_000, holder="U1")
    _work(bot, "U1", timedelta(hours=2), task)
    _work(bot, "U2", timedelta(minutes=90))
    assert "Only leads and admins can download the hours report" in bot.command("U1", "/hours", "report").text
    reply = bot.command(LEAD, "/hours", "report")
    assert "Sent `hours-week-of-2026-01-05.csv` to your DMs: 2 member(s), 3.50 h counted" in reply.text
    upload = next(iter(bot.fake.uploaded_files.values()))
    assert upload["channel_id"] == "D" + LEAD[1:]  # the lead's DM
    rows = list(csv.DictReader(io.StringIO(upload["content"].decode())))
    assert [(r["member_id"], r["task"], r["hours"], r["earnings_usd"]) for r in rows] == [
        ("U1", "T-1", "2.00", "240.00"),
        ("U2", "", "1.50", "0.00"),
    ]
    assert "is not a date" in bot.command(LEAD, "/hours", "report week=2026-13-01").text
    assert "hasn't started yet" in bot.command(LEAD, "/hours", "report week=2026-02-01").text
    assert "0 member(s)" in bot.command(LEAD, "/hours", "report week=2025-12-29").text


def test_malformed_and_refused_hours_input(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    add_member(bot, "U2", "UTC")
    held_by_other = add_task(bot, "Someone else's", 10_000, holder="U2")
    assert "`T-abc` is not a task ID" in bot.command("U1", "/hours", "in T-abc").text
    assert "There is no task T-99" in bot.command("U1", "/hours", "in T-99").text
    assert "You don't hold T-1" in bot.command("U1", "/hours", f"in T-{held_by_other}").text
    assert "not clocked in" in bot.command("U1", "/hours", "out").text
    assert "I didn't understand `extra`" in bot.command("U1", "/hours", "out extra").text
    assert "`sideways` is not a /hours subcommand" in bot.command("U1", "/hours", "sideways").text
    assert "is not a time entry ID" in bot.command(LEAD, "/hours", "approve X").text
    assert "There is no time entry E-5" in bot.command(LEAD, "/hours", "approve E-5").text
    assert "Clocked in" in bot.command("U1", "/hours", "in").text
    assert "already clocked in" in bot.command("U1", "/hours", "in").text
    with bot.services.db.write() as session:
        assert len(session.exec(select(TimeEntry)).all()) == 1
    assert "/hours report" in bot.command("U1", "/hours", "help").all_text
