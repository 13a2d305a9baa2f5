"""Hours rules: clocking in and out, the week's hours and earnings, the 10 h reminder and 12 h
auto-close, the 40 h weekly alert, approving flagged time, and the tracked hours other domains use.

Definitions (the README says the same):
- *This week* is the ISO week in the member's own timezone: Monday 00:00 to the next Monday 00:00.
  An entry counts toward a week for the part of it inside that week (a night across Sunday midnight
  is split between the two weeks). A lead's `/hours report` uses the lead's week.
- *Counted* time is closed and not flagged. An entry closed automatically at 12 hours is flagged for
  review and counts nowhere (totals, earnings, the 40 h alert, `tracked_hours`) until a lead approves
  it with `/hours approve`. An open clock-in counts once it is closed.
- Earnings are each entry's counted time (its part in the week, in whole seconds) times the task's
  hourly rate (`rate_cents`), rounded half-up to the cent per entry (`core.money`, the one rounding
  rule); a task line's amount is the sum of its entries'. Time on no task has no rate.
- Durations are exact: a `timedelta` (microseconds, as stored), or whole seconds (`int`) where time
  is paid or shown; never a float.
- *Approved* time (what is paid, and what a referral share counts) is counted time that a lead
  approved or that the rules approve: time on a task is approved by the rules unless the work it
  was clocked for was rejected; time with no task needs a lead's `/hours approve` (it waits until
  then); a flagged entry counts once a lead approves it. See `approval`.
- No entry is longer than AUTO_CLOSE_AFTER (a clock-out after it closes the entry at the 12-hour
  mark, like the automatic close), so the entries overlapping a period all started at most 12 hours
  before it: reports read that range of the `started_at` index and let the database sum each
  member's and task's time, to the microsecond, in one query.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, case, func, update
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.authz import Actor
from core.errors import UserError
from core.money import pay_cents
from core.text import escape
from db.models import Assignment, Member, Task, TimeEntry
from db.statements import Instant, earlier_of, later_of, microseconds_between
from db.types import UTCDateTime
from domain import audit
from domain.duties import separate_duties

REMIND_AFTER = timedelta(hours=10)
AUTO_CLOSE_AFTER = timedelta(hours=12)
WEEKLY_LIMIT = timedelta(hours=40)
SECOND = timedelta(seconds=1)
NO_TIME = timedelta(0)
ACTIVE_ASSIGNMENT = ("claimed", "submitted")
AUTO_CLOSE_REASON = "open for 12 hours: closed automatically"


def entry_ref(entry_id: int | None) -> str:
    return f"E-{entry_id}"


def as_hours(seconds: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Whole seconds as hours to the hundredth, rounded half-up (or down), in integer arithmetic
    (a report computes tens of thousands of these)."""
    hundredths = seconds * 100
    hundredths = (hundredths + 1800) // 3600 if rounding == ROUND_HALF_UP else hundredths // 3600
    return Decimal(hundredths).scaleb(-2)


def earnings_cents(seconds: int, rate_cents: int | None) -> int:
    """One entry's pay (or its part in a week): `core.money.pay_cents`, rounded half-up."""
    return pay_cents(seconds, rate_cents)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def week_bounds(at: datetime, tz: str) -> tuple[datetime, datetime]:
    """The ISO week containing `at`, in `tz`: Monday 00:00 local to the next Monday 00:00, as UTC."""
    zone = _zone(tz)
    monday = at.astimezone(zone).date()
    monday -= timedelta(days=monday.weekday())
    return _local_midnight(monday, zone), _local_midnight(monday + timedelta(days=7), zone)


def week_of(day: date, tz: str) -> tuple[datetime, datetime]:
    zone = _zone(tz)
    monday = day - timedelta(days=day.weekday())
    return _local_midnight(monday, zone), _local_midnight(monday + timedelta(days=7), zone)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0)).replace(tzinfo=zone).astimezone(UTC)


