"""/tasks: leads post tasks as cards, contractors claim them with a button, leads review the work.

Every listener parses (grammar), is authorized by the role it declares, calls `domain.tasks` in one
transaction, then, with the transaction closed, answers, DMs and redraws the task's card.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.authz import Role
from core.errors import UsageError, UserError
from core.events import WORK_APPROVED
from core.grammar import (
    CHANNEL,
    DATE,
    SKILL,
    TEXT,
    USER,
    Kind,
    choice,
    hours_amount,
    integer,
    money,
    record_id,
)
from core.money import cents
from core.slack import SlackFailure, on_request_thread
from core.text import from_slack
from db.models import Assignment, Task
from domain import hours
from domain import skills as catalogue
from domain import tasks as rules
from domain.vetting import ATTESTATION, AttestationRequired
from handlers.kit.commands import Args, Option, Param, SlashCommand
from handlers.kit.context import Ctx, ViewValues
from handlers.kit.interactions import MEMBER_ID, OFFSET, ButtonReader, FieldErrors, Then, button, modal
from jobs import tasks as task_jobs
from jobs import vetting as vetting_jobs
from views import tasks as views
from views import vetting as vetting_views

if TYPE_CHECKING:
    from sqlmodel import Session

    from core.authz import Actor
    from db.models import Task
    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

log = logging.getLogger("crewcall.tasks")

TASK = record_id("T", "task")
TITLE = Kind("title", TEXT.parse)
NOTE = Kind("note or link", TEXT.parse)
REASON = Kind("reason", TEXT.parse)
RATE = money(Decimal("0"), Decimal("10000"))
HOURS = hours_amount()
SLOTS = integer(1, rules.MAX_SLOTS, "number of slots")
AI = choice("allowed", "forbidden")
CONFIRM_WORD = "confirm"
NEW_OPTIONS = (
    Option("slots", SLOTS, default=1),
    Option("rate", RATE),
    Option("hours", HOURS),
    Option("skill", SKILL),
    Option("due", DATE),
    Option("channel", CHANNEL),
    Option("ai", AI),
)

tasks = SlashCommand(
    "/tasks",
    "Find, claim and work on paid tasks",
    "A task is due at the end of its due date in the timezone of the lead who posted it; claims not "
    "submitted by then are released.",
)


# ---- finding work --------------------------------------------------------------------------------


@tasks.sub("", "List the open tasks you can claim, newest first")
def list_open(ctx: Ctx, args: Args) -> None:
    _send_claimable(ctx, 0)


def _send_claimable(ctx: Ctx, offset: int) -> None:
    cap = ctx.services.config.max_active_claims
    with ctx.read() as session:
        found, has_more, held = rules.claimable(session, ctx.actor, ctx.now, offset, views.PAGE)
    ctx.reply("Open tasks you can claim", views.claimable_list(found, offset, has_more, held, cap))


@tasks.sub("mine", "List your tasks, with Submit and Release buttons")
def mine(ctx: Ctx, args: Args) -> None:
    _send_mine(ctx, 0)


def _send_mine(ctx: Ctx, offset: int) -> None:
    with ctx.read() as session:
        rows, has_more = rules.assignments_of(session, ctx.actor.user_id, offset, views.PAGE)
    ctx.reply("Your tasks", views.mine_list(rows, offset, has_more, ctx.actor.tz))


# ---- posting -------------------------------------------------------------------------------------


@tasks.sub(
    "new",
    "Post a task as a card with a Claim button (no arguments: a form). rate= ($/h) and hours= (estimated) "
    "are required; slots defaults to 1, channel to TASKS_CHANNEL or this one; due is the last day",
    params=[Param("title", TITLE, required=False, rest=True, strict=True)],
    options=NEW_OPTIONS,
    role=Role.LEAD,
    action="post tasks",
)
def new(ctx: Ctx, args: Args) -> None:
    if ctx.request.text.strip().lower() == "new":
        ctx.open_modal(views.new_task_modal(_default_channel(ctx, required=False), ctx.origin_metadata()))
        return
    usage = tasks.subcommands["new"].usage()
    if args.title is None:
        raise UsageError("Missing title (the words that are not options).", usage)
    for key, example in (("rate", "rate=120"), ("hours", "hours=6")):
        if key not in args:
            raise UsageError(f"`{key}=` is required, like {example}.", usage)
    draft = rules.TaskDraft(
        title=args.title,
        rate_cents=cents(args.rate),
        est_hours=float(args.hours),
        slots=args.slots,
        skill=args.get("skill"),
        due=args.get("due"),
        channel_id=args.get("channel") or _default_channel(ctx, required=True),
        ai_allowed=args.get("ai") == "allowed",
    )
    _post(ctx, draft)


def _default_channel(ctx: Ctx, required: bool) -> str | None:
    here = ctx.request.channel_id
    channel = ctx.services.config.tasks_channel or (here if here and here[0] in "CG" else None)
    if channel is None and required:
        raise UserError("Say where to post the card, like `channel=#tasks` (or set TASKS_CHANNEL).")
    return channel


def _post(ctx: Ctx, draft: rules.TaskDraft) -> None:
    """Create the task, post its card, remember where; a card that can't be posted withdraws it."""
    with ctx.write() as session:
        task = rules.create(session, ctx.actor, draft, ctx.now, ctx.source)
    _post_card(ctx, task, draft.channel_id or "")


