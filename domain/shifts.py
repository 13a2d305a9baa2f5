"""Shift rules: creating, joining, leaving and cancelling shifts, when each occurrence happens, who
gets a reminder, and attendance (late cancellations and no-shows).

Pure rules on a Session and an explicit `now`; no Slack, no scheduler. Functions return plain
snapshots (`ShiftView`) and plans (`JobPlan`) that the caller acts on after the commit.

Time: instants are UTC. A shift keeps the zone it was set in (`tz`); occurrence n of a repeating
shift starts at the first occurrence's local wall-clock time plus n days or weeks *in that zone*,
so a weekly 22:00 Chicago shift stays at 22:00 Chicago across daylight-saving changes (its UTC
instant moves by an hour). A wall-clock time that does not exist that day (the spring-forward gap)
starts at the same offset as just before the gap, i.e. an hour later on the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, delete, select

from core.authz import Actor
from core.errors import UserError
from core.text import escape
from db.models import Member, Shift, ShiftIncident, ShiftMember, ShiftReminder, TimeEntry
from db.statements import insert_ignore
from db.types import UTCDateTime
from domain import audit
from domain import skills as catalogue

log = logging.getLogger("crewcall.shifts")

REPEATS = ("none", "daily", "weekly")
PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
MAX_LENGTH = timedelta(hours=12)  # the longest tracked stretch: a clock-in is closed at 12 h
MAX_REMIND = timedelta(days=7)
MAX_SLOTS = 200
MAX_AHEAD = timedelta(days=366)
LATE_CANCEL = timedelta(hours=12)  # leaving closer than this to the start is a late cancellation
NO_SHOW_WINDOW = timedelta(days=30)  # the second no-show within this window is escalated
STALE_SENDING = timedelta(minutes=2)  # a reminder "sending" this long was cut off by a crash


def ref(shift_id: int | None) -> str:
    return f"S-{shift_id}"


class ShiftInputError(UserError):
    """Bad input for a new shift; `field` names the modal block it belongs to."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


# ---- snapshots and plans --------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftView:
    """A shift as the views need it, detached from the session."""

    id: int
    name: str
    tz: str
    starts_at: datetime
    ends_at: datetime
    occurrence: int
    slots: int
    filled: int
    skill: str | None
    repeat: str
    remind: timedelta
    state: str
    channel_id: str
    message_ts: str | None
    creator_id: str
    members: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return ref(self.id)

    @property
    def full(self) -> bool:
        return self.filled >= self.slots


def view(session: Session, shift: Shift, with_members: bool = True) -> ShiftView:
    assert shift.id is not None
    members: tuple[str, ...] = ()
    if with_members:
        members = tuple(
            session.exec(
                select(ShiftMember.user_id)
                .where(ShiftMember.shift_id == shift.id)
                .order_by(col(ShiftMember.joined_at), col(ShiftMember.user_id))
            )
        )
    return ShiftView(
        id=shift.id,
        name=shift.name,
        tz=shift.tz,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
        occurrence=shift.occurrence,
        slots=shift.slots,
        filled=shift.filled,
        skill=shift.skill,
        repeat=shift.repeat,
        remind=timedelta(minutes=shift.remind_minutes),
        state=shift.state,
        channel_id=shift.channel_id,
        message_ts=shift.message_ts,
        creator_id=shift.creator_id,
        members=members,
    )


@dataclass(frozen=True)
class ReminderPlan:
    shift_id: int
    occurrence: int
    user_id: str
    due_at: datetime
    starts_at: datetime


@dataclass
class JobPlan:
    """Jobs to (re)register after the commit; registering them twice is harmless (ids are fixed)."""

    reminders: list[ReminderPlan] = field(default_factory=list)
    starts: list[tuple[int, int, datetime]] = field(default_factory=list)  # shift, occurrence, at
    ends: list[tuple[int, int, datetime]] = field(default_factory=list)

    def extend(self, other: JobPlan) -> None:
        self.reminders += other.reminders
        self.starts += other.starts
        self.ends += other.ends