def overlap(entry: TimeEntry, start: datetime, end: datetime) -> timedelta:
    """A closed entry's time inside [start, end), exact."""
    assert entry.ended_at is not None
    return max(NO_TIME, min(entry.ended_at, end) - max(entry.started_at, start))


# ---- clocking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    id: int
    user_id: str
    started_at: datetime
    ended_at: datetime | None
    task_id: int | None
    task_title: str | None
    rate_cents: int | None
    flagged: bool = False
    stop_reason: str = ""

    @property
    def ref(self) -> str:
        return entry_ref(self.id)

    @property
    def seconds(self) -> int:
        """Whole seconds of a closed entry (0 while it runs)."""
        return (self.ended_at - self.started_at) // SECOND if self.ended_at else 0

    @property
    def earnings_cents(self) -> int:
        return earnings_cents(self.seconds, self.rate_cents)


def _entry(row: TimeEntry, task: Task | None) -> Entry:
    assert row.id is not None
    return Entry(
        id=row.id,
        user_id=row.user_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        task_id=row.task_id,
        task_title=task.title if task else None,
        rate_cents=task.rate_cents if task else None,
        flagged=row.flagged,
        stop_reason=row.stop_reason,
    )


def _entries(session: Session, *where: Any, limit: int | None = None) -> list[Entry]:
    """Entries with their task's title and rate (one joined query), oldest first."""
    rows = session.exec(
        select(TimeEntry, Task)
        .join(Task, col(Task.id) == col(TimeEntry.task_id), isouter=True)
        .where(*where)
        .order_by(col(TimeEntry.started_at), col(TimeEntry.id))
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return [_entry(row, task) for row, task in rows]


def _entry_by_id(session: Session, entry_id: int) -> Entry:
    return _entries(session, col(TimeEntry.id) == entry_id)[0]


def open_entry(session: Session, user_id: str) -> Entry | None:
    found = _entries(session, col(TimeEntry.user_id) == user_id, col(TimeEntry.ended_at).is_(None))
    return found[0] if found else None


def clock_in(session: Session, by: Actor, task_id: int | None, now: datetime, source: str) -> Entry:
    """Start tracking, optionally against a task the member holds. One open entry per member (a
    unique index decides a race between two quick clock-ins)."""
    current = open_entry(session, by.user_id)
    if current is not None:
        on = f" on T-{current.task_id}" if current.task_id else ""
        since = current.started_at.astimezone(_zone(by.tz)).strftime("%a %H:%M %Z")
        raise UserError(f"You're already clocked in{on} since {since}. `/hours out` first.")
    task = None
    if task_id is not None:
        task = session.get(Task, task_id)
        if task is None:
            raise UserError(
                f"There is no task T-{task_id}. Check the number, or clock in without one: `/hours in`."
            )
        if task.state == "cancelled":
            raise UserError(
                f"T-{task_id} ({escape(task.title)}) was cancelled; time can't be tracked against it."
            )
        holds = session.exec(
            select(Assignment.id).where(
                Assignment.task_id == task_id,
                Assignment.user_id == by.user_id,
                col(Assignment.state).in_(ACTIVE_ASSIGNMENT),
            )
        ).first()
        if holds is None:
            raise UserError(
                f"You don't hold T-{task_id} ({escape(task.title)}). Claim it first, or clock in without a "
                "task: `/hours in`."
            )
    row = TimeEntry(user_id=by.user_id, task_id=task_id, started_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise UserError("You're already clocked in. `/hours out` first.") from None
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="hours.clock_in",
        entity="time_entry",
        entity_id=row.id or 0,
        source=source,
        task_id=task_id,
    )
    return _entry(row, task)


@dataclass(frozen=True)
class WeekAlert:
    user_id: str
    week_start: datetime
    counted: Decimal  # hours


@dataclass(frozen=True)
class Closed:
    entry: Entry
    alerts: tuple[WeekAlert, ...] = ()


def clock_out(session: Session, by: Actor, now: datetime, source: str) -> Closed:
    """Stop tracking. An entry open for 12 hours or more (its automatic close hasn't run yet, say
    the bot was down) is closed at the 12-hour mark and flagged, exactly as the automatic close
    would: no entry is ever longer than that."""
    current = open_entry(session, by.user_id)
    if current is None:
        raise UserError("You're not clocked in. Start with `/hours in` (or `/hours in T-12` for a task).")
    if now >= current.started_at + AUTO_CLOSE_AFTER:
        overdue = auto_close(session, current.id, now, source)
        if overdue is None:
            raise UserError("Your clock-in was just closed automatically; see `/hours`.")
        return overdue
    closed = session.exec(  # type: ignore[call-overload]
        update(TimeEntry)
        .where(col(TimeEntry.id) == current.id, col(TimeEntry.ended_at).is_(None))
        .values(ended_at=now)
    )
    if closed.rowcount != 1:
        raise UserError("Your clock-in was just closed automatically; see `/hours`.")
    row = session.get(TimeEntry, current.id)
    assert row is not None
    session.refresh(row)
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="hours.clock_out",
        entity="time_entry",
        entity_id=current.id,
        source=source,
        seconds=(now - row.started_at) // SECOND,
    )
    return Closed(_entry_by_id(session, current.id), _week_alerts(session, row))


