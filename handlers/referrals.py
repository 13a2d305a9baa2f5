"""/refer and /referrals: members refer experts and follow each referral; leads move them along.

The referral's whole path runs here: the form and the command record it (the Slack directory is
asked before the transaction), leads change its status, `team_join` links the referee, and every
hours event (plus the hourly sweep in `jobs.referrals`) checks whether a bonus was just earned.
The rules themselves live in `domain.referrals`.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.authz import Actor, Role
from core.config import Config
from core.errors import UsageError, UserError
from core.grammar import EMAIL, Kind, choice, email_key, parse_skill, record_id
from core.money import cents
from core.slack import SlackFailure, profile_from_user
from core.text import escape, from_slack
from db.models import Referral
from domain import members, pay
from domain import referrals as rules
from handlers.kit.commands import Args, Option, Param, SlashCommand
from handlers.kit.context import Ctx, ViewValues
from handlers.kit.interactions import ButtonReader, Then, button, event, modal
from jobs import referrals as referral_jobs
from jobs import reports
from views import referrals as views

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.kit.app import CrewApp
    from jobs.runtime import Services
    from views.blocks import Block

log = logging.getLogger("crewcall.referrals")

PAGE_SIZE = 20
HOME_ITEMS = 10
NAME_MAX = 200


def _parse_name(token: str) -> str:
    # Slash command text arrives as Slack markup (should_escape); keep what the member typed.
    name = " ".join(from_slack(token).split())
    if len(name) > NAME_MAX:
        raise UsageError(f"That name is too long ({len(name)} characters; at most {NAME_MAX}).")
    return name


NAME = Kind("name", _parse_name)
SKILL = Kind("S", parse_skill)
STATUS = choice(*rules.STATUSES)
REFERRAL = record_id("R", "referral")

refer = SlashCommand(
    "/refer",
    "Refer an expert and earn the referral bonus when they're hired",
    "With no email, opens the referral form.",
)
referrals = SlashCommand("/referrals", "Your referrals and bonuses; leads move referrals along")


# ---- referring -----------------------------------------------------------------------------------


@refer.sub(
    "",
    "Refer someone by their email address",
    params=[Param("email", EMAIL, required=False), Param("name", NAME, required=False, rest=True)],
    options=[Option("skill", SKILL)],
)
def refer_someone(ctx: Ctx, args: Args) -> None:
    if args.email is None:
        if "name" in args or "skill" in args:
            raise UserError(
                "Start with their email address, like `/refer ana@example.com Ana Silva skill=legal`."
            )
        ctx.open_modal(views.refer_modal(ctx.origin_metadata()))
        return
    referral = record_referral(ctx, args.email, args.get("name", ""), args.get("skill"))
    ctx.reply(views.recorded_text(referral, ctx.services.config.referral_bonus_hours))


def record_referral(ctx: Ctx, email: str, name: str, skill: str | None) -> Referral:
    """Ask Slack who owns the address (before any transaction), then let the database decide."""
    rules.check_not_self(ctx.actor, email)
    try:
        account = ctx.services.slack.lookup_by_email(email)
        key = email_key(email)
        if account is None and key != email:  # the same mailbox, as Slack may know it
            account = ctx.services.slack.lookup_by_email(key)
    except SlackFailure as e:
        log.warning("users.lookupByEmail failed while referring: %s", e.error)
        raise UserError(
            f"I couldn't check right now whether {escape(email)} is already in the workspace, so nothing "
            "was recorded. Please try again in a minute."
        ) from None
    with ctx.write() as session:
        return rules.refer(
            session,
            by=ctx.actor,
            email=email,
            name=name,
            skill=skill,
            account=account,
            bonus_cents=cents(ctx.services.config.referral_bonus),
            now=ctx.now,
            source=ctx.source,
            share=_share_terms(ctx.services.config),
        )


def _share_terms(config: Config) -> rules.ShareTerms | None:
    """The share model's terms for a new referral, when REFERRAL_MODEL=share."""
    if config.referral_model != rules.SHARE:
        return None
    return rules.ShareTerms(
        basis_points=int(config.referral_share_percent * 100),
        months=config.referral_share_months,
        cap_cents=cents(config.referral_share_cap),
    )


def submit_form(ctx: Ctx, values: ViewValues) -> Then:
    """The referral form: its fields are checked before the answer (errors keep it open). Whether
    Slack knows the address is asked after the modal has closed, so a slow Slack can't hold up its
    answer; the referrer is told the outcome where they opened the form."""
    form = values.form()
    email = form.parse("email", EMAIL)
    if email is not None:
        form.check("email", rules.check_not_self, ctx.actor, email)
    name = " ".join(values.text("name").split())
    if len(name) > NAME_MAX:
        form.fail("name", f"At most {NAME_MAX} characters.")
    skill = form.parse("skill", SKILL, required=False)
    form.done()
    return Then(lambda: _refer_from_form(ctx, email, name, skill))