# ---- time -----------------------------------------------------------------------------------


def localize(local: datetime, tz: str, what: str = "time") -> datetime:
    """A wall-clock time in `tz` as a UTC instant; a time skipped by a DST change is refused."""
    zone = ZoneInfo(tz)
    aware = local.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        raise ShiftInputError(
            what,
            f"{local:%Y-%m-%d %H:%M} does not exist in {tz}: the clocks jump forward that night. "
            "Pick a time outside the skipped hour.",
        )
    return aware.astimezone(UTC)


def occurrence_window(
    tz: str, first_start: datetime, first_end: datetime, repeat: str, n: int
) -> tuple[datetime, datetime]:
    """Start and end (UTC) of occurrence n: the first occurrence's local wall-clock times, n days or
    weeks later in the shift's own zone."""
    if n == 0 or repeat not in PERIODS:
        return first_start, first_end
    zone = ZoneInfo(tz)
    step = PERIODS[repeat] * n
    local_start = first_start.astimezone(zone).replace(tzinfo=None) + step
    local_end = first_end.astimezone(zone).replace(tzinfo=None) + step
    start = local_start.replace(tzinfo=zone).astimezone(UTC)
    end = local_end.replace(tzinfo=zone).astimezone(UTC)
    if end <= start:  # a DST change inside a short shift; keep its length
        end = start + (first_end - first_start)
    return start, end


def window_of(shift: Shift, n: int) -> tuple[datetime, datetime]:
    return occurrence_window(shift.tz, shift.first_starts_at, shift.first_ends_at, shift.repeat, n)


# ---- creating -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewShift:
    name: str
    start_local: datetime  # naive wall-clock time in tz
    end_local: datetime
    tz: str
    slots: int
    skill: str | None
    repeat: str
    remind: timedelta
    channel_id: str


def check_new(spec: NewShift, now: datetime) -> tuple[datetime, datetime]:
    """Validate a new shift; return its first start and end in UTC. Raises ShiftInputError."""
    name = spec.name.strip()
    if not name:
        raise ShiftInputError("name", "Give the shift a name, like `Night review`.")
    if len(name) > 200:
        raise ShiftInputError("name", "The name is too long (at most 200 characters).")
    try:
        ZoneInfo(spec.tz)
    except (KeyError, ValueError):
        raise ShiftInputError(
            "tz", f"`{spec.tz}` is not a time zone I know (expected Area/City, like America/Chicago)."
        ) from None
    start = localize(spec.start_local, spec.tz, "start")
    end = localize(spec.end_local, spec.tz, "end")
    if start <= now:
        raise ShiftInputError(
            "start",
            f"The start, {spec.start_local:%Y-%m-%d %H:%M} {spec.tz}, is in the past. Pick a future time.",
        )
    if start > now + MAX_AHEAD:
        raise ShiftInputError("start", "The start is more than a year away. Schedule it closer to the date.")
    if end <= start:
        raise ShiftInputError(
            "end",
            f"The end ({spec.end_local:%Y-%m-%d %H:%M}) must be after the start "
            f"({spec.start_local:%Y-%m-%d %H:%M}). For a night shift, put the next day's date on the end.",
        )
    if end - start > MAX_LENGTH:
        raise ShiftInputError(
            "end", "A shift can be at most 12 hours long. Split longer cover into two shifts."
        )
    if spec.repeat not in REPEATS:
        raise ShiftInputError("repeat", f"`{spec.repeat}` is not one of: {', '.join(REPEATS)}.")
    if not 1 <= spec.slots <= MAX_SLOTS:
        raise ShiftInputError("slots", f"Slots must be between 1 and {MAX_SLOTS} (got {spec.slots}).")
    if spec.remind <= timedelta(0) or spec.remind > MAX_REMIND:
        raise ShiftInputError(
            "remind", "The reminder must be more than 0 and at most 7 days before the start."
        )
    if spec.remind.total_seconds() % 60:
        raise ShiftInputError("remind", "Give the reminder in whole minutes, like 30m or 2h.")
    period = PERIODS.get(spec.repeat)
    if period is not None and spec.remind >= period:
        raise ShiftInputError(
            "remind", f"A {spec.repeat} shift's reminder must come less than {_span(period)} before it."
        )
    return start, end