def _post_card(ctx: Ctx, task: Task, channel_id: str) -> None:
    text, blocks = views.card(task, ctx.now)
    try:
        posted = ctx.services.slack.post_once(channel_id, text, blocks)
    except SlackFailure as e:
        if e.rate_limited and on_request_thread():
            # Not on a listener thread: the card goes out from the retry thread once Slack allows.
            ctx.later(e.retry_after or 1.0, lambda: _post_card(ctx, task, channel_id))
            return
        log.error("could not post the card of %s in %s: %s", rules.ref(task.id), channel_id, e.error)
        with ctx.write() as session:
            rules.withdraw(session, task.id or 0, ctx.actor.user_id, ctx.now, ctx.source, e.error)
        hint = {
            "not_in_channel": "Invite me there with `/invite @crewcall`",
            "channel_not_found": "Check the channel (for a private one, invite me first)",
            "is_archived": "That channel is archived; pick another",
        }.get(e.error, "Try again in a moment")
        raise UserError(
            f"I couldn't post the card in <#{channel_id}> (`{e.error}`), so {rules.ref(task.id)} was "
            f"withdrawn. {hint}, then post it again."
        ) from None
    with ctx.write() as session:
        rules.attach_card(session, task.id or 0, posted.channel, posted.ts)
    task_jobs.schedule_expiry(ctx.services, task)
    ctx.reply(
        f":white_check_mark: Posted *{rules.ref(task.id)} · {views.title(task)}* in <#{posted.channel}> "
        f"({views.slots_text(task)})."
    )


# ---- claiming ------------------------------------------------------------------------------------


@tasks.sub("claim", "Claim a task", params=[Param("task", TASK)])
def claim_command(ctx: Ctx, args: Args) -> None:
    _claim(ctx, args.task)


def _claim(ctx: Ctx, task_id: int) -> None:
    ctx.release()  # the actor's read: the decision waits for its batch with no transaction open
    decided = task_jobs.claim(ctx.services, task_id, ctx.actor, ctx.source)
    taken = decided.outcome
    if isinstance(taken, rules.TaskRefusal):
        ctx.reply(f":warning: {taken.message}")
    else:
        task = taken.task
        ctx.reply(
            f":white_check_mark: *{rules.ref(task.id)} · {views.title(task)}* is yours! I sent you the details "
            f"and what to do next in a DM. Submit with `/tasks done {rules.ref(task.id)}`."
        )
    if decided.redraws_card:
        task_jobs.refresh_card(ctx.services, task_id)
    if isinstance(taken, rules.Taken):
        text, blocks = views.taken_dm(taken.task, ctx.actor.tz)
        ctx.dm(ctx.actor.user_id, text, blocks, what="claim confirmation")


def _refused(ctx: Ctx, task_id: int, refusal: rules.TaskRefusal) -> None:
    """Say why, then redraw the card if the click may have come from a stale one."""
    ctx.reply(f":warning: {refusal.message}")
    if refusal.card_stale:
        task_jobs.refresh_card(ctx.services, task_id)


@tasks.sub(
    "assign",
    "Give a slot to a member (respects slots; they are DMed)",
    params=[Param("task", TASK), Param("member", USER)],
    role=Role.LEAD,
    action="assign tasks",
)
def assign(ctx: Ctx, args: Args) -> None:
    ctx.services.directory.member(args.member)
    try:
        with ctx.write() as session:
            taken = rules.assign(
                session,
                args.task,
                args.member,
                ctx.actor,
                ctx.now,
                ctx.services.config.max_active_claims,
                ctx.source,
            )
    except rules.TaskRefusal as refusal:
        _refused(ctx, args.task, refusal)
        return
    task = taken.task
    notes = "".join(f"\nNote: {n}" for n in taken.notes)
    ctx.reply(
        f":white_check_mark: Assigned *{rules.ref(task.id)}* to <@{args.member}> "
        f"({views.slots_text(task)}). I DMed them.{notes}"
    )
    task_jobs.refresh_card(ctx.services, args.task)
    text, blocks = views.taken_dm(task, ctx.services.directory.tz_of(args.member), ctx.actor.user_id)
    ctx.dm(args.member, text, blocks, what="assignment")


