"""The skill catalogue: the skills a member can be vetted for, kept by leads and admins.

A skill is a lowercase slug (`legal`) with a name (`Legal review`). Setting a member's skills,
applying for one, and requiring one on a task or shift all go through `require`, so a typo never
becomes a new skill: an unknown slug is refused with the closest names in the catalogue.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.errors import UserError
from core.text import escape
from db.models import MemberSkill, Skill, SkillApplication, Task
from domain import audit

NAME_MAX = 200
SUGGESTIONS = 3


class UnknownSkill(UserError):
    """A skill that isn't in the catalogue; the message names the closest ones."""


def slugs(session: Session) -> list[str]:
    return list(session.exec(select(Skill.slug).order_by(col(Skill.slug))))


def get(session: Session, slug: str) -> Skill | None:
    return session.exec(select(Skill).where(col(Skill.slug) == slug)).first()


def closest(slug: str, known: Iterable[str]) -> list[str]:
    """Up to three catalogue slugs that look like `slug`, closest first."""
    known = list(known)
    close = difflib.get_close_matches(slug, known, n=SUGGESTIONS, cutoff=0.6)
    prefixed = [k for k in known if k not in close and (k.startswith(slug[:3]) or slug.startswith(k[:3]))]
    return (close + prefixed)[:SUGGESTIONS]


def require(session: Session, wanted: Iterable[str]) -> None:
    """Refuse (UnknownSkill) unless every slug is in the catalogue, suggesting the closest names."""
    known = slugs(session)
    missing = [s for s in dict.fromkeys(wanted) if s not in known]
    if not missing:
        return
    parts = []
    for slug in missing:
        near = closest(slug, known)
        hint = f" Did you mean {' or '.join(f'`{n}`' for n in near)}?" if near else ""
        parts.append(f"`{slug}` is not a skill in the catalogue.{hint}")
    if not known:
        parts.append('The catalogue is empty: a lead adds skills with `/crew skills add <slug> "Name"`.')
    else:
        parts.append("`/crew skills` lists them all. Nothing changed.")
    raise UnknownSkill(" ".join(parts))


def listing(session: Session, offset: int, limit: int) -> tuple[list[tuple[Skill, int]], bool]:
    """Catalogue page, by slug, each with how many members hold the skill; and whether more follow."""
    holders = select(MemberSkill.skill, func.count().label("n")).group_by(col(MemberSkill.skill)).subquery()
    rows = session.exec(
        select(Skill, func.coalesce(holders.c.n, 0))
        .outerjoin(holders, holders.c.skill == col(Skill.slug))
        .order_by(col(Skill.slug))
        .offset(offset)
        .limit(limit + 1)
    ).all()
    return [(skill, int(n)) for skill, n in rows[:limit]], len(rows) > limit


def add(session: Session, by_id: str, slug: str, name: str, now: datetime, source: str) -> Skill:
    name = " ".join(name.split()) or slug.replace("-", " ").capitalize()
    if len(name) > NAME_MAX:
        raise UserError(f"Keep the name under {NAME_MAX} characters.")
    existing = get(session, slug)
    if existing is not None:
        raise UserError(f"`{slug}` ({escape(existing.name)}) is already in the catalogue. Nothing changed.")
    skill = Skill(slug=slug, name=name, created_by=by_id, created_at=now)
    session.add(skill)
    session.flush()
    audit.record(
        session,
        at=now,
        actor_id=by_id,
        action="skill.added",
        entity="skill",
        entity_id=skill.id or 0,
        source=source,
        slug=slug,
        name=name,
    )
    return skill


def remove(session: Session, by_id: str, slug: str, now: datetime, source: str) -> tuple[Skill, int, int]:
    """Take a skill out of the catalogue. Members who hold it and tasks that need it keep it; it can
    no longer be set, applied for or required. Refused while applications for it are open.
    Returns the skill, how many members hold it and how many open tasks need it."""
    skill = get(session, slug)
    if skill is None:
        require(session, [slug])
        raise UnknownSkill(f"`{slug}` is not in the catalogue.")  # unreachable: require raised
    waiting = session.exec(
        select(func.count())
        .select_from(SkillApplication)
        .where(col(SkillApplication.skill) == slug, col(SkillApplication.state) == "open")
    ).one()
    if waiting:
        raise UserError(
            f"{waiting} application{'s are' if waiting != 1 else ' is'} open for `{slug}`: decide "
            f"{'them' if waiting != 1 else 'it'} first (`/crew applications`). Nothing changed."
        )
    held = session.exec(
        select(func.count()).select_from(MemberSkill).where(col(MemberSkill.skill) == slug)
    ).one()
    tasks = session.exec(
        select(func.count())
        .select_from(Task)
        .where(col(Task.skill) == slug, col(Task.state).in_(("open", "full")))
    ).one()
    session.delete(skill)
    audit.record(
        session,
        at=now,
        actor_id=by_id,
        action="skill.removed",
        entity="skill",
        entity_id=skill.id or 0,
        source=source,
        slug=slug,
        name=skill.name,
        members=int(held),
        open_tasks=int(tasks),
    )
    return skill, int(held), int(tasks)
