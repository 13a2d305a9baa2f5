"""/hours: clock in and out, this week's hours and earnings; leads get the week's CSV and approve
flagged time. The Home tab's hours section."""

from __future__ import annotations

from datetime import date, timedelta
from typing import IO, TYPE_CHECKING
from zoneinfo import ZoneInfo

from core.authz import Actor, Role
from core.errors import UserError
from core.grammar import DATE, record_id
from core.money import dollars
from core.slack import SlackFailure
from domain import hours, pay
from handlers.kit.commands import Args, Option, Param, SlashCommand
from handlers.kit.context import Ctx
from jobs import hours as hour_jobs
from jobs import pay as pay_jobs
from jobs import reports
from views import hours as hour_views
from views import pay as pay_views
from views.blocks import Block, context, local_time, section

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

hours_command = SlashCommand(
    "/hours",
    "Clock in and out; your week's hours and earnings",
    "Weeks run Monday 00:00 to Sunday 24:00 in your own timezone. Only tracked time is paid.",
)


@hours_command.sub("", "This week's hours and earnings, per task")
def this_week(ctx: Ctx, args: Args) -> None:
    with ctx.read() as session:
        week = hours.week(session, ctx.actor.user_id, ctx.actor.tz, ctx.now)
    ctx.reply(f"This week: {week.hours} h", hour_views.week_blocks(week, ctx.actor.tz, ctx.now))