def create(
    session: Session, by: Actor, spec: NewShift, now: datetime, source: str
) -> tuple[ShiftView, JobPlan]:
    start, end = check_new(spec, now)
    if spec.skill:
        catalogue.require(session, [spec.skill])
    shift = Shift(
        name=spec.name.strip(),
        tz=spec.tz,
        first_starts_at=start,
        first_ends_at=end,
        starts_at=start,
        ends_at=end,
        slots=spec.slots,
        skill=spec.skill,
        repeat=spec.repeat,
        remind_minutes=int(spec.remind.total_seconds() // 60),
        channel_id=spec.channel_id,
        creator_id=by.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(shift)
    session.flush()
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="shift.created",
        entity="shift",
        entity_id=shift.id or 0,
        source=source,
        name=shift.name,
        starts_at=start.isoformat(),
        ends_at=end.isoformat(),
        tz=spec.tz,
        slots=spec.slots,
        skill=spec.skill,
        repeat=spec.repeat,
        remind_minutes=shift.remind_minutes,
    )
    plan = JobPlan(starts=[(shift.id, 0, start)], ends=[(shift.id, 0, end)])  # type: ignore[list-item]
    return view(session, shift), plan


def set_card(session: Session, shift_id: int, channel_id: str, message_ts: str) -> None:
    session.exec(
        update(Shift).where(col(Shift.id) == shift_id).values(channel_id=channel_id, message_ts=message_ts)  # type: ignore[call-overload]
    )


def get(session: Session, shift_id: int) -> Shift:
    shift = session.get(Shift, shift_id)
    if shift is None:
        raise UserError(f"There is no shift {ref(shift_id)}. `/shifts all` lists the upcoming ones.")
    return shift


def _refuse_if_closed(shift: Shift, now: datetime, doing: str) -> None:
    if shift.state == "cancelled":
        raise UserError(f"{ref(shift.id)} ({escape(shift.name)}) was cancelled, so you can't {doing} it.")
    if shift.state == "ended" or shift.starts_at <= now:
        raise UserError(
            f"{ref(shift.id)} ({escape(shift.name)}) has already started, so you can't {doing} it now. "
            f"Tell <@{shift.creator_id}> directly if something changed."
        )


# ---- joining and leaving --------------------------------------------------------------------


@dataclass(frozen=True)
class JoinResult:
    shift: ShiftView
    joined: bool  # False: was already on it (a double click)
    reminder: ReminderPlan | None = None


def join(session: Session, by: Actor, shift_id: int, now: datetime, source: str) -> JoinResult:
    """Take a slot. The database decides races: the member row is unique and the slot count only
    grows through `UPDATE … WHERE filled < slots`."""
    shift = get(session, shift_id)
    _refuse_if_closed(shift, now, "join")
    if shift.skill and shift.skill not in by.skills:
        raise UserError(
            f"{ref(shift.id)} needs the `{shift.skill}` skill, which you don't have yet. "
            "A lead adds vetted skills with `/crew skill`."
        )
    inserted = insert_ignore(
        session, ShiftMember, {"shift_id": shift.id, "user_id": by.user_id, "joined_at": now}
    )
    if not inserted:
        return JoinResult(view(session, shift), joined=False)
    taken = session.exec(  # type: ignore[call-overload]
        update(Shift)
        .where(
            col(Shift.id) == shift.id, col(Shift.filled) < col(Shift.slots), col(Shift.state) == "scheduled"
        )
        .values(filled=Shift.filled + 1, updated_at=now)
    )
    if taken.rowcount != 1:
        session.refresh(shift)
        if shift.state != "scheduled":
            _refuse_if_closed(shift, now, "join")
        raise UserError(
            f"{ref(shift.id)} ({escape(shift.name)}) is full: {shift.slots} of {shift.slots} taken."
        )
    session.refresh(shift)
    reminder = _ensure_reminder(session, shift, by.user_id, now)
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="shift.joined",
        entity="shift",
        entity_id=shift.id or 0,
        source=source,
        occurrence=shift.occurrence,
    )
    return JoinResult(view(session, shift, with_members=False), joined=True, reminder=reminder)