# ---- working a task ------------------------------------------------------------------------------


@tasks.sub("release", "Give your slot back", params=[Param("task", TASK)])
def release_command(ctx: Ctx, args: Args) -> None:
    _release(ctx, args.task)


def _release(ctx: Ctx, task_id: int) -> None:
    with ctx.write() as session:
        task = rules.release(session, task_id, ctx.actor.user_id, ctx.now, ctx.source)
    ctx.reply(f"You released *{rules.ref(task.id)} · {views.title(task)}*; the slot is open to others again.")
    task_jobs.refresh_card(ctx.services, task_id)
    _refresh_home(ctx)


@tasks.sub(
    "done",
    "Submit your work for review, with an optional note or link. Unless the task allows AI tools, "
    f"start the note with `{CONFIRM_WORD}` to confirm “{ATTESTATION}” (without it, a form asks you to)",
    params=[Param("task", TASK), Param("note", NOTE, required=False, rest=True)],
)
def done(ctx: Ctx, args: Args) -> None:
    note = args.get("note", "")
    first, _, rest = note.partition(" ")
    confirmed = first.strip().lower() == CONFIRM_WORD
    if confirmed:
        note = rest.strip()
    try:
        _submit(ctx, args.task, note, ATTESTATION if confirmed else None)
    except AttestationRequired:
        _ask_attestation(ctx, args.task, note)


def _ask_attestation(ctx: Ctx, task_id: int, note: str) -> None:
    """Refused without the attestation: cite the handbook's rule, and open the Submit form with the
    note filled in, so one tick and one tap submit it."""
    with ctx.read() as session:
        task = rules.get(session, task_id)
    rule = vetting_jobs.ai_rule(ctx.services)
    hint = (
        "Tick the box in the form I opened and press Submit, or type "
        f"`/tasks done {rules.ref(task_id)} {CONFIRM_WORD} {'<note>' if not note else '…'}`."
    )
    text, blocks = vetting_views.attestation_refusal(rules.ref(task_id), rule, hint)
    ctx.open_modal(views.submit_modal(task, _metadata(ctx, task=task_id), rule=rule, note=from_slack(note)))
    ctx.reply(text, blocks)


def _submit(ctx: Ctx, task_id: int, note: str, attestation: str | None) -> None:
    with ctx.write() as session:
        task, assignment = rules.submit(
            session, task_id, ctx.actor.user_id, note, ctx.now, ctx.source, attestation
        )
    _submitted(ctx, task, assignment)


def _submitted(ctx: Ctx, task: Task, assignment: Assignment) -> None:
    ctx.reply(
        f":inbox_tray: Submitted *{rules.ref(task.id)} · {views.title(task)}*. A lead will review it; "
        "you'll get a DM with the decision."
    )
    with ctx.read() as session:
        tracked = hours.task_time(session, assignment.user_id, task.id or 0)
    ctx.dm(
        task.creator_id,
        views.submitted_dm(task, ctx.actor.user_id, assignment.note, assignment, tracked),
        what="submission",
    )
    _refresh_home(ctx)


@tasks.sub(
    "approve",
    "Approve a member's submitted work (they are DMed)",
    params=[Param("task", TASK), Param("member", USER)],
    role=Role.LEAD,
    action="approve work",
)
def approve_command(ctx: Ctx, args: Args) -> None:
    _approve(ctx, args.task, args.member)


def _approve(ctx: Ctx, task_id: int, user_id: str) -> None:
    with ctx.write() as session:
        task = rules.approve(session, task_id, user_id, ctx.actor, ctx.now, ctx.source)
    closed = (
        " Every slot's work is now approved, so the task is closed." if task.state == rules.CLOSED else ""
    )
    ctx.reply(
        f":white_check_mark: Approved <@{user_id}>'s work on *{rules.ref(task.id)}*. I DMed them.{closed}"
    )
    ctx.dm(user_id, views.approved_dm(task, ctx.actor.user_id), what="approval")
    ctx.services.events.emit(WORK_APPROVED, user_id=user_id, task_id=task_id)
    task_jobs.refresh_card(ctx.services, task_id)
    _refresh_home(ctx)


