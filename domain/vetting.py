"""Joining and vetting, as the handbook would put it:

- **Welcome.** A member who joins the workspace, or opens crewcall for the first time, gets one
  welcome DM: what crewcall does for them, the three rules that most often cost people their place
  (quoted from the handbook when the DM is sent, so they stay true when the handbook changes), and
  how to get vetted. Exactly once: the ledger row (one per member) is written before the DM is sent
  and moves pending → sending → sent (or failed); see `jobs.vetting` for the crash window.
- **Applying.** A member applies for a skill of the catalogue, with evidence (a link or a note).
  One open application per member and skill (a partial unique index says so, whatever the race);
  a declined member may apply again after the cooldown (REAPPLY_COOLDOWN_DAYS).
- **Vetting.** A lead who holds the skill, or an admin, approves (the skill is added to the
  member's vetted skills) or declines with a reason; never their own application
  (`core.authz.authorize_vetting`). Every decision is audited; a decision is a conditional UPDATE
  from `open`, so a double click or a stale card decides nothing twice.
- **The attestation.** Submitting work on a task requires confirming the handbook's AI-tools rule
  in these exact words (`ATTESTATION`), unless the lead allowed AI tools on the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.authz import Actor, authorize_vetting
from core.errors import UserError
from db.models import Member, MemberSkill, SkillApplication, Welcome
from db.statements import insert_ignore, rows_changed
from domain import audit, members
from domain import skills as catalogue
from domain.policy.handbook import Section, load_handbook

ATTESTATION = "I did not use AI tools to produce or critique this work"
EVIDENCE_MAX = 2000
REASON_MAX = 1000

OPEN, APPROVED, DECLINED = "open", "approved", "declined"
# Welcome ledger states
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
TEAM_JOIN, FIRST_OPEN = "team_join", "app_home_opened"


def ref(application_id: int | None) -> str:
    return f"AP-{application_id}"


# ---- the handbook's rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A handbook rule quoted in the welcome and at submission: its section and a short quote."""

    key: str
    section: Section
    quote: str


# The rules that most often cost people their place, by section id, with the heading to look for
# if a file is renamed.
WELCOME_RULES = (
    ("time", "pay-and-hours#time-tracking", "time tracking"),
    ("ai", "work-rules#ai-tools", "ai tools"),
    ("confidentiality", "community#confidentiality", "confidentiality"),
)
QUOTE_MAX = 280


def handbook_rules(directory: Path, keys: tuple[str, ...] = ("time", "ai", "confidentiality")) -> list[Rule]:
    """The rules, read from the handbook files now; a rule whose section is gone is left out."""
    sections, _ = load_handbook(directory)
    by_id = {s.id: s for s in sections}
    by_heading = {s.heading.strip().lower(): s for s in sections}
    found = []
    for key, section_id, heading in WELCOME_RULES:
        if key not in keys:
            continue
        section = by_id.get(section_id) or by_heading.get(heading)
        if section is not None:
            found.append(Rule(key, section, section.excerpt([], QUOTE_MAX)))
    return found


class AttestationRequired(UserError):
    """Work submitted without the AI-tools attestation on a task that needs it."""


# ---- applications -----------------------------------------------------------------------------


def get(session: Session, application_id: int, lock: bool = False) -> SkillApplication:
    query = (
        select(SkillApplication)
        .where(col(SkillApplication.id) == application_id)
        .execution_options(populate_existing=True)
    )
    found = session.exec(query.with_for_update() if lock else query).first()
    if found is None:
        raise UserError(
            f"There is no application {ref(application_id)}. `/crew applications` lists the open ones."
        )
    return found