def _refer_from_form(ctx: Ctx, email: str, name: str, skill: str | None) -> None:
    referral = record_referral(ctx, email, name, skill)
    ctx.reply(views.recorded_text(referral, ctx.services.config.referral_bonus_hours))
    if ctx.request.metadata.get("home"):
        ctx.services.home.publish(ctx.services, ctx.actor.user_id)


# ---- following my referrals ----------------------------------------------------------------------


@referrals.sub("", "My referrals: status, last change and bonus earned / pending / paid")
def mine(ctx: Ctx, args: Args) -> None:
    _send_mine(ctx, before_id=None)


def _send_mine(ctx: Ctx, before_id: int | None) -> None:
    with ctx.read() as session:
        items, more = rules.of_referrer(session, ctx.actor.user_id, PAGE_SIZE, before_id)
        totals = rules.totals_for(session, ctx.actor.user_id)
        hours = _hours_of(session, items)
        progress = pay.progress_of(session, items, ctx.now)
    text, blocks = views.my_referrals(
        items,
        hours,
        totals,
        ctx.services.config.referral_bonus_hours,
        more,
        first_page=before_id is None,
        progress=progress,
    )
    ctx.reply(text, blocks)


def _hours_of(session: Session, items: list[Referral]) -> dict[str, Decimal]:
    """Bonus hours of the referees still working toward the bonus."""
    return rules.bonus_hours(
        session, [r.referee_user_id for r in items if r.status == rules.HIRED and r.referee_user_id]
    )


@referrals.sub(
    "leaderboard",
    "This month's leaderboard of hired referrals; `on` or `off` to show or hide yourself on it",
    params=[Param("choice", choice("on", "off"), required=False)],
)
def leaderboard(ctx: Ctx, args: Args) -> None:
    if "choice" in args:
        show = args.choice == "on"
        with ctx.write() as session:
            changed = rules.set_leaderboard(session, ctx.actor.user_id, show, ctx.now, ctx.source)
        if show:
            ctx.reply(
                ":white_check_mark: You're on the referral leaderboard now: it shows how many of your referrals "
                "were hired this month."
                if changed
                else "You're already on the referral leaderboard. Nothing changed."
            )
        else:
            ctx.reply(
                ":white_check_mark: You're off the referral leaderboard; your referrals stay as they are."
                if changed
                else "You're not on the referral leaderboard. Nothing changed."
            )
        return
    with ctx.read() as session:
        board = rules.leaderboard(session, ctx.now)
        shown = rules.on_leaderboard(session, ctx.actor.user_id)
    month, _ = rules.month_bounds(ctx.now)
    ctx.reply(views.leaderboard_text(month, board, shown))


# ---- leads ---------------------------------------------------------------------------------------


@referrals.sub(
    "all",
    "Every referral, newest first, optionally of one status",
    options=[Option("status", STATUS)],
    role=Role.LEAD,
    action="list everyone's referrals",
)
def list_all(ctx: Ctx, args: Args) -> None:
    _send_all(ctx, args.get("status"), before_id=None)


def _send_all(ctx: Ctx, status: str | None, before_id: int | None) -> None:
    with ctx.read() as session:
        items, more = rules.listing(session, PAGE_SIZE, status, before_id)
    text, blocks = views.all_referrals(items, status, more, first_page=before_id is None)
    ctx.reply(text, blocks)


@referrals.sub(
    "set",
    "Move a referral to its next status (the referrer gets a DM)",
    params=[Param("referral", REFERRAL), Param("status", STATUS)],
    role=Role.LEAD,
    action="change referrals",
)
def set_status(ctx: Ctx, args: Args) -> None:
    threshold = ctx.services.config.referral_bonus_hours
    with ctx.write() as session:
        change = rules.set_status(
            session,
            by=ctx.actor,
            referral_id=args.referral,
            status=args.status,
            threshold_hours=threshold,
            now=ctx.now,
            source=ctx.source,
        )
    if change is None:
        ctx.reply(f"{rules.ref(args.referral)} is already {args.status}. Nothing changed.")
        return
    referral = change.referral
    tz = ctx.services.directory.tz_of(referral.referrer_id)
    ctx.dm(
        referral.referrer_id,
        views.status_dm(referral, change.after, change.by, change.at, tz, threshold),
        what="referral update",
    )
    promoted = None
    if change.after == rules.HIRED:
        # The referee may have tracked their hours already (e.g. as a contractor on trial).
        done = referral_jobs.promote_and_notify(ctx.services, ctx.source, referral_id=referral.id)
        promoted = done[0].hours if done else None
    ctx.reply(views.set_reply(referral, change.before, change.after, promoted))


