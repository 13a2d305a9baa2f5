"""Tasks and assignments: who may claim what, and how a slot is given exactly once.

Where is a claim decided? In `claim_all` below (`claim` is a batch of one): the claims on a task
that arrive together are decided in one transaction, in click order, under the task's row lock,
and the slots given are written by one conditional UPDATE of the task row (`claimed = claimed + n
… WHERE state = 'open' AND claimed + approved + n <= slots`), which matches no row rather than give
a slot that isn't free.

The rules, as a contractor meets them:
- A task has `slots`; `claimed` counts active assignments (claimed or submitted) and `approved` the
  slots whose work was approved, so `claimed + approved <= slots` always. A task is *full* when no
  slot is free and *closed* when every slot's work is approved.
- A member may hold at most `max_active` tasks in the *claimed* state (MAX_ACTIVE_CLAIMS): work
  submitted and waiting for review doesn't count. They may hold one active assignment per task.
- *Past due*: a task's due date ends at midnight after it, in the timezone of the lead who posted
  it (`deadline`). From then on it can't be claimed, assigned or submitted, and the expiry job
  releases the claims still unsubmitted.
- Releasing, rejecting or expiring a claim frees its slot (a full task opens again); approving
  keeps the slot taken for good.

Concurrency. Every change runs in one transaction (`Database.write()`) with its audit entry.
On SQLite each transaction holds the write lock from its start (BEGIN IMMEDIATE), so changes are
serialized. On PostgreSQL (READ COMMITTED) rows are locked in one order everywhere, member → task →
assignment, so that two changes never wait on each other:
- `claim_all` and `assign` lock the member rows first (`claim_all` all of its contenders', in the
  order of their ids): two claims by one member (clicking several cards at once) run one after the
  other, and the second counts the first's assignment, so the cap holds. Then the task row (FOR
  UPDATE in `claim_all`, by the conditional UPDATE in `assign`); then the assignments are inserted.
- release, approve, reject, cancel and expiry lock the task row, then change assignments.
- submit changes only its assignment row (a conditional UPDATE from `claimed`).
The partial unique index `uq_assignment_active` guarantees one active assignment per member and
task even if a path forgot the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Integer, bindparam, case, func, or_, true, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from core.authz import Actor
from core.errors import UserError
from db.models import Assignment, AuditEntry, Member, Task
from db.types import UTCDateTime
from domain import audit, hours, members, vetting
from domain import skills as catalogue
from domain.duties import separate_duties

# Task states
OPEN, FULL, CANCELLED, CLOSED = "open", "full", "cancelled", "closed"
# Assignment states
CLAIMED, SUBMITTED, APPROVED, REJECTED, RELEASED = "claimed", "submitted", "approved", "rejected", "released"
ACTIVE = (CLAIMED, SUBMITTED)
LIVE, SETTLED = (OPEN, FULL), (CLOSED, CANCELLED)
SETTLED_MAX_AGE = timedelta(minutes=1)

DISPUTE_WINDOW = timedelta(days=7)
TITLE_MAX = 200
DESCRIPTION_MAX = 2500
MAX_SLOTS = 500
MAX_DUE_AHEAD = timedelta(days=366)  # a due date further out is a typo (due=9999-12-31), not a plan


class TaskRefusal(UserError):
    """A claim or assignment refused; `card_stale` when the task's card may still show a Claim
    button it should no longer have (full, cancelled, closed, past due), so it gets redrawn."""

    def __init__(self, message: str, card_stale: bool = False) -> None:
        super().__init__(message)
        self.card_stale = card_stale


def ref(task_id: int | None) -> str:
    return f"T-{task_id}"


def deadline(due: date, tz: str) -> datetime:
    """The instant a due date is over: midnight after it, in `tz` (UTC if the zone is unknown)."""
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.combine(due + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def is_past_due(task: Task, now: datetime) -> bool:
    return task.due_at is not None and now >= task.due_at


def slots_left(task: Task | TaskLine) -> int:
    return max(0, task.slots - task.claimed - task.approved)


# ---- posting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDraft:
    """What a lead fills in to post a task. Rate in cents."""

    title: str
    rate_cents: int
    est_hours: float
    slots: int = 1
    description: str = ""
    skill: str | None = None
    due: date | None = None
    channel_id: str | None = None
    ai_allowed: bool = False


def check_draft(draft: TaskDraft, creator_tz: str, now: datetime) -> dict[str, str]:
    """What is wrong with a draft, by field name (empty when it can be posted)."""
    problems: dict[str, str] = {}
    if not draft.title.strip():
        problems["title"] = "A task needs a title."
    elif len(draft.title) > TITLE_MAX:
        problems["title"] = f"Keep the title under {TITLE_MAX} characters (it has {len(draft.title)})."
    if len(draft.description) > DESCRIPTION_MAX:
        problems["description"] = f"Keep the description under {DESCRIPTION_MAX} characters."
    if draft.rate_cents <= 0:
        problems["rate"] = "The hourly rate must be more than $0."
    if draft.est_hours <= 0:
        problems["hours"] = "The estimated hours must be more than 0."
    if not 1 <= draft.slots <= MAX_SLOTS:
        problems["slots"] = f"Slots must be between 1 and {MAX_SLOTS} (got {draft.slots})."
    if draft.due is not None and draft.due > now.date() + MAX_DUE_AHEAD:
        problems["due"] = (
            f"The due date {draft.due.isoformat()} is more than a year away. Pick a date within a year."
        )
    elif draft.due is not None and deadline(draft.due, creator_tz) <= now:
        problems["due"] = f"The due date {draft.due.isoformat()} has already passed (in {creator_tz})."
    return problems


def create(session: Session, by: Actor, draft: TaskDraft, now: datetime, source: str) -> Task:
    problems = check_draft(draft, by.tz, now)
    if problems:
        raise UserError(" ".join(problems.values()))
    if draft.skill:
        catalogue.require(session, [draft.skill])
    task = Task(
        title=draft.title.strip(),
        description=draft.description.strip(),
        skill=draft.skill,
        rate_cents=draft.rate_cents,
        est_hours=draft.est_hours,
        slots=draft.slots,
        due=draft.due,
        due_at=deadline(draft.due, by.tz) if draft.due else None,
        channel_id=draft.channel_id,
        creator_id=by.user_id,
        ai_allowed=draft.ai_allowed,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    _audit(
        session,
        now,
        by.user_id,
        "task.created",
        task,
        source,
        title=task.title,
        slots=task.slots,
        rate_cents=task.rate_cents,
        est_hours=task.est_hours,
        skill=task.skill,
        due=task.due,
        channel=task.channel_id,
        ai_allowed=task.ai_allowed,
    )
    return task


def attach_card(session: Session, task_id: int, channel_id: str, message_ts: str) -> None:
    session.execute(
        update(Task)
        .where(col(Task.id) == task_id)
        .values(channel_id=channel_id, message_ts=message_ts)
        .execution_options(synchronize_session=False)
    )


def withdraw(session: Session, task_id: int, by: str, now: datetime, source: str, why: str) -> None:
    """Cancel a task nobody could see (its card could not be posted)."""
    session.execute(
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == OPEN, col(Task.claimed) == 0)
        .values(state=CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    task = get(session, task_id)
    _audit(session, now, by, "task.withdrawn", task, source, reason=why)


# ---- reading ---------------------------------------------------------------------------------


def get(session: Session, task_id: int, lock: bool = False) -> Task:
    """The task, fresh from the database (locked FOR UPDATE on PostgreSQL when `lock`)."""
    query = select(Task).where(col(Task.id) == task_id).execution_options(populate_existing=True)
    task = session.exec(query.with_for_update() if lock else query).first()
    if task is None:
        raise UserError(f"There is no task {ref(task_id)}. `/tasks` lists the open ones.")
    return task


def active_assignment(session: Session, task_id: int, user_id: str) -> Assignment | None:
    return session.exec(
        select(Assignment)
        .where(
            col(Assignment.task_id) == task_id,
            col(Assignment.user_id) == user_id,
            col(Assignment.state).in_(ACTIVE),
        )
        .execution_options(populate_existing=True)
    ).first()


def latest_assignment(session: Session, task_id: int, user_id: str) -> Assignment | None:
    return session.exec(
        select(Assignment)
        .where(col(Assignment.task_id) == task_id, col(Assignment.user_id) == user_id)
        .order_by(col(Assignment.id).desc())
        .execution_options(populate_existing=True)
    ).first()


# The lists every `/tasks` and `/tasks mine` runs are built once, with bind parameters: building a
# statement and its cache key again on every request cost more than running it.
_CLAIMED_BY = (
    select(Assignment.task_id)
    .where(col(Assignment.user_id) == bindparam("user_id"), col(Assignment.state) == CLAIMED)
    .order_by(col(Assignment.task_id))
)


def claimed_by(session: Session, user_id: str) -> list[int]:
    """Ids of the tasks a member holds in the claimed state (what counts against the cap)."""
    return list(session.connection().execute(_CLAIMED_BY, {"user_id": user_id}).scalars())


def holders(session: Session, task_id: int) -> list[Assignment]:
    """The active assignments of a task, oldest first."""
    return list(
        session.exec(
            select(Assignment)
            .where(col(Assignment.task_id) == task_id, col(Assignment.state).in_(ACTIVE))
            .order_by(col(Assignment.id))
        )
    )


@dataclass(frozen=True, slots=True)
class TaskLine:
    """A task as the lists show it. The lists run on every `/tasks`: they read plain rows, since
    building ORM instances for them cost more than running the query."""

    id: int
    title: str
    rate_cents: int
    est_hours: float
    skill: str | None
    due_at: datetime | None
    slots: int
    claimed: int
    approved: int


@dataclass(frozen=True, slots=True)
class AssignmentLine:
    """An assignment as the lists show it (see TaskLine)."""

    task_id: int
    state: str
    reason: str
    claimed_at: datetime
    submitted_at: datetime | None


def _columns(model: Any, line: type) -> list[Any]:
    return [model.__table__.c[f.name] for f in fields(line)]


_TASK_LINE = _columns(Task, TaskLine)
_ASSIGNMENT_LINE = _columns(Assignment, AssignmentLine)


# The lists' "active" as plain comparisons, not `IN`: SQLAlchemy renders an IN list as an expanding
# parameter, and rewrites the statement's SQL for it at every execution.
_ACTIVE_STATE = or_(*(col(Assignment.state) == state for state in ACTIVE))


def _claimable(with_skills: bool) -> Select[Any]:
    mine = select(Assignment.task_id).where(col(Assignment.user_id) == bindparam("user_id"), _ACTIVE_STATE)
    skill_ok: ColumnElement[bool] = col(Task.skill).is_(None)
    if with_skills:
        skill_ok = or_(skill_ok, col(Task.skill).in_(bindparam("skills", expanding=True)))
    page = (
        select(*_TASK_LINE)
        .where(
            col(Task.state) == OPEN,
            col(Task.claimed) + col(Task.approved) < col(Task.slots),
            or_(col(Task.due_at).is_(None), col(Task.due_at) > bindparam("now", type_=UTCDateTime())),
            skill_ok,
            col(Task.id).not_in(mine),
        )
        .order_by(col(Task.id).desc())
        .offset(bindparam("offset", type_=Integer()))
        .limit(bindparam("limit", type_=Integer()))
        .subquery()
    )
    # The member's claim count rides along (`_CLAIMED_BY`'s rows, counted): one row even when the
    # page is empty, the page's columns then NULL. One statement instead of two on every `/tasks`.
    held = _CLAIMED_BY.with_only_columns(func.count()).order_by(None).subquery()
    return select(*held.c, *page.c).select_from(held.outerjoin(page, true())).order_by(page.c.id.desc())


_CLAIMABLE = {False: _claimable(False), True: _claimable(True)}


def claimable(
    session: Session, member: Actor, now: datetime, offset: int, limit: int
) -> tuple[list[TaskLine], bool, int]:
    """Open tasks this member may claim (skills, not past due, not already theirs), newest first;
    whether there are more after this page; and how many tasks the member holds claimed (the cap's count)."""
    params: dict[str, Any] = {"user_id": member.user_id, "now": now, "offset": offset, "limit": limit + 1}
    if member.skills:
        params["skills"] = sorted(member.skills)
    rows = session.connection().execute(_CLAIMABLE[bool(member.skills)], params).all()
    lines = [TaskLine(*row[1:]) for row in rows if row[1] is not None]
    return lines[:limit], len(lines) > limit, rows[0][0]


def _assignments(active_only: bool) -> Select[Any]:
    active = _ACTIVE_STATE
    return (
        select(*_ASSIGNMENT_LINE, *_TASK_LINE)
        .join(Task, col(Task.id) == col(Assignment.task_id))
        .where(col(Assignment.user_id) == bindparam("user_id"), active if active_only else true())
        .order_by(case((active, 0), else_=1), col(Assignment.id).desc())
        .offset(bindparam("offset", type_=Integer()))
        .limit(bindparam("limit", type_=Integer()))
    )


_ASSIGNMENTS = {False: _assignments(False), True: _assignments(True)}


def assignments_of(
    session: Session, user_id: str, offset: int, limit: int, active_only: bool = False
) -> tuple[list[tuple[AssignmentLine, TaskLine]], bool]:
    """A member's assignments: active ones first, then the rest, newest first."""
    params = {"user_id": user_id, "offset": offset, "limit": limit + 1}
    rows = session.connection().execute(_ASSIGNMENTS[active_only], params).all()
    split = len(_ASSIGNMENT_LINE)
    lines = [(AssignmentLine(*row[:split]), TaskLine(*row[split:])) for row in rows[:limit]]
    return lines, len(rows) > limit


class TaskCounts:
    """How many tasks are in each state, for leads' Home. Open and full tasks are counted on every
    call (they are few, and the index on the state finds them); closed and cancelled ones pile up
    forever and nobody acts on their totals, so those are counted at most once a SETTLED_MAX_AGE."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled: dict[str, int] = {}
        self._settled_at: datetime | None = None

    def by_state(self, session: Session, now: datetime) -> dict[str, int]:
        counts = dict.fromkeys(LIVE + SETTLED, 0)
        counts.update(_count_states(session, LIVE))
        with self._lock:
            fresh = self._settled_at is not None and now - self._settled_at < SETTLED_MAX_AGE
            settled = dict(self._settled) if fresh else None
        if settled is None:
            settled = _count_states(session, SETTLED)
            with self._lock:
                self._settled, self._settled_at = settled, now
        counts.update(settled)
        return counts


# The Home's statements, built once (a lead's every Home runs them; building them cost more than
# running them), their values bound at each run.
_STATE_COUNTS = (
    select(Task.state, func.count())
    .where(col(Task.state).in_(bindparam("states", expanding=True)))
    .group_by(col(Task.state))
)
_WAITING = col(Assignment.state) == SUBMITTED
_WAITING_COUNT = select(func.count()).select_from(Assignment).where(_WAITING)
_WAITING_PAGE = (
    select(Assignment, Task)
    .join(Task, col(Task.id) == col(Assignment.task_id))
    .where(_WAITING)
    .order_by(col(Assignment.submitted_at), col(Assignment.id))
    .limit(bindparam("limit"))
)


def _count_states(session: Session, states: tuple[str, ...]) -> dict[str, int]:
    rows = session.exec(_STATE_COUNTS, params={"states": states})
    return {state: int(n) for state, n in rows}


def awaiting_review(session: Session, limit: int) -> tuple[list[tuple[Assignment, Task]], int]:
    """The oldest submissions waiting for a lead's decision, and how many there are in all."""
    total = session.exec(_WAITING_COUNT).one()
    rows = session.exec(_WAITING_PAGE, params={"limit": limit})
    return [(a, t) for a, t in rows], int(total)


def history(session: Session, task_id: int, offset: int, limit: int) -> tuple[list[AuditEntry], bool]:
    get(session, task_id)
    entries = audit.history(session, "task", task_id, limit=limit + 1, offset=offset)
    return entries[:limit], len(entries) > limit


# ---- claiming ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    """A slot given: the task as it is now, the new assignment, and anything the lead should know."""

    task: Task
    assignment: Assignment
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A member asking for a slot, and where they asked from (for the audit)."""

    member: Actor
    source: str


def claim(
    session: Session, task_id: int, member: Actor, now: datetime, max_active: int, source: str
) -> Taken:
    """Give `member` a slot of the task, or raise a TaskRefusal saying why not (nothing changes)."""
    outcome = claim_all(session, task_id, [Claim(member, source)], now, max_active)[0]
    if isinstance(outcome, TaskRefusal):
        raise outcome
    return outcome


def claim_all(
    session: Session, task_id: int, claims: Sequence[Claim], now: datetime, max_active: int
) -> list[Taken | TaskRefusal]:
    """Decide several claims on one task at once, in the order given, each as if it came alone after
    the ones before it: a slot each while slots are free, then "full"; a member already holding the
    task (a second click in the same batch included) is told it is theirs. Only the slots given are
    written, in one UPDATE of the task, with an audit entry each; a refusal changes nothing.

    Locks in the module's order (member -> task): the members still in the running, in the order of
    their ids (so two batches sharing members may wait on each other but never deadlock), then the
    task. Members refused before that (the task is full, closed, already theirs) lock nothing."""
    task = get(session, task_id)
    users = sorted({c.member.user_id for c in claims})
    held = _active_by_member(session, task_id, users)
    outcomes: list[Taken | TaskRefusal | None] = [None] * len(claims)
    running = []
    for i, c in enumerate(claims):
        refusal = _refusal(task, held.get(c.member.user_id), c.member, now)
        if refusal is not None:
            outcomes[i] = refusal
        else:
            running.append(i)
    if running:
        contenders = sorted({claims[i].member.user_id for i in running})
        _lock_members(session, contenders)
        task = get(session, task_id, lock=True)
        held = _active_by_member(session, task_id, contenders)  # given meanwhile, by another process
        holding = _claimed_by_members(session, contenders)
        free = slots_left(task)
        winners: list[int] = []
        for i in running:
            member = claims[i].member
            refusal = _refusal(task, held.get(member.user_id), member, now)
            mine = holding.get(member.user_id, [])
            if refusal is None and len(mine) >= max_active:
                listed = ", ".join(ref(t) for t in mine)
                refusal = TaskRefusal(
                    f"You already hold {len(mine)} claimed tasks ({listed}), the most one person may hold at "
                    f"once. Submit one (`/tasks done T-n`) or release one (`/tasks release T-n`), then claim "
                    f"{ref(task_id)}."
                )
            if refusal is None and free == 0:  # the slots went to the clicks before this one
                refusal = _full(task)
            if refusal is not None:
                outcomes[i] = refusal
                continue
            held[member.user_id] = Assignment(
                task_id=task_id, user_id=member.user_id, state=CLAIMED, claimed_at=now
            )
            winners.append(i)
            free -= 1
        if winners:
            grants = [
                Grant(held[claims[i].member.user_id], claims[i].member.user_id, claims[i].source)
                for i in winners
            ]
            task = _take_slots(session, task_id, grants, now, "task.claimed")
            for i in winners:
                outcomes[i] = Taken(task, held[claims[i].member.user_id])
    return [o for o in outcomes if o is not None]


@dataclass(frozen=True)
class Grant:
    """A slot to write: the new assignment, who gave it (the member, or the lead assigning it) and from where."""

    assignment: Assignment
    actor_id: str
    source: str


def _take_slots(session: Session, task_id: int, grants: Sequence[Grant], now: datetime, action: str) -> Task:
    """The decision: one conditional UPDATE takes the slots or matches nothing (a refusal saying
    why, and the transaction rolls back). Then the assignments, and an audit entry each."""
    n = len(grants)
    taken = session.execute(
        update(Task)
        .where(
            col(Task.id) == task_id,
            col(Task.state) == OPEN,
            col(Task.claimed) + col(Task.approved) + n <= col(Task.slots),
            or_(col(Task.due_at).is_(None), col(Task.due_at) > now),
        )
        .values(
            claimed=col(Task.claimed) + n,
            state=case((col(Task.claimed) + n + col(Task.approved) >= col(Task.slots), FULL), else_=OPEN),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        task = get(session, task_id)
        _refuse_if_closed(task, now)
        _refuse_if_full(task)
        raise TaskRefusal(f"{ref(task_id)} can't be claimed right now.", card_stale=True)
    session.add_all([g.assignment for g in grants])
    try:
        session.flush()
    except IntegrityError:
        # Unreachable while every path takes the member lock; the index keeps the rule regardless,
        # and raising rolls the whole transaction back (the slots taken above included).
        raise TaskRefusal(
            f"{ref(task_id)} is already held by one of its claimants. Nothing changed."
        ) from None
    task = get(session, task_id)
    left = slots_left(task) + n
    for g in grants:
        left -= 1
        member = g.assignment.user_id
        _audit(session, now, g.actor_id, action, task, g.source, member=member, slots_left=left)
    return task


def _refusal(task: Task, held: Assignment | None, member: Actor, now: datetime) -> TaskRefusal | None:
    """Why `member` may not claim `task` (held by them, closed, a skill they lack, full), or None."""
    try:
        _refuse_if_held(task, held)
        _refuse_if_closed(task, now)
        if task.skill and task.skill not in member.skills:
            yours = ", ".join(f"`{s}`" for s in sorted(member.skills)) or "none yet"
            raise TaskRefusal(
                f"{ref(task.id)} needs the `{task.skill}` skill, which you don't have (your skills: {yours}). "
                "Skills are vetted and added by leads."
            )
        _refuse_if_full(task)
    except TaskRefusal as refusal:
        return refusal
    return None


def _active_by_member(session: Session, task_id: int, user_ids: Sequence[str]) -> dict[str, Assignment]:
    rows = session.exec(
        select(Assignment)
        .where(
            col(Assignment.task_id) == task_id,
            col(Assignment.user_id).in_(user_ids),
            col(Assignment.state).in_(ACTIVE),
        )
        .execution_options(populate_existing=True)
    )
    return {a.user_id: a for a in rows}


def _claimed_by_members(session: Session, user_ids: Sequence[str]) -> dict[str, list[int]]:
    """Each member's tasks in the claimed state (what counts against the cap), by task id."""
    held: dict[str, list[int]] = {}
    rows = session.exec(
        select(Assignment.user_id, Assignment.task_id)
        .where(col(Assignment.user_id).in_(user_ids), col(Assignment.state) == CLAIMED)
        .order_by(col(Assignment.task_id))
    )
    for user_id, task_id in rows:
        held.setdefault(user_id, []).append(task_id)
    return held


def assign(
    session: Session, task_id: int, user_id: str, by: Actor, now: datetime, max_active: int, source: str
) -> Taken:
    """A lead gives a slot to a member. Slots, state and the due date are respected; the member's
    skills and claim cap are the lead's call, and reported back as notes."""
    member = members.ensure(session, user_id, now)
    if member.is_bot:
        raise UserError(f"<@{user_id}> is a bot, not a member.")
    task = get(session, task_id)
    existing = active_assignment(session, task_id, user_id)
    if existing is not None:
        raise TaskRefusal(f"<@{user_id}> already holds {ref(task_id)} ({existing.state}). Nothing changed.")
    _refuse_if_closed(task, now)
    _refuse_if_full(task)
    _lock_member(session, user_id)
    assignment = Assignment(task_id=task_id, user_id=user_id, state=CLAIMED, claimed_at=now)
    task = _take_slots(session, task_id, [Grant(assignment, by.user_id, source)], now, "task.assigned")
    notes = []
    skills = members.skills_of(session, user_id)
    if task.skill and task.skill not in skills:
        notes.append(f"<@{user_id}> doesn't have the `{task.skill}` skill.")
    held = len(claimed_by(session, user_id))
    if held > max_active:
        notes.append(f"<@{user_id}> now holds {held} claimed tasks, over the usual limit of {max_active}.")
    return Taken(task, assignment, tuple(notes))


def _lock_member(session: Session, user_id: str) -> None:
    """Serialize one member's claims (PostgreSQL row lock; SQLite's write lock already does)."""
    _lock_members(session, [user_id])


def _lock_members(session: Session, user_ids: Sequence[str]) -> None:
    """`_lock_member` for several, in the order of their ids."""
    session.exec(
        select(Member.user_id)
        .where(col(Member.user_id).in_(user_ids))
        .order_by(col(Member.user_id))
        .with_for_update()
    ).all()


def _refuse_if_held(task: Task, existing: Assignment | None) -> None:
    if existing is None:
        return
    if existing.state == SUBMITTED:
        raise TaskRefusal(f"{ref(task.id)} is already yours: you submitted it and it's waiting for review.")
    raise TaskRefusal(
        f"{ref(task.id)} is already yours. When the work is ready, submit it with `/tasks done {ref(task.id)}`."
    )


def _refuse_if_closed(task: Task, now: datetime) -> None:
    if task.state == CANCELLED:
        raise TaskRefusal(f"{ref(task.id)} was cancelled, so it can't be claimed.", card_stale=True)
    if task.state == CLOSED:
        raise TaskRefusal(
            f"{ref(task.id)} is closed: the work on all its slots is approved.", card_stale=True
        )
    if is_past_due(task, now):
        due = task.due.isoformat() if task.due else "earlier"
        raise TaskRefusal(f"{ref(task.id)} was due {due} and can no longer be claimed.", card_stale=True)


def _refuse_if_full(task: Task) -> None:
    if task.state == FULL or slots_left(task) == 0:
        raise _full(task)


def _full(task: Task) -> TaskRefusal:
    return TaskRefusal(
        f"{ref(task.id)} is full: all {task.slots} slot{'s' if task.slots != 1 else ''} are taken. "
        "If someone releases theirs, the card will show a Claim button again.",
        card_stale=True,
    )


# ---- working a task ----------------------------------------------------------------------------


def release(session: Session, task_id: int, user_id: str, now: datetime, source: str) -> Task:
    """The claimant gives their slot back."""
    task = get(session, task_id, lock=True)
    current = _held_or_refuse(session, task, user_id, "release")
    if current.state == SUBMITTED:
        raise UserError(
            f"You already submitted {ref(task_id)}; it's waiting for review, so it can't be released."
        )
    if not _move(session, current, (CLAIMED,), RELEASED, released_at=now, reason="released by the member"):
        raise UserError(f"Your claim on {ref(task_id)} changed meanwhile. Check `/tasks mine`.")
    task = _free_slot(session, task_id, now)
    _audit(session, now, user_id, "task.released", task, source, member=user_id, slots_left=slots_left(task))
    return task


def submit(
    session: Session,
    task_id: int,
    user_id: str,
    note: str,
    now: datetime,
    source: str,
    attestation: str | None = None,
) -> tuple[Task, Assignment]:
    """The claimant hands in the work (an optional note or link) for a lead's review. Unless the
    lead allowed AI tools on the task, `attestation` must be the handbook's AI-tools attestation
    (`domain.vetting.ATTESTATION`): it is stored, word for word and with the time, with the
    submission. Time tracked on the task is recorded with it (none is allowed, and flagged)."""
    task, current = submittable(session, task_id, user_id)
    if is_past_due(task, now):
        raise UserError(
            f"{ref(task_id)} was due {task.due.isoformat() if task.due else 'earlier'}: "
            "the deadline has passed, so the claim has expired."
        )
    if task.ai_allowed:
        attestation = None
    elif attestation != vetting.ATTESTATION:
        raise vetting.AttestationRequired(
            f"{ref(task_id)} was not submitted: confirm “{vetting.ATTESTATION}” first."
        )
    note = note.strip()[:DESCRIPTION_MAX]
    attested_at = now if attestation else None
    if not _move(
        session,
        current,
        (CLAIMED,),
        SUBMITTED,
        submitted_at=now,
        note=note,
        attestation=attestation,
        attested_at=attested_at,
    ):
        raise UserError(f"Your claim on {ref(task_id)} changed meanwhile. Check `/tasks mine`.")
    tracked = hours.task_time(session, user_id, task_id)
    _audit(
        session,
        now,
        user_id,
        "task.submitted",
        task,
        source,
        member=user_id,
        note=note,
        attestation=attestation or "not required: AI tools allowed on this task",
        attested_at=attested_at,
        tracked_hours=str(tracked.hours),
        no_time_tracked=not tracked.entries or None,
    )
    return task, _reloaded(session, current)


def submittable(session: Session, task_id: int, user_id: str) -> tuple[Task, Assignment]:
    """The task and the member's claim on it, when they may hand in work on it; else why not. Also
    asked before the Submit form opens, so a stale or forged button opens no form."""
    task = get(session, task_id)
    current = _held_or_refuse(session, task, user_id, "submit")
    if current.state == SUBMITTED:
        raise UserError(f"You already submitted {ref(task_id)}; it's waiting for review.")
    return task, current


def reviewable(
    session: Session, task_id: int, user_id: str, by: Actor, verb: str, lock: bool = False
) -> tuple[Task, Assignment]:
    """The task and the member's submission on it, when `by` may `verb` ("approve", "reject") it
    (`domain.duties`); else why not. Also asked before the Reject form opens."""
    how = f"/tasks {verb} {ref(task_id)} @you" + (" reason" if verb == "reject" else "")
    separate_duties(session, by, user_id, f"the work on {ref(task_id)}", how)
    task = get(session, task_id, lock=lock)
    return task, _submission_or_refuse(session, task, user_id)


def approve(session: Session, task_id: int, user_id: str, by: Actor, now: datetime, source: str) -> Task:
    task, current = reviewable(session, task_id, user_id, by, "approve", lock=True)
    if not _move(session, current, (SUBMITTED,), APPROVED, reviewer_id=by.user_id, decided_at=now):
        raise UserError(f"<@{user_id}>'s submission for {ref(task_id)} was decided meanwhile.")
    session.execute(
        update(Task)
        .where(col(Task.id) == task_id, col(Task.claimed) > 0)
        .values(
            claimed=col(Task.claimed) - 1,
            approved=col(Task.approved) + 1,
            state=case((col(Task.approved) + 1 >= col(Task.slots), CLOSED), else_=col(Task.state)),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    task = get(session, task_id)
    _audit(session, now, by.user_id, "task.approved", task, source, member=user_id, state=task.state)
    return task


def reject(
    session: Session, task_id: int, user_id: str, by: Actor, reason: str, now: datetime, source: str
) -> Task:
    """A lead turns down a submission; the slot opens again. The member may dispute within 7 days."""
    task, current = reviewable(session, task_id, user_id, by, "reject", lock=True)
    reason = reason.strip()
    if not reason:
        raise UserError("Say why the work is rejected: the contractor is told, and it settles disputes.")
    if not _move(
        session, current, (SUBMITTED,), REJECTED, reviewer_id=by.user_id, decided_at=now, reason=reason[:1000]
    ):
        raise UserError(f"<@{user_id}>'s submission for {ref(task_id)} was decided meanwhile.")
    task = _free_slot(session, task_id, now)
    _audit(session, now, by.user_id, "task.rejected", task, source, member=user_id, reason=reason[:1000])
    return task


def cancel(session: Session, task_id: int, by: Actor, now: datetime, source: str) -> tuple[Task, list[str]]:
    """Withdraw a task; every active claim is released. Returns the task and who held it."""
    task = get(session, task_id, lock=True)
    if task.state == CANCELLED:
        raise UserError(f"{ref(task_id)} is already cancelled. Nothing changed.")
    if task.state == CLOSED:
        raise UserError(f"{ref(task_id)} is closed: all its work is approved, so there is nothing to cancel.")
    held = holders(session, task_id)
    session.execute(
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state).in_((OPEN, FULL)))
        .values(state=CANCELLED, claimed=0, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    released = [
        a.user_id
        for a in held
        if _move(session, a, ACTIVE, RELEASED, released_at=now, reason="task cancelled")
    ]
    task = get(session, task_id)
    _audit(session, now, by.user_id, "task.cancelled", task, source, released=released)
    return task, released


def expire_claims(
    session: Session, task_id: int, now: datetime, source: str
) -> tuple[Task | None, list[str]]:
    """Release the claims still unsubmitted once the task is past due; returns who lost theirs."""
    task = session.get(Task, task_id)
    if task is None or not is_past_due(task, now):
        return task, []
    task = get(session, task_id, lock=True)
    expired = []
    for assignment in holders(session, task_id):
        if assignment.state == CLAIMED and _move(
            session,
            assignment,
            (CLAIMED,),
            RELEASED,
            released_at=now,
            reason="expired: not submitted by the due date",
        ):
            task = _free_slot(session, task_id, now)
            _audit(
                session,
                now,
                audit.BOT,
                "task.claim_expired",
                task,
                source,
                member=assignment.user_id,
                slots_left=slots_left(task),
            )
            expired.append(assignment.user_id)
    return task, expired


def _held_or_refuse(session: Session, task: Task, user_id: str, verb: str) -> Assignment:
    current = active_assignment(session, task.id or 0, user_id)
    if current is not None:
        return current
    last = latest_assignment(session, task.id or 0, user_id)
    if last is None:
        raise UserError(f"You don't hold {ref(task.id)}, so there is nothing to {verb}.")
    why = {
        APPROVED: "your work on it was approved",
        REJECTED: "your submission was rejected",
        RELEASED: f"your claim was released ({last.reason or 'released'})",
    }.get(last.state, last.state)
    raise UserError(f"You no longer hold {ref(task.id)}: {why}. Nothing to {verb}.")


def _submission_or_refuse(session: Session, task: Task, user_id: str) -> Assignment:
    current = active_assignment(session, task.id or 0, user_id)
    if current is None:
        last = latest_assignment(session, task.id or 0, user_id)
        state = f" (their last assignment on it is {last.state})" if last else ""
        raise UserError(f"<@{user_id}> has no submission on {ref(task.id)} to review{state}.")
    if current.state != SUBMITTED:
        raise UserError(f"<@{user_id}> hasn't submitted {ref(task.id)} yet, so there is nothing to review.")
    return current


def _move(
    session: Session, assignment: Assignment, from_states: Sequence[str], to: str, **values: Any
) -> bool:
    """Change an assignment's state only if it is still in one of `from_states`."""
    moved = session.execute(
        update(Assignment)
        .where(col(Assignment.id) == assignment.id, col(Assignment.state).in_(from_states))
        .values(state=to, **values)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined]


def _reloaded(session: Session, assignment: Assignment) -> Assignment:
    return session.exec(
        select(Assignment)
        .where(col(Assignment.id) == assignment.id)
        .execution_options(populate_existing=True)
    ).one()


def _free_slot(session: Session, task_id: int, now: datetime) -> Task:
    session.execute(
        update(Task)
        .where(col(Task.id) == task_id, col(Task.claimed) > 0)
        .values(
            claimed=col(Task.claimed) - 1,
            state=case((col(Task.state) == FULL, OPEN), else_=col(Task.state)),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return get(session, task_id)


def _audit(
    session: Session, now: datetime, actor_id: str, action: str, task: Task, source: str, **detail: Any
) -> None:
    audit.record(
        session,
        at=now,
        actor_id=actor_id,
        action=action,
        entity="task",
        entity_id=task.id or 0,
        source=source,
        **detail,
    )
