"""Members, their roles and vetted skills.

A member row is created the first time the bot meets a Slack user; the profile (name, timezone,
email) mirrors `users.info` and is refreshed once it is older than PROFILE_MAX_AGE.
Everyone is a contractor; leads are named by admins; admins come from ADMIN_USER_IDS.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, delete, select

from core.authz import Actor, Role, role_for
from core.errors import UserError
from core.grammar import email_key
from core.people import Profile
from db.models import Member, MemberSkill
from db.statements import insert_ignore
from domain import audit
from domain import skills as catalogue

PROFILE_MAX_AGE = timedelta(hours=24)


def ensure(session: Session, user_id: str, now: datetime) -> Member:
    """The member row for a Slack user, created (without profile) on first sight."""
    member = session.get(Member, user_id)
    if member is not None:
        return member
    insert_ignore(
        session,
        Member,
        {
            "user_id": user_id,
            "name": "",
            "real_name": "",
            "tz": "UTC",
            "is_lead": False,
            "is_bot": False,
            "deleted": False,
            "created_at": now,
        },
    )
    member = session.get(Member, user_id)
    assert member is not None
    return member


def apply_profile(session: Session, profile: Profile, now: datetime) -> Member:
    member = ensure(session, profile.user_id, now)
    member.name = profile.name[:200]
    member.real_name = profile.real_name[:200]
    member.tz = profile.tz or "UTC"
    member.email = profile.email.strip().lower() if profile.email else None
    member.email_key = email_key(member.email) if member.email else None
    member.is_bot = profile.is_bot
    member.deleted = profile.deleted
    member.profile_refreshed_at = now
    session.add(member)
    return member


def skills_of(session: Session, user_id: str) -> frozenset[str]:
    return frozenset(session.exec(select(MemberSkill.skill).where(MemberSkill.user_id == user_id)))


def actor(session: Session, user_id: str, admin_ids: frozenset[str], now: datetime) -> Actor:
    """The acting member, their row created on first sight (a write)."""
    return _actor(session, ensure(session, user_id, now), admin_ids)


# Every request loads its actor: the row and the skills in one statement, built once (bindparam),
# as plain columns run by the connection (no ORM execution or identity map for a row the request
# never changes). ACTING_COLUMNS, in this order, are what `acting_from` reads.
ACTING_COLUMNS = (
    col(Member.is_lead),
    col(Member.tz),
    col(Member.real_name),
    col(Member.name),
    col(Member.email),
    col(Member.profile_refreshed_at),
    col(MemberSkill.skill),
)
_ACTING = (
    select_columns(*ACTING_COLUMNS)
    .outerjoin(MemberSkill, col(MemberSkill.user_id) == col(Member.user_id))
    .where(col(Member.user_id) == bindparam("user_id"))
)


def acting(
    session: Session, user_id: str, admin_ids: frozenset[str], now: datetime
) -> tuple[Actor, bool] | None:
    """The acting member if the bot has met them (a read), and whether their profile is missing or
    older than PROFILE_MAX_AGE at `now`; None for someone not met yet. One query."""
    rows = session.connection().execute(_ACTING, {"user_id": user_id}).all()
    return acting_from(rows, user_id, admin_ids, now)


def acting_from(
    rows: Sequence[Sequence[Any]], user_id: str, admin_ids: frozenset[str], now: datetime
) -> tuple[Actor, bool] | None:
    """`acting`, from the rows of ACTING_COLUMNS (a row per skill) a statement read; none: not met."""
    if not rows:
        return None
    is_lead, tz, real_name, name, email, refreshed_at, _ = rows[0]
    actor = Actor(
        user_id=user_id,
        role=role_for(user_id, is_lead, admin_ids),
        skills=frozenset(row[-1] for row in rows if row[-1] is not None),
        tz=tz,
        name=real_name or name,
        email=email,
    )
    stale = refreshed_at is None or now - refreshed_at > PROFILE_MAX_AGE
    return actor, stale


def _actor(session: Session, member: Member, admin_ids: frozenset[str]) -> Actor:
    user_id = member.user_id
    return Actor(
        user_id=user_id,
        role=role_for(user_id, member.is_lead, admin_ids),
        skills=skills_of(session, user_id),
        tz=member.tz,
        name=member.real_name or member.name,
        email=member.email,
    )


def set_lead(session: Session, by: Actor, user_id: str, is_lead: bool, now: datetime, source: str) -> bool:
    """Make or unmake a lead. Returns False when nothing changed."""
    if user_id == by.user_id and not is_lead:
        raise UserError("You can't remove your own lead role; ask another admin.")
    member = ensure(session, user_id, now)
    if member.is_bot:
        raise UserError(f"<@{user_id}> is a bot, not a member.")
    if member.is_lead == is_lead:
        return False
    member.is_lead = is_lead
    session.add(member)
    audit.record_member(
        session,
        at=now,
        actor_id=by.user_id,
        action="lead.granted" if is_lead else "lead.revoked",
        member_id=user_id,
        source=source,
    )
    return True


def set_skills(
    session: Session, by: Actor, user_id: str, skills: list[str], now: datetime, source: str
) -> None:
    """Replace a member's vetted skills; each must be in the catalogue."""
    catalogue.require(session, skills)
    ensure(session, user_id, now)
    before = sorted(skills_of(session, user_id))
    session.exec(delete(MemberSkill).where(col(MemberSkill.user_id) == user_id))  # type: ignore[call-overload]
    for skill in sorted(set(skills)):
        session.add(MemberSkill(user_id=user_id, skill=skill))
    audit.record_member(
        session,
        at=now,
        actor_id=by.user_id,
        action="skills.set",
        member_id=user_id,
        source=source,
        before=before,
        after=sorted(set(skills)),
    )


def with_skill(session: Session, skill: str) -> list[str]:
    return list(session.exec(select(MemberSkill.user_id).where(MemberSkill.skill == skill)))


def role_of(session: Session, user_id: str, admin_ids: frozenset[str]) -> Role:
    member = session.get(Member, user_id)
    return role_for(user_id, bool(member and member.is_lead), admin_ids)
