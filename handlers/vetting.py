"""Joining and vetting: the welcome on `team_join` and on first opening the app, the skill
catalogue (`/crew skills …`), applications (`/crew apply`, the Apply button and its modal) and
their vetting by leads (`/crew applications`, the card's Approve / Decline).

The rules are in `domain.vetting` and `domain.skills`; cards, DMs and the digest in `jobs.vetting`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from core.authz import Actor, Role, authorize_vetting
from core.errors import UserError
from core.grammar import SKILL, Kind, integer
from core.slack import profile_from_user
from core.text import escape, from_slack
from db.models import SkillApplication
from domain import members
from domain import skills as catalogue
from domain import vetting as rules
from handlers.crew import crew
from handlers.kit.commands import Args, Param
from handlers.kit.context import Ctx, FieldErrors, ViewValues
from handlers.kit.interactions import OFFSET, ButtonReader, Then, button, event, modal
from jobs import vetting as vetting_jobs
from views import vetting as views
from views.policy import HOW_TO_ASK

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

PAGE = integer(1, 10_000, "page")
APPLICATION = Kind(
    "AP-n", lambda token: integer(1, 2_000_000_000, "application").parse(token.upper().removeprefix("AP-"))
)
EVIDENCE = Kind("link or note", from_slack)
NAME = Kind("name", lambda token: from_slack(token).strip().strip('"').strip())

BUTTON = ButtonReader("Type `/crew applications` to see the open applications.")


# ---- the catalogue -------------------------------------------------------------------------------


@crew.sub(
    "skills",
    "The skill catalogue: every skill you can be vetted for",
    params=[Param("page", PAGE, required=False)],
)
def skills_list(ctx: Ctx, args: Args) -> None:
    _send_skills(ctx, (args.get("page", 1) - 1) * views.SKILLS_PAGE)


def _send_skills(ctx: Ctx, offset: int) -> None:
    with ctx.read() as session:
        rows, has_more = catalogue.listing(session, offset, views.SKILLS_PAGE)
    ctx.reply("The skill catalogue", views.skills_list(rows, offset, has_more, ctx.actor.is_lead))


@crew.sub(
    "skills add",
    'Add a skill to the catalogue, like `/crew skills add legal "Legal review"`',
    params=[Param("skill", SKILL), Param("name", NAME, required=False, rest=True)],
    role=Role.LEAD,
    action="change the skill catalogue",
)
def skills_add(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        skill = catalogue.add(
            session, ctx.actor.user_id, args.skill, args.get("name", ""), ctx.now, ctx.source
        )
    ctx.reply(
        f":white_check_mark: `{skill.slug}` ({escape(skill.name)}) is in the catalogue: members can apply for it."
    )


@crew.sub(
    "skills remove",
    "Take a skill out of the catalogue (members who hold it keep it)",
    params=[Param("skill", SKILL)],
    role=Role.LEAD,
    action="change the skill catalogue",
)
def skills_remove(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        skill, held, tasks = catalogue.remove(session, ctx.actor.user_id, args.skill, ctx.now, ctx.source)
    ctx.reply(
        f"Removed `{skill.slug}` from the catalogue: it can no longer be set, applied for or required. "
        f"{held} member{'s' if held != 1 else ''} keep it; {tasks} open task{'s' if tasks != 1 else ''} still need it."
    )


# ---- applying ------------------------------------------------------------------------------------


@crew.sub(
    "apply",
    "Apply to be vetted for a skill, with a link or note as evidence (no skill: a form)",
    params=[Param("skill", SKILL, required=False), Param("evidence", EVIDENCE, required=False, rest=True)],
)
def apply_command(ctx: Ctx, args: Args) -> None:
    if args.get("skill") is None:
        _open_apply(ctx)
        return
    application = _apply(ctx, args.skill, args.get("evidence", ""))
    posted = vetting_jobs.post_card(ctx.services, application.id or 0)
    ctx.reply(views.applied_text(application, posted))


def _apply(ctx: Ctx, skill: str, evidence: str) -> SkillApplication:
    cooldown = timedelta(days=ctx.services.config.reapply_cooldown_days)
    with ctx.write() as session:
        return rules.apply(session, ctx.actor, skill, evidence, ctx.now, cooldown, ctx.source)


def _open_apply(ctx: Ctx) -> None:
    with ctx.read() as session:
        rows, _ = catalogue.listing(session, 0, 100)
    ctx.open_modal(
        views.apply_modal([s for s, _ in rows], ctx.origin_metadata(home=ctx.request.in_home or None))
    )


# ---- vetting -------------------------------------------------------------------------------------


@crew.sub(
    "applications",
    "Open skill applications, oldest first, with Approve / Decline",
    params=[Param("page", PAGE, required=False)],
    role=Role.LEAD,
    action="see skill applications",
)
def applications(ctx: Ctx, args: Args) -> None:
    _send_applications(ctx, (args.get("page", 1) - 1) * views.APPLICATIONS_PAGE)


def _send_applications(ctx: Ctx, offset: int) -> None:
    with ctx.read() as session:
        found, total = rules.open_applications(session, offset, views.APPLICATIONS_PAGE)
    ctx.reply("Open skill applications", views.applications_list(found, offset, total))


def _decide(ctx: Ctx, application_id: int, approve: bool, reason: str = "") -> None:
    try:
        with ctx.write() as session:
            application = rules.decide(
                session, application_id, ctx.actor, approve, reason, ctx.now, ctx.source
            )
    except rules.AlreadyDecided as e:
        ctx.reply(f":information_source: {e.message}")
        vetting_jobs.refresh_card(ctx.services, application_id)
        return
    _decided(ctx, application)


def _decided(ctx: Ctx, application: SkillApplication) -> None:
    verb = "Approved" if application.state == rules.APPROVED else "Declined"
    ctx.reply(
        f":white_check_mark: {verb} <@{application.user_id}>'s application for `{application.skill}` "
        f"({rules.ref(application.id)}). I DMed them."
    )
    vetting_jobs.tell_outcome(ctx.services, application.id or 0)


# ---- wiring --------------------------------------------------------------------------------------


def register(app: CrewApp) -> None:
    services = app.services

    @event(app, "team_join")
    def joined(ctx: Ctx, join: dict[str, Any]) -> None:
        user = join.get("user")
        if not isinstance(user, dict) or not user.get("id"):
            return
        profile = profile_from_user(user)
        if profile.is_bot or profile.deleted:
            return
        with ctx.write() as session:
            members.apply_profile(session, profile, ctx.now)
        vetting_jobs.welcome(services, profile.user_id, rules.TEAM_JOIN)

    @event(app, "app_home_opened")
    def first_open(ctx: Ctx, home_event: dict[str, Any]) -> None:
        if ctx.request.user_id:
            vetting_jobs.welcome(services, ctx.request.user_id, rules.FIRST_OPEN)

    @button(app, views.APPLY)
    def apply_clicked(ctx: Ctx, value: str) -> None:
        _open_apply(ctx)

    @button(app, views.ASK_HANDBOOK)
    def ask_clicked(ctx: Ctx, value: str) -> None:
        ctx.reply(f"{HOW_TO_ASK} Type your question right here in this DM.")

    @button(app, views.SKILLS_MORE)
    def skills_more(ctx: Ctx, value: str) -> None:
        _send_skills(ctx, BUTTON.one(value, OFFSET))

    @button(app, views.APPLICATIONS_MORE, role=Role.LEAD, action="see skill applications")
    def applications_more(ctx: Ctx, value: str) -> None:
        _send_applications(ctx, BUTTON.one(value, OFFSET))

    @button(app, views.APPROVE, role=Role.LEAD, action="vet skill applications")
    def approve_clicked(ctx: Ctx, value: str) -> None:
        _decide(ctx, BUTTON.one(value, APPLICATION), approve=True)

    @button(app, views.DECLINE, role=Role.LEAD, action="vet skill applications")
    def decline_clicked(ctx: Ctx, value: str) -> None:
        application_id = BUTTON.one(value, APPLICATION)
        with ctx.read() as session:
            application = rules.get(session, application_id)
        if application.state != rules.OPEN:
            ctx.reply(
                f":information_source: {rules.ref(application_id)} was already {application.state} by "
                f"<@{application.decided_by}>. Nothing changed."
            )
            vetting_jobs.refresh_card(services, application_id)
            return
        authorize_vetting(ctx.actor, application.skill, application.user_id)
        ctx.open_modal(views.decline_modal(application, ctx.origin_metadata(application=application_id)))

    @modal(app, views.DECLINE_MODAL, role=Role.LEAD, action="vet skill applications")
    def decline_submitted(ctx: Ctx, values: ViewValues) -> Then:
        reason = values.text("reason")
        if not reason:
            raise FieldErrors({"reason": "Say why: the member is told, and it helps them apply again."})
        application_id = BUTTON.one(str(ctx.request.metadata.get("application")), APPLICATION)
        try:
            with ctx.write() as session:
                application = rules.decide(
                    session, application_id, ctx.actor, False, reason, ctx.now, ctx.source
                )
        except UserError as e:
            raise FieldErrors({"reason": e.message}) from None
        return Then(lambda: _decided(ctx, application))

    @modal(app, views.APPLY_MODAL)
    def apply_submitted(ctx: Ctx, values: ViewValues) -> Then:
        skill = values.selected("skill")
        if not skill:
            raise FieldErrors({"skill": "Pick the skill you apply for."})
        try:
            application = _apply(ctx, skill, values.text("evidence"))
        except UserError as e:
            raise FieldErrors({"skill": e.message}) from None

        def then() -> None:
            posted = vetting_jobs.post_card(services, application.id or 0)
            ctx.reply(views.applied_text(application, posted))
            if ctx.request.metadata.get("home"):
                services.home.publish(services, ctx.actor.user_id)

        return Then(then)

    @app.home.section("vetting", "Skills and vetting", order=5)
    def vetting_home(services: Services, actor: Actor, session: Session) -> list[dict[str, Any]]:
        mine = rules.applications_of(session, actor.user_id, limit=5)
        waiting = rules.open_applications(session, 0, 0)[1] if actor.is_lead else None
        return views.home(mine, waiting)