def still_open(session: Session, entry_id: int, now: datetime) -> Entry | None:
    """The entry, if it is open and not yet due for the automatic close (for the 10 h reminder)."""
    row = session.get(TimeEntry, entry_id)
    if row is None or row.ended_at is not None or now >= row.started_at + AUTO_CLOSE_AFTER:
        return None
    return _entry_by_id(session, entry_id)


def auto_close(session: Session, entry_id: int, now: datetime, source: str = "job") -> Closed | None:
    """Close an entry left open for 12 hours, at the 12-hour mark (downtime is not credited), and
    flag it for a lead's review."""
    row = session.get(TimeEntry, entry_id)
    if row is None or row.ended_at is not None or now < row.started_at + AUTO_CLOSE_AFTER:
        return None
    closed = session.exec(  # type: ignore[call-overload]
        update(TimeEntry)
        .where(col(TimeEntry.id) == entry_id, col(TimeEntry.ended_at).is_(None))
        .values(ended_at=row.started_at + AUTO_CLOSE_AFTER, flagged=True, flag_reason=AUTO_CLOSE_REASON)
    )
    if closed.rowcount != 1:
        return None
    session.refresh(row)
    audit.record(
        session,
        at=now,
        actor_id=audit.BOT,
        action="hours.auto_closed",
        entity="time_entry",
        entity_id=entry_id,
        source=source,
        user_id=row.user_id,
    )
    return Closed(_entry_by_id(session, entry_id))


def approve(session: Session, by: Actor, entry_id: int, now: datetime, source: str) -> Closed:
    """A lead accepts an entry: a flagged one counts (and is paid) from now on; one on no task also
    counts toward pay and a referral bonus (`domain.referrals.bonus_hours`). Never the member's own
    (`domain.duties`)."""
    row = session.get(TimeEntry, entry_id)
    if row is None:
        raise UserError(f"There is no time entry {entry_ref(entry_id)}.")
    separate_duties(
        session,
        by,
        row.user_id,
        f"the time of {entry_ref(entry_id)}",
        f"/hours approve {entry_ref(entry_id)}",
    )
    if row.ended_at is None:
        raise UserError(f"{entry_ref(entry_id)} is still open; it can be approved once it is closed.")
    if row.approved_by is not None:
        raise UserError(f"{entry_ref(entry_id)} isn't flagged any more: <@{row.approved_by}> approved it.")
    if not row.flagged and row.task_id is not None:
        raise UserError(
            f"{entry_ref(entry_id)} isn't flagged; it already counts (time on a task counts toward a "
            "referral bonus once a lead approves the task's work)."
        )
    done = session.exec(  # type: ignore[call-overload]
        update(TimeEntry)
        .where(
            col(TimeEntry.id) == entry_id,
            col(TimeEntry.approved_by).is_(None),
            col(TimeEntry.flagged).is_(row.flagged),
        )
        .values(flagged=False, approved_by=by.user_id, approved_at=now)
    )
    if done.rowcount != 1:
        raise UserError(f"{entry_ref(entry_id)} was just approved by someone else.")
    session.refresh(row)
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="hours.approved",
        entity="time_entry",
        entity_id=entry_id,
        source=source,
        user_id=row.user_id,
        flag_reason=row.flag_reason,
        approved_by=by.user_id,
    )
    return Closed(_entry_by_id(session, entry_id), _week_alerts(session, row))