def _ensure_reminder(session: Session, shift: Shift, user_id: str, now: datetime) -> ReminderPlan | None:
    """The ledger row for this member's reminder of the current occurrence; a plan unless it was
    already sent (someone who leaves and rejoins is not reminded twice)."""
    assert shift.id is not None
    due = shift.starts_at - timedelta(minutes=shift.remind_minutes)
    insert_ignore(
        session,
        ShiftReminder,
        {
            "shift_id": shift.id,
            "occurrence": shift.occurrence,
            "user_id": user_id,
            "due_at": due,
            "state": "pending",
            "attempts": 0,
        },
    )
    state = session.exec(
        select(ShiftReminder.state).where(
            ShiftReminder.shift_id == shift.id,
            ShiftReminder.occurrence == shift.occurrence,
            ShiftReminder.user_id == user_id,
        )
    ).one()
    if state != "pending":
        return None
    return ReminderPlan(shift.id, shift.occurrence, user_id, due, shift.starts_at)


@dataclass(frozen=True)
class LeaveResult:
    shift: ShiftView
    left: bool  # False: was not on it
    late: bool = False
    dropped_reminders: tuple[tuple[int, int, str], ...] = ()  # (shift, occurrence, user) to unschedule


def leave(session: Session, by: Actor, shift_id: int, now: datetime, source: str) -> LeaveResult:
    """Give the slot back. Less than LATE_CANCEL before the start, it is a late cancellation."""
    shift = get(session, shift_id)
    _refuse_if_closed(shift, now, "leave")
    gone = session.exec(  # type: ignore[call-overload]
        delete(ShiftMember).where(
            col(ShiftMember.shift_id) == shift.id, col(ShiftMember.user_id) == by.user_id
        )
    )
    if gone.rowcount != 1:
        return LeaveResult(view(session, shift), left=False)
    session.exec(  # type: ignore[call-overload]
        update(Shift)
        .where(col(Shift.id) == shift.id, col(Shift.filled) > 0)
        .values(filled=Shift.filled - 1, updated_at=now)
    )
    session.refresh(shift)
    dropped = _drop_pending_reminders(session, shift.id, by.user_id)  # type: ignore[arg-type]
    late = shift.starts_at - now < LATE_CANCEL
    if late:
        insert_ignore(
            session,
            ShiftIncident,
            {
                "shift_id": shift.id,
                "occurrence": shift.occurrence,
                "user_id": by.user_id,
                "kind": "late_cancel",
                "occurrence_start": shift.starts_at,
                "recorded_at": now,
            },
        )
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="shift.left",
        entity="shift",
        entity_id=shift.id or 0,
        source=source,
        occurrence=shift.occurrence,
        late_cancellation=late,
    )
    return LeaveResult(
        view(session, shift, with_members=False), left=True, late=late, dropped_reminders=dropped
    )


def _drop_pending_reminders(
    session: Session, shift_id: int, user_id: str | None = None
) -> tuple[tuple[int, int, str], ...]:
    query = select(ShiftReminder).where(
        ShiftReminder.shift_id == shift_id, col(ShiftReminder.state).in_(("pending", "sending"))
    )
    if user_id is not None:
        query = query.where(ShiftReminder.user_id == user_id)
    rows = list(session.exec(query))
    for row in rows:
        session.delete(row)
    return tuple((r.shift_id, r.occurrence, r.user_id) for r in rows)