def apply(
    session: Session, by: Actor, skill: str, evidence: str, now: datetime, cooldown: timedelta, source: str
) -> SkillApplication:
    """Open an application, or say why not (nothing changes)."""
    catalogue.require(session, [skill])
    if skill in members.skills_of(session, by.user_id):
        raise UserError(f"You are already vetted for `{skill}`. Nothing to apply for.")
    evidence = evidence.strip()
    if len(evidence) > EVIDENCE_MAX:
        raise UserError(f"Keep the evidence under {EVIDENCE_MAX} characters (a link is best).")
    previous = latest(session, by.user_id, skill)
    if previous is not None and previous.state == OPEN:
        raise UserError(
            f"You already applied for `{skill}` ({ref(previous.id)}); it is waiting for a lead. "
            "You'll get a DM with the decision."
        )
    if previous is not None and previous.state == DECLINED and previous.decided_at is not None:
        again = previous.decided_at + cooldown
        if now < again:
            raise UserError(
                f"Your application for `{skill}` was declined on {previous.decided_at:%Y-%m-%d}; you may "
                f"apply again from {again:%Y-%m-%d} (UTC)."
            )
    members.ensure(session, by.user_id, now)
    application = SkillApplication(
        user_id=by.user_id, skill=skill, evidence=evidence, state=OPEN, created_at=now
    )
    session.add(application)
    try:
        session.flush()
    except IntegrityError:
        # Two submissions at once: the partial unique index let one through.
        raise UserError(f"You already applied for `{skill}`; it is waiting for a lead.") from None
    _audit(
        session, now, by.user_id, "application.created", application, source, skill=skill, evidence=evidence
    )
    return application


def latest(session: Session, user_id: str, skill: str) -> SkillApplication | None:
    return session.exec(
        select(SkillApplication)
        .where(col(SkillApplication.user_id) == user_id, col(SkillApplication.skill) == skill)
        .order_by(col(SkillApplication.id).desc())
    ).first()


def set_card(session: Session, application_id: int, channel: str, ts: str) -> None:
    session.execute(
        update(SkillApplication)
        .where(col(SkillApplication.id) == application_id)
        .values(card_channel=channel, card_ts=ts)
        .execution_options(synchronize_session=False)
    )


class AlreadyDecided(UserError):
    """A decision on an application that is no longer open (a double click, a stale card)."""


def decide(
    session: Session,
    application_id: int,
    by: Actor,
    approve: bool,
    reason: str,
    now: datetime,
    source: str,
) -> SkillApplication:
    """Approve (the skill joins the member's vetted skills) or decline with a reason."""
    application = get(session, application_id, lock=True)
    if application.state != OPEN:
        raise AlreadyDecided(
            f"{ref(application_id)} was already {application.state} by <@{application.decided_by}>. Nothing changed."
        )
    authorize_vetting(by, application.skill, application.user_id)
    reason = reason.strip()[:REASON_MAX]
    if not approve and not reason:
        raise UserError("Say why it is declined: the member is told, and it helps them apply again.")
    state = APPROVED if approve else DECLINED
    moved = rows_changed(
        session,
        update(SkillApplication)
        .where(col(SkillApplication.id) == application_id, col(SkillApplication.state) == OPEN)
        .values(state=state, decided_by=by.user_id, decided_at=now, reason=reason)
        .execution_options(synchronize_session=False),
    )
    if moved != 1:
        raise AlreadyDecided(f"{ref(application_id)} was decided meanwhile. Nothing changed.")
    if approve:
        members.ensure(session, application.user_id, now)
        before = sorted(members.skills_of(session, application.user_id))
        insert_ignore(session, MemberSkill, {"user_id": application.user_id, "skill": application.skill})
        audit.record_member(
            session,
            at=now,
            actor_id=by.user_id,
            action="skills.vetted",
            member_id=application.user_id,
            source=source,
            before=before,
            after=sorted({*before, application.skill}),
            application=application_id,
        )
    application = get(session, application_id)
    _audit(
        session,
        now,
        by.user_id,
        f"application.{state}",
        application,
        source,
        member=application.user_id,
        skill=application.skill,
        reason=reason,
    )
    return application


# Built once: every Home runs them (building them cost more than running them).
_OPEN = col(SkillApplication.state) == OPEN
_OPEN_COUNT = select(func.count()).select_from(SkillApplication).where(_OPEN)
_OPEN_PAGE = (
    select(SkillApplication)
    .where(_OPEN)
    .order_by(col(SkillApplication.created_at), col(SkillApplication.id))
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_APPLICATIONS_OF = (
    select(SkillApplication)
    .where(col(SkillApplication.user_id) == bindparam("user_id"))
    .order_by(col(SkillApplication.id).desc())
    .limit(bindparam("limit"))
)


def open_applications(session: Session, offset: int, limit: int) -> tuple[list[SkillApplication], int]:
    """Open applications, oldest first, and how many are open in all."""
    total = session.exec(_OPEN_COUNT).one()
    rows = session.exec(_OPEN_PAGE, params={"offset": offset, "limit": limit})
    return list(rows), int(total)


def applications_of(session: Session, user_id: str, limit: int = 10) -> list[SkillApplication]:
    return list(session.exec(_APPLICATIONS_OF, params={"user_id": user_id, "limit": limit}))


def declines_before(session: Session, application: SkillApplication) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(SkillApplication)
            .where(
                col(SkillApplication.user_id) == application.user_id,
                col(SkillApplication.skill) == application.skill,
                col(SkillApplication.state) == DECLINED,
                col(SkillApplication.id) < (application.id or 0),
            )
        ).one()
    )