def flagged_entries(session: Session, limit: int = 20) -> list[Entry]:
    """Entries waiting for a lead: flagged ones, and closed time with no task not yet reviewed."""
    return _entries(
        session,
        col(TimeEntry.flagged)
        | (
            col(TimeEntry.task_id).is_(None)
            & col(TimeEntry.ended_at).is_not(None)
            & col(TimeEntry.approved_by).is_(None)
        ),
        limit=limit,
    )


def close_at(
    session: Session, entry_id: int, ended_at: datetime, reason: str, now: datetime, source: str = "job"
) -> Closed | None:
    """The bot closes an open entry at `ended_at` for a rule (`reason`, e.g. "stopped at cap"); the
    time up to then counts. None when it was already closed. `source`: what had it run (its job, or
    the member's `/hours out`)."""
    closed = session.exec(  # type: ignore[call-overload]
        update(TimeEntry)
        .where(col(TimeEntry.id) == entry_id, col(TimeEntry.ended_at).is_(None))
        .values(ended_at=ended_at, stop_reason=reason)
    )
    if closed.rowcount != 1:
        return None
    row = session.get(TimeEntry, entry_id)
    assert row is not None
    session.refresh(row)
    audit.record(
        session,
        at=now,
        actor_id=audit.BOT,
        action="hours.stopped",
        entity="time_entry",
        entity_id=entry_id,
        source=source,
        user_id=row.user_id,
        reason=reason,
        seconds=(ended_at - row.started_at) // SECOND,
    )
    return Closed(_entry_by_id(session, entry_id), _week_alerts(session, row))


def open_entries(session: Session) -> list[tuple[int, datetime]]:
    return [
        (r.id, r.started_at)  # type: ignore[misc]
        for r in session.exec(select(TimeEntry).where(col(TimeEntry.ended_at).is_(None)))
    ]


# ---- weeks ----------------------------------------------------------------------------------


def _closed_within(start: Instant, end: Instant, earliest: Instant) -> tuple[ColumnElement[bool], ...]:
    """Closed entries overlapping [start, end). The lower bound on `started_at`, `earliest` = start
    - AUTO_CLOSE_AFTER, is exact (no entry outlasts the 12-hour close) and lets the database read a
    range of the `started_at` index."""
    return (
        col(TimeEntry.ended_at).is_not(None),
        col(TimeEntry.started_at) < end,
        col(TimeEntry.started_at) >= earliest,
        col(TimeEntry.ended_at) > start,
    )


def _counted_in(session: Session, user_id: str, start: datetime, end: datetime) -> list[TimeEntry]:
    within = _closed_within(start, end, start - AUTO_CLOSE_AFTER)
    return list(session.exec(select(TimeEntry).where(TimeEntry.user_id == user_id, *within)))


def closed_entries(session: Session, user_id: str, start: datetime, end: datetime) -> list[TimeEntry]:
    """The member's closed entries overlapping [start, end), flagged or not."""
    return _counted_in(session, user_id, start, end)


