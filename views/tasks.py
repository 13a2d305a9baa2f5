"""Task cards, lists, modals, Home sections and DMs: plain data in, Block Kit out.

Cards live in a channel, so their times use `slack_date` (each reader's own timezone); DMs use
`local_time` in the member's timezone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.money import dollars
from core.text import escape
from db.models import Assignment, AuditEntry, Task
from domain import audit
from domain import tasks as rules
from domain.hours import TaskTime
from domain.tasks import AssignmentLine, TaskLine
from views.blocks import (
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    fields,
    fit_message,
    local_time,
    modal,
    option,
    section,
    sections,
    slack_date,
    text_input,
)
from views.vetting import CitedRule, attestation_input, cite

PAGE = 10
HISTORY_PAGE = 40

CLAIM = "task_claim"
LIST_MORE = "task_list_more"
MINE_MORE = "task_mine_more"
HISTORY_MORE = "task_history_more"
SUBMIT = "task_submit_open"
RELEASE = "task_release"
APPROVE = "task_approve"
REJECT = "task_reject_open"
NEW_MODAL = "task_new"
SUBMIT_MODAL = "task_submit"
REJECT_MODAL = "task_reject"


def title(task: Task | TaskLine) -> str:
    """The task's title as a lead typed it, safe in mrkdwn."""
    return escape(task.title)


def quoted(text: str) -> str:
    """Member text as a block quote, every line of it, escaped."""
    return "\n".join(f">{escape(line)}" for line in text.strip().splitlines())


def hours(value: float) -> str:
    return f"{value:g} h"


def due_text(task: Task | TaskLine) -> str:
    """The last minute of the due date, shown in each reader's timezone."""
    if task.due_at is None:
        return "No due date"
    return slack_date(task.due_at - timedelta(minutes=1), "{date_short_pretty} at {time}")


def slots_text(task: Task | TaskLine) -> str:
    return f"{rules.slots_left(task)} of {task.slots} slot{'s' if task.slots != 1 else ''} left"


def can_be_claimed(task: Task, now: datetime) -> bool:
    return task.state == rules.OPEN and rules.slots_left(task) > 0 and not rules.is_past_due(task, now)


def state_word(task: Task, now: datetime) -> str:
    if task.state in (rules.CANCELLED, rules.CLOSED):
        return task.state.capitalize()
    if task.state == rules.FULL or rules.slots_left(task) == 0:
        return "Full"
    return "Past due" if rules.is_past_due(task, now) else "Open"


def status_line(task: Task, now: datetime) -> str:
    if task.state == rules.CANCELLED:
        return f":no_entry: *Cancelled* · {slots_text(task)}"
    if task.state == rules.CLOSED:
        return f":white_check_mark: *Closed*: the work on every slot is approved · {slots_text(task)}"
    if task.state == rules.FULL or rules.slots_left(task) == 0:
        return f":red_circle: *Full* · {slots_text(task)}"
    if rules.is_past_due(task, now):
        return f":hourglass: *Past due*: no longer claimable · {slots_text(task)}"
    return f":large_green_circle: *{slots_text(task)}*"


def summary(task: Task | TaskLine) -> str:
    skill = f"`{task.skill}`" if task.skill else "any skill"
    return (
        f"*{rules.ref(task.id)} · {title(task)}*\n"
        f"{dollars(task.rate_cents)}/h · ~{hours(task.est_hours)} · {skill} · due {due_text(task)}"
    )


# ---- the card ------------------------------------------------------------------------------------


def card(task: Task, now: datetime) -> tuple[str, list[Block]]:
    """The task's message in its channel: always true to the task, with a Claim button only while
    a slot can be claimed."""
    blocks: list[Block] = [section(f"*{rules.ref(task.id)} · {title(task)}*")]
    if task.description:
        blocks.append(section(escape(task.description)))
    blocks.append(
        fields(
            ("Skill", f"`{task.skill}`" if task.skill else "Any"),
            ("Rate", f"{dollars(task.rate_cents)}/h"),
            ("Estimated", hours(task.est_hours)),
            ("Due", due_text(task)),
        )
    )
    status = section(status_line(task, now), block_id=f"task_status_{task.id}")
    if can_be_claimed(task, now):
        status["accessory"] = button("Claim", CLAIM, value=str(task.id), style="primary")
    blocks.append(status)
    ai = " · AI tools allowed on this task" if task.ai_allowed else ""
    blocks.append(
        context(f"Posted by <@{task.creator_id}> · `/tasks claim {rules.ref(task.id)}` works too{ai}")
    )
    return f"{rules.ref(task.id)}: {title(task)} ({state_word(task, now)}, {slots_text(task)})", blocks