@dataclass(frozen=True)
class CancelResult:
    shift: ShiftView
    cancelled: bool  # False: it already was


def cancel(session: Session, by: Actor, shift_id: int, now: datetime, source: str) -> CancelResult:
    shift = get(session, shift_id)
    if shift.state == "cancelled":
        return CancelResult(view(session, shift), cancelled=False)
    if shift.state == "ended":
        raise UserError(
            f"{ref(shift.id)} ({escape(shift.name)}) has already ended; there is nothing to cancel."
        )
    done = session.exec(  # type: ignore[call-overload]
        update(Shift)
        .where(col(Shift.id) == shift.id, col(Shift.state) == "scheduled")
        .values(state="cancelled", updated_at=now)
    )
    session.refresh(shift)
    if done.rowcount != 1:
        return CancelResult(view(session, shift), cancelled=False)
    _drop_pending_reminders(session, shift.id)  # type: ignore[arg-type]
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="shift.cancelled",
        entity="shift",
        entity_id=shift.id or 0,
        source=source,
        members=list(view(session, shift).members),
    )
    return CancelResult(view(session, shift), cancelled=True)


# ---- listing --------------------------------------------------------------------------------


_MY_UPCOMING = (  # built once: every Home runs it
    select(Shift)
    .join(ShiftMember, col(ShiftMember.shift_id) == col(Shift.id))
    .where(
        ShiftMember.user_id == bindparam("user_id"),
        Shift.state == "scheduled",
        col(Shift.starts_at) > bindparam("now", type_=UTCDateTime()),
    )
    .order_by(col(Shift.starts_at), col(Shift.id))
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)


def my_upcoming(
    session: Session, user_id: str, now: datetime, offset: int = 0, limit: int = 10
) -> tuple[list[ShiftView], bool]:
    """The member's shifts that have not started yet, soonest first; and whether there are more."""
    params = {"user_id": user_id, "now": now, "offset": offset, "limit": limit + 1}
    rows = list(session.exec(_MY_UPCOMING, params=params))
    return [view(session, s, with_members=False) for s in rows[:limit]], len(rows) > limit


def joinable(
    session: Session, actor: Actor, now: datetime, offset: int = 0, limit: int = 10
) -> tuple[list[ShiftView], bool]:
    """Upcoming shifts the member may join: open slots, a skill they have (or none), not on it yet."""
    mine = select(ShiftMember.shift_id).where(ShiftMember.user_id == actor.user_id)
    query = (
        select(Shift)
        .where(
            Shift.state == "scheduled",
            col(Shift.starts_at) > now,
            col(Shift.filled) < col(Shift.slots),
            col(Shift.id).not_in(mine),
        )
        .order_by(col(Shift.starts_at), col(Shift.id))
    )
    skills = sorted(actor.skills)
    query = (
        query.where(col(Shift.skill).is_(None) | col(Shift.skill).in_(skills))
        if skills
        else query.where(col(Shift.skill).is_(None))
    )
    rows = list(session.exec(query.offset(offset).limit(limit + 1)))
    return [view(session, s, with_members=False) for s in rows[:limit]], len(rows) > limit


# ---- reminders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderToSend:
    reminder_id: int
    shift: ShiftView
    user_id: str
    tz: str


