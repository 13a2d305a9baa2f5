"""Referrals: every rule about them is decided here.

* Who may refer which address: not themselves, not someone already in the workspace, and each
  address once ("the first referral counts", decided by the unique constraint on the normalized
  email, not by a read-then-write check).
* The state machine: referred → applied → interviewing → hired → eligible → paid, or rejected at any
  step before hired. Leads move a referral along; `eligible` is never set by hand, it is reached by
  itself once the referral is hired and the referee's tracked hours reach the threshold.
* Eligibility happens exactly once: `hired → eligible` is a conditional UPDATE, so two checks racing
  (an hours event and the hourly sweep, say) promote it once and only the winner notifies.
* Totals, the monthly leaderboard (opted-in members only) and what is waiting on a lead.

Pure rules on a Session and an explicit `now`; nothing here talks to Slack.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, delete, func, select
from sqlmodel.sql.expression import SelectOfScalar

from core.authz import Actor
from core.errors import UserError
from core.grammar import email_key
from core.text import escape
from db.models import Assignment, LeaderboardOptIn, Member, Referral, TimeEntry
from db.statements import insert_ignore
from db.types import UTCDateTime
from domain import audit, members
from domain.duties import separate_duties
from domain.members import Profile
from domain.tasks import APPROVED as APPROVED_WORK

REFERRED = "referred"
APPLIED = "applied"
INTERVIEWING = "interviewing"
HIRED = "hired"
ELIGIBLE = "eligible"
PAID = "paid"
REJECTED = "rejected"

# Reward models (REFERRAL_MODEL), kept on each referral from the moment it is made.
FLAT = "flat"
SHARE = "share"

STATUSES: tuple[str, ...] = (REFERRED, APPLIED, INTERVIEWING, HIRED, ELIGIBLE, PAID, REJECTED)

# Every step a referral may take from each status.
NEXT: dict[str, tuple[str, ...]] = {
    REFERRED: (APPLIED, REJECTED),
    APPLIED: (INTERVIEWING, REJECTED),
    INTERVIEWING: (HIRED, REJECTED),
    HIRED: (ELIGIBLE,),
    ELIGIBLE: (PAID,),
    PAID: (),
    REJECTED: (),
}
# Reached by itself (tracked hours), never set by a lead.
AUTOMATIC = frozenset({ELIGIBLE})
# Still on its way to a bonus.
IN_PROGRESS = frozenset({REFERRED, APPLIED, INTERVIEWING, HIRED})
# A lead has to act next: move the candidate along, or pay the bonus.
WAITING_ON_LEAD: tuple[str, ...] = (ELIGIBLE, REFERRED, APPLIED, INTERVIEWING)

_ID_CHUNK = 500


def ref(referral_id: int | None) -> str:
    return f"R-{referral_id}"


def lead_steps(status: str) -> tuple[str, ...]:
    """The statuses a lead may set from `status`."""
    return tuple(s for s in NEXT[status] if s not in AUTOMATIC)


# ---- referring -----------------------------------------------------------------------------------


def check_not_self(by: Actor, email: str) -> None:
    """Self-referrals do not count: compared by mailbox (`email_key`), so `me+x@…` or a Gmail address
    with dots is still you. The actor's address comes from their Slack profile."""
    if by.email and email_key(by.email) == email_key(email):
        raise UserError(
            f"{escape(email)} is your own address (from your Slack profile): you can't refer yourself, "
            "however the address is spelled. Nothing was recorded."
        )


def _member_with(session: Session, key: str) -> bool:
    """Whether a member the bot knows (not a bot, not deactivated) has this mailbox."""
    return (
        session.exec(
            select(Member.user_id).where(
                Member.email_key == key, col(Member.is_bot).is_(False), col(Member.deleted).is_(False)
            )
        ).first()
        is not None
    )


