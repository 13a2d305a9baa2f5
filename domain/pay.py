"""Pay rules: weekly caps, the weekly statement and the leads' payroll, and what a referral earns.

Every week here is the member's own: Monday 00:00 to the next Monday 00:00 in their timezone
(`domain.hours.week_of`), keyed by the date of that Monday. A pay week, once its statement is
recorded, keeps the instants it covered, and the next one starts there (`pay_week`), so a change of
timezone neither pays an hour twice nor drops one.

* **Caps.** A member may clock `WEEKLY_HOURS_CAP` hours a week (default 40) unless a lead set their
  own cap (`set_cap`). Every clocked second counts toward it, flagged or not, the running clock-in
  included. `/hours in` at the cap is refused; a running clock-in is closed by the bot at the instant
  the cap is reached (`cap_times`, `stop_at_cap`), marked "stopped at cap", and the time up to
  then counts; a `/hours out` after that instant, before the job ran, closes it there too. At 90%
  the member is told, once per week (`CapNotice`, its key is the "once").
* **Statement.** One member's week: approved hours by task with rate and amount (`domain.hours`
  says what is approved), the hours still waiting for a lead, a clock-in still running when it is
  drawn (its part in the week so far: waiting too, since it isn't closed), time not paid because
  the work was rejected, and referral rewards. Its total is the sum of its lines, each line the sum
  of its entries' cents (`core.money`: rounded per entry, half-up). The payroll of a week is every
  member's statement of that week (each their own pay week), so its totals are the statements' by
  construction.
* **Referral rewards.** A referral keeps the model it was made under. `flat`: the bonus counts in
  the statement of the week it was earned (`eligible_at`). `share`: a percentage of each approved
  entry's pay, for the referee's time inside [the later of the referral and the hire, hire + N
  months); each entry's share accrues when the entry ends, in order, until the cap. Only the first
  referral of an address exists (its email is unique), so only the first referrer earns.
"""

from __future__ import annotations

import logging
import threading
from calendar import monthrange
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, literal, update
from sqlalchemy.sql.dml import Update
from sqlmodel import Session, col, select

from core.authz import Actor
from core.errors import UserError
from core.money import pay_cents, share_cents
from db.models import CapNotice, Member, PayStatement, Referral, Task, TimeEntry, WeeklyCap
from db.statements import earlier_of, insert_ignore, later_of, microseconds_between, rows_changed
from db.types import UTCDateTime
from domain import audit, hours, members
from domain.hours import Entry
from domain.referrals import FLAT, HIRED, SHARE

log = logging.getLogger("crewcall.pay")

CAP_STOP_REASON = "stopped at cap"
NOTICE_PERCENT = 90  # of the cap: the member is told once
MAX_CAP_HOURS = Decimal(168)

STATEMENT_HOUR = time(9)  # Monday 09:00 in the member's timezone
STALE_SENDING = timedelta(minutes=2)  # a statement "sending" this long was cut off by a crash
MAX_ATTEMPTS = 5


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def tz_of(session: Session, user_id: str) -> str:
    member = session.get(Member, user_id)
    return member.tz if member else "UTC"


def monday_of(at: datetime, tz: str) -> date:
    """The Monday (a local date) of the member's week containing `at`."""
    day = at.astimezone(zone(tz)).date()
    return day - timedelta(days=day.weekday())


def format_hours(value: Decimal) -> str:
    """`40`, `22.5`: hours as people write them."""
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_DOWN).normalize():f}"


