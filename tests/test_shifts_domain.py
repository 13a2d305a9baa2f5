"""The shift and hours rules on their own: occurrences across DST, wall-clock validation, ISO weeks,
earnings rounding, and the database deciding races (one open clock-in, slot counts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.authz import Actor
from db.engine import Database
from db.models import Member, TimeEntry
from domain import hours, shifts
from domain.shifts import NewShift, ShiftInputError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(**changes: object) -> NewShift:
    base = dict(
        name="Night review",
        start_local=datetime(2026, 3, 3, 22, 0),
        end_local=datetime(2026, 3, 4, 2, 0),
        tz="America/Chicago",
        slots=5,
        skill=None,
        repeat="weekly",
        remind=timedelta(minutes=30),
        channel_id="C1",
    )
    base.update(changes)
    return NewShift(**base)  # type: ignore[arg-type]


def test_weekly_occurrences_keep_local_wall_clock_across_dst() -> None:
    start, end = shifts.check_new(spec(), NOW)
    assert (start, end) == (utc("2026-03-04T04:00"), utc("2026-03-04T08:00"))  # CST
    week2 = shifts.occurrence_window("America/Chicago", start, end, "weekly", 1)
    assert week2 == (utc("2026-03-11T03:00"), utc("2026-03-11T07:00"))  # CDT: same 22:00 local
    # Back in November: standard time again.
    week36 = shifts.occurrence_window("America/Chicago", start, end, "weekly", 36)
    assert week36[0] == utc("2026-11-11T04:00")


def test_daily_occurrence_on_the_night_clocks_change() -> None:
    # 01:00–03:00 Chicago, daily; on 8 March 02:00 does not exist, 03:00 does (CDT).
    start = shifts.localize(datetime(2026, 3, 6, 1, 0), "America/Chicago")
    end = shifts.localize(datetime(2026, 3, 6, 3, 0), "America/Chicago")
    assert shifts.occurrence_window("America/Chicago", start, end, "daily", 2) == (
        utc("2026-03-08T07:00"),  # 01:00 CST
        utc("2026-03-08T08:00"),  # 03:00 CDT: one hour long that night
    )
    one_off = shifts.occurrence_window("America/Chicago", start, end, "none", 5)
    assert one_off == (start, end)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"start_local": datetime(2026, 3, 1, 5, 0), "end_local": datetime(2026, 3, 1, 6, 0)},
            "start",
            "in the past",
        ),
        ({"end_local": datetime(2026, 3, 3, 21, 0)}, "end", "must be after the start"),
        ({"end_local": datetime(2026, 3, 4, 11, 0)}, "end", "at most 12 hours"),
        (
            {"start_local": datetime(2026, 3, 8, 2, 30), "end_local": datetime(2026, 3, 8, 5, 0)},
            "start",
            "does not exist",
        ),
        ({"tz": "Mars/Olympus"}, "tz", "not a time zone"),
        ({"slots": 0}, "slots", "between 1 and 200"),
        ({"remind": timedelta(days=7)}, "remind", "less than a week"),
        ({"remind": timedelta(days=8), "repeat": "none"}, "remind", "at most 7 days"),
        ({"repeat": "monthly"}, "repeat", "not one of"),
        ({"name": "  "}, "name", "Give the shift a name"),
        (
            {"start_local": datetime(2027, 6, 1, 9, 0), "end_local": datetime(2027, 6, 1, 10, 0)},
            "start",
            "a year away",
        ),
    ],
)
def test_new_shift_refusals_name_the_field(changes: dict, field: str, message: str) -> None:
    with pytest.raises(ShiftInputError) as refused:
        shifts.check_new(spec(**changes), NOW)
    assert refused.value.field == field and message in refused.value.message


def test_week_bounds_are_monday_midnight_in_the_members_zone() -> None:
    at = utc("2026-01-11T17:00")  # Sunday in UTC, Monday 01:00 in Manila
    assert hours.week_bounds(at, "UTC") == (utc("2026-01-05T00:00"), utc("2026-01-12T00:00"))
    assert hours.week_bounds(at, "Asia/Manila") == (utc("2026-01-11T16:00"), utc("2026-01-18T16:00"))
    # The week in which Chicago springs forward is an hour shorter.
    start, end = hours.week_bounds(utc("2026-03-05T12:00"), "America/Chicago")
    assert end - start == timedelta(days=7, hours=-1)
    assert hours.week_of(datetime(2026, 1, 8).date(), "UTC")[0] == utc("2026-01-05T00:00")


def test_earnings_round_half_up_per_line() -> None:
    assert hours.earnings_cents(4500, 8750) == 10938  # 1.25 h × $87.50 = $109.375
    assert hours.earnings_cents(3600, None) == 0
    assert hours.as_hours(5399) == Decimal("1.50")
    assert hours.as_hours(5399, rounding="ROUND_DOWN") == Decimal("1.49")


def test_one_open_clock_in_per_member_is_decided_by_the_database(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.write() as session:
            session.add(Member(user_id="U1", created_at=NOW))
        with db.write() as session:
            hours.clock_in(session, Actor("U1"), None, NOW, "test")
        # A second row slipping past the friendly check (a race) is refused by the unique index.
        with pytest.raises(Exception), db.write() as session:  # noqa: B017, PT011
            session.add(TimeEntry(user_id="U1", started_at=NOW + timedelta(minutes=1)))
        with db.write() as session:
            closed = hours.clock_out(session, Actor("U1"), NOW + timedelta(hours=1), "test")
            assert closed.entry.seconds == 3600
            hours.clock_in(session, Actor("U1"), None, NOW + timedelta(hours=2), "test")
            assert hours.tracked_hours(session, "U1") == Decimal("1.00")
    finally:
        db.dispose()


def test_slots_never_overfill_and_leaving_frees_one(database_url: str) -> None:
    db = Database(database_url)
    try:
        lead = Actor("ULEAD", tz="UTC")
        with db.write() as session:
            created, _ = shifts.create(session, lead, spec(slots=1, tz="UTC"), NOW, "test")
        with db.write() as session:
            assert shifts.join(session, Actor("U1"), created.id, NOW, "test").joined
        with pytest.raises(Exception, match="is full"), db.write() as session:
            shifts.join(session, Actor("U2"), created.id, NOW, "test")
        with db.write() as session:
            left = shifts.leave(session, Actor("U1"), created.id, NOW, "test")
            assert left.left and not left.late and left.shift.filled == 0
            assert left.dropped_reminders == ((created.id, 0, "U1"),)
        with db.write() as session:
            assert shifts.join(session, Actor("U2"), created.id, NOW, "test").shift.filled == 1
    finally:
        db.dispose()