@referrals.sub(
    "export",
    "Every referral as a CSV file, sent to you in a DM",
    role=Role.LEAD,
    action="export referrals",
)
def export(ctx: Ctx, args: Args) -> None:
    built = reports.referral_export(ctx.services)
    _send_export(ctx, built.content, built.count)


def _send_export(ctx: Ctx, content: bytes, count: int) -> None:
    slack = ctx.services.slack
    stamp = ctx.now.strftime("%Y-%m-%d")
    try:
        channel = slack.open_dm(ctx.actor.user_id)
    except SlackFailure as e:
        log.error("could not open a DM with %s for the referrals export: %s", ctx.actor.user_id, e.error)
        channel = ""
    uploaded = bool(channel) and slack.upload(
        channel=channel,
        filename=f"referrals-{stamp}.csv",
        content=content,
        title=f"Referrals export, {stamp} ({count} referrals)",
    )
    if not uploaded:
        raise UserError("I couldn't send you the export file just now. Nothing was lost; please try again.")
    ctx.reply(f":white_check_mark: Sent you `referrals-{stamp}.csv` in a DM: {count} referrals.")


# ---- Home ----------------------------------------------------------------------------------------


def home_section(services: Services, actor: Actor, session: Session) -> list[Block]:
    items, more = rules.of_referrer(session, actor.user_id, HOME_ITEMS)
    totals = rules.totals_for(session, actor.user_id)
    hours = _hours_of(session, items)
    board = rules.leaderboard(session, services.clock.now())
    shown = rules.on_leaderboard(session, actor.user_id)
    progress = pay.progress_of(session, items, services.clock.now())
    month, _ = rules.month_bounds(services.clock.now())
    return views.home(
        items,
        hours,
        totals,
        services.config.referral_bonus_hours,
        month,
        board,
        shown,
        more is not None,
        progress=progress,
    )


BUTTON = ButtonReader("Type `/referrals` to see your referrals, or `/referrals leaderboard on` or `off`.")
LEAD_BUTTON = ButtonReader("Type `/referrals all` to see every referral.")
SHOWN = choice("on", "off")
ANY_STATUS = choice("", *rules.STATUSES)  # "" lists every status


def register(app: CrewApp) -> None:
    services = app.services
    app.commands.add(refer).register(app, services)
    app.commands.add(referrals).register(app, services)
    app.home.section("referrals", "Referrals", order=70)(home_section)

    modal(app, views.REFER_CALLBACK)(submit_form)

    @button(app, views.REFER_BUTTON)
    def open_form(ctx: Ctx, value: str) -> None:
        ctx.open_modal(views.refer_modal(ctx.origin_metadata(home=ctx.request.in_home or None)))

    @button(app, views.LEADERBOARD_BUTTON)
    def toggle_leaderboard(ctx: Ctx, value: str) -> None:
        show = BUTTON.one(value, SHOWN) == "on"
        with ctx.write() as session:
            rules.set_leaderboard(session, ctx.actor.user_id, show, ctx.now, ctx.source)
        # The Home tab redrawn with the new choice is the answer.
        services.home.publish(services, ctx.actor.user_id)

    @button(app, views.MINE_MORE)
    def more_mine(ctx: Ctx, value: str) -> None:
        _send_mine(ctx, BUTTON.one(value, REFERRAL))

    @button(app, views.ALL_MORE, role=Role.LEAD, action="list everyone's referrals")
    def more_all(ctx: Ctx, value: str) -> None:
        status, before = LEAD_BUTTON.parts(value, ANY_STATUS, REFERRAL)
        _send_all(ctx, status or None, before)

    @event(app, "team_join")
    def joined(ctx: Ctx, join: dict[str, Any]) -> None:
        user = join.get("user")
        if not isinstance(user, dict) or not user.get("id"):
            return
        profile = profile_from_user(user)
        if profile.is_bot or not profile.email:
            return
        with ctx.write() as session:
            members.apply_profile(session, profile, ctx.now)
            linked = rules.link_referee(session, profile.email, profile.user_id, ctx.now, ctx.source)
        if linked is None:
            return
        referral_jobs.notify_joined(services, [linked])
        referral_jobs.promote_and_notify(services, ctx.source, referee_user_id=profile.user_id)