# ---- lists ---------------------------------------------------------------------------------------


def claimable_list(tasks: list[TaskLine], offset: int, has_more: bool, held: int, cap: int) -> list[Block]:
    if held >= cap:
        return [
            section(
                f"You hold {held} claimed tasks, the most one person may hold at once, so there is nothing "
                "you can claim right now. Submit or release one first: `/tasks mine`."
            )
        ]
    if not tasks:
        more = " on this page" if offset else ""
        return [section(f"No open tasks you can claim{more} right now. New ones are posted as cards.")]
    page = offset // PAGE + 1
    blocks: list[Block] = [
        section(f"*Open tasks you can claim* (page {page}) · you hold {held} of {cap} claims")
    ]
    for task in tasks:
        blocks.append(
            section(
                f"{summary(task)}\n{slots_text(task)}",
                accessory=button("Claim", CLAIM, value=str(task.id), style="primary"),
            )
        )
    if has_more:
        blocks.append(actions(button("More", LIST_MORE, value=str(offset + PAGE))))
    return fit_message(blocks)


def assignment_state(assignment: AssignmentLine, tz: str) -> str:
    if assignment.state == rules.CLAIMED:
        return f"claimed {local_time(assignment.claimed_at, tz)}"
    if assignment.state == rules.SUBMITTED and assignment.submitted_at:
        return f"submitted {local_time(assignment.submitted_at, tz)}, waiting for review"
    if assignment.state == rules.APPROVED:
        return "approved"
    if assignment.state == rules.REJECTED:
        return f"rejected: {escape(assignment.reason)}"
    return f"released ({escape(assignment.reason or 'released')})"


def work_buttons(assignment: AssignmentLine) -> Block | None:
    if assignment.state != rules.CLAIMED:
        return None
    value = str(assignment.task_id)
    return actions(
        button("Submit", SUBMIT, value=value, style="primary"),
        button(
            "Release",
            RELEASE,
            value=value,
            confirm=confirm_dialog(
                "Release this task?", f"Your slot on {rules.ref(assignment.task_id)} goes to someone else."
            ),
        ),
    )


def assignment_blocks(rows: list[tuple[AssignmentLine, TaskLine]], tz: str) -> list[Block]:
    blocks: list[Block] = []
    for assignment, task in rows:
        blocks.append(section(f"{summary(task)}\n_{assignment_state(assignment, tz)}_"))
        buttons = work_buttons(assignment)
        if buttons:
            blocks.append(buttons)
    return blocks


def mine_list(
    rows: list[tuple[AssignmentLine, TaskLine]], offset: int, has_more: bool, tz: str
) -> list[Block]:
    if not rows:
        return [section("You have no tasks yet. `/tasks` lists the ones you can claim.")]
    blocks = [section(f"*Your tasks* (page {offset // PAGE + 1})")] + assignment_blocks(rows, tz)
    if has_more:
        blocks.append(actions(button("More", MINE_MORE, value=str(offset + PAGE))))
    return fit_message(blocks)


def history_list(task: Task, entries: list[AuditEntry], offset: int, has_more: bool) -> list[Block]:
    lines = []
    for entry in entries:
        detail = audit.details(entry)
        parts = [f"{k}={_short(v)}" for k, v in sorted(detail.items()) if v not in (None, "", [])]
        who = "crewcall" if entry.actor_id == audit.BOT else f"<@{entry.actor_id}>"
        lines.append(
            f"{slack_date(entry.at, '{date_short} {time_secs}')} · {who} · *{entry.action}* · "
            f"from `{entry.source or '?'}`" + (f"\n      {', '.join(parts)}" if parts else "")
        )
    blocks: list[Block] = [section(f"*History of {rules.ref(task.id)} · {title(task)}*")]
    blocks += sections(lines)
    if not lines:
        blocks.append(section("No changes recorded."))
    if has_more:
        blocks.append(actions(button("More", HISTORY_MORE, value=f"{task.id}:{offset + HISTORY_PAGE}")))
    return fit_message(blocks)


