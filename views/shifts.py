"""Shift cards, lists, reminders and the new-shift modal: plain data in, Block Kit out.

Shared messages (the card, the start post) show times with `slack_date`, so each reader sees their
own timezone; DMs and personal lists use `local_time` in the member's zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.text import escape
from domain.shifts import ShiftView
from views.blocks import (
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    fields,
    header,
    local_time,
    modal,
    option,
    plain,
    section,
    slack_date,
    text_input,
)

MENTIONS_SHOWN = 50

JOIN = "shift_join"
LEAVE = "shift_leave"
CANT_MAKE_IT = "shift_cant_make_it"
MORE = "shifts_more"
NEW_MODAL = "shift_new"


def name(v: ShiftView) -> str:
    """The shift's name as a lead typed it, safe in mrkdwn."""
    return escape(v.name)


def span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if mins:
        parts.append(f"{mins} min")
    return " ".join(parts) or "0 min"


def _repeat_text(v: ShiftView) -> str:
    if v.repeat == "none":
        return "Once"
    local = v.starts_at.astimezone(ZoneInfo(v.tz))
    when = local.strftime("%A %H:%M") if v.repeat == "weekly" else local.strftime("%H:%M")
    return f"{'Every ' if v.repeat == 'weekly' else 'Daily at '}{when} {v.tz} time"


def _who(members: tuple[str, ...]) -> str:
    if not members:
        return "_nobody yet_"
    shown = " ".join(f"<@{m}>" for m in members[:MENTIONS_SHOWN])
    more = len(members) - MENTIONS_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def card(v: ShiftView) -> tuple[str, list[Block]]:
    """The shift's message in its channel, replaced in place on every change."""
    title = f"{v.ref} · {name(v)}"
    when = f"{slack_date(v.starts_at)} – {slack_date(v.ends_at)}"
    blocks: list[Block] = [
        header(title),
        fields(
            ("When", when),
            ("Repeats", _repeat_text(v)),
            ("Skill", f"`{v.skill}`" if v.skill else "any"),
            ("Reminder", f"{span(v.remind)} before, by DM"),
        ),
        section(f"*{v.filled} of {v.slots}* filled: {_who(v.members)}"),
    ]
    if v.state == "cancelled":
        blocks.append(context(f":no_entry: Cancelled. Set up by <@{v.creator_id}>."))
        return f"{title}: cancelled", blocks
    if v.state == "ended":
        blocks.append(context(f"This shift has ended. Set up by <@{v.creator_id}>."))
        return f"{title}: ended", blocks
    buttons = []
    if not v.full:
        buttons.append(button("Join", JOIN, str(v.id), style="primary"))
    buttons.append(button("Leave", LEAVE, str(v.id)))
    blocks.append(actions(*buttons, block_id=f"shift_{v.id}"))
    blocks.append(
        context(
            f"Times show in your own timezone (set in {v.tz} by <@{v.creator_id}>). "
            f"Or type `/shifts join {v.ref}`."
        )
    )
    return f"{title}: {v.filled} of {v.slots} filled", blocks


def listing(
    shifts: list[ShiftView], tz: str, kind: str, offset: int, more: bool, empty: str
) -> tuple[str, list[Block]]:
    """`/shifts` (kind "mine": Leave buttons) and `/shifts all` (kind "all": Join buttons)."""
    if not shifts and offset == 0:
        return empty, [section(empty)]
    title = "Your upcoming shifts" if kind == "mine" else "Upcoming shifts you can join"
    blocks: list[Block] = [section(f"*{title}* (times in {tz})")]
    for v in shifts:
        line = (
            f"*{v.ref} · {name(v)}*\n{local_time(v.starts_at, tz)} – {local_time(v.ends_at, tz)}"
            f"\n{v.filled} of {v.slots} filled"
            + (f" · skill `{v.skill}`" if v.skill else "")
            + ("" if v.repeat == "none" else f" · repeats {v.repeat}")
        )
        accessory = (
            button("Leave", LEAVE, str(v.id))
            if kind == "mine"
            else button("Join", JOIN, str(v.id), style="primary")
        )
        blocks.append(section(line, accessory=accessory))
    if more:
        blocks.append(actions(button("More", MORE, f"{kind}:{offset + len(shifts)}")))
    return title, blocks


