"""Announcement messages, the compose and preview modals, the lead's status card and the list."""

from __future__ import annotations

import json
from typing import Any

from core.text import escape
from db.models import Announcement
from domain.announcements import (
    CANCELLED,
    CHANNELS,
    DONE,
    EVERYONE,
    MAX_TEXT,
    SCHEDULED,
    SENDING,
    SKILLS,
    Audience,
    Progress,
    label,
)
from views.blocks import (
    Block,
    actions,
    button,
    clip,
    context,
    divider,
    local_time,
    option,
    plain,
    section,
    text_input,
)
from views.blocks import modal as modal_view

ACK_ACTION = "announce_ack"
MORE_ACTION = "announce_list_more"
COMPOSE_CALLBACK = "announce_compose"
CONFIRM_CALLBACK = "announce_confirm"
BAR_WIDTH = 20


# ---- the announcement itself ---------------------------------------------------------------------


def fallback_text(announcement: Announcement) -> str:
    """What notifications and screen readers show."""
    return escape(clip(f"Announcement from {announcement.author_name}: {announcement.text}", 300))


def message_blocks(
    announcement: Announcement,
    *,
    in_channel: bool,
    acknowledged: int = 0,
    acked_at: str | None = None,
    preview: bool = False,
) -> list[Block]:
    """The announcement as recipients see it: the lead's name, the text, and when acknowledgement is
    asked, a Got it button (a channel post also shows how many acknowledged; a DM whose reader
    pressed it shows that instead of the button)."""
    blocks = [
        context(
            f":mega: *Announcement {label(announcement.id or 0)}* from *{escape(announcement.author_name)}*"
        ),
        # Formatting (*bold*, _italic_, lists) works; mentions and labelled links stay text.
        section(escape(announcement.text)),
    ]
    if not announcement.ask_ack:
        return blocks
    if acked_at:
        blocks.append(context(f":white_check_mark: You acknowledged this {acked_at}."))
        return blocks
    if preview:
        blocks.append(context("_A *Got it* button goes here, and the count of acknowledgements._"))
        return blocks
    blocks.append(
        actions(button("Got it", ACK_ACTION, value=str(announcement.id), style="primary"), block_id="ack")
    )
    if in_channel:
        blocks.append(
            context(
                f":white_check_mark: {acknowledged:,} acknowledged"
                if acknowledged
                else "Press *Got it* once you have read it."
            )
        )
    return blocks


# ---- the lead's status card and reports ----------------------------------------------------------


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    if total <= 0:
        return "`" + "█" * width + "` 100%"
    filled = min(width, round(width * done / total))
    percent = min(100, int(100 * done / total))
    return f"`{'█' * filled}{'░' * (width - filled)}` {percent}%"


def _what(announcement: Announcement) -> str:
    audience = Audience.of(announcement)
    noun = "posted in" if audience.kind == CHANNELS else "DM to"
    return f"*{label(announcement.id or 0)}*, {noun} {audience.describe()}"


def _failures(p: Progress) -> str:
    if not p.failed:
        return "failed 0"
    reasons = ", ".join(f"`{reason}` {n:,}" for reason, n in p.failures.items())
    return f"failed {p.failed:,} ({reasons})"


def report_line(p: Progress, tz: str) -> str:
    """Counts in one line: the progress of a running announcement, or its report."""
    a = p.announcement
    if a.state == SCHEDULED:
        return f":calendar: Scheduled for {local_time(a.send_at, tz)}. `/announce cancel {label(a.id or 0)}` stops it."
    counts = f"sent {p.sent:,} · {_failures(p)}"
    if p.cancelled:
        counts += f" · not sent (cancelled) {p.cancelled:,}"
    if a.ask_ack:
        counts += f" · acknowledged {p.acknowledged:,}"
    if a.state == SENDING:
        left = p.pending + p.sending
        return f"{progress_bar(p.settled, p.total)}\n{counts} · to go {left:,} of {p.total:,}"
    if a.state == DONE:
        when = local_time(a.finished_at, tz) if a.finished_at else ""
        return f":white_check_mark: Finished {when}: {p.total:,} recipient(s): {counts}"
    by = f" by <@{a.cancelled_by}>" if a.cancelled_by else ""
    if not a.started_at:
        return f":no_entry_sign: Cancelled{by} before it went out: nothing was sent."
    settling = " (finishing the messages already under way)" if a.finished_at is None else ""
    return f":no_entry_sign: Cancelled{by}{settling}: {counts} of {p.total:,}"


def status_blocks(p: Progress, tz: str) -> list[Block]:
    a = p.announcement
    state = {
        SCHEDULED: "scheduled",
        SENDING: "sending",
        DONE: "finished",
        CANCELLED: "cancelled",
    }.get(a.state, a.state)
    return [
        section(f":mega: {_what(a)}: *{state}*"),
        section(report_line(p, tz)),
        context(f"> {escape(clip(a.text.replace(chr(10), ' '), 200))}"),
    ]