@dataclass(frozen=True)
class ShareTerms:
    """The share model's terms a referral is made under (REFERRAL_SHARE_* then)."""

    basis_points: int  # of the referee's approved pay; 10% = 1000
    months: int  # after the hire
    cap_cents: int  # per referee


def refer(
    session: Session,
    *,
    by: Actor,
    email: str,
    name: str,
    skill: str | None,
    account: Profile | None,
    bonus_cents: int,
    now: datetime,
    source: str,
    share: ShareTerms | None = None,
) -> Referral:
    """Record a referral of a normalized `email`. `account` is the workspace member Slack knows by
    this address (looked up before the transaction), or None. With `share` terms it earns a share
    of the referee's pay (REFERRAL_MODEL=share) instead of the flat `bonus_cents`."""
    check_not_self(by, email)
    key = email_key(email)
    if account is not None or _member_with(session, key):
        raise UserError(
            f"{escape(email)} already belongs to a member of this workspace, so there is no one new to "
            "refer. Nothing was recorded."
        )
    members.ensure(session, by.user_id, now)
    new_id = _insert_unless_referred(
        session,
        {
            "email": email,
            "email_key": key,
            "name": name.strip()[:200],
            "skill": skill,
            "referrer_id": by.user_id,
            "status": REFERRED,
            "bonus_cents": 0 if share else bonus_cents,
            "reward_model": SHARE if share else FLAT,
            "share_basis_points": share.basis_points if share else 0,
            "share_months": share.months if share else 0,
            "share_cap_cents": share.cap_cents if share else 0,
            "created_at": now,
            "updated_at": now,
            "updated_by": by.user_id,
        },
    )
    referral = session.exec(select(Referral).where(Referral.email_key == key)).one()
    if new_id is None:
        if referral.referrer_id == by.user_id:
            raise UserError(
                f"You already referred {escape(referral.email)} ({ref(referral.id)}, now "
                f"{referral.status}). Nothing changed."
            )
        # Who referred it first is theirs to know, not ours to tell.
        raise UserError(
            f"{escape(email)} is already in the referral program, so it can't be referred again "
            "(when two people refer the same address, the first referral counts). Nothing was recorded."
        )
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="referral.created",
        entity="referral",
        entity_id=referral.id or 0,
        source=source,
        email=email,
        name=referral.name,
        skill=skill,
        bonus_cents=referral.bonus_cents,
        reward_model=referral.reward_model,
        share_basis_points=referral.share_basis_points,
        share_months=referral.share_months,
        share_cap_cents=referral.share_cap_cents,
    )
    return referral