def _short(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return escape(text if len(text) <= 200 else text[:199] + "…")


# ---- Home ----------------------------------------------------------------------------------------


def home_member(rows: list[tuple[AssignmentLine, TaskLine]], tz: str) -> list[Block]:
    if not rows:
        return [section("You hold no tasks right now. `/tasks` lists the ones you can claim.")]
    return assignment_blocks(rows, tz)


def review_lines(task: Task, assignment: Assignment, tracked: TaskTime | None) -> str:
    """What a reviewer needs beside the work: the attestation, and tracked hours against the estimate."""
    if assignment.attestation and assignment.attested_at:
        attested = (
            f":white_check_mark: Attested “{assignment.attestation}” {slack_date(assignment.attested_at)}"
        )
    elif task.ai_allowed:
        attested = "AI tools allowed on this task: no attestation needed"
    else:
        attested = ":grey_question: No attestation recorded"
    if tracked is None:
        return attested
    time = f"Tracked {hours(float(tracked.hours))} of ~{hours(task.est_hours)} estimated"
    if not tracked.entries:
        time = f":warning: *No time tracked* on this task (estimated ~{hours(task.est_hours)})"
    return f"{attested}\n{time}"


def home_lead(
    counts: dict[str, int],
    waiting: list[tuple[Assignment, Task]],
    total: int,
    tracked: dict[int, TaskTime] | None = None,
) -> list[Block]:
    blocks: list[Block] = [
        fields(
            ("Open", str(counts[rules.OPEN])),
            ("Full", str(counts[rules.FULL])),
            ("Closed", str(counts[rules.CLOSED])),
            ("Cancelled", str(counts[rules.CANCELLED])),
            ("Awaiting review", str(total)),
        )
    ]
    if not waiting:
        blocks.append(context("No submissions are waiting for review."))
        return blocks
    shown = f"the {len(waiting)} oldest of {total}" if total > len(waiting) else str(total)
    blocks.append(section(f"*Submissions awaiting review* ({shown})"))
    for assignment, task in waiting:
        note = f"\n{quoted(assignment.note)}" if assignment.note else ""
        value = f"{task.id}:{assignment.user_id}"
        when = slack_date(assignment.submitted_at) if assignment.submitted_at else ""
        review = review_lines(task, assignment, (tracked or {}).get(assignment.id or 0))
        blocks.append(
            section(
                f"*{rules.ref(task.id)} · {title(task)}*\n<@{assignment.user_id}> · {when}{note}\n{review}"
            )
        )
        blocks.append(
            actions(
                button("Approve", APPROVE, value=value, style="primary"),
                button("Reject", REJECT, value=value, style="danger"),
            )
        )
    return blocks


# ---- modals --------------------------------------------------------------------------------------


def new_task_modal(channel_id: str | None, metadata: str) -> dict[str, Any]:
    channel: Block = {
        "type": "input",
        "block_id": "channel",
        "label": {"type": "plain_text", "text": "Post the card in"},
        "element": {
            "type": "conversations_select",
            "action_id": "value",
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
            **({"initial_conversation": channel_id} if channel_id else {}),
        },
    }
    due: Block = {
        "type": "input",
        "block_id": "due",
        "optional": True,
        "label": {"type": "plain_text", "text": "Due date"},
        "hint": {
            "type": "plain_text",
            "text": "Claims not submitted by the end of this day (your time) expire.",
        },
        "element": {"type": "datepicker", "action_id": "value"},
    }
    return modal(
        NEW_MODAL,
        "Post a task",
        [
            text_input("title", "Title", "Review 40 contract summaries", max_length=rules.TITLE_MAX),
            text_input(
                "description", "Description", multiline=True, optional=True, max_length=rules.DESCRIPTION_MAX
            ),
            text_input("skill", "Skill needed", "legal (leave empty for anyone)", optional=True),
            text_input("rate", "Hourly rate ($)", "120"),
            text_input("hours", "Estimated hours", "6"),
            text_input("slots", "Slots (people needed)", initial="1"),
            due,
            channel,
            {
                "type": "input",
                "block_id": "ai",
                "optional": True,
                "label": {"type": "plain_text", "text": "AI tools"},
                "hint": {
                    "type": "plain_text",
                    "text": "Unless ticked, contractors confirm they used no AI tools when they submit.",
                },
                "element": {
                    "type": "checkboxes",
                    "action_id": "value",
                    "options": [option("AI tools are allowed on this task", "allowed")],
                },
            },
        ],
        submit="Post",
        private_metadata=metadata,
    )


def submit_modal(task: Task, metadata: str, rule: CitedRule | None = None, note: str = "") -> dict[str, Any]:
    """The Submit form; unless AI tools are allowed on the task, with the handbook's rule quoted and
    the attestation to tick."""
    blocks: list[Block] = [
        section(f"*{title(task)}*"),
        text_input(
            "note",
            "Note or link for the reviewer",
            "https://… or what you did",
            multiline=True,
            optional=True,
            initial=note[: rules.DESCRIPTION_MAX] or None,
            max_length=rules.DESCRIPTION_MAX,
        ),
    ]
    if not task.ai_allowed:
        if rule:
            blocks += cite(rule)
        blocks.append(attestation_input())
    return modal(
        SUBMIT_MODAL,
        f"Submit {rules.ref(task.id)}",
        blocks,
        submit="Submit",
        private_metadata=metadata,
    )


def reject_modal(task: Task, user_id: str, metadata: str) -> dict[str, Any]:
    return modal(
        REJECT_MODAL,
        f"Reject {rules.ref(task.id)}",
        [
            section(f"*{title(task)}*\nSubmission by <@{user_id}>"),
            text_input(
                "reason",
                "Why is it rejected?",
                "They are told this, and may dispute it within 7 days.",
                multiline=True,
                max_length=1000,
            ),
        ],
        submit="Reject",
        private_metadata=metadata,
    )


# ---- DMs -----------------------------------------------------------------------------------------


def task_details(task: Task, tz: str) -> Block:
    due = (
        f"{task.due.isoformat()} (ends {local_time(task.due_at, tz)})"
        if task.due and task.due_at
        else "no due date"
    )
    skill = f"`{task.skill}`" if task.skill else "any"
    return fields(
        ("Rate", f"{dollars(task.rate_cents)}/h"),
        ("Estimated", hours(task.est_hours)),
        ("Skill", skill),
        ("Due", due),
    )


def taken_dm(task: Task, tz: str, assigned_by: str | None = None) -> tuple[str, list[Block]]:
    how = f"<@{assigned_by}> assigned you" if assigned_by else "You claimed"
    text = f"{how} {rules.ref(task.id)}: {title(task)}"
    blocks = [section(f":white_check_mark: {how} *{rules.ref(task.id)} · {title(task)}*")]
    if task.description:
        blocks.append(section(escape(task.description)))
    blocks.append(task_details(task, tz))
    blocks.append(
        section(
            "*What to do next*\n"
            f"1. Do the work{' before the due date' if task.due else ''}.\n"
            f"2. Submit it with `/tasks done {rules.ref(task.id)} <link or note>` "
            "(or the Submit button in `/tasks mine`); a lead reviews it.\n"
            f"Can't do it after all? `/tasks release {rules.ref(task.id)}` gives the slot to someone else."
            + ("\nClaims not submitted by the due date are released automatically." if task.due else "")
        )
    )
    return text, blocks


def approved_dm(task: Task, by: str) -> str:
    return f":tada: <@{by}> approved your work on *{rules.ref(task.id)} · {title(task)}*. Thank you!"


def rejected_dm(task: Task, by: str, reason: str, dispute_until: datetime, tz: str) -> str:
    return (
        f"<@{by}> rejected your submission for *{rules.ref(task.id)} · {title(task)}*.\n{quoted(reason)}\n"
        f"If you disagree, you may dispute it within 7 days (until {local_time(dispute_until, tz)}): "
        f"write to <@{by}> or another lead, quoting {rules.ref(task.id)}. Every step of the task is on record."
    )


def cancelled_dm(task: Task, by: str) -> str:
    return (
        f"<@{by}> cancelled *{rules.ref(task.id)} · {title(task)}*. Your claim is released and there is "
        "nothing more to do on it."
    )


def expired_dm(task: Task, tz: str) -> str:
    ended = local_time(task.due_at, tz) if task.due_at else "the due date"
    return (
        f":hourglass: Your claim on *{rules.ref(task.id)} · {title(task)}* expired: it was due by {ended} "
        "and nothing was submitted. The slot is open to others again."
    )


def submitted_dm(
    task: Task, user_id: str, note: str, assignment: Assignment | None = None, tracked: TaskTime | None = None
) -> str:
    quote = f"\n{quoted(note)}" if note else ""
    review = f"\n{review_lines(task, assignment, tracked)}" if assignment else ""
    return (
        f"<@{user_id}> submitted *{rules.ref(task.id)} · {title(task)}*{quote}{review}\n"
        f"Review it from your Home tab, or `/tasks approve {rules.ref(task.id)} <@{user_id}>` / "
        f"`/tasks reject {rules.ref(task.id)} <@{user_id}> <reason>`."
    )