# ---- caps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cap:
    minutes: int
    own: bool  # a lead set it; else WEEKLY_HOURS_CAP applies

    @property
    def limit(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    @property
    def notice(self) -> timedelta:
        """NOTICE_PERCENT of the cap (whole minutes are whole microseconds at any percent)."""
        return self.limit * NOTICE_PERCENT // 100

    @property
    def hours(self) -> Decimal:
        return Decimal(self.minutes) / 60


def default_minutes(default_hours: Decimal) -> int:
    return int((default_hours * 60).to_integral_value())


def cap_of(session: Session, user_id: str, default_hours: Decimal) -> Cap:
    row = session.get(WeeklyCap, user_id)
    if row is not None and row.cap_minutes is not None:
        return Cap(row.cap_minutes, own=True)
    return Cap(default_minutes(default_hours), own=False)


@dataclass(frozen=True)
class CapChange:
    user_id: str
    before: Cap
    after: Cap


def set_cap(
    session: Session,
    by: Actor,
    user_id: str,
    cap_hours: Decimal | None,
    default_hours: Decimal,
    now: datetime,
    source: str,
) -> CapChange | None:
    """A lead sets a member's weekly cap (None: back to WEEKLY_HOURS_CAP). None when unchanged."""
    if cap_hours is not None:
        exact = cap_hours * 60
        if exact != exact.to_integral_value():
            raise UserError(f"A cap is whole minutes of hours, like 25 or 22.5 (got {cap_hours}).")
        if not Decimal(0) < cap_hours <= MAX_CAP_HOURS:
            raise UserError(
                f"A weekly cap is more than 0 and at most {MAX_CAP_HOURS} hours (got {cap_hours})."
            )
    before = cap_of(session, user_id, default_hours)
    members.ensure(session, user_id, now)
    minutes = None if cap_hours is None else int(cap_hours * 60)
    row = session.get(WeeklyCap, user_id)
    if (row.cap_minutes if row else None) == minutes:
        return None
    if row is None:
        row = WeeklyCap(user_id=user_id, set_by=by.user_id, set_at=now)
    row.cap_minutes, row.set_by, row.set_at = minutes, by.user_id, now
    session.add(row)
    session.flush()
    after = cap_of(session, user_id, default_hours)
    audit.record_member(
        session,
        at=now,
        actor_id=by.user_id,
        action="hours.cap_set",
        member_id=user_id,
        source=source,
        before_minutes=before.minutes,
        after_minutes=after.minutes,
        own=after.own,
    )
    return CapChange(user_id, before, after)


@dataclass(frozen=True)
class CapStatus:
    user_id: str
    tz: str
    monday: date
    clocked: timedelta
    cap: Cap

    @property
    def clocked_hours(self) -> Decimal:
        return hours.as_hours(self.clocked // hours.SECOND)

    @property
    def left(self) -> timedelta:
        return max(hours.NO_TIME, self.cap.limit - self.clocked)

    @property
    def reached(self) -> bool:
        return self.clocked >= self.cap.limit

    @property
    def near(self) -> bool:
        return self.clocked >= self.cap.notice


def cap_status(session: Session, user_id: str, now: datetime, default_hours: Decimal) -> CapStatus:
    tz = tz_of(session, user_id)
    start, end = hours.week_bounds(now, tz)
    clocked = hours.clocked(session, user_id, start, end, now)
    return CapStatus(user_id, tz, monday_of(now, tz), clocked, cap_of(session, user_id, default_hours))


def week_cap_status(
    session: Session, week: hours.Week, tz: str, now: datetime, default_hours: Decimal
) -> CapStatus:
    """`cap_status` from the member's week already read in `tz`, their zone (their Home shows both)."""
    cap = cap_of(session, week.user_id, default_hours)
    return CapStatus(week.user_id, tz, monday_of(now, tz), week.clocked(now), cap)


def clock_in(
    session: Session, by: Actor, task_id: int | None, now: datetime, source: str, default_hours: Decimal
) -> tuple[Entry, CapStatus]:
    """`/hours in`, refused at the weekly cap (naming it and who can raise it)."""
    status = cap_status(session, by.user_id, now, default_hours)
    if status.reached:
        leads = members_who_lead(session)
        who = "a lead (" + ", ".join(f"<@{u}>" for u in leads[:3]) + ")" if leads else "a lead or an admin"
        raise UserError(
            f"You've reached your weekly cap of {format_hours(status.cap.hours)} h "
            f"({status.clocked_hours} h clocked this week), so I can't clock you in. "
            f"Only {who} can raise it, with `/crew cap @you <hours>`. Your week starts again Monday 00:00 ({status.tz})."
        )
    return hours.clock_in(session, by, task_id, now, source), status


def members_who_lead(session: Session) -> list[str]:
    return list(
        session.exec(
            select(Member.user_id)
            .where(col(Member.is_lead), col(Member.deleted).is_(False))
            .order_by(col(Member.user_id))
        )
    )


@dataclass(frozen=True)
class CapTimes:
    """When a running clock-in reaches 90% of the cap, and the cap (None: not before the 12 h close)."""

    entry_id: int
    user_id: str
    notice_at: datetime | None
    stop_at: datetime | None


def cap_times(session: Session, entry_id: int, default_hours: Decimal) -> CapTimes | None:
    """For an open entry: the instants its week's clocked time reaches 90% of the cap and the cap,
    given the member's other time in each week it runs into. None when it is closed."""
    row = session.get(TimeEntry, entry_id)
    if row is None or row.ended_at is not None:
        return None
    tz = tz_of(session, row.user_id)
    cap = cap_of(session, row.user_id, default_hours)
    last = row.started_at + hours.AUTO_CLOSE_AFTER
    notice_at = stop_at = None
    week_start, week_end = hours.week_bounds(row.started_at, tz)
    while week_start < last and stop_at is None:
        before = sum(
            (
                hours.overlap(e, week_start, week_end)
                for e in hours.closed_entries(session, row.user_id, week_start, week_end)
            ),
            hours.NO_TIME,
        )
        begin = max(row.started_at, week_start)
        for limit, kind in ((cap.notice, "notice"), (cap.limit, "stop")):
            at = begin + max(hours.NO_TIME, limit - before)
            if at < week_end and at <= last:
                if kind == "notice" and notice_at is None:
                    notice_at = at
                elif kind == "stop":
                    stop_at = at
        week_start, week_end = hours.week_bounds(week_end, tz)
    return CapTimes(entry_id, row.user_id, notice_at, stop_at)


def stop_at_cap(
    session: Session, entry_id: int, now: datetime, default_hours: Decimal, source: str = "job"
) -> hours.Closed | None:
    """Close a running clock-in at the instant its week reached the cap (not later, even after
    downtime), marked "stopped at cap"; a cap a lead lowered below what was already clocked stops
    it at the moment of the change. None when it is closed or not at the cap yet."""
    times = cap_times(session, entry_id, default_hours)
    if times is None or times.stop_at is None or times.stop_at > now:
        return None
    changed = session.get(WeeklyCap, times.user_id)
    stop = max(times.stop_at, changed.set_at) if changed else times.stop_at
    return hours.close_at(session, entry_id, min(stop, now), CAP_STOP_REASON, now, source)


def clock_out(
    session: Session, by: Actor, now: datetime, source: str, default_hours: Decimal
) -> hours.Closed:
    """`/hours out`. A clock-in that ran past the cap's instant (its job hadn't run yet, say the
    bot was down) is closed at the cap, as the job would have (`stop_at_cap`): no time past the cap
    is recorded. Otherwise `hours.clock_out`."""
    current = hours.open_entry(session, by.user_id)
    stopped = stop_at_cap(session, current.id, now, default_hours, source) if current else None
    return stopped or hours.clock_out(session, by, now, source)


def claim_cap_notice(session: Session, user_id: str, at: datetime) -> bool:
    """True once per member and week: whoever records the week's notice sends it."""
    return insert_ignore(
        session,
        CapNotice,
        {"user_id": user_id, "week_start": monday_of(at, tz_of(session, user_id)), "sent_at": at},
    )


NEAR_CAP_MAX_AGE = timedelta(minutes=1)
US = timedelta(microseconds=1)


class NearCap:
    """Members at 90% of their cap or more this week (their own week), highest share first, for
    leads' Home. Summing a week of closed entries per member takes the database 50-100 ms at 30,000
    members, so those sums are taken once, then again at most once a NEAR_CAP_MAX_AGE, beside the
    request (on a thread of its own, through `read`) rather than in it; on every call the entries
    closed since the sums are added to them and running clock-ins are counted up to `now`, so the
    list stays current (an entry closed back at an earlier instant, as after downtime, counts at the
    next sum). The sums cover entries closed up to the instant they were taken, the additions those
    closed after it: each entry is counted once."""

    def __init__(self, read: Callable[[], AbstractContextManager[Session]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        # microseconds per member in their week, closed by `_taken_at`, most first
        self._closed: dict[str, int] = {}
        self._taken_at: datetime | None = None
        self._weeks: dict[str, tuple[datetime, datetime]] = {}
        self._summing = False

    def __call__(self, session: Session, now: datetime, default_hours: Decimal) -> list[CapStatus]:
        with self._lock:  # the three are replaced together, never changed in place
            taken_at, closed, weeks = self._taken_at, self._closed, self._weeks
        # The members' zones are read with the sums (a scan of the members): a new zone's closed time
        # counts from the next sum.
        if taken_at is not None and weeks == {tz: hours.week_bounds(now, tz) for tz in weeks}:
            since = _closed_per_member(session, weeks, closed_since=taken_at)
            if now - taken_at >= NEAR_CAP_MAX_AGE:
                self._sum_beside(now)
        else:  # the first call, or a new week began somewhere
            weeks, closed = self._sum(session, now)
            since = {}
        own = {
            user_id: minutes
            for user_id, minutes in session.exec(select(WeeklyCap.user_id, WeeklyCap.cap_minutes))
            if minutes is not None
        }
        default = default_minutes(default_hours)
        lowest = Cap(min([default, *own.values()]), own=False).notice
        clocked: dict[str, timedelta] = {}
        for user_id, us in closed.items():  # most first (`_sum`)
            if timedelta(microseconds=us) < lowest:
                break
            clocked[user_id] = timedelta(microseconds=us)
        for user_id, us in since.items():
            clocked[user_id] = timedelta(microseconds=closed.get(user_id, 0) + us)
        running = session.exec(
            select(TimeEntry.user_id, TimeEntry.started_at, Member.tz)
            .join(Member, col(Member.user_id) == col(TimeEntry.user_id), isouter=True)
            .where(col(TimeEntry.ended_at).is_(None))
        )
        for user_id, started_at, tz in running:
            start, end = hours.week_bounds(now, tz or "UTC")
            clocked.setdefault(user_id, timedelta(microseconds=closed.get(user_id, 0)))
            clocked[user_id] += max(hours.NO_TIME, min(now, end) - max(started_at, start))
        caps = {u: Cap(own[u], own=True) if u in own else Cap(default, own=False) for u in clocked}
        near = [u for u, time_in in clocked.items() if time_in >= caps[u].notice]
        zone_of = (
            dict(session.exec(select(Member.user_id, Member.tz).where(col(Member.user_id).in_(near))).all())
            if near
            else {}
        )
        found = [
            CapStatus(u, zone_of.get(u, "UTC"), monday_of(now, zone_of.get(u, "UTC")), clocked[u], caps[u])
            for u in near
        ]
        return sorted(found, key=lambda s: (-Fraction(s.clocked // US, max(s.cap.limit // US, 1)), s.user_id))

    def _sum(
        self, session: Session, now: datetime
    ) -> tuple[dict[str, tuple[datetime, datetime]], dict[str, int]]:
        weeks = {tz: hours.week_bounds(now, tz) for tz in _zones(session)}
        # most first: each call reads only the few members near a cap (see `__call__`), not ~20,000
        ranked = sorted(_closed_per_member(session, weeks, closed_by=now).items(), key=lambda m: -m[1])
        closed = dict(ranked)
        with self._lock:
            if self._taken_at is None or self._taken_at < now:
                self._closed, self._taken_at, self._weeks = closed, now, weeks
        return weeks, closed

    def _sum_beside(self, now: datetime) -> None:
        """Sum again on a thread of its own (one at a time); callers meanwhile use the older sums."""
        with self._lock:
            if self._summing:
                return
            self._summing = True
        threading.Thread(target=self._sum_in_own_read, args=(now,), name="near-cap-sums", daemon=True).start()

    def _sum_in_own_read(self, now: datetime) -> None:
        try:
            with self._read() as session:
                self._sum(session, now)
        except Exception:
            log.exception("could not sum the week for the near-cap list; the older sums stay")
        finally:
            with self._lock:
                self._summing = False


def _zones(session: Session) -> list[str]:
    """Every member's timezone, and UTC (the zone of time clocked by someone not in the directory)."""
    return sorted(set(session.exec(select(Member.tz).distinct())) | {"UTC"})


def _closed_per_member(
    session: Session,
    weeks: dict[str, tuple[datetime, datetime]],
    closed_since: datetime | None = None,
    closed_by: datetime | None = None,
) -> dict[str, int]:
    """Per member, the closed time inside their own week (`weeks` by timezone), in microseconds,
    summed by the database in one pass over the weeks' range of the `started_at` index; with
    `closed_since`, only the entries that ended after it; with `closed_by`, only those ended by then."""
    earliest = min(s for s, _ in weeks.values()) - hours.AUTO_CLOSE_AFTER
    if closed_since is not None:
        earliest = max(earliest, closed_since - hours.AUTO_CLOSE_AFTER)
    query = _closed_per_member_query(
        session.get_bind().dialect.name,
        tuple(sorted(weeks.items())),
        since=closed_since is not None,
        by=closed_by is not None,
    )
    params = {"earliest": earliest, "closed_since": closed_since, "closed_by": closed_by}
    return {user_id: int(us or 0) for user_id, us in session.connection().execute(query, params)}


@lru_cache(maxsize=8)
def _closed_per_member_query(
    dialect: str, weeks: tuple[tuple[str, tuple[datetime, datetime]], ...], since: bool, by: bool
) -> Any:
    """`_closed_per_member`'s statement, built once per set of weeks (a lead's every Home runs the
    `since` one; building it, a CASE over the zones, took longer than running it)."""
    zone = func.coalesce(col(Member.tz), "UTC")

    def bound(i: int) -> Any:
        return case({tz: literal(week[i], UTCDateTime()) for tz, week in weeks}, value=zone)

    start, end = bound(0), bound(1)
    clipped = microseconds_between(
        dialect,
        later_of(dialect, col(TimeEntry.started_at), start),
        earlier_of(dialect, col(TimeEntry.ended_at), end),
    )
    return (
        select(col(TimeEntry.user_id), func.sum(clipped))  # type: ignore[call-overload]
        .select_from(TimeEntry)
        .join(Member, col(Member.user_id) == col(TimeEntry.user_id), isouter=True)
        .where(
            col(TimeEntry.started_at) >= bindparam("earliest", type_=UTCDateTime()),
            col(TimeEntry.started_at) < max(e for _, (_, e) in weeks),
            col(TimeEntry.ended_at).is_not(None),
            col(TimeEntry.started_at) < end,
            col(TimeEntry.ended_at) > start,
            *((col(TimeEntry.ended_at) > bindparam("closed_since", type_=UTCDateTime()),) if since else ()),
            *((col(TimeEntry.ended_at) <= bindparam("closed_by", type_=UTCDateTime()),) if by else ()),
        )
        .group_by(col(TimeEntry.user_id))
    )


# ---- referral rewards --------------------------------------------------------------------------


def add_months(at: datetime, months: int) -> datetime:
    """The same instant `months` calendar months later (the 31st becomes the month's last day)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, monthrange(year, month)[1]))


def share_window(referral: Referral) -> tuple[datetime, datetime] | None:
    """[the later of the referral and the hire, hire + N months), or None before the hire."""
    if referral.reward_model != SHARE or referral.hired_at is None or referral.referee_user_id is None:
        return None
    return max(referral.created_at, referral.hired_at), add_months(referral.hired_at, referral.share_months)


def share_accruals(session: Session, referral: Referral) -> list[tuple[datetime, int]]:
    """Each approved entry's share, when it accrued (the entry's end inside the window), in order,
    already capped: the running sum never passes the referral's cap."""
    window = share_window(referral)
    if window is None:
        return []
    start, end = window
    assert referral.referee_user_id is not None
    rows = sorted(
        hours.closed_entries(session, referral.referee_user_id, start, end),
        key=lambda e: (e.ended_at, e.id),
    )
    states = hours.approval(session, rows)
    rates = _rates(session, {r.task_id for r in rows if r.task_id})
    accrued, out = 0, []
    for row in rows:
        if states[row.id or 0] != hours.APPROVED or row.task_id is None:
            continue
        pay = pay_cents(hours.overlap(row, start, end) // hours.SECOND, rates.get(row.task_id))
        add = min(share_cents(pay, referral.share_basis_points), referral.share_cap_cents - accrued)
        if add <= 0:
            continue
        accrued += add
        assert row.ended_at is not None
        out.append((min(row.ended_at, end), add))
    return out


@dataclass(frozen=True)
class Progress:
    """A share referral's earnings: in a period, so far, and what is left before the cap."""

    referral_id: int
    period_cents: int
    earned_cents: int
    cap_cents: int

    @property
    def left_cents(self) -> int:
        return max(0, self.cap_cents - self.earned_cents)


def share_progress(session: Session, referral: Referral, start: datetime, end: datetime) -> Progress:
    """Earned in [start, end), and in total up to `end`."""
    accruals = share_accruals(session, referral)
    return Progress(
        referral.id or 0,
        sum(c for at, c in accruals if start <= at < end),
        sum(c for at, c in accruals if at < end),
        referral.share_cap_cents,
    )


def progress_of(session: Session, referrals: Iterable[Referral], now: datetime) -> dict[int, Progress]:
    """Share referrals' earnings so far (for `/referrals`)."""
    return {
        r.id or 0: share_progress(
            session, r, datetime.min.replace(tzinfo=now.tzinfo), now + timedelta.resolution
        )
        for r in referrals
        if r.reward_model == SHARE
    }


# ---- the statement -----------------------------------------------------------------------------


@dataclass
class PayLine:
    task_id: int
    title: str
    rate_cents: int
    seconds: int = 0  # whole seconds, each entry's counted on its own (as it is paid)
    cents: int = 0

    @property
    def hours(self) -> Decimal:
        return hours.as_hours(self.seconds)


@dataclass(frozen=True)
class RewardLine:
    referral_id: int
    referee: str  # name or email, as the referrer typed it (escape before showing)
    model: str
    cents: int  # earned in this week
    note: str  # flat: "earned"; share: progress; pending: what is missing
    earned_cents: int = 0
    left_cents: int = 0


@dataclass
class Statement:
    user_id: str
    name: str
    tz: str
    monday: date
    start: datetime
    end: datetime
    lines: list[PayLine] = field(default_factory=list)
    waiting_seconds: int = 0
    rejected_seconds: int = 0
    no_task_seconds: int = 0  # approved, with no rate
    # A clock-in still open when the statement is drawn: its part in the week so far. Not approved
    # yet, so not in the total; paid in this week once it is closed (and approved).
    running: Entry | None = None
    running_seconds: int = 0
    rewards: list[RewardLine] = field(default_factory=list)
    pending: list[RewardLine] = field(default_factory=list)

    @property
    def work_cents(self) -> int:
        return sum(line.cents for line in self.lines)

    @property
    def reward_cents(self) -> int:
        return sum(r.cents for r in self.rewards)

    @property
    def total_cents(self) -> int:
        return self.work_cents + self.reward_cents

    @property
    def approved_seconds(self) -> int:
        return sum(line.seconds for line in self.lines) + self.no_task_seconds

    @property
    def has_activity(self) -> bool:
        return bool(
            self.approved_seconds
            or self.waiting_seconds
            or self.rejected_seconds
            or self.running_seconds
            or self.rewards
        )


def _rates(session: Session, task_ids: set[int]) -> dict[int, int]:
    if not task_ids:
        return {}
    return {t.id or 0: t.rate_cents for t in session.exec(select(Task).where(col(Task.id).in_(task_ids)))}


@dataclass(frozen=True)
class PayWeek:
    """The instants one member's pay week covers, [start, end), and the zone it is shown in."""

    monday: date
    start: datetime
    end: datetime
    tz: str


WEEK = timedelta(days=7)


def pay_week(session: Session, user_id: str, monday: date) -> PayWeek:
    """The member's pay week of the local `monday`. A week whose statement was recorded keeps the
    bounds it was drawn with (`pay_statement`). Any other runs from Monday 00:00 to the next Monday
    00:00 in the member's timezone now, except that it starts where the week before ended and ends
    where the week after started when those were recorded: after a change of timezone the weeks
    still follow one another without a gap or an overlap, so every hour is paid once."""
    recorded = {
        row.week_start: row
        for row in session.exec(
            select(PayStatement).where(
                PayStatement.user_id == user_id,
                col(PayStatement.week_start).in_([monday - WEEK, monday, monday + WEEK]),
            )
        )
    }
    own = recorded.get(monday)
    if own is not None:
        return PayWeek(monday, own.starts_at, own.ends_at, own.tz)
    tz = tz_of(session, user_id)
    start, end = hours.week_of(monday, tz)
    before, after = recorded.get(monday - WEEK), recorded.get(monday + WEEK)
    return PayWeek(monday, before.ends_at if before else start, after.starts_at if after else end, tz)


def statement(session: Session, user_id: str, monday: date, now: datetime) -> Statement:
    """The member's pay week of the local `monday` (`pay_week`), as recorded at `now`."""
    member = session.get(Member, user_id)
    week = pay_week(session, user_id, monday)
    start, end = week.start, week.end
    name = (member.real_name or member.name) if member else ""
    s = Statement(user_id, name, week.tz, monday, start, end)
    rows = hours.closed_entries(session, user_id, start, end)
    states = hours.approval(session, rows)
    task_ids = {r.task_id for r in rows if r.task_id is not None}
    tasks = {t.id: t for t in session.exec(select(Task).where(col(Task.id).in_(task_ids)))}
    lines: dict[int, PayLine] = {}
    for row in sorted(rows, key=lambda r: (r.started_at, r.id)):
        seconds = hours.overlap(row, start, end) // hours.SECOND
        state = states[row.id or 0]
        if state == hours.WAITING:
            s.waiting_seconds += seconds
        elif state == hours.REJECTED:
            s.rejected_seconds += seconds
        elif row.task_id is None:
            s.no_task_seconds += seconds
        else:
            task = tasks[row.task_id]
            line = lines.setdefault(row.task_id, PayLine(row.task_id, task.title, task.rate_cents))
            line.seconds += seconds
            line.cents += pay_cents(seconds, task.rate_cents)
    s.lines = [lines[k] for k in sorted(lines)]
    current = hours.open_entry(session, user_id)
    s.running_seconds = hours.running(current, start, end, now) // hours.SECOND
    s.running = current if s.running_seconds else None
    _add_rewards(session, s, now)
    return s


def _add_rewards(session: Session, s: Statement, now: datetime) -> None:
    referrals = session.exec(
        select(Referral).where(Referral.referrer_id == s.user_id).order_by(col(Referral.id))
    ).all()
    for r in referrals:
        referee = r.name or r.email
        if r.reward_model == SHARE:
            window = share_window(r)
            if window is None or not (window[0] < s.end and s.start < window[1]):
                continue
            p = share_progress(session, r, s.start, s.end)
            line = RewardLine(r.id or 0, referee, SHARE, p.period_cents, "", p.earned_cents, p.left_cents)
            if p.period_cents:
                s.rewards.append(line)
            elif p.left_cents:
                s.pending.append(line)
        elif r.eligible_at is not None and s.start <= r.eligible_at < s.end:
            s.rewards.append(RewardLine(r.id or 0, referee, FLAT, r.bonus_cents, "earned", r.bonus_cents))
        elif r.status == HIRED and (r.hired_at is None or r.hired_at < s.end):
            s.pending.append(RewardLine(r.id or 0, referee, FLAT, 0, "pending", 0, r.bonus_cents))


def payroll(session: Session, monday: date, now: datetime) -> list[Statement]:
    """Every member's statement of the week of `monday` (each their own pay week, `pay_week`), for
    those with activity in it, by member id."""
    # Every zone's Monday, and so every pay week's bounds, lies within a day of UTC's.
    lo = datetime.combine(monday - timedelta(days=1), time(0)).replace(tzinfo=now.tzinfo)
    hi = lo + timedelta(days=9)
    return [
        s
        for s in (statement(session, u, monday, now) for u in sorted(_candidates(session, lo, hi)))
        if s.has_activity
    ]


def _candidates(session: Session, lo: datetime, hi: datetime) -> set[str]:
    """Members who may have activity in a week inside [lo, hi): time entries (a clock-in still
    open included), or referral rewards."""
    worked = session.exec(
        select(TimeEntry.user_id).where(
            col(TimeEntry.started_at) < hi,
            col(TimeEntry.ended_at).is_(None) | (col(TimeEntry.ended_at) > lo),
        )
    ).all()
    referrers = session.exec(
        select(Referral.referrer_id).where(
            ((col(Referral.reward_model) == SHARE) & col(Referral.hired_at).is_not(None))
            | ((col(Referral.eligible_at) >= lo) & (col(Referral.eligible_at) < hi))
        )
    ).all()
    return set(worked) | set(referrers)


# ---- the Monday statement: who is due, and the ledger that sends it once ------------------------


def due_week(now: datetime, tz: str) -> date | None:
    """The week whose statement is due at `now` for a member in `tz`: last week, from this
    Monday 09:00 local on. Before that, last week's statement isn't due yet (and the one before
    was due a week ago)."""
    z = zone(tz)
    this_monday = monday_of(now, tz)
    due_at = datetime.combine(this_monday, STATEMENT_HOUR).replace(tzinfo=z)
    return this_monday - WEEK if now >= due_at else None


@dataclass(frozen=True)
class ToSend:
    statement: Statement
    ledger_id: int
    attempts: int  # the claim's: a sender that took it over since has another
    # Taken over from a "sending" left by a sender cut off: it may be in the member's DM already.
    in_doubt: bool = False


#: Members whose weekly statement one transaction records (see `claim_due_statements`).
STATEMENT_BATCH = 200


def claim_due_statements(
    session: Session, now: datetime, batch: int = STATEMENT_BATCH
) -> tuple[list[ToSend], bool]:
    """The statements due now that this caller won the right to send: each is recorded in the
    ledger (`pay_statement`, unique per member and week) as "sending" in this transaction, so a
    second run, a replayed job or another process sends nothing. One left "sending" for
    STALE_SENDING (its sender was cut off) is taken over in doubt: the caller looks for it in the
    member's DM before sending it again. A week without activity is
    recorded as "empty" and never looked at again. At most `batch` members are recorded per call,
    so one transaction (and SQLite's write lock) stays short with 30,000 members; the flag says
    whether more may be due (call again)."""
    candidates = _candidates(session, now - timedelta(days=16), now)
    # Filtered here rather than in SQL: the candidates may be more than a statement's parameters.
    members_tz = session.exec(
        select(Member.user_id, Member.tz).where(col(Member.is_bot).is_(False), col(Member.deleted).is_(False))
    ).all()
    due = {u: week for u, tz in members_tz if u in candidates and (week := due_week(now, tz)) is not None}
    if not due:
        return [], False
    done = {
        (row.user_id, row.week_start): row
        for row in session.exec(
            select(PayStatement).where(col(PayStatement.week_start).in_(set(due.values())))
        )
    }
    out: list[ToSend] = []
    recorded = 0
    for user_id in sorted(due):
        week = due[user_id]
        row = done.get((user_id, week))
        if row is not None and not _retryable(row, now):
            continue
        if recorded == batch:
            return out, True
        recorded += 1
        s = statement(session, user_id, week, now)
        if row is None:
            values = {
                "user_id": user_id,
                "week_start": week,
                "state": "sending" if s.has_activity else "empty",
                "attempts": 1 if s.has_activity else 0,
                "claimed_at": now,
                "total_cents": s.total_cents,
                "starts_at": s.start,
                "ends_at": s.end,
                "tz": s.tz,
            }
            if not insert_ignore(session, PayStatement, values) or not s.has_activity:
                continue
            row = session.exec(
                select(PayStatement).where(PayStatement.user_id == user_id, PayStatement.week_start == week)
            ).one()
            out.append(ToSend(s, row.id or 0, row.attempts))
            continue
        in_doubt, attempts = row.state == "sending", row.attempts + 1
        # One in doubt keeps the total of the statement that may be in the DM (`statement_sent`).
        drawn = {} if in_doubt else {"total_cents": s.total_cents}
        if rows_changed(
            session,
            update(PayStatement)
            .where(
                col(PayStatement.id) == row.id,
                col(PayStatement.state) == row.state,
                col(PayStatement.attempts) == row.attempts,
            )
            .values(state="sending", claimed_at=now, attempts=attempts, **drawn),
        ):
            out.append(ToSend(s, row.id or 0, attempts, in_doubt))
    return out, False


def _retryable(row: PayStatement, now: datetime) -> bool:
    return row.state == "pending" or (row.state == "sending" and row.claimed_at < now - STALE_SENDING)


def _still_this_claims(item: ToSend) -> Update:
    """An UPDATE of the statement's row that changes nothing once another sender took it over."""
    return update(PayStatement).where(
        col(PayStatement.id) == item.ledger_id,
        col(PayStatement.state) == "sending",
        col(PayStatement.attempts) == item.attempts,
    )


def statement_given_up(session: Session, item: ToSend) -> None:
    """Past MAX_ATTEMPTS and not found in the DM: "failed", for a lead to look into, rather than
    posted (or left "sending") for ever."""
    session.execute(_still_this_claims(item).values(state="failed"))


def statement_unchecked(session: Session, item: ToSend) -> None:
    """The DM couldn't be searched for a statement in doubt: nothing was posted, so the attempt its
    claim counted is given back; it stays "sending" and is looked for again once stale."""
    session.execute(_still_this_claims(item).values(attempts=item.attempts - 1))


def statement_posting(session: Session, item: ToSend, now: datetime) -> bool:
    """Just before the statement is looked for or posted: its claim renewed, so that it counts as
    cut off only STALE_SENDING after this (not after the batch it was claimed in). False when
    another sender took it over meanwhile: then this one sends nothing."""
    return rows_changed(session, _still_this_claims(item).values(claimed_at=now)) == 1


def statement_sent(
    session: Session, ledger_id: int, now: datetime, ts: str, total_cents: int | None = None
) -> None:
    """Recorded as sent, with the total of the statement this sender posted (one found in the DM
    keeps the total recorded by the claim that posted it)."""
    totals = {} if total_cents is None else {"total_cents": total_cents}
    session.execute(
        update(PayStatement)
        .where(col(PayStatement.id) == ledger_id)
        .values(state="sent", sent_at=now, message_ts=ts, **totals)
    )


def statement_failed(session: Session, ledger_id: int, retry: bool) -> None:
    session.execute(
        update(PayStatement)
        .where(col(PayStatement.id) == ledger_id, col(PayStatement.state) == "sending")
        .values(state="pending" if retry else "failed")
    )
