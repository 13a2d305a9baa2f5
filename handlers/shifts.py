"""/shifts: schedule shifts (leads), join and leave them, see mine; the shift card's buttons, the
reminder's "Can't make it", the new-shift modal and the Home tab's shifts section."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from core.authz import Actor, Role
from core.errors import UsageError
from core.grammar import (
    CHANNEL,
    DURATION,
    LOCAL_DATETIME,
    PLAIN,
    SKILL,
    TEXT,
    TIMEZONE,
    choice,
    integer,
    record_id,
)
from domain import shifts
from domain.shifts import MAX_SLOTS, REPEATS, JobPlan, NewShift, ShiftInputError
from handlers.kit.commands import Args, Option, Param, SlashCommand
from handlers.kit.context import Ctx, ViewValues
from handlers.kit.interactions import OFFSET, ButtonReader, FieldErrors, Then, button, modal
from jobs import shifts as shift_jobs
from views import shifts as shift_views
from views.blocks import Block, local_time, section

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

SHIFT_ID = record_id("S", "shift")
SLOTS = integer(1, MAX_SLOTS, "number of slots")
DEFAULT_REMIND = timedelta(minutes=30)
PAGE = 10
HOME_SHIFTS = 5

shifts_command = SlashCommand(
    "/shifts",
    "Review shifts: join, leave, reminders in your own timezone",
    "Times you type are wall-clock times in `tz=` (default: your Slack timezone). "
    "Members get a DM reminder before each shift, at their own local time.",
)


# ---- listing ------------------------------------------------------------------------------


@shifts_command.sub("", "My upcoming shifts, in my timezone")
def mine(ctx: Ctx, args: Args) -> None:
    _list(ctx, "mine", 0)


@shifts_command.sub("all", "Upcoming shifts I can join")
def all_joinable(ctx: Ctx, args: Args) -> None:
    _list(ctx, "all", 0)


def _list(ctx: Ctx, kind: str, offset: int) -> None:
    with ctx.read() as session:
        if kind == "mine":
            items, more = shifts.my_upcoming(session, ctx.actor.user_id, ctx.now, offset, PAGE)
        else:
            items, more = shifts.joinable(session, ctx.actor, ctx.now, offset, PAGE)
    empty = (
        "You're not on any upcoming shifts. `/shifts all` lists the ones you can join."
        if kind == "mine"
        else "There are no upcoming shifts you can join right now."
    )
    if not items and offset:
        empty = "That's all of them."
    text, blocks = shift_views.listing(items, ctx.actor.tz, kind, offset, more, empty)
    ctx.reply(text, blocks)


# ---- creating -----------------------------------------------------------------------------


@shifts_command.sub(
    "new",
    "Schedule a shift (with no arguments, opens a form)",
    params=[Param("name", TEXT, required=False, rest=True, strict=True)],
    options=[
        Option("start", LOCAL_DATETIME),
        Option("end", LOCAL_DATETIME),
        Option("slots", SLOTS),
        Option("skill", SKILL),
        Option("repeat", choice(*REPEATS)),
        Option("remind", DURATION),
        Option("tz", TIMEZONE),
        Option("channel", CHANNEL),
    ],
    role=Role.LEAD,
    action="schedule shifts",
)
def new(ctx: Ctx, args: Args) -> None:
    given = {k: v for k, v in args.as_dict().items() if v is not None}
    if not given:
        meta = ctx.origin_metadata()
        ctx.open_modal(shift_views.new_shift_modal(ctx.actor.tz, ctx.request.channel_id, meta))
        return
    usage = shifts_command.subcommands["new"].usage()
    if "name" not in given:
        raise UsageError("Missing name: put the shift's name before the options, like `Night review`.", usage)
    tz = args.get("tz", ctx.actor.tz)
    for key in ("start", "end"):
        if key not in given:
            raise UsageError(
                f"Say when it {key}s: `{key}=YYYY-MM-DDTHH:MM` (wall-clock time in {tz}).", usage
            )
    channel = args.get("channel") or ctx.request.channel_id
    if not channel:
        raise UsageError("Say where to post the shift card: `channel=#review-shifts`.", usage)
    spec = NewShift(
        name=args.name,
        start_local=args.start,
        end_local=args.end,
        tz=tz,
        slots=args.get("slots", 1),
        skill=args.get("skill"),
        repeat=args.get("repeat", "none"),
        remind=args.get("remind", DEFAULT_REMIND),
        channel_id=channel,
    )
    _create(ctx, spec)


def _create(ctx: Ctx, spec: NewShift) -> None:
    with ctx.write() as session:
        created, plan = shifts.create(session, ctx.actor, spec, ctx.now, ctx.source)
    shift_jobs.register(ctx.services.scheduler, plan)
    error = shift_jobs.post_card(ctx.services, created)
    tz = ctx.actor.tz
    when = f"{local_time(created.starts_at, tz)} – {local_time(created.ends_at, tz)}"
    done = (
        f":white_check_mark: Scheduled *{created.ref} · {shift_views.name(created)}*, {when} your time "
        f"({created.slots} slot{'s' if created.slots != 1 else ''}"
        + (f", `{created.skill}` only" if created.skill else "")
        + ("" if created.repeat == "none" else f", repeats {created.repeat}")
        + f", reminder {shift_views.span(created.remind)} before)."
    )
    if error:
        ctx.reply(
            f"{done}\n:warning: I couldn't post its card in <#{created.channel_id}> (`{error}`): invite me there "
            f"with `/invite @crewcall`. Members can still join with `/shifts join {created.ref}`."
        )
    else:
        ctx.reply(f"{done} The card is in <#{created.channel_id}>.")


# ---- joining and leaving ------------------------------------------------------------------


@shifts_command.sub("join", "Join a shift", params=[Param("shift", SHIFT_ID)])
def join_command(ctx: Ctx, args: Args) -> None:
    _join(ctx, args.shift)


@shifts_command.sub(
    "leave",
    "Leave a shift (less than 12 h before the start is a late cancellation)",
    params=[Param("shift", SHIFT_ID)],
)
def leave_command(ctx: Ctx, args: Args) -> None:
    _leave(ctx, args.shift)


@shifts_command.sub(
    "cancel",
    "Cancel a shift; its members are told",
    params=[Param("shift", SHIFT_ID)],
    role=Role.LEAD,
    action="cancel shifts",
)
def cancel_command(ctx: Ctx, args: Args) -> None:
    services = ctx.services
    with ctx.write() as session:
        result = shifts.cancel(session, ctx.actor, args.shift, ctx.now, ctx.source)
    v = result.shift
    if not result.cancelled:
        ctx.reply(f"{v.ref} ({shift_views.name(v)}) is already cancelled. Nothing changed.")
        return
    shift_jobs.unregister_shift(services.scheduler, v.id)
    shift_jobs.refresh_card(services, v.id)
    ctx.reply(
        f":white_check_mark: Cancelled *{v.ref} · {shift_views.name(v)}*. "
        + (f"I'm letting its {len(v.members)} member(s) know." if v.members else "Nobody had joined.")
    )
    for user_id in v.members:
        when = local_time(v.starts_at, services.directory.tz_of(user_id))
        shift_jobs.notify(
            services,
            user_id,
            f":no_entry: {v.ref} {shift_views.name(v)} ({when}) was cancelled by <@{ctx.actor.user_id}>. "
            "You don't need to do anything; its reminder is off.",
            "cancellation",
        )
        services.home.publish(services, user_id)


def _join(ctx: Ctx, shift_id: int) -> None:
    services = ctx.services
    with ctx.write() as session:
        result = shifts.join(session, ctx.actor, shift_id, ctx.now, ctx.source)
    v = result.shift
    if not result.joined:
        ctx.reply(f"You're already on {v.ref} ({shift_views.name(v)}). Nothing changed.")
        return
    if result.reminder is not None:
        shift_jobs.register(services.scheduler, JobPlan(reminders=[result.reminder]))
    tz = ctx.actor.tz
    due = v.starts_at - v.remind
    reminder = (
        f"I'll DM you a reminder at {local_time(due, tz)}."
        if due > ctx.now
        else "Your reminder is on its way now."
    )
    ctx.reply(
        f":white_check_mark: You're on *{v.ref} · {shift_views.name(v)}*, {local_time(v.starts_at, tz)} – "
        f"{local_time(v.ends_at, tz)} your time ({v.filled} of {v.slots} filled). {reminder}"
        + ("" if v.repeat == "none" else f" It repeats {v.repeat}; you stay on it until you leave.")
    )
    shift_jobs.refresh_card(services, v.id)
    services.home.publish(services, ctx.actor.user_id)


def _leave(ctx: Ctx, shift_id: int) -> shifts.LeaveResult:
    services = ctx.services
    with ctx.write() as session:
        result = shifts.leave(session, ctx.actor, shift_id, ctx.now, ctx.source)
    v = result.shift
    if not result.left:
        ctx.reply(f"You're not on {v.ref} ({shift_views.name(v)}). Nothing changed.")
        return result
    shift_jobs.unregister_reminders(services.scheduler, result.dropped_reminders)
    late = (
        f" That's less than 12 hours before the start, so it's recorded as a late cancellation and "
        f"<@{v.creator_id}> was told."
        if result.late
        else ""
    )
    ctx.reply(
        f":wave: You left *{v.ref} · {shift_views.name(v)}* ({local_time(v.starts_at, ctx.actor.tz)}).{late}"
    )
    if result.late:
        before = shift_views.span(v.starts_at - ctx.now)
        lead_when = local_time(v.starts_at, services.directory.tz_of(v.creator_id))
        shift_jobs.notify(
            services,
            v.creator_id,
            f":warning: <@{ctx.actor.user_id}> left {v.ref} {shift_views.name(v)} ({lead_when}) {before} before the start: "
            f"a late cancellation. It now has {v.filled} of {v.slots}.",
            "late cancellation",
        )
    shift_jobs.refresh_card(services, v.id)
    services.home.publish(services, ctx.actor.user_id)
    return result


BUTTON = ButtonReader("Type `/shifts` to see your shifts, or `/shifts all` for the ones you can join.")
LIST_KIND = choice("mine", "all")


# ---- home -----------------------------------------------------------------------------------


def home_section(services: Services, actor: Actor, session: Session) -> list[Block]:
    now = services.clock.now()
    items, more = shifts.my_upcoming(session, actor.user_id, now, 0, HOME_SHIFTS)
    if not items:
        return [section("No upcoming shifts. `/shifts all` lists the ones you can join.")]
    lines = [
        f"• *{v.ref} · {shift_views.name(v)}*: {local_time(v.starts_at, actor.tz)} – {local_time(v.ends_at, actor.tz)}"
        for v in items
    ]
    if more:
        lines.append("…and more: `/shifts`")
    return [section("*Your next shifts* (your time)\n" + "\n".join(lines))]


# ---- registration ---------------------------------------------------------------------------


def register(app: CrewApp) -> None:
    app.commands.add(shifts_command).register(app, app.services)
    app.home.section("shifts", "Shifts", order=30)(home_section)

    @button(app, shift_views.JOIN)
    def join_clicked(ctx: Ctx, value: str) -> None:
        _join(ctx, BUTTON.one(value, SHIFT_ID))

    @button(app, shift_views.LEAVE)
    def leave_clicked(ctx: Ctx, value: str) -> None:
        _leave(ctx, BUTTON.one(value, SHIFT_ID))

    @button(app, shift_views.CANT_MAKE_IT)
    def cant_make_it(ctx: Ctx, value: str) -> None:
        result = _leave(ctx, BUTTON.one(value, SHIFT_ID))
        req = ctx.request
        if req.channel_id and req.message_ts:
            text, blocks = shift_views.reminder_answered(result.shift, ctx.actor.tz, result.late)
            if not result.left:
                text, blocks = (
                    f"You're no longer on {result.shift.ref}.",
                    [section(f"You're no longer on {result.shift.ref}.")],
                )
            ctx.services.slack.update(req.channel_id, req.message_ts, text, blocks, what="shift reminder")

    @button(app, shift_views.MORE)
    def more(ctx: Ctx, value: str) -> None:
        _list(ctx, *BUTTON.parts(value, LIST_KIND, OFFSET))

    @modal(app, shift_views.NEW_MODAL, role=Role.LEAD, action="schedule shifts")
    def submitted(ctx: Ctx, values: ViewValues) -> Then:
        form = values.form()
        name = form.parse("name", PLAIN)
        start = form.parse("start", LOCAL_DATETIME)
        end = form.parse("end", LOCAL_DATETIME)
        tz = form.parse("tz", TIMEZONE, required=False) or ctx.actor.tz
        slots = form.parse("slots", SLOTS)
        skill = form.parse("skill", SKILL, required=False)
        remind = form.parse("remind", DURATION, required=False) or DEFAULT_REMIND
        repeat = values.selected("repeat") or "none"
        channel = values.channel("channel") or ctx.request.channel_id
        if not channel:
            form.fail("channel", "Pick the channel for the shift card.")
        form.done()
        spec = NewShift(name, start, end, tz, slots, skill, repeat, remind, channel or "")
        try:
            shifts.check_new(spec, ctx.now)
        except ShiftInputError as e:
            raise FieldErrors({e.field: e.message}) from None
        return Then(lambda: _create(ctx, spec))
