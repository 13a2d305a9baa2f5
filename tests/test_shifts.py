"""/shifts through the HTTP endpoint: scheduling (command and modal), malformed input, the card,
joining (atomic, skill-gated), leaving (late cancellations), cancelling, lists and the Home tab."""

from __future__ import annotations

import threading

from sqlmodel import select

from db.models import AuditEntry, Shift, ShiftIncident, ShiftMember
from sandbox.driver import conversations_select, static_select
from sandbox.harness import BotHarness
from tests.shift_helpers import LEAD, add_member, eventually, make_lead, new_shift, reminders_to, settle

NIGHT = "Night review start=2026-01-06T22:00 end=2026-01-07T02:00 slots=2 remind=30m"


def _card(bot: BotHarness, channel: str = "C0SHIFTS") -> dict:
    return bot.fake.messages[channel][0]


def test_lead_schedules_a_shift_and_the_card_is_posted(bot: BotHarness) -> None:
    make_lead(bot)
    reply = new_shift(bot, "Night review start=2026-01-06T22:00 end=2026-01-07T02:00 slots=5 repeat=weekly")
    assert "S-1 · Night review" in reply
    assert "Tue 06 Jan, 22:00 CST" in reply  # the lead's Slack timezone by default
    card = _card(bot)
    text = str(card["blocks"])
    assert "0 of 5" in text and "shift_join" in text and "Every Tuesday 22:00 America/Chicago" in text
    with bot.services.db.write() as session:
        shift = session.exec(select(Shift)).one()
        assert shift.tz == "America/Chicago"
        assert shift.starts_at.isoformat() == "2026-01-07T04:00:00+00:00"  # stored in UTC
        assert shift.message_ts == card["ts"]
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "shift.created")).one()