def reminder(v: ShiftView, tz: str, now: datetime) -> tuple[str, list[Block]]:
    """The DM before a shift: the time in the member's own zone and a way out."""
    starts = local_time(v.starts_at, tz)
    text = f"Reminder: {v.ref} {name(v)} starts {starts} (in {span(v.starts_at - now)})."
    blocks = [
        section(
            f":alarm_clock: *{v.ref} · {name(v)}* starts *{starts}* your time, in {span(v.starts_at - now)}."
            f"\nIt runs until {local_time(v.ends_at, tz)}. Clock in with `/hours in` when you start."
        ),
        actions(
            button(
                "Can't make it",
                CANT_MAKE_IT,
                str(v.id),
                style="danger",
                confirm=confirm_dialog(
                    "Leave this shift?",
                    f"You'll be taken off {v.ref}. Less than 12 hours before the start this counts as a late "
                    "cancellation and your lead is told.",
                    yes="Leave the shift",
                    no="Keep it",
                ),
            ),
            block_id=f"reminder_{v.id}",
        ),
    ]
    return text, blocks


def reminder_answered(v: ShiftView, tz: str, late: bool) -> tuple[str, list[Block]]:
    """The reminder DM once the member said they can't make it: no button left to press again."""
    note = " This was recorded as a late cancellation." if late else ""
    text = f"You left {v.ref} {name(v)} ({local_time(v.starts_at, tz)}).{note}"
    return text, [section(f":wave: {text}")]


def started(
    v: ShiftView, members: tuple[str, ...], starts_at: datetime, ends_at: datetime
) -> tuple[str, list[Block]]:
    on = _who(members) if members else "nobody signed up"
    text = f"{v.ref} {name(v)} is starting now. On shift: {on}."
    blocks = [
        section(
            f":large_green_circle: *{v.ref} · {name(v)}* is starting now, until {slack_date(ends_at, '{time}')}."
            f"\n*On shift ({len(members)} of {v.slots}):* {on}"
        ),
        context("Clock in with `/hours in` so your time is tracked."),
    ]
    return text, blocks


REPEAT_OPTIONS = [("Once", "none"), ("Every day", "daily"), ("Every week", "weekly")]


def new_shift_modal(tz: str, channel_id: str | None, private_metadata: str) -> dict[str, Any]:
    channel_select: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": "value",
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel_id and channel_id[0] in "CG":
        channel_select["initial_conversation"] = channel_id
    repeat_select = {
        "type": "static_select",
        "action_id": "value",
        "options": [option(t, v) for t, v in REPEAT_OPTIONS],
        "initial_option": option(*REPEAT_OPTIONS[0]),
    }
    blocks = [
        text_input("name", "Name", "Night review", max_length=200),
        text_input(
            "start", "Starts (local time)", "2026-03-14T22:00", hint="YYYY-MM-DDTHH:MM in the zone below"
        ),
        text_input("end", "Ends (local time)", "2026-03-15T02:00", hint="At most 12 hours after the start"),
        text_input("tz", "Time zone", "America/Chicago", initial=tz, hint="Area/City; yours by default"),
        text_input("slots", "People needed", "5", initial="1"),
        text_input("skill", "Skill needed", "legal", optional=True, hint="Leave empty if anyone may join"),
        {"type": "input", "block_id": "repeat", "label": plain("Repeats"), "element": repeat_select},
        text_input("remind", "Remind members before", "30m", initial="30m", hint="Like 30m, 2h or 1h30m"),
        {
            "type": "input",
            "block_id": "channel",
            "label": plain("Post the shift card in"),
            "element": channel_select,
        },
    ]
    return modal(NEW_MODAL, "New shift", blocks, submit="Create", private_metadata=private_metadata)