@hours_command.sub(
    "in",
    "Clock in, optionally against a task you hold",
    params=[Param("task", record_id("T", "task"), required=False)],
)
def clock_in(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        entry, cap = pay.clock_in(
            session, ctx.actor, args.get("task"), ctx.now, ctx.source, ctx.services.config.weekly_hours_cap
        )
    hour_jobs.register(ctx.services.scheduler, entry.id, entry.started_at)
    pay_jobs.plan_cap(ctx.services, entry.id)
    ctx.reply(f"{hour_views.clocked_in(entry, ctx.actor.tz)} ({pay_views.cap_left(cap)}.)")
    ctx.services.home.publish(ctx.services, ctx.actor.user_id)


@hours_command.sub("out", "Clock out")
def clock_out(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        closed = pay.clock_out(session, ctx.actor, ctx.now, ctx.source, ctx.services.config.weekly_hours_cap)
    hour_jobs.unregister(ctx.services.scheduler, closed.entry.id)
    pay_jobs.unplan_cap(ctx.services, closed.entry.id)
    if closed.entry.stop_reason == pay.CAP_STOP_REASON:  # past the cap: closed at it
        ctx.reply(pay_jobs.stopped_at_cap_text(ctx.services, closed.entry))
    else:
        ctx.reply(hour_views.clocked_out(closed.entry, ctx.actor.tz))
    if closed.entry.flagged:  # out after the 12-hour mark: closed there, like the automatic close
        hour_jobs.tell_leads_closed_at_12h(ctx.services, closed.entry)
    hour_jobs.after_closed(ctx.services, closed)
    ctx.services.home.publish(ctx.services, ctx.actor.user_id)


@hours_command.sub(
    "report",
    "The week's hours of everyone, as a CSV file sent to you (week= any day of the week; default this week)",
    options=[Option("week", DATE)],
    role=Role.LEAD,
    action="download the hours report",
)
def report(ctx: Ctx, args: Args) -> None:
    tz = ctx.actor.tz
    if "week" in args:
        start, end = hours.week_of(args.week, tz)
    else:
        start, end = hours.week_bounds(ctx.now, tz)
    if start > ctx.now:
        raise UserError("That week hasn't started yet. Pick today or an earlier day.")
    built = reports.hours_report(ctx.services, start, end)
    monday = f"{start.astimezone(ZoneInfo(tz)):%Y-%m-%d}"
    summary = f"{built.people} member(s), {built.hours} h counted"
    _send_csv(
        ctx,
        f"hours-week-of-{monday}.csv",
        built.content,
        title=f"Hours, week of {monday} ({tz})",
        comment=f"Hours for the week of {monday} (Monday 00:00 {tz}): {summary}.",
        summary=summary,
    )


def _send_csv(
    ctx: Ctx, filename: str, content: bytes | IO[bytes], title: str, comment: str, summary: str
) -> None:
    """Upload a CSV (bytes, or an open file the caller closes) to the lead's DM, and say so."""
    try:
        channel = ctx.services.slack.open_dm(ctx.actor.user_id)
    except SlackFailure as e:
        raise UserError(
            f"I couldn't open a DM with you to send the report ({e.error}). Try again in a moment."
        ) from None
    if not ctx.services.slack.upload(channel, filename, content, title=title, comment=comment):
        raise UserError("I couldn't upload the report just now. Please try again in a moment.")
    ctx.reply(f":white_check_mark: Sent `{filename}` to your DMs: {summary}.")


def _monday(ctx: Ctx, args: Args) -> date:
    """The Monday of `week=` (any day of it), else of last week, in the actor's timezone."""
    this_monday = pay.monday_of(ctx.now, ctx.actor.tz)
    if "week" not in args:
        return this_monday - timedelta(days=7)
    monday: date = args.week - timedelta(days=args.week.weekday())
    if monday > this_monday:
        raise UserError("That week hasn't started yet. Pick today or an earlier day.")
    return monday


@hours_command.sub(
    "statement",
    "Your pay statement for a week: approved hours by task, rate and amount, referral rewards, the total "
    "(week= any day of the week; default last week)",
    options=[Option("week", DATE)],
)
def statement(ctx: Ctx, args: Args) -> None:
    monday = _monday(ctx, args)
    with ctx.read() as session:
        s = pay.statement(session, ctx.actor.user_id, monday, ctx.now)
    text, blocks = pay_views.statement_blocks(s)
    ctx.reply(text, blocks)


@hours_command.sub(
    "payroll",
    "The week's payroll as a CSV file sent to you: one row per member and task, with totals; each "
    "member's own week (week= any day of it; default last week)",
    options=[Option("week", DATE)],
    role=Role.LEAD,
    action="download the payroll",
)
def payroll(ctx: Ctx, args: Args) -> None:
    monday = _monday(ctx, args)
    built = reports.payroll(ctx.services, monday, ctx.now)
    summary = f"{built.people} member(s), {dollars(built.total_cents, always_cents=True)} to be paid"
    _send_csv(
        ctx,
        f"payroll-week-of-{monday:%Y-%m-%d}.csv",
        built.content,
        title=f"Payroll, week of {monday:%Y-%m-%d}",
        comment=f"Payroll for the week of {monday:%Y-%m-%d} (Monday 00:00 in each member's timezone): {summary}.",
        summary=summary,
    )


@hours_command.sub(
    "approve",
    "Count a time entry that was flagged for review (or one on no task toward a referral bonus); "
    "never your own",
    params=[Param("entry", record_id("E", "time entry"))],
    role=Role.LEAD,
    action="approve flagged hours",
)
def approve(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        closed = hours.approve(session, ctx.actor, args.entry, ctx.now, ctx.source)
    e = closed.entry
    ctx.reply(
        f":white_check_mark: Approved {e.ref}: {hours.as_hours(e.seconds)} h of <@{e.user_id}> now count."
    )
    hour_jobs.after_closed(ctx.services, closed)
    ctx.dm(
        e.user_id,
        f"<@{ctx.actor.user_id}> approved your time {e.ref} ({hours.as_hours(e.seconds)} h): it counts now.",
    )


@hours_command.sub(
    "flagged",
    "Time entries waiting for a lead's review: flagged, or with no task",
    role=Role.LEAD,
    action="review flagged hours",
)
def flagged(ctx: Ctx, args: Args) -> None:
    with ctx.read() as session:
        entries = hours.flagged_entries(session)
    if not entries:
        ctx.reply("No time entries are waiting for review.")
        return
    tz = ctx.actor.tz
    lines = [
        f"• {e.ref}: <@{e.user_id}>, {local_time(e.started_at, tz)} – {local_time(e.ended_at or e.started_at, tz)} "
        f"({hours.as_hours(e.seconds)} h)" + (f" on T-{e.task_id}" if e.task_id else "")
        for e in entries
    ]
    ctx.reply(
        "Flagged time entries",
        [
            section(
                "*Waiting for review* (flagged, or time with no task; oldest first)\n" + "\n".join(lines)
            ),
            section("Approve with `/hours approve E-n`."),
        ],
    )


def home_section(services: Services, actor: Actor, session: Session, near_cap: pay.NearCap) -> list[Block]:
    now = services.clock.now()
    cap = services.config.weekly_hours_cap
    week = hours.week(session, actor.user_id, actor.tz, now)
    mine = pay.week_cap_status(session, week, actor.tz, now, cap)
    near = near_cap(session, now, cap) if actor.is_lead else None
    blocks = [
        *hour_views.week_blocks(week, actor.tz, now, compact=True),
        context(pay_views.cap_left(mine) + "."),
    ]
    if near is not None:
        blocks += pay_views.cap_home(near)
    return blocks


def register(app: CrewApp) -> None:
    app.commands.add(hours_command).register(app, app.services)
    near_cap = pay.NearCap(app.services.db.read)  # one per app: its sums are of this app's store

    @app.home.section("hours", "Hours", order=40)
    def hours_home(services: Services, actor: Actor, session: Session) -> list[Block]:
        return home_section(services, actor, session, near_cap)