@tasks.sub(
    "reject",
    "Reject a member's submitted work, saying why (they are DMed and may dispute within 7 days)",
    params=[Param("task", TASK), Param("member", USER), Param("reason", REASON, rest=True)],
    role=Role.LEAD,
    action="reject work",
)
def reject_command(ctx: Ctx, args: Args) -> None:
    _reject(ctx, args.task, args.member, args.reason)


def _reject(ctx: Ctx, task_id: int, user_id: str, reason: str) -> None:
    with ctx.write() as session:
        task = rules.reject(session, task_id, user_id, ctx.actor, reason, ctx.now, ctx.source)
    ctx.reply(
        f"Rejected <@{user_id}>'s work on *{rules.ref(task.id)}*; the slot is open again. "
        "I DMed them the reason and how to dispute it."
    )
    until = ctx.now + rules.DISPUTE_WINDOW
    tz = ctx.services.directory.tz_of(user_id)
    ctx.dm(user_id, views.rejected_dm(task, ctx.actor.user_id, reason.strip(), until, tz), what="rejection")
    task_jobs.refresh_card(ctx.services, task_id)
    _refresh_home(ctx)


@tasks.sub(
    "cancel",
    "Cancel a task; everyone holding it is DMed",
    params=[Param("task", TASK)],
    role=Role.LEAD,
    action="cancel tasks",
)
def cancel(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        task, released = rules.cancel(session, args.task, ctx.actor, ctx.now, ctx.source)
    task_jobs.cancel_expiry(ctx.services, args.task)
    told = f" I DMed the {len(released)} people who held it." if released else " Nobody held it."
    ctx.reply(f"Cancelled *{rules.ref(task.id)} · {views.title(task)}*.{told}")
    task_jobs.refresh_card(ctx.services, args.task)
    for user_id in released:
        ctx.dm(user_id, views.cancelled_dm(task, ctx.actor.user_id), what="cancellation")


@tasks.sub(
    "history",
    "Every recorded change of a task: who, what, when, from where",
    params=[Param("task", TASK)],
    role=Role.LEAD,
    action="see task history",
)
def history(ctx: Ctx, args: Args) -> None:
    _send_history(ctx, args.task, 0)


def _send_history(ctx: Ctx, task_id: int, offset: int) -> None:
    with ctx.read() as session:
        task = rules.get(session, task_id)
        entries, has_more = rules.history(session, task_id, offset, views.HISTORY_PAGE)
    ctx.reply(f"History of {rules.ref(task_id)}", views.history_list(task, entries, offset, has_more))


# ---- the card ------------------------------------------------------------------------------------


def _refresh_home(ctx: Ctx) -> None:
    """Redraw the actor's Home tab when they acted from it (a button there, or a modal it opened)."""
    if ctx.request.in_home or ctx.request.metadata.get("home"):
        ctx.services.home.publish(ctx.services, ctx.actor.user_id)


# ---- buttons and modals --------------------------------------------------------------------------


BUTTON = ButtonReader("Type `/tasks` to see the current tasks.")


def register(app: CrewApp) -> None:
    app.commands.add(tasks).register(app, app.services)

    @button(app, views.CLAIM)
    def claim_clicked(ctx: Ctx, value: str) -> None:
        _claim(ctx, BUTTON.one(value, TASK))

    @button(app, views.LIST_MORE)
    def list_more(ctx: Ctx, value: str) -> None:
        _send_claimable(ctx, BUTTON.one(value, OFFSET))

    @button(app, views.MINE_MORE)
    def mine_more(ctx: Ctx, value: str) -> None:
        _send_mine(ctx, BUTTON.one(value, OFFSET))

    @button(app, views.HISTORY_MORE, role=Role.LEAD, action="see task history")
    def history_more(ctx: Ctx, value: str) -> None:
        _send_history(ctx, *BUTTON.parts(value, TASK, OFFSET))

    @button(app, views.RELEASE)
    def release_clicked(ctx: Ctx, value: str) -> None:
        _release(ctx, BUTTON.one(value, TASK))

    @button(app, views.SUBMIT)
    def submit_clicked(ctx: Ctx, value: str) -> None:
        task_id = BUTTON.one(value, TASK)
        with ctx.read() as session:
            task, _ = rules.submittable(session, task_id, ctx.actor.user_id)
        rule = None if task.ai_allowed else vetting_jobs.ai_rule(ctx.services)
        ctx.open_modal(views.submit_modal(task, _metadata(ctx, task=task_id), rule=rule))

    @modal(app, views.SUBMIT_MODAL)
    def submit_submitted(ctx: Ctx, values: ViewValues) -> Then:
        task_id = BUTTON.one(str(ctx.request.metadata.get("task")), TASK)
        attestation = ATTESTATION if "yes" in values.selected_many("attest") else None
        try:
            with ctx.write() as session:
                task, assignment = rules.submit(
                    session, task_id, ctx.actor.user_id, values.text("note"), ctx.now, ctx.source, attestation
                )
        except AttestationRequired:
            raise FieldErrors(
                {
                    "attest": f"Confirm this to submit: the handbook forbids AI tools on this task ({rules.ref(task_id)})."
                }
            ) from None
        except UserError as e:
            raise FieldErrors({"note": e.message}) from None
        return Then(lambda: _submitted(ctx, task, assignment))

    @button(app, views.APPROVE, role=Role.LEAD, action="approve work")
    def approve_clicked(ctx: Ctx, value: str) -> None:
        _approve(ctx, *BUTTON.parts(value, TASK, MEMBER_ID))

    @button(app, views.REJECT, role=Role.LEAD, action="reject work")
    def reject_clicked(ctx: Ctx, value: str) -> None:
        task_id, user_id = BUTTON.parts(value, TASK, MEMBER_ID)
        with ctx.read() as session:
            task, _ = rules.reviewable(session, task_id, user_id, ctx.actor, "reject")
        ctx.open_modal(views.reject_modal(task, user_id, _metadata(ctx, task=task_id, member=user_id)))

    @modal(app, views.REJECT_MODAL, role=Role.LEAD, action="reject work")
    def reject_submitted(ctx: Ctx, values: ViewValues) -> Then:
        reason = values.text("reason")
        if not reason:
            raise FieldErrors({"reason": "Say why: the contractor is told, and it settles disputes."})
        meta = ctx.request.metadata
        task_id = BUTTON.one(str(meta.get("task")), TASK)
        member = BUTTON.one(str(meta.get("member")), MEMBER_ID)
        return Then(lambda: _reject(ctx, task_id, member, reason))

    @modal(app, views.NEW_MODAL, role=Role.LEAD, action="post tasks")
    def new_submitted(ctx: Ctx, values: ViewValues) -> Then:
        draft = _draft_from_form(ctx, values)
        return Then(lambda: _post(ctx, draft))

    task_counts = rules.TaskCounts()

    @app.home.section("tasks", "Tasks", order=20)
    def tasks_home(services: Services, actor: Actor, session: Session) -> list[dict[str, Any]]:
        rows, _ = rules.assignments_of(session, actor.user_id, 0, views.PAGE, active_only=True)
        blocks = views.home_member(rows, actor.tz)
        if actor.is_lead:
            counts = task_counts.by_state(session, services.clock.now())
            waiting, total = rules.awaiting_review(session, views.PAGE)
            times = hours.task_times(session, [(a.user_id, t.id or 0) for a, t in waiting])
            tracked = {a.id or 0: times[(a.user_id, t.id or 0)] for a, t in waiting}
            blocks += views.home_lead(counts, waiting, total, tracked)
        return blocks


def _metadata(ctx: Ctx, **extra: Any) -> str:
    """Modal metadata: where to answer (the channel, or the Home tab) and what it is about."""
    return ctx.origin_metadata(home=ctx.request.in_home or None, **extra)


def _draft_from_form(ctx: Ctx, values: ViewValues) -> rules.TaskDraft:
    """The modal's fields through the same grammar as the one-line command; errors keep it open."""
    form = values.form()
    rate = form.parse("rate", RATE)
    est = form.parse("hours", HOURS)
    slots = form.parse("slots", SLOTS)
    skill = form.parse("skill", SKILL, required=False)
    channel = values.channel("channel")
    if not channel:
        form.fail("channel", "Pick the channel for the card.")
    # A field that didn't parse is already reported; its stand-in (1) lets the others be checked too.
    draft = rules.TaskDraft(
        title=values.text("title"),
        description=values.text("description"),
        rate_cents=cents(rate) if rate is not None else 1,
        est_hours=float(est) if est is not None else 1,
        slots=slots or 1,
        skill=skill,
        due=values.date("due"),
        channel_id=channel,
        ai_allowed="allowed" in values.selected_many("ai"),
    )
    for field, problem in rules.check_draft(draft, ctx.actor.tz, ctx.now).items():
        form.fail(field, problem)
    if skill:
        with ctx.read() as session:
            form.check("skill", catalogue.require, session, [skill])
    form.done()
    return draft