def claim_reminder(
    session: Session, shift_id: int, occurrence: int, user_id: str, now: datetime
) -> ReminderToSend | None:
    """Take the right to send one reminder; None when it must not go out (already sent, the member
    left, the shift was cancelled or has started). The conditional update makes two runs of the same
    job (a restart, a second process) send it once; one left "sending" for STALE_SENDING was cut off
    by a crash and is taken over. Kept to two statements: a burst of a thousand reminders runs this
    a thousand times at once."""
    claimed = session.exec(  # type: ignore[call-overload]
        update(ShiftReminder)
        .where(
            col(ShiftReminder.shift_id) == shift_id,
            col(ShiftReminder.occurrence) == occurrence,
            col(ShiftReminder.user_id) == user_id,
            (col(ShiftReminder.state) == "pending")
            | (
                (col(ShiftReminder.state) == "sending")
                & (col(ShiftReminder.claimed_at) < now - STALE_SENDING)
            ),
        )
        .values(state="sending", claimed_at=now, attempts=ShiftReminder.attempts + 1)
    )
    if claimed.rowcount != 1:
        return None
    # Five columns: past sqlmodel's typed select overloads, so SQLAlchemy's own select.
    found = session.execute(
        sa_select(
            Shift, col(ShiftReminder.id), col(ShiftReminder.due_at), col(ShiftMember.user_id), col(Member.tz)
        )
        .join(ShiftReminder, col(ShiftReminder.shift_id) == col(Shift.id))
        .outerjoin(
            ShiftMember, (col(ShiftMember.shift_id) == col(Shift.id)) & (col(ShiftMember.user_id) == user_id)
        )
        .outerjoin(Member, col(Member.user_id) == user_id)
        .where(
            col(Shift.id) == shift_id,
            col(ShiftReminder.occurrence) == occurrence,
            col(ShiftReminder.user_id) == user_id,
        )
    ).one()
    shift, reminder_id, due_at, member, tz = found
    start, end = window_of(shift, occurrence)
    if shift.state != "scheduled" or member is None or now >= start:
        session.exec(  # type: ignore[call-overload]
            update(ShiftReminder).where(col(ShiftReminder.id) == reminder_id).values(state="skipped")
        )
        if now >= start:
            log.warning(
                "reminder of %s (occurrence %d) for %s was due at %s but the shift started at %s: skipped",
                ref(shift_id),
                occurrence,
                user_id,
                due_at.isoformat(),
                start.isoformat(),
            )
        return None
    snapshot = replace(
        view(session, shift, with_members=False), starts_at=start, ends_at=end, occurrence=occurrence
    )
    return ReminderToSend(reminder_id, snapshot, user_id, tz or "UTC")


def reminder_sent(
    session: Session, reminder_id: int, now: datetime, channel_id: str, message_ts: str
) -> None:
    session.exec(  # type: ignore[call-overload]
        update(ShiftReminder)
        .where(col(ShiftReminder.id) == reminder_id)
        .values(state="sent", sent_at=now, channel_id=channel_id, message_ts=message_ts)
    )


def reminder_failed(session: Session, reminder_id: int, retry: bool) -> None:
    """Back to pending for another try, or failed for good (the member can't be reached)."""
    session.exec(  # type: ignore[call-overload]
        update(ShiftReminder)
        .where(col(ShiftReminder.id) == reminder_id, col(ShiftReminder.state) == "sending")
        .values(state="pending" if retry else "failed")
    )


def reminders_sending(session: Session, claimed_before: datetime) -> list[tuple[int, str]]:
    """(reminder id, member) of every reminder claimed before `claimed_before` and not yet recorded
    as sent or failed."""
    rows = session.exec(
        select(ShiftReminder.id, ShiftReminder.user_id).where(
            ShiftReminder.state == "sending", col(ShiftReminder.claimed_at) < claimed_before
        )
    ).all()
    return [(reminder_id or 0, user_id) for reminder_id, user_id in rows]


def reminder_attempts(session: Session, reminder_id: int) -> int:
    row = session.get(ShiftReminder, reminder_id)
    return row.attempts if row else 0


def reminder_message(session: Session, shift_id: int, user_id: str) -> tuple[str, str] | None:
    """The DM (channel, ts) of the member's latest sent reminder for this shift, to update in place."""
    row = session.exec(
        select(ShiftReminder)
        .where(
            ShiftReminder.shift_id == shift_id,
            ShiftReminder.user_id == user_id,
            ShiftReminder.state == "sent",
        )
        .order_by(col(ShiftReminder.occurrence).desc())
    ).first()
    if row is None or not row.channel_id or not row.message_ts:
        return None
    return row.channel_id, row.message_ts