def test_malformed_and_refused_shift_input(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    add_member(bot, "U1", "UTC")

    def error(text: str) -> str:
        return bot.command(LEAD, "/shifts", f"new {text}").text

    ok = "start=2026-01-06T22:00 end=2026-01-07T02:00"
    assert "is in the past" in error("Early start=2026-01-05T02:00 end=2026-01-05T04:00")
    assert "must be after the start" in error("Backwards start=2026-01-06T22:00 end=2026-01-06T21:00")
    assert "must be after the start" in error("Same start=2026-01-06T22:00 end=2026-01-06T22:00")
    assert "at most 12 hours" in error("Long start=2026-01-06T08:00 end=2026-01-06T21:00")
    assert "`Mars/Olympus` is not a time zone" in error(f"Zone {ok} tz=Mars/Olympus")
    assert "`5x` is not a duration" in error(f"Remind {ok} remind=5x")
    assert "`monthly` is not one of: none, daily, weekly" in error(f"Repeat {ok} repeat=monthly")
    assert "slots must be between 1 and 200" in error(f"Slots {ok} slots=0")
    assert "`2026-13-01T10:00` is not a date and time" in error(
        "Bad start=2026-13-01T10:00 end=2026-01-07T02:00"
    )
    assert "Say when it starts" in error("No start end=2026-01-07T02:00")
    assert "Missing name" in error(ok)
    assert "does not exist in America/Chicago" in error("Gap start=2026-03-08T02:30 end=2026-03-08T05:00")
    assert "less than a day" in error(f"Daily {ok} repeat=daily remind=1d")
    assert "`colour` is not an option" in error(f"X {ok} colour=red")
    assert "Only leads and admins can schedule shifts" in bot.command("U1", "/shifts", f"new Mine {ok}").text
    assert "is not a shift ID" in bot.command("U1", "/shifts", "join S-x").text
    assert "There is no shift S-42" in bot.command("U1", "/shifts", "join S-42").text
    assert "Only leads and admins can cancel shifts" in bot.command("U1", "/shifts", "cancel S-1").text
    assert "/shifts join" in bot.command("U1", "/shifts", "help").all_text
    with bot.services.db.write() as session:
        assert session.exec(select(Shift)).all() == []
    assert not bot.fake.messages.get("C0SHIFTS")


def test_new_shift_modal_validates_and_creates(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    assert bot.driver is not None
    assert bot.driver.command(LEAD, "/shifts", "new", channel_id="C0SHIFTS").ok  # no reply: a form opens
    opened = bot.fake.wait_for("views.open")[0].params["view"]
    assert opened["callback_id"] == "shift_new"
    values = {
        "name": {"value": "Weekend cover"},
        "start": {"value": "2026-01-10T09:00"},
        "end": {"value": "2026-01-10T08:00"},
        "tz": {"value": "Europe/Lisbon"},
        "slots": {"value": "3"},
        "skill": {"value": ""},
        "repeat": {"value": static_select("weekly")},
        "remind": {"value": "2h"},
        "channel": {"value": conversations_select("C0SHIFTS")},
    }
    refused = bot.submit(LEAD, "shift_new", values, private_metadata=opened["private_metadata"]).json()
    assert refused["response_action"] == "errors" and "must be after the start" in refused["errors"]["end"]
    values["end"] = {"value": "2026-01-10T17:00"}
    values["slots"] = {"value": "many"}
    refused = bot.submit(LEAD, "shift_new", values, private_metadata=opened["private_metadata"]).json()
    assert "not a whole number of slots" in refused["errors"]["slots"]
    values["slots"] = {"value": "3"}
    accepted = bot.submit(LEAD, "shift_new", values, private_metadata=opened["private_metadata"])
    assert accepted.body.strip() in ("", "{}")
    card = eventually(lambda: bot.fake.messages.get("C0SHIFTS"))[0]
    assert "Weekend cover" in card["text"] and "0 of 3" in card["text"]
    with bot.services.db.write() as session:
        shift = session.exec(select(Shift)).one()
        assert (shift.tz, shift.repeat, shift.remind_minutes) == ("Europe/Lisbon", "weekly", 120)


def test_join_from_card_and_command_updates_card_in_place(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "Asia/Manila")
    add_member(bot, "U2", "Europe/Lisbon")
    add_member(bot, "U3", "UTC")
    new_shift(bot, NIGHT)
    card = _card(bot)
    clicked = bot.click("U1", "shift_join", "1", channel_id="C0SHIFTS", message_ts=card["ts"])
    assert "You're on *S-1 · Night review*, Wed 07 Jan, 12:00 PST" in clicked.text  # Manila time
    eventually(lambda: "1 of 2" in _card(bot)["text"])
    again = bot.click("U1", "shift_join", "1", channel_id="C0SHIFTS", message_ts=card["ts"])
    assert "already on S-1" in again.text
    assert "Wed 07 Jan, 04:00 WET" in bot.command("U2", "/shifts", "join S-1").text
    full_card = eventually(lambda: "2 of 2" in _card(bot)["text"] and _card(bot))
    assert full_card["ts"] == card["ts"]  # the same message, updated
    assert "shift_join" not in str(full_card["blocks"])
    assert "is full: 2 of 2 taken" in bot.command("U3", "/shifts", "join S-1").text
    mine = bot.command("U2", "/shifts")
    assert "S-1 · Night review" in mine and "Wed 07 Jan, 04:00 WET" in mine
    assert "no upcoming shifts you can join" in bot.command("U3", "/shifts", "all").text


def test_joining_is_atomic_under_concurrent_clicks(bot: BotHarness) -> None:
    make_lead(bot)
    users = [add_member(bot, f"U{i}", "UTC") for i in range(1, 9)]
    new_shift(bot, "Crowd start=2026-01-06T10:00 end=2026-01-06T12:00 slots=3")
    replies: dict[str, str] = {}

    def join(user: str) -> None:
        replies[user] = bot.command(user, "/shifts", "join S-1").text

    threads = [threading.Thread(target=join, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("You're on" in r for r in replies.values()) == 3
    assert sum("is full" in r for r in replies.values()) == 5
    with bot.services.db.write() as session:
        assert session.get(Shift, 1).filled == 3  # type: ignore[union-attr]
        assert len(session.exec(select(ShiftMember)).all()) == 3
    assert len(bot.services.scheduler.jobs("reminder:S-1:")) == 3
    eventually(lambda: "3 of 3" in _card(bot)["text"])


def test_skill_gated_join_and_listing(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    add_member(bot, "U1", "UTC", skills="legal")
    add_member(bot, "U2", "UTC", skills="medicine")
    new_shift(bot, "Legal review start=2026-01-06T10:00 end=2026-01-06T12:00 skill=legal")
    new_shift(bot, "Anyone start=2026-01-07T10:00 end=2026-01-07T12:00")
    refused = bot.command("U2", "/shifts", "join S-1")
    assert "needs the `legal` skill" in refused.text
    listed = bot.command("U2", "/shifts", "all")
    assert "S-2 · Anyone" in listed and "S-1" not in listed.all_text
    assert "S-1 · Legal review" in bot.command("U1", "/shifts", "all")
    assert "You're on" in bot.command("U1", "/shifts", "join S-1").text


def test_leave_removes_the_reminder_and_late_leave_tells_the_lead(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    add_member(bot, "U2", "UTC")
    new_shift(bot, "Soon start=2026-01-05T16:00 end=2026-01-05T18:00 slots=3 tz=UTC remind=1h")
    bot.command("U1", "/shifts", "join S-1")
    bot.command("U2", "/shifts", "join S-1")
    assert bot.services.scheduler.get("reminder:S-1:0:U1") is not None
    left = bot.command("U1", "/shifts", "leave S-1")
    assert "You left" in left.text and "late cancellation" in left.text  # 7 h before the start
    assert bot.services.scheduler.get("reminder:S-1:0:U1") is None
    assert bot.services.scheduler.get("reminder:S-1:0:U2") is not None
    bot.wait_dm(LEAD, "<@U1> left S-1 Soon")
    assert "not on S-1" in bot.command("U1", "/shifts", "leave S-1").text
    bot.clock.advance(hours=6)  # 15:00: the reminders fall due
    bot.wait_dm("U2", "Reminder: S-1")
    settle()
    assert reminders_to(bot, "U1") == []
    with bot.services.db.write() as session:
        incidents = session.exec(select(ShiftIncident)).all()
        assert [(i.user_id, i.kind) for i in incidents] == [("U1", "late_cancel")]


def test_early_leave_is_not_late_and_cant_make_it_leaves(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "Europe/Lisbon")
    new_shift(bot, "Later start=2026-01-07T10:00 end=2026-01-07T12:00 tz=UTC remind=30m")
    bot.command("U1", "/shifts", "join S-1")
    left = bot.command("U1", "/shifts", "leave S-1")
    assert "late cancellation" not in left.text
    bot.command("U1", "/shifts", "join S-1")
    bot.clock.set(bot.clock.now().replace(day=7, hour=9, minute=30))
    reminder = bot.wait_dm("U1", "Reminder: S-1")
    dm = reminder.response
    clicked = bot.click("U1", "shift_cant_make_it", "1", channel_id=dm["channel"], message_ts=dm["ts"])
    assert "You left" in clicked.text and "late cancellation" in clicked.text
    updated = eventually(
        lambda: (
            bot.fake.find_message(dm["channel"], dm["ts"]).get("edited")
            and bot.fake.find_message(dm["channel"], dm["ts"])
        )
    )
    assert "shift_cant_make_it" not in str(updated["blocks"])
    bot.wait_dm(LEAD, "late cancellation")
    stale = bot.click("U1", "shift_cant_make_it", "1", channel_id=dm["channel"], message_ts=dm["ts"])
    assert "not on S-1" in stale.text


def test_cancel_tells_members_and_removes_every_job(bot: BotHarness) -> None:
    make_lead(bot)
    add_member(bot, "U1", "Asia/Manila")
    add_member(bot, "U2", "UTC")
    new_shift(bot, "Doomed start=2026-01-06T10:00 end=2026-01-06T12:00 slots=2 tz=UTC repeat=daily")
    bot.command("U1", "/shifts", "join S-1")
    bot.command("U2", "/shifts", "join S-1")
    assert len(bot.services.scheduler.jobs("reminder:S-1:")) == 2
    assert "Only leads" in bot.command("U1", "/shifts", "cancel S-1").text
    reply = bot.command(LEAD, "/shifts", "cancel S-1")
    assert "Cancelled *S-1 · Doomed*" in reply.text
    assert "Tue 06 Jan, 18:00 PST" in bot.wait_dm("U1", "was cancelled").params["text"]
    bot.wait_dm("U2", "was cancelled")
    assert bot.services.scheduler.jobs("reminder:S-1:") == []
    assert bot.services.scheduler.jobs("shift:S-1:") == []
    card = eventually(lambda: "Cancelled" in str(_card(bot)["blocks"]) and _card(bot))
    assert "Cancelled" in str(card["blocks"]) and "shift_join" not in str(card["blocks"])
    assert "already cancelled" in bot.command(LEAD, "/shifts", "cancel S-1").text
    assert "was cancelled" in bot.command("U1", "/shifts", "join S-1").text
    bot.clock.advance(days=2)
    settle()
    assert reminders_to(bot, "U1") == [] and reminders_to(bot, "U2") == []


def test_home_tab_shows_next_shifts_and_hours(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    add_member(bot, "U1", "Asia/Manila")
    new_shift(bot, "Night review start=2026-01-06T22:00 end=2026-01-07T02:00")
    bot.command("U1", "/shifts", "join S-1")
    bot.event({"type": "app_home_opened", "user": "U1", "tab": "home"})
    home = eventually(
        lambda: (
            "Night review" in str(bot.fake.home_views.get("U1", {}).get("blocks"))
            and bot.fake.home_views["U1"]
        )
    )
    text = str(home["blocks"])
    assert "Wed 07 Jan, 12:00 PST" in text  # the member's own time
    assert "This week" in text and "0.00 h" in text


def test_lists_paginate_with_a_more_button(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    for day in range(6, 18):
        new_shift(bot, f"Day {day} start=2026-01-{day:02d}T10:00 end=2026-01-{day:02d}T11:00 tz=UTC")
    first = bot.command("U1", "/shifts", "all")
    assert "Day 15" in first and "Day 16" not in first.all_text and "shifts_more" in first.all_text
    second = bot.click("U1", "shifts_more", "all:10")
    assert "Day 16" in second and "Day 17" in second and "Day 6" not in second.all_text
