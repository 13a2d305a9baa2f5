"""/crew: profiles, leads and vetted skills."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from core.authz import Role
from core.errors import UserError
from core.grammar import SKILLS, USER, Kind, hours_amount
from domain import members, pay
from handlers.kit.commands import Args, Param, SlashCommand
from handlers.kit.context import Ctx
from jobs import pay as pay_jobs
from views.crew import profile_blocks

if TYPE_CHECKING:
    from handlers.kit.app import CrewApp

crew = SlashCommand("/crew", "Your profile; leads and skills")


@crew.sub("me", "Show my profile: role, skills, timezone")
def me(ctx: Ctx, args: Args) -> None:
    ctx.reply(f"Your crewcall profile: {ctx.actor.role.label}", profile_blocks(ctx.actor))


@crew.sub("", "Same as `/crew me`")
def default(ctx: Ctx, args: Args) -> None:
    me(ctx, args)


@crew.sub("lead", "Make someone a lead", params=[Param("member", USER)], role=Role.ADMIN, action="name leads")
def lead(ctx: Ctx, args: Args) -> None:
    _set_lead(ctx, args.member, True)


@crew.sub(
    "unlead",
    "Remove someone's lead role",
    params=[Param("member", USER)],
    role=Role.ADMIN,
    action="remove leads",
)
def unlead(ctx: Ctx, args: Args) -> None:
    _set_lead(ctx, args.member, False)


def _set_lead(ctx: Ctx, user_id: str, is_lead: bool) -> None:
    if is_lead:
        ctx.services.directory.member(user_id)  # someone Slack knows, active, not a bot
    else:
        ctx.services.directory.refresh(user_id)
    with ctx.write() as session:
        changed = members.set_lead(session, ctx.actor, user_id, is_lead, ctx.now, ctx.source)
    if not changed:
        ctx.reply(f"<@{user_id}> {'is already' if is_lead else 'is not'} a lead. Nothing changed.")
        return
    ctx.reply(f":white_check_mark: <@{user_id}> {'is now a lead' if is_lead else 'is no longer a lead'}.")
    ctx.dm(
        user_id,
        f"<@{ctx.actor.user_id}> made you a crewcall lead: you can now post tasks, schedule shifts and "
        "send announcements. Type `/crew help` to see what leads can do."
        if is_lead
        else f"<@{ctx.actor.user_id}> removed your crewcall lead role.",
        what="lead change",
    )


@crew.sub(
    "skill",
    "Set a member's vetted skills (replaces the list)",
    params=[Param("member", USER), Param("skills", SKILLS, rest=True)],
    role=Role.LEAD,
    action="set skills",
)
def skill(ctx: Ctx, args: Args) -> None:
    ctx.services.directory.member(args.member)
    with ctx.write() as session:
        members.set_skills(session, ctx.actor, args.member, args.skills, ctx.now, ctx.source)
    listed = ", ".join(f"`{s}`" for s in args.skills)
    ctx.reply(f":white_check_mark: <@{args.member}>'s skills are now {listed}.")
    ctx.dm(args.member, f"<@{ctx.actor.user_id}> set your vetted skills to {listed}.", what="skills change")


_HOURS = hours_amount(pay.MAX_CAP_HOURS)


def _cap_hours(token: str) -> Decimal | None:
    return None if token.strip().lower() == "default" else _HOURS.parse(token)


CAP = Kind("hours|default", _cap_hours)


@crew.sub(
    "cap",
    "Set a member's weekly hours cap (`default`: back to WEEKLY_HOURS_CAP)",
    params=[Param("member", USER), Param("hours", CAP)],
    role=Role.LEAD,
    action="set weekly caps",
)
def cap(ctx: Ctx, args: Args) -> None:
    if ctx.services.directory.refresh(args.member) is None:
        raise UserError(f"I couldn't find <@{args.member}> in this workspace. Nothing changed.")
    default = ctx.services.config.weekly_hours_cap
    with ctx.write() as session:
        change = pay.set_cap(session, ctx.actor, args.member, args.hours, default, ctx.now, ctx.source)
    if change is None:
        ctx.reply(f"<@{args.member}>'s weekly cap is already that. Nothing changed.")
        return
    after = f"{pay.format_hours(change.after.hours)} h" + ("" if change.after.own else " (the default)")
    ctx.reply(
        f":white_check_mark: <@{args.member}>'s weekly cap is now {after} "
        f"(was {pay.format_hours(change.before.hours)} h)."
    )
    pay_jobs.cap_changed(ctx.services, args.member)
    ctx.dm(
        args.member,
        f"<@{ctx.actor.user_id}> set your weekly hours cap to {after} (was {pay.format_hours(change.before.hours)} h). "
        "`/hours` shows your week.",
        what="cap change",
    )


def register(app: CrewApp) -> None:
    app.commands.add(crew).register(app, app.services)

    @app.home.section("profile", "Your profile", order=0)
    def profile_section(services, actor, session):  # type: ignore[no-untyped-def]
        return profile_blocks(actor)