# ---- occurrences: start and end -------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    shift: ShiftView  # after advancing: a repeating shift already shows its next occurrence
    occurrence: int
    starts_at: datetime
    ends_at: datetime
    on_now: tuple[str, ...]  # members at the start
    announce: bool  # False when the bot was down for the whole occurrence
    plan: JobPlan


def start_occurrence(session: Session, shift_id: int, n: int, now: datetime) -> StartResult | None:
    """Occurrence n begins: mark it started (once), and for a repeating shift move on to the next
    occurrence that is still ahead, with ledger rows for every member's next reminder."""
    shift = session.get(Shift, shift_id)
    if shift is None or shift.state != "scheduled":
        return None
    marked = session.exec(  # type: ignore[call-overload]
        update(Shift)
        .where(col(Shift.id) == shift_id, col(Shift.last_started) < n, col(Shift.state) == "scheduled")
        .values(last_started=n, updated_at=now)
    )
    if marked.rowcount != 1:
        return None
    session.refresh(shift)
    start, end = window_of(shift, n)
    members = view(session, shift).members
    announce = now < end
    # Reminders of this occurrence that never went out are moot now.
    session.exec(  # type: ignore[call-overload]
        update(ShiftReminder)
        .where(
            col(ShiftReminder.shift_id) == shift_id,
            col(ShiftReminder.occurrence) <= n,
            col(ShiftReminder.state) == "pending",
        )
        .values(state="skipped")
    )
    if not announce:
        log.warning("%s occurrence %d (%s–%s) passed while the bot was down", ref(shift_id), n, start, end)
        shift.closed_through = max(shift.closed_through, n)  # nobody can be judged for it
    plan = JobPlan()
    if shift.repeat in PERIODS:
        following = n + 1
        while window_of(shift, following)[0] <= now:
            log.warning("%s occurrence %d passed while the bot was down: skipped", ref(shift_id), following)
            following += 1
        shift.occurrence = following
        shift.starts_at, shift.ends_at = window_of(shift, following)
        session.add(shift)
        session.flush()
        plan.starts.append((shift_id, following, shift.starts_at))
        plan.ends.append((shift_id, following, shift.ends_at))
        for user_id in members:
            reminder = _ensure_reminder(session, shift, user_id, now)
            if reminder:
                plan.reminders.append(reminder)
    session.add(shift)
    audit.record(
        session,
        at=now,
        actor_id=audit.BOT,
        action="shift.started",
        entity="shift",
        entity_id=shift_id,
        source="job",
        occurrence=n,
        members=list(members),
    )
    return StartResult(view(session, shift), n, start, end, members, announce, plan)


@dataclass(frozen=True)
class NoShow:
    user_id: str
    recent: int  # no-shows of this member within NO_SHOW_WINDOW, this one included


@dataclass(frozen=True)
class EndResult:
    shift: ShiftView
    occurrence: int
    starts_at: datetime
    no_shows: tuple[NoShow, ...]


def end_occurrence(session: Session, shift_id: int, n: int, now: datetime) -> EndResult | None:
    """Occurrence n is over: every member still on the shift who did not clock in during it is
    recorded as a no-show (once: the incident is unique per occurrence)."""
    shift = session.get(Shift, shift_id)
    if shift is None or shift.state == "cancelled" or shift.last_started < n:
        return None
    judged = session.exec(  # type: ignore[call-overload]
        update(Shift)
        .where(col(Shift.id) == shift_id, col(Shift.closed_through) < n)
        .values(closed_through=n, updated_at=now)
    )
    if judged.rowcount != 1:
        return None
    session.refresh(shift)
    start, end = window_of(shift, n)
    members = list(
        session.exec(
            select(ShiftMember.user_id).where(
                ShiftMember.shift_id == shift_id, col(ShiftMember.joined_at) < end
            )
        )
    )
    no_shows = []
    for user_id in members:
        if _clocked_in_during(session, user_id, start, end):
            continue
        recorded = insert_ignore(
            session,
            ShiftIncident,
            {
                "shift_id": shift_id,
                "occurrence": n,
                "user_id": user_id,
                "kind": "no_show",
                "occurrence_start": start,
                "recorded_at": now,
            },
        )
        if recorded:
            no_shows.append(NoShow(user_id, count_no_shows(session, user_id, start)))
            audit.record(
                session,
                at=now,
                actor_id=audit.BOT,
                action="shift.no_show",
                entity="shift",
                entity_id=shift_id,
                source="job",
                occurrence=n,
                user_id=user_id,
            )
    if shift.repeat not in PERIODS:
        shift.state = "ended"
        session.add(shift)
    return EndResult(view(session, shift), n, start, tuple(no_shows))