def _audit(
    session: Session,
    now: datetime,
    actor_id: str,
    action: str,
    application: SkillApplication,
    source: str,
    **detail: object,
) -> None:
    audit.record(
        session,
        at=now,
        actor_id=actor_id,
        action=action,
        entity="application",
        entity_id=application.id or 0,
        source=source,
        **detail,
    )


# ---- the welcome ledger -----------------------------------------------------------------------


def welcome_due(session: Session, user_id: str, trigger: str, now: datetime) -> bool:
    """Record that this member is to be welcomed; True only the first time (ever) for them."""
    member = session.get(Member, user_id)
    if member is not None and (member.is_bot or member.deleted):
        return False
    return insert_ignore(
        session,
        Welcome,
        {
            "user_id": user_id,
            "trigger": trigger,
            "state": PENDING,
            "attempts": 0,
            "error": "",
            "created_at": now,
        },
    )


def claim_welcome(
    session: Session, user_id: str, now: datetime, in_doubt_after: timedelta | None = None
) -> bool:
    """Take the welcome for sending (pending → sending). With `in_doubt_after`, a row left `sending`
    longer than that (its sender died) is taken too; the caller checks Slack first."""
    states = col(Welcome.state) == PENDING
    if in_doubt_after is not None:
        states = states | ((col(Welcome.state) == SENDING) & (col(Welcome.claimed_at) < now - in_doubt_after))
    return (
        rows_changed(
            session,
            update(Welcome)
            .where(col(Welcome.user_id) == user_id, states)
            .values(state=SENDING, claimed_at=now, attempts=col(Welcome.attempts) + 1)
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def welcome_sent(session: Session, user_id: str, channel: str, ts: str, now: datetime) -> None:
    session.execute(
        update(Welcome)
        .where(col(Welcome.user_id) == user_id)
        .values(state=SENT, sent_at=now, channel=channel, ts=ts, error="")
        .execution_options(synchronize_session=False)
    )


def welcome_not_sent(session: Session, user_id: str, error: str, retry: bool) -> None:
    session.execute(
        update(Welcome)
        .where(col(Welcome.user_id) == user_id, col(Welcome.state) == SENDING)
        .values(state=PENDING if retry else FAILED, error=error[:200])
        .execution_options(synchronize_session=False)
    )


def welcomes_to_retry(
    session: Session, now: datetime, in_doubt_after: timedelta
) -> tuple[list[str], list[str]]:
    """(pending, in doubt): welcomes still to send, and those left `sending` by a sender that died."""
    pending = list(session.exec(select(Welcome.user_id).where(col(Welcome.state) == PENDING)))
    doubtful = list(
        session.exec(
            select(Welcome.user_id).where(
                col(Welcome.state) == SENDING, col(Welcome.claimed_at) < now - in_doubt_after
            )
        )
    )
    return pending, doubtful


def welcome_attempts(session: Session, user_id: str) -> int:
    row = session.get(Welcome, user_id)
    return row.attempts if row else 0


def new_members(session: Session, limit: int) -> tuple[list[Welcome], int]:
    """Members welcomed since the last digest, oldest first, and how many there are."""
    waiting = col(Welcome.digested_at).is_(None)
    total = session.exec(select(func.count()).select_from(Welcome).where(waiting)).one()
    rows = session.exec(select(Welcome).where(waiting).order_by(col(Welcome.created_at)).limit(limit))
    return list(rows), int(total)


def digested(session: Session, user_ids: list[str], now: datetime) -> None:
    session.execute(
        update(Welcome)
        .where(col(Welcome.user_id).in_(user_ids), col(Welcome.digested_at).is_(None))
        .values(digested_at=now)
        .execution_options(synchronize_session=False)
    )