def _insert_unless_referred(session: Session, values: dict[str, object]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new id, or None when the mailbox was
    already referred (the same address is the same key). A concurrent referral of the same mailbox
    waits for the first to commit (PostgreSQL's unique index; SQLite's write lock) and then inserts
    nothing. No conflict target: both unique keys (`email` and `email_key`) are arbiters, since in
    a race on one address PostgreSQL may meet the `email` index first, which a target of
    `email_key` alone would let raise."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Referral.__table__  # type: ignore[attr-defined]
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    return session.execute(statement).scalar_one_or_none()


# ---- the lifecycle -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A status change that happened: the referral after it, from what, by whom, when."""

    referral: Referral
    before: str
    after: str
    by: str
    at: datetime


def get(session: Session, referral_id: int) -> Referral:
    referral = session.get(Referral, referral_id)
    if referral is None:
        raise UserError(f"There is no referral {ref(referral_id)}. `/referrals all` lists them.")
    return referral


def set_status(
    session: Session,
    *,
    by: Actor,
    referral_id: int,
    status: str,
    threshold_hours: Decimal,
    now: datetime,
    source: str,
) -> Change | None:
    """A lead moves a referral along. None when it already has that status (a repeat is harmless);
    an invalid step is refused with the steps that are allowed."""
    referral = get(session, referral_id)
    current = referral.status
    if status == current:
        return None
    if status in AUTOMATIC:
        raise UserError(_automatic_refusal(session, referral, threshold_hours))
    if status not in lead_steps(current):
        raise UserError(_transition_refusal(session, referral, status, threshold_hours))
    stamps: dict[str, datetime | str] = {}
    if status in (HIRED, PAID):  # the steps that decide a bonus: never the referrer's own
        rid = ref(referral_id)
        separate_duties(
            session, by, referral.referrer_id, f"the bonus of {rid}", f"/referrals set {rid} {status}"
        )
    if status == HIRED:
        stamps.update(hired_at=now, hired_by=by.user_id)
    elif status == PAID:
        stamps.update(paid_at=now, paid_by=by.user_id)
    moved = session.execute(
        update(Referral)
        .where(col(Referral.id) == referral_id, col(Referral.status) == current)
        .values(status=status, updated_at=now, updated_by=by.user_id, **stamps)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(referral)
        raise UserError(
            f"{ref(referral_id)} was changed by someone else a moment ago; it is now {referral.status}. "
            "Nothing changed: check it and try again."
        )
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="referral.status",
        entity="referral",
        entity_id=referral_id,
        source=source,
        before=current,
        after=status,
    )
    session.refresh(referral)
    return Change(referral=referral, before=current, after=status, by=by.user_id, at=now)


def _automatic_refusal(session: Session, referral: Referral, threshold: Decimal) -> str:
    rid = ref(referral.id)
    if referral.reward_model == SHARE:
        return f"{rid} earns a share of the referee's pay, paid weekly; it stays {referral.status} and is never eligible."
    if referral.status != HIRED:
        return (
            f"{rid} is {referral.status}. A referral becomes eligible by itself once it is hired and the "
            f"referee has tracked {format_hours(threshold)} hours; leads don't set it."
        )
    return f"{rid} is hired: {_eligibility_condition(session, referral, threshold)}; leads don't set it."


def _eligibility_condition(session: Session, referral: Referral, threshold: Decimal) -> str:
    needed = format_hours(threshold)
    if referral.referee_user_id is None:
        return (
            f"it becomes eligible by itself once the referee has joined the workspace and tracked "
            f"{needed} hours (they haven't joined yet)"
        )
    so_far = bonus_hours(session, [referral.referee_user_id]).get(referral.referee_user_id, Decimal(0))
    return (
        f"it becomes eligible by itself once <@{referral.referee_user_id}> has tracked {needed} hours "
        f"({format_hours(so_far)} so far)"
    )


def _transition_refusal(session: Session, referral: Referral, wanted: str, threshold: Decimal) -> str:
    current = referral.status
    head = f"{ref(referral.id)} is {current}, so it can't be marked {wanted}."
    if current == PAID:
        return f"{head} Its bonus is paid: that is the last step."
    if current == REJECTED:
        return f"{head} A rejected referral is closed."
    if current == HIRED and referral.reward_model == SHARE:
        return f"{head} It earns a share of the referee's pay, paid weekly: hired is its last step."
    if current == HIRED:
        condition = _eligibility_condition(session, referral, threshold)
        return (
            f"{head} Next step: eligible. {condition[0].upper()}{condition[1:]}; then a lead marks it paid."
        )
    return f"{head} Next step from {current}: {' or '.join(NEXT[current])}."


# ---- referees and their hours --------------------------------------------------------------------


def link_referee(session: Session, email: str, user_id: str, now: datetime, source: str) -> Referral | None:
    """The person referred as `email` (any spelling of the mailbox) joined as `user_id`: link them
    (once). Returns the referral when this call linked it. A referral is never linked to its own
    referrer, whatever their address says now (a referrer who later takes on the referred address
    is still the referrer)."""
    key = email_key(email)
    linked = session.execute(
        update(Referral)
        .where(
            col(Referral.email_key) == key,
            col(Referral.referee_user_id).is_(None),
            col(Referral.referrer_id) != user_id,
        )
        .values(referee_user_id=user_id)
    )
    if linked.rowcount != 1:  # type: ignore[attr-defined]
        return None
    referral = session.exec(select(Referral).where(Referral.email_key == key)).one()
    session.refresh(referral)
    audit.record(
        session,
        at=now,
        actor_id=audit.BOT,
        action="referral.linked",
        entity="referral",
        entity_id=referral.id or 0,
        source=source,
        referee_user_id=user_id,
    )
    return referral


def link_known_members(session: Session, now: datetime, source: str) -> list[Referral]:
    """Link referrals whose address belongs to a member the bot already knows: the safety net for a
    team_join that never arrived."""
    unlinked = list(session.exec(select(Referral.email_key).where(col(Referral.referee_user_id).is_(None))))
    linked: list[Referral] = []
    for chunk in _chunks(unlinked):
        found = session.exec(
            select(Member.email, Member.user_id).where(
                col(Member.email_key).in_(chunk), col(Member.is_bot).is_(False)
            )
        ).all()
        for email, user_id in found:
            referral = link_referee(session, email or "", user_id, now, source)
            if referral is not None:
                linked.append(referral)
    return linked


def bonus_hours(session: Session, user_ids: Iterable[str]) -> dict[str, Decimal]:
    """Hours that count toward a referral bonus, per member (members without any are left out):
    closed, unflagged time that a lead approved or the rules approve. Time on a task counts once a
    lead approved the member's work on that task (time on work that was rejected, or never
    reviewed, does not); time on no task counts once a lead approved the entry itself
    (`/hours approve`). Summed by the database, each entry to the millisecond."""
    totals: dict[str, Decimal] = {}
    query = _bonus_hours_query(session.get_bind().dialect.name)
    for chunk in _chunks(sorted(set(user_ids))):
        rows = session.exec(query, params={"members": chunk}).all()
        for user_id, ms in rows:
            totals[user_id] = Decimal(int(ms)) / Decimal(3_600_000)
    return totals


@cache
def _bonus_hours_query(dialect: str) -> Any:
    """`bonus_hours`' statement, built once per dialect (the referrals' Home section runs it), for
    the members bound at each run."""
    work_approved = (
        select(Assignment.id)
        .where(
            col(Assignment.task_id) == col(TimeEntry.task_id),
            col(Assignment.user_id) == col(TimeEntry.user_id),
            col(Assignment.state) == APPROVED_WORK,
        )
        .exists()
    )
    approved = or_(
        and_(col(TimeEntry.task_id).is_not(None), work_approved),
        and_(col(TimeEntry.task_id).is_(None), col(TimeEntry.approved_by).is_not(None)),
    )
    return (
        select(TimeEntry.user_id, func.sum(_duration_ms(dialect)))
        .where(
            col(TimeEntry.user_id).in_(bindparam("members", expanding=True)),
            col(TimeEntry.ended_at).is_not(None),
            col(TimeEntry.ended_at) > col(TimeEntry.started_at),
            col(TimeEntry.flagged).is_(False),
            approved,
        )
        .group_by(TimeEntry.user_id)
    )


def _duration_ms(dialect: str) -> ColumnElement[Any]:
    """An entry's length in whole milliseconds (UTCDateTime columns hold naive UTC instants)."""
    started, ended = col(TimeEntry.started_at), col(TimeEntry.ended_at)
    if dialect == "postgresql":
        return func.round(func.extract("epoch", ended - started) * 1000)
    return func.round((func.julianday(ended) - func.julianday(started)) * 86_400_000)


@dataclass(frozen=True)
class Promotion:
    """A referral that just became eligible, and the referee's hours at that moment."""

    referral: Referral
    hours: Decimal


def promote_eligible(
    session: Session,
    *,
    threshold_hours: Decimal,
    now: datetime,
    source: str,
    referee_user_id: str | None = None,
    referral_id: int | None = None,
) -> list[Promotion]:
    """Make hired flat-bonus referrals whose referee has tracked enough hours eligible, each exactly
    once. Without a filter every hired referral is checked (the periodic sweep). A share referral is
    paid weekly as it accrues (`domain.pay`) and stays hired."""
    query = select(Referral).where(
        Referral.status == HIRED,
        Referral.reward_model == FLAT,
        col(Referral.referee_user_id).is_not(None),
        col(Referral.referee_user_id) != col(Referral.referrer_id),  # never a bonus for oneself
    )
    if referee_user_id is not None:
        query = query.where(Referral.referee_user_id == referee_user_id)
    if referral_id is not None:
        query = query.where(Referral.id == referral_id)
    candidates = list(session.exec(query))
    if not candidates:
        return []
    hours = bonus_hours(session, [r.referee_user_id for r in candidates if r.referee_user_id])
    promoted: list[Promotion] = []
    for referral in candidates:
        done = hours.get(referral.referee_user_id or "", Decimal(0))
        if done < threshold_hours:
            continue
        won = session.execute(
            update(Referral)
            .where(col(Referral.id) == referral.id, col(Referral.status) == HIRED)
            .values(status=ELIGIBLE, eligible_at=now, updated_at=now, updated_by=audit.BOT)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another check promoted it first
        audit.record(
            session,
            at=now,
            actor_id=audit.BOT,
            action="referral.status",
            entity="referral",
            entity_id=referral.id or 0,
            source=source,
            before=HIRED,
            after=ELIGIBLE,
            hours=str(done),
        )
        session.refresh(referral)
        promoted.append(Promotion(referral, done))
    return promoted


# ---- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """Bonus money of a set of referrals, in cents: earned and awaiting payout, still pending
    (on the way: referred … hired), and paid."""

    earned_cents: int = 0
    pending_cents: int = 0
    paid_cents: int = 0
    count: int = 0


_TOTALS = (  # built once, as the Home's other statements below
    select(Referral.status, func.count(), func.sum(Referral.bonus_cents))
    .where(Referral.referrer_id == bindparam("user_id"))
    .group_by(Referral.status)
)


def totals_for(session: Session, user_id: str) -> Totals:
    rows = session.exec(_TOTALS, params={"user_id": user_id}).all()
    earned = pending = paid = count = 0
    for status, n, cents in rows:
        count += n
        if status == ELIGIBLE:
            earned += cents or 0
        elif status == PAID:
            paid += cents or 0
        elif status in IN_PROGRESS:
            pending += cents or 0
    return Totals(earned, pending, paid, count)


def of_referrer(
    session: Session, user_id: str, limit: int, before_id: int | None = None
) -> tuple[list[Referral], int | None]:
    """A page of a member's referrals, newest first, and the id to continue before (None: the end)."""
    query = select(Referral).where(Referral.referrer_id == user_id)
    return _page(session, query, limit, before_id)


def listing(
    session: Session, limit: int, status: str | None = None, before_id: int | None = None
) -> tuple[list[Referral], int | None]:
    """A page of every referral (optionally of one status), newest first."""
    query = select(Referral)
    if status:
        query = query.where(Referral.status == status)
    return _page(session, query, limit, before_id)


def _page(
    session: Session, query: SelectOfScalar[Referral], limit: int, before_id: int | None
) -> tuple[list[Referral], int | None]:
    if before_id is not None:
        query = query.where(col(Referral.id) < before_id)
    rows = list(session.exec(query.order_by(col(Referral.id).desc()).limit(limit + 1)))
    more = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], more


def all_for_export(session: Session) -> Iterator[tuple[Referral, str]]:
    """Every referral, oldest first, with its referrer's display name: one joined query, its rows
    yielded as the cursor reads them (consume it inside the session)."""
    rows = session.exec(
        select(Referral, Member.name, Member.real_name)
        .join(Member, col(Member.user_id) == col(Referral.referrer_id), isouter=True)
        .order_by(col(Referral.id))
        .execution_options(yield_per=500)
    )
    for referral, name, real_name in rows:
        yield referral, real_name or name or ""


@dataclass(frozen=True)
class Waiting:
    """Referrals a lead has to act on: how many per status, and the longest-waiting ones."""

    counts: dict[str, int]
    oldest: list[Referral]
    owed_cents: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def waiting_on_lead(session: Session, limit: int = 20) -> Waiting:
    rows = session.exec(
        select(Referral.status, func.count(), func.sum(Referral.bonus_cents))
        .where(col(Referral.status).in_(WAITING_ON_LEAD))
        .group_by(Referral.status)
    ).all()
    counts = {status: n for status, n, _ in rows}
    owed = sum(cents or 0 for status, _, cents in rows if status == ELIGIBLE)
    # Bonuses owed first, then whoever has waited longest.
    oldest: list[Referral] = []
    for statuses in ((ELIGIBLE,), (REFERRED, APPLIED, INTERVIEWING)):
        oldest += session.exec(
            select(Referral)
            .where(col(Referral.status).in_(statuses))
            .order_by(col(Referral.updated_at), col(Referral.id))
            .limit(limit - len(oldest))
        ).all()
        if len(oldest) >= limit:
            break
    return Waiting(
        counts={s: counts[s] for s in WAITING_ON_LEAD if counts.get(s)}, oldest=oldest, owed_cents=owed
    )


# ---- the leaderboard -----------------------------------------------------------------------------


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) containing `now`: [start, next month's start)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


_HIRED_PER_REFERRER = (
    select(Referral.referrer_id, func.count())
    .join(LeaderboardOptIn, col(LeaderboardOptIn.user_id) == col(Referral.referrer_id))
    .where(
        col(Referral.hired_at) >= bindparam("start", type_=UTCDateTime()),
        col(Referral.hired_at) < bindparam("end", type_=UTCDateTime()),
    )
    .group_by(Referral.referrer_id)
)


def leaderboard(session: Session, now: datetime, limit: int = 10) -> list[tuple[str, int]]:
    """Members with the most referrals hired this calendar month (UTC), among those who opted in."""
    start, end = month_bounds(now)
    rows = session.exec(_HIRED_PER_REFERRER, params={"start": start, "end": end}).all()
    return sorted(((user_id, n) for user_id, n in rows), key=lambda row: (-row[1], row[0]))[:limit]


def on_leaderboard(session: Session, user_id: str) -> bool:
    return session.get(LeaderboardOptIn, user_id) is not None


def set_leaderboard(session: Session, user_id: str, show: bool, now: datetime, source: str) -> bool:
    """Opt in or out of the leaderboard. False when that was already the choice."""
    members.ensure(session, user_id, now)
    if show:
        changed = insert_ignore(session, LeaderboardOptIn, {"user_id": user_id, "opted_in_at": now})
    else:
        result = session.exec(delete(LeaderboardOptIn).where(col(LeaderboardOptIn.user_id) == user_id))  # type: ignore[call-overload]
        changed = bool(result.rowcount)
    if changed:
        audit.record_member(
            session,
            at=now,
            actor_id=user_id,
            action="referral.leaderboard_on" if show else "referral.leaderboard_off",
            member_id=user_id,
            source=source,
        )
    return changed


# ---- formatting shared by the rules' messages and the views --------------------------------------


def format_hours(hours: Decimal) -> str:
    """`10`, `9.5`, `3.25`: hours as people write them (rounded down, so 9.99 never shows as 10)."""
    value = hours.quantize(Decimal("0.01"), rounding=ROUND_DOWN).normalize()
    return f"{value:f}"


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _ID_CHUNK):
        yield list(items[i : i + _ID_CHUNK])