def _clocked_in_during(session: Session, user_id: str, start: datetime, end: datetime) -> bool:
    """Any time entry of the member overlapping [start, end), open ones included."""
    hit = session.exec(
        select(TimeEntry.id).where(
            TimeEntry.user_id == user_id,
            col(TimeEntry.started_at) < end,
            col(TimeEntry.ended_at).is_(None) | (col(TimeEntry.ended_at) > start),
        )
    ).first()
    return hit is not None


def count_no_shows(session: Session, user_id: str, at: datetime) -> int:
    return session.exec(
        select(func.count())
        .select_from(ShiftIncident)
        .where(
            ShiftIncident.user_id == user_id,
            ShiftIncident.kind == "no_show",
            col(ShiftIncident.occurrence_start) > at - NO_SHOW_WINDOW,
            col(ShiftIncident.occurrence_start) <= at,
        )
    ).one()


def incidents(session: Session, user_id: str, kind: str) -> list[ShiftIncident]:
    return list(
        session.exec(
            select(ShiftIncident)
            .where(ShiftIncident.user_id == user_id, ShiftIncident.kind == kind)
            .order_by(col(ShiftIncident.id))
        )
    )


# ---- after a restart ------------------------------------------------------------------------


def outstanding(session: Session, now: datetime) -> JobPlan:
    """Every job the shifts need, from the database alone: registered again at start-up so that a
    job lost in a crash (APScheduler removes a one-off job when it hands it to a worker, before it
    has run) still runs. Registering is idempotent, and the ledger keeps reminders exactly-once."""
    plan = JobPlan()
    # A reminder left "sending" this long was cut off mid-call by a crash: try it again.
    session.exec(  # type: ignore[call-overload]
        update(ShiftReminder)
        .where(col(ShiftReminder.state) == "sending", col(ShiftReminder.claimed_at) < now - STALE_SENDING)
        .values(state="pending")
    )
    shifts = {s.id: s for s in session.exec(select(Shift).where(Shift.state == "scheduled"))}
    for shift in shifts.values():
        assert shift.id is not None
        if shift.last_started < shift.occurrence:
            plan.starts.append((shift.id, shift.occurrence, shift.starts_at))
        if shift.last_started > shift.closed_through:
            plan.ends.append((shift.id, shift.last_started, window_of(shift, shift.last_started)[1]))
        if shift.last_started < shift.occurrence:
            plan.ends.append((shift.id, shift.occurrence, shift.ends_at))
    for row in session.exec(
        select(ShiftReminder).where(col(ShiftReminder.state).in_(("pending", "sending")))
    ):
        reminded = shifts.get(row.shift_id)
        if reminded is not None:
            at = row.due_at
            if row.state == "sending" and row.claimed_at is not None:
                # Claimed less than STALE_SENDING ago, it may still be in flight (in another
                # process): its job runs once it counts as cut off, and takes it over then.
                at = max(row.due_at, row.claimed_at + STALE_SENDING)
            plan.reminders.append(
                ReminderPlan(
                    row.shift_id, row.occurrence, row.user_id, at, window_of(reminded, row.occurrence)[0]
                )
            )
    return plan


def _span(period: timedelta) -> str:
    return "a day" if period == timedelta(days=1) else "a week"