def _week_alerts(session: Session, row: TimeEntry) -> tuple[WeekAlert, ...]:
    """The weeks (in the member's zone) that this newly counted entry pushed over 40 hours."""
    if row.flagged or row.ended_at is None:
        return ()
    member = session.get(Member, row.user_id)
    tz = member.tz if member else "UTC"
    alerts = []
    weeks = {week_bounds(row.started_at, tz), week_bounds(row.ended_at - timedelta(microseconds=1), tz)}
    for start, end in sorted(weeks):
        counted = sum(
            (overlap(e, start, end) for e in _counted_in(session, row.user_id, start, end) if not e.flagged),
            NO_TIME,
        )
        before = counted - overlap(row, start, end)
        if before <= WEEKLY_LIMIT < counted:
            alerts.append(WeekAlert(row.user_id, start, as_hours(counted // SECOND)))
    return tuple(alerts)


@dataclass
class TaskLine:
    task_id: int | None
    title: str
    rate_cents: int | None
    counted: timedelta = NO_TIME
    flagged: timedelta = NO_TIME
    cents: int = 0  # the sum of each counted entry's pay, each rounded on its own

    @property
    def hours(self) -> Decimal:
        return as_hours(self.counted // SECOND)

    @property
    def flagged_hours(self) -> Decimal:
        return as_hours(self.flagged // SECOND)

    @property
    def earnings_cents(self) -> int:
        return self.cents


@dataclass
class Week:
    user_id: str
    start: datetime
    end: datetime
    lines: list[TaskLine] = field(default_factory=list)
    open: Entry | None = None

    @property
    def counted(self) -> timedelta:
        return sum((line.counted for line in self.lines), NO_TIME)

    @property
    def hours(self) -> Decimal:
        return as_hours(self.counted // SECOND)

    @property
    def flagged_hours(self) -> Decimal:
        return as_hours(sum((line.flagged for line in self.lines), NO_TIME) // SECOND)

    @property
    def earnings_cents(self) -> int:
        return sum(line.earnings_cents for line in self.lines)

    @property
    def over_limit(self) -> bool:
        return self.counted > WEEKLY_LIMIT

    def clocked(self, now: datetime) -> timedelta:
        """What `clocked` counts, from the week as read: closed time, flagged or not, and the running
        clock-in up to `now`."""
        closed = sum((line.counted + line.flagged for line in self.lines), NO_TIME)
        return closed + running(self.open, self.start, self.end, now)


@dataclass(frozen=True)
class _Sum:
    user_id: str
    name: str
    line: TaskLine
    counted_us: int


def _sums(session: Session, start: datetime, end: datetime, user_id: str | None = None) -> list[_Sum]:
    """Per member and task, the counted and the flagged time inside [start, end), summed by the
    database (each entry clipped to the period, in microseconds), with the member's name and the
    task's title and rate joined in: one query; ordered here by member then task, no task last
    (the database needn't sort, and SQLite and PostgreSQL place NULL differently)."""
    query = _sums_query(session.get_bind().dialect.name, user_id is not None)
    params = {"start": start, "end": end, "earliest": start - AUTO_CLOSE_AFTER, "user_id": user_id}
    rows = session.connection().execute(query, params).all()  # plain rows, at once (not a fetchone per row)
    found = [
        _Sum(
            uid,
            real_name or name or "",
            TaskLine(
                task_id,
                title if task_id and title is not None else "No task",
                rate if task_id else None,
                timedelta(microseconds=int(counted_us or 0)),
                timedelta(microseconds=int(flagged_us or 0)),
                int(cents or 0) if task_id else 0,
            ),
            int(counted_us or 0),
        )
        for uid, name, real_name, task_id, title, rate, counted_us, flagged_us, cents in rows
    ]
    found.sort(key=lambda s: (s.user_id, s.line.task_id is None, s.line.task_id or 0))
    return found


@cache
def _sums_query(dialect: str, one_member: bool) -> Any:
    """`_sums`' statement, built once per dialect (building it took longer than running it for one
    member's week, on every Home), its period and member bound at each run."""
    start, end = bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    clipped = microseconds_between(
        dialect,
        later_of(dialect, col(TimeEntry.started_at), start),
        earlier_of(dialect, col(TimeEntry.ended_at), end),
    )
    # Each counted entry's pay, exactly as `core.money.pay_cents` rounds it (half-up to the cent, per
    # entry, on the entry's whole seconds in the period): floor((2 × seconds × rate + 3600) / 7200),
    # in integer arithmetic (`//` is integer division on both dialects); no rate pays nothing.
    rate = func.coalesce(col(Task.rate_cents), 0)
    pay = (2 * (clipped // 1_000_000) * rate + 3600) // 7200
    flagged = col(TimeEntry.flagged)
    where = _closed_within(start, end, bindparam("earliest", type_=UTCDateTime()))
    where += (col(TimeEntry.user_id) == bindparam("user_id"),) if one_member else ()
    sums = (
        select(  # type: ignore[call-overload]
            col(TimeEntry.user_id).label("user_id"),
            col(TimeEntry.task_id).label("task_id"),
            func.sum(case((flagged, 0), else_=clipped)).label("counted_us"),
            func.sum(case((flagged, clipped), else_=0)).label("flagged_us"),
            func.sum(case((flagged, 0), else_=pay)).label("cents"),
        )
        .select_from(TimeEntry)
        .join(Task, col(Task.id) == col(TimeEntry.task_id), isouter=True)
        .where(*where)
        .group_by(col(TimeEntry.user_id), col(TimeEntry.task_id))
        .subquery()
    )
    return (
        select(  # type: ignore[call-overload]
            sums.c.user_id,
            Member.name,
            Member.real_name,
            sums.c.task_id,
            Task.title,
            Task.rate_cents,
            sums.c.counted_us,
            sums.c.flagged_us,
            sums.c.cents,
        )
        .join(Member, col(Member.user_id) == sums.c.user_id, isouter=True)
        .join(Task, col(Task.id) == sums.c.task_id, isouter=True)
    )


def week(session: Session, user_id: str, tz: str, now: datetime) -> Week:
    """The member's current week, in their own zone: per task, counted and flagged hours."""
    start, end = week_bounds(now, tz)
    lines = [s.line for s in _sums(session, start, end, user_id)]
    return Week(user_id, start, end, lines, open_entry(session, user_id))


@dataclass(frozen=True)
class ReportRow:
    user_id: str
    name: str
    line: TaskLine
    week_hours: Decimal
    over_limit: bool


def report(session: Session, start: datetime, end: datetime) -> list[ReportRow]:
    """Everyone's hours in [start, end), per member and task (see `_sums`: one query)."""
    sums = _sums(session, start, end)
    totals: dict[str, int] = defaultdict(int)  # microseconds, exact
    for s in sums:
        totals[s.user_id] += s.counted_us
    limit = WEEKLY_LIMIT // timedelta(microseconds=1)
    week_hours = {user_id: as_hours(us // 1_000_000) for user_id, us in totals.items()}
    return [
        ReportRow(s.user_id, s.name, s.line, week_hours[s.user_id], totals[s.user_id] > limit) for s in sums
    ]


def tracked_hours(session: Session, user_id: str) -> Decimal:
    """All of a member's counted time, in hours rounded down to the hundredth: closed entries that
    are not flagged (a flagged entry counts once a lead approves it)."""
    rows = session.exec(
        select(TimeEntry.started_at, TimeEntry.ended_at).where(
            col(TimeEntry.user_id) == user_id,
            col(TimeEntry.ended_at).is_not(None),
            col(TimeEntry.flagged).is_(False),
        )
    )
    counted = sum((ended - started for started, ended in rows if ended is not None), NO_TIME)
    return as_hours(counted // SECOND, rounding=ROUND_DOWN)


@dataclass(frozen=True)
class TaskTime:
    """A member's time on one task: counted hours (closed, not flagged) and how many entries exist
    at all (open and flagged ones included). No entry at all is "no time tracked"."""

    hours: Decimal
    entries: int


def task_time(session: Session, user_id: str, task_id: int) -> TaskTime:
    return task_times(session, [(user_id, task_id)])[(user_id, task_id)]


_TASK_TIMES = select_columns(  # built once: a lead's every Home runs it
    col(TimeEntry.user_id),
    col(TimeEntry.task_id),
    col(TimeEntry.started_at),
    col(TimeEntry.ended_at),
    col(TimeEntry.flagged),
).where(  # members and tasks as two lists, not row values: SQLite walks the member index only so
    col(TimeEntry.user_id).in_(bindparam("members", expanding=True)),
    col(TimeEntry.task_id).in_(bindparam("tasks", expanding=True)),
)


def task_times(session: Session, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], TaskTime]:
    """Each (member, task)'s time, in one query (a lead's review queue shows a page of them)."""
    counted = dict.fromkeys(pairs, NO_TIME)
    entries = dict.fromkeys(pairs, 0)
    if pairs:
        members, tasks = list({user_id for user_id, _ in pairs}), list({task_id for _, task_id in pairs})
        rows = session.execute(_TASK_TIMES, {"members": members, "tasks": tasks})
        for user_id, task_id, started, ended, flagged in rows:
            key = (user_id, task_id or 0)
            if key not in entries:
                continue  # another pair's member on another pair's task
            entries[key] += 1
            if ended is not None and not flagged:
                counted[key] += ended - started
    return {
        key: TaskTime(as_hours(counted[key] // SECOND, rounding=ROUND_DOWN), entries[key]) for key in pairs
    }


def clocked(session: Session, user_id: str, start: datetime, end: datetime, now: datetime) -> timedelta:
    """All the time the member was clocked in within [start, end), flagged or not, the running
    clock-in up to `now` included: what a weekly cap limits."""
    total = sum((overlap(e, start, end) for e in _counted_in(session, user_id, start, end)), NO_TIME)
    return total + running(open_entry(session, user_id), start, end, now)


def running(current: Entry | None, start: datetime, end: datetime, now: datetime) -> timedelta:
    """The running clock-in's time within [start, end), up to `now` (none without one)."""
    if current is None:
        return NO_TIME
    return max(NO_TIME, min(now, end) - max(current.started_at, start))


# ---- approval -------------------------------------------------------------------------------

APPROVED = "approved"
WAITING = "waiting"
REJECTED = "rejected"


def approval(session: Session, rows: list[TimeEntry]) -> dict[int, str]:
    """Whether each closed entry is paid: APPROVED (by a lead, or by the rules), WAITING for a lead
    (flagged, or time with no task not yet reviewed), or REJECTED (clocked for work the lead then
    rejected). An entry belongs to the member's latest claim on its task made before it started."""
    claims: dict[tuple[str, int], list[Assignment]] = defaultdict(list)
    task_ids = {r.task_id for r in rows if r.task_id is not None}
    if task_ids:
        for a in session.exec(
            select(Assignment)
            .where(
                col(Assignment.task_id).in_(task_ids), col(Assignment.user_id).in_({r.user_id for r in rows})
            )
            .order_by(col(Assignment.claimed_at), col(Assignment.id))
        ):
            claims[(a.user_id, a.task_id)].append(a)
    states: dict[int, str] = {}
    for r in rows:
        assert r.id is not None
        if r.flagged:
            states[r.id] = WAITING
        elif r.task_id is None:
            states[r.id] = APPROVED if r.approved_by else WAITING
        else:
            held = [a for a in claims[(r.user_id, r.task_id)] if a.claimed_at <= r.started_at]
            states[r.id] = REJECTED if held and held[-1].state == "rejected" else APPROVED
    return states