def status_text(p: Progress) -> str:
    a = p.announcement
    return f"Announcement {label(a.id or 0)}: {a.state}, sent {p.sent:,} of {p.total:,}"


def list_blocks(items: list[Progress], tz: str, more_offset: int | None) -> list[Block]:
    if not items:
        return [section("No announcements scheduled, running or finished this week. `/announce` starts one.")]
    blocks: list[Block] = [section("*Announcements*: scheduled, running, and finished this week")]
    for p in items:
        blocks += [divider(), *status_blocks(p, tz)]
    if more_offset is not None:
        blocks.append(actions(button("More", MORE_ACTION, value=str(more_offset))))
    return blocks


# ---- composing -----------------------------------------------------------------------------------


def compose_modal(private_metadata: str, skills_known: list[str]) -> dict[str, Any]:
    hint = ("Known skills: " + ", ".join(skills_known))[:150] if skills_known else "Comma-separated"
    blocks: list[Block] = [
        text_input(
            "text",
            "Message",
            placeholder="Slack formatting works: *bold*, _italic_, lists; links show as their URL",
            multiline=True,
            max_length=MAX_TEXT,
        ),
        {
            "type": "input",
            "block_id": "audience",
            "label": plain("Who is it for?"),
            "element": {
                "type": "radio_buttons",
                "action_id": "value",
                "options": [
                    option("Channels: a post in each, with a Got it button", CHANNELS),
                    option("Members with a skill: a DM each", SKILLS),
                    option("Everyone in the workspace: a DM each", EVERYONE),
                ],
            },
        },
        {
            "type": "input",
            "block_id": "channels",
            "optional": True,
            "label": plain("Channels (when posting in channels)"),
            "element": {
                "type": "multi_conversations_select",
                "action_id": "value",
                "filter": {"include": ["public", "private"], "exclude_bot_users": True},
                "max_selected_items": 20,
            },
        },
        text_input(
            "skills",
            "Skills (when sending to members with a skill)",
            placeholder="legal, medicine",
            optional=True,
            hint=hint,
        ),
        {
            "type": "input",
            "block_id": "send_at",
            "optional": True,
            "label": plain("Send at (leave empty to send now)"),
            "element": {"type": "datetimepicker", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "options",
            "optional": True,
            "label": plain("Acknowledgement"),
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": [option("Ask people to press Got it", "ack")],
                "initial_options": [option("Ask people to press Got it", "ack")],
            },
        },
    ]
    return modal_view(
        COMPOSE_CALLBACK, "New announcement", blocks, submit="Preview", private_metadata=private_metadata
    )


def preview_modal(
    announcement: Announcement, recipients: int | None, origin: dict[str, Any]
) -> dict[str, Any]:
    audience = Audience.of(announcement)
    if audience.kind == CHANNELS:
        reach = f"A post in {audience.describe()}."
    elif recipients is None:
        reach = "A DM to everyone in the workspace (counted when it goes out)."
    else:
        reach = f"A DM to {recipients:,} {audience.describe()}."
    immediate = announcement.send_at == announcement.created_at
    when = "Now." if immediate else f"{local_time(announcement.send_at, announcement.author_tz)}."
    blocks: list[Block] = [
        section(f"*To:* {reach}\n*When:* {when}"),
        divider(),
        context("Preview:"),
        *message_blocks(announcement, in_channel=audience.kind == CHANNELS, preview=True),
    ]
    metadata = json.dumps({**origin, "announcement_id": announcement.id})
    return modal_view(
        CONFIRM_CALLBACK,
        "Preview",
        blocks,
        submit="Send" if immediate else "Schedule",
        private_metadata=metadata,
        close="Discard",
    )


def created_reply(
    announcement: Announcement, recipients: int | None, scheduled: bool
) -> tuple[str, list[Block]]:
    """What the lead sees right after /announce: what happens next, and the message as sent."""
    audience = Audience.of(announcement)
    aid = label(announcement.id or 0)
    if audience.kind == CHANNELS:
        reach = f"a post in {audience.describe()}"
    elif recipients is None:
        reach = f"a DM to {audience.describe()}"
    else:
        reach = f"a DM to {recipients:,} {audience.describe()}"
    if scheduled:
        head = (
            f":calendar: *{aid}* is scheduled for {local_time(announcement.send_at, announcement.author_tz)}: "
            f"{reach}. `/announce cancel {aid}` stops it."
        )
    else:
        head = f":outbox_tray: *{aid}* is going out now: {reach}. I'll DM you its progress and the report."
    blocks = [
        section(head),
        divider(),
        *message_blocks(announcement, in_channel=audience.kind == CHANNELS, preview=True),
    ]
    return head, blocks
