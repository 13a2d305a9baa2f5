"""The pay rules on a real database (SQLite and PostgreSQL), without Slack: the one rounding rule,
what counts as approved, a statement adding up to the cent, the share model accruing week by week
inside its window and under its cap (the flat model untouched), and migration 0013 both ways."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import inspect, text, update
from sqlmodel import col, select

from core.authz import Actor, Role
from core.errors import UserError
from core.money import cents, pay_cents, round_cents, share_cents
from core.text import csv_cell
from db.engine import Database
from db.models import Assignment, PayStatement, Referral, Task, TimeEntry
from domain import hours, members, pay
from domain import referrals as rules
from tests.migration_support import migrate

LEAD = Actor("ULEAD", role=Role.LEAD)
MONDAY = date(2026, 1, 5)  # weeks of 5, 12, 19 and 26 January 2026


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=4)
    yield database
    database.dispose()


def task(db: Database, title: str, rate_cents: int, holder: str, state: str = "claimed") -> int:
    now = at("2026-01-01T00:00:00")
    with db.write() as session:
        members.ensure(session, holder, now)
        t = Task(
            title=title, rate_cents=rate_cents, slots=1, creator_id="ULEAD", created_at=now, updated_at=now
        )
        session.add(t)
        session.flush()
        session.add(Assignment(task_id=t.id or 0, user_id=holder, claimed_at=now, state=state))
        return t.id or 0


def work(db: Database, user_id: str, start: str, minutes: int, task_id: int | None, **extra: object) -> None:
    with db.write() as session:
        members.ensure(session, user_id, at(start))
        begin = at(start)
        session.add(
            TimeEntry(
                user_id=user_id,
                task_id=task_id,
                started_at=begin,
                ended_at=begin + timedelta(minutes=minutes),
                **extra,  # type: ignore[arg-type]
            )
        )


# ---- money ---------------------------------------------------------------------------------------


def test_one_rounding_rule_half_up_per_entry() -> None:
    assert round_cents(Decimal("2.5")) == 3 and round_cents(Decimal("2.4999")) == 2
    assert cents(Decimal("0.005")) == 1  # dollars from settings: the same rule
    assert pay_cents(4500, 8750) == 10_938  # 1.25 h × $87.50 = $109.375 → $109.38
    assert pay_cents(1200, 8750) == 2917  # 20 min × $87.50 = $29.1666… → $29.17
    assert pay_cents(3600, None) == 0
    assert share_cents(10_938, 1000) == 1094  # 10% of $109.38 = $10.938 → $10.94
    assert share_cents(5, 1000) == 1  # half a cent → up
    assert share_cents(4, 1000) == 0


def test_csv_cell_keeps_formulas_as_text() -> None:
    for bad in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(bad) == "'" + bad
    assert csv_cell("Ana") == "Ana" and csv_cell(12) == "12" and csv_cell(None) == ""


# ---- the statement -------------------------------------------------------------------------------


def test_statement_rounds_per_entry_and_its_lines_add_up(db: Database) -> None:
    review = task(db, "Review", 8750, "U1")
    rejected = task(db, "Rejected work", 10_000, "U1", state="rejected")
    for day in (6, 7, 8):  # three 20-minute entries: $29.17 each, not $87.50 for one hour
        work(db, "U1", f"2026-01-0{day}T10:00:00", 20, review)
    work(db, "U1", "2026-01-06T12:00:00", 75, review)  # $109.38
    work(db, "U1", "2026-01-06T15:00:00", 60, rejected)  # not paid
    work(db, "U1", "2026-01-07T15:00:00", 30, None)  # no task: waits for a lead
    work(db, "U1", "2026-01-08T15:00:00", 120, review, flagged=True, flag_reason="12 h")  # waits
    with db.write() as session:
        s = pay.statement(session, "U1", MONDAY, at("2026-01-12T09:00:00"))
    assert [(line.task_id, line.hours, line.cents) for line in s.lines] == [
        (review, Decimal("2.25"), 3 * 2917 + 10_938)
    ]
    assert s.total_cents == sum(line.cents for line in s.lines) == 19_689
    assert hours.as_hours(s.waiting_seconds) == Decimal("2.50")
    assert hours.as_hours(s.rejected_seconds) == Decimal("1.00")
    # A lead reviews the no-task time: it is approved (no rate, so no money), and no longer waiting.
    with db.write() as session:
        entry = session.exec(select(TimeEntry).where(col(TimeEntry.task_id).is_(None))).one()
        hours.approve(session, LEAD, entry.id or 0, at("2026-01-12T10:00:00"), "test")
        s = pay.statement(session, "U1", MONDAY, at("2026-01-12T10:00:00"))
    assert hours.as_hours(s.no_task_seconds) == Decimal("0.50")
    assert hours.as_hours(s.waiting_seconds) == Decimal("2.00")
    assert s.total_cents == 19_689


def test_durations_are_whole_seconds_or_exact_never_floats(db: Database) -> None:
    """Entries with fractions of a second: each is paid for its own whole seconds (ints on the
    statement), and the cap counts them to the microsecond (timedeltas), so its instant is exact."""
    review = task(db, "Review", 8750, "U1")
    with db.write() as session:
        for start, length in (
            ("2026-01-06T10:00:00.250000", timedelta(hours=1, microseconds=500_000)),
            ("2026-01-07T10:00:00.600000", timedelta(minutes=20, microseconds=700_000)),
        ):
            begin = datetime.fromisoformat(start).replace(tzinfo=UTC)
            session.add(TimeEntry(user_id="U1", task_id=review, started_at=begin, ended_at=begin + length))
        s = pay.statement(session, "U1", MONDAY, at("2026-01-12T09:00:00"))
        pay.set_cap(session, LEAD, "U1", Decimal(2), Decimal(40), at("2026-01-08T09:00:00"), "test")
        running = hours.clock_in(session, Actor("U1"), None, at("2026-01-08T10:00:00"), "test")
        times = pay.cap_times(session, running.id, Decimal(40))
        status = pay.cap_status(session, "U1", at("2026-01-08T10:00:00"), Decimal(40))
    (line,) = s.lines
    assert type(line.seconds) is int and line.seconds == 3600 + 1200
    assert line.cents == pay_cents(3600, 8750) + pay_cents(1200, 8750) == 8750 + 2917
    assert all(type(v) is int for v in (s.waiting_seconds, s.rejected_seconds, s.no_task_seconds))
    assert status.clocked == timedelta(hours=1, minutes=20, seconds=1, microseconds=200_000)
    assert times is not None and times.stop_at == at("2026-01-08T10:39:58.800000")


def test_weeks_are_the_members_own(db: Database) -> None:
    review = task(db, "Review", 6000, "UMNL")
    with db.write() as session:
        members.ensure(session, "UMNL", at("2026-01-01T00:00:00")).tz = "Asia/Manila"
    # Sunday 11 Jan 15:00–17:00 UTC: Sunday 23:00 – Monday 01:00 in Manila, one hour in each week.
    work(db, "UMNL", "2026-01-11T15:00:00", 120, review)
    with db.write() as session:
        first = pay.statement(session, "UMNL", MONDAY, at("2026-01-20T00:00:00"))
        second = pay.statement(session, "UMNL", date(2026, 1, 12), at("2026-01-20T00:00:00"))
    assert (first.total_cents, second.total_cents) == (6000, 6000)


# ---- referral rewards ----------------------------------------------------------------------------


def refer(db: Database, email: str, now: datetime, share: rules.ShareTerms | None) -> Referral:
    with db.write() as session:
        return rules.refer(
            session,
            by=Actor("U1", email="u1@example.com"),
            email=email,
            name="",
            skill=None,
            account=None,
            bonus_cents=25_000,
            now=now,
            source="test",
            share=share,
        )


def hire(db: Database, referral_id: int, referee: str, when: datetime) -> None:
    with db.write() as session:
        session.execute(
            update(Referral)
            .where(col(Referral.id) == referral_id)
            .values(status=rules.HIRED, hired_at=when, referee_user_id=referee)
        )


def test_share_accrues_week_by_week_from_the_referral_within_its_months_and_cap(db: Database) -> None:
    terms = rules.ShareTerms(basis_points=1000, months=1, cap_cents=15_000)  # 10%, 1 month, $150
    work_task = task(db, "Contract review", 10_000, "U9")  # $100/h
    # Worked before the referral was recorded (and before the hire): never counts.
    work(db, "U9", "2026-01-02T10:00:00", 600, work_task)
    referral = refer(db, "ana@x.example", at("2026-01-03T12:00:00"), terms)
    assert referral.reward_model == rules.SHARE and referral.bonus_cents == 0
    with pytest.raises(UserError, match="already in the referral program"), db.write() as session:
        rules.refer(  # first referrer only: a second referral of the address is refused
            session,
            by=Actor("U2"),
            email="ana@x.example",
            name="",
            skill=None,
            account=None,
            bonus_cents=25_000,
            now=at("2026-01-04T12:00:00"),
            source="test",
            share=terms,
        )
    hire(db, referral.id or 0, "U9", at("2026-01-05T09:00:00"))
    work(db, "U9", "2026-01-05T08:00:00", 60, work_task)  # before the hire: no
    work(db, "U9", "2026-01-06T10:00:00", 600, work_task)  # week 1: $1,000 → $100
    work(db, "U9", "2026-01-13T10:00:00", 450, work_task)  # week 2: $750 → $75, capped to $50
    work(db, "U9", "2026-01-20T10:00:00", 600, work_task)  # week 3: cap reached, nothing
    now = at("2026-02-20T00:00:00")
    with db.write() as session:
        weeks = [pay.statement(session, "U1", MONDAY + timedelta(days=7 * n), now) for n in range(3)]
        so_far = pay.progress_of(session, [rules.get(session, referral.id or 0)], now)[referral.id or 0]
    assert [w.reward_cents for w in weeks] == [10_000, 5000, 0]
    assert [(r.earned_cents, r.left_cents) for r in weeks[0].rewards] == [(10_000, 5000)]
    assert [(r.earned_cents, r.left_cents) for r in weeks[1].rewards] == [(15_000, 0)]
    assert (so_far.earned_cents, so_far.left_cents) == (15_000, 0)
    # The referrer's statements add up; the payroll of each week carries the same share.
    with db.write() as session:
        assert [s.total_cents for s in pay.payroll(session, MONDAY, now) if s.user_id == "U1"] == [10_000]


def test_share_counts_an_entry_begun_before_the_referral_only_from_the_referral(db: Database) -> None:
    """The hire recorded before the referral: the share's window opens at the referral, not the hire,
    and an entry under way then counts from the referral on (not from its start, nor the hire)."""
    terms = rules.ShareTerms(basis_points=1000, months=12, cap_cents=1_000_000)
    work_task = task(db, "Review", 10_000, "U9")  # $100/h
    referral = refer(db, "cy@x.example", at("2026-01-06T12:00:00"), terms)
    hire(db, referral.id or 0, "U9", at("2026-01-05T09:00:00"))
    work(db, "U9", "2026-01-05T10:00:00", 60, work_task)  # after the hire, before the referral: no
    work(db, "U9", "2026-01-06T10:00:00", 240, work_task)  # 10:00-14:00: the 2 h after 12:00 count
    with db.write() as session:
        s = pay.statement(session, "U1", MONDAY, at("2026-01-12T09:00:00"))
    assert [(r.referral_id, r.cents) for r in s.rewards] == [(referral.id, 2000)]  # 10% of $200


def test_share_stops_at_the_end_of_its_months(db: Database) -> None:
    terms = rules.ShareTerms(basis_points=1250, months=1, cap_cents=1_000_000)  # 12.5%
    work_task = task(db, "Triage", 8750, "U8")
    referral = refer(db, "bo@x.example", at("2026-01-03T12:00:00"), terms)
    hire(db, referral.id or 0, "U8", at("2026-01-31T12:00:00"))  # window ends 28 Feb 12:00
    work(db, "U8", "2026-02-28T11:00:00", 120, work_task)  # half inside: 1 h × $87.50 → 12.5% = $10.94
    work(db, "U8", "2026-03-02T10:00:00", 600, work_task)  # after: nothing
    assert pay.add_months(at("2026-01-31T12:00:00"), 1) == at("2026-02-28T12:00:00")
    with db.write() as session:
        fresh = rules.get(session, referral.id or 0)
        progress = pay.progress_of(session, [fresh], at("2026-04-01T00:00:00"))[referral.id or 0]
    assert progress.earned_cents == share_cents(8750, 1250) == 1094


def test_flat_referrals_keep_their_model_and_bonus(db: Database) -> None:
    flat = refer(db, "flat@x.example", at("2026-01-03T12:00:00"), None)
    share = refer(db, "share@x.example", at("2026-01-03T12:00:00"), rules.ShareTerms(1000, 12, 100_000))
    assert (flat.reward_model, flat.bonus_cents) == (rules.FLAT, 25_000)
    hire(db, flat.id or 0, "U7", at("2026-01-05T09:00:00"))
    hire(db, share.id or 0, "U6", at("2026-01-05T09:00:00"))
    for user in ("U7", "U6"):
        work(db, user, "2026-01-06T08:00:00", 660, None)
    with db.write() as session:  # time with no task counts once a lead approved it
        for entry in session.exec(select(TimeEntry)).all():
            hours.approve(session, LEAD, entry.id or 0, at("2026-01-06T20:00:00"), "test")
    with db.write() as session:
        promoted = rules.promote_eligible(
            session, threshold_hours=Decimal(10), now=at("2026-01-07T00:00:00"), source="test"
        )
    assert [p.referral.id for p in promoted] == [flat.id]  # the share referral is paid weekly instead
    with db.write() as session:
        s = pay.statement(session, "U1", MONDAY, at("2026-01-12T09:00:00"))
    assert [(r.referral_id, r.model, r.cents) for r in s.rewards] == [(flat.id, rules.FLAT, 25_000)]


# ---- the migration -------------------------------------------------------------------------------


def test_migration_0013_down_and_up(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            migrate(conn, command.downgrade, "0012_duties")
            names = inspect(conn).get_table_names()
            assert "pay_statement" not in names and "weekly_cap" not in names
            assert "stop_reason" not in {c["name"] for c in inspect(conn).get_columns("time_entry")}
            migrate(conn, command.upgrade, "head")
            assert {"pay_statement", "weekly_cap", "cap_notice"} <= set(inspect(conn).get_table_names())
            assert "reward_model" in {c["name"] for c in inspect(conn).get_columns("referral")}
    finally:
        database.dispose()


def test_migration_0016_fills_in_each_statements_bounds_from_the_members_zone(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            migrate(conn, command.downgrade, "0015_exact")
            assert "starts_at" not in {c["name"] for c in inspect(conn).get_columns("pay_statement")}
            conn.execute(
                text(
                    "INSERT INTO member (user_id, name, real_name, tz, is_lead, is_bot, deleted, created_at) "
                    "VALUES ('UKOL', 'k', '', 'Asia/Kolkata', false, false, false, :now)"
                ),
                {"now": datetime(2026, 1, 1)},
            )
            for user_id in ("UKOL", "UGONE"):  # UGONE: no member row any more, so UTC
                conn.execute(
                    text(
                        "INSERT INTO pay_statement (user_id, week_start, state, attempts, claimed_at, "
                        "total_cents) VALUES (:user_id, :monday, 'sent', 1, :now, 100)"
                    ),
                    {"user_id": user_id, "monday": MONDAY, "now": datetime(2026, 1, 12, 4)},
                )
            conn.commit()
            migrate(conn, command.upgrade, "head")
        with database.read() as session:
            rows = {r.user_id: r for r in session.exec(select(PayStatement))}
        assert (rows["UKOL"].starts_at, rows["UKOL"].ends_at, rows["UKOL"].tz) == (
            at("2026-01-04T18:30:00"),
            at("2026-01-11T18:30:00"),
            "Asia/Kolkata",
        )
        assert (rows["UGONE"].starts_at, rows["UGONE"].ends_at, rows["UGONE"].tz) == (
            at("2026-01-05T00:00:00"),
            at("2026-01-12T00:00:00"),
            "UTC",
        )
    finally:
        database.dispose()


# ---- caps ----------------------------------------------------------------------------------------


def test_cap_instants_follow_the_members_week(db: Database) -> None:
    with db.write() as session:
        members.ensure(session, "U1", at("2026-01-01T00:00:00")).tz = "America/Chicago"
        members.ensure(session, "U2", at("2026-01-01T00:00:00"))
    work(db, "U1", "2026-01-05T14:00:00", 37 * 60, None)  # 37 h this week (Chicago)
    with db.write() as session:
        # Sunday 11 Jan 20:00 Chicago (02:00 UTC Monday): 3 h to the cap, 0.5 h past 90% (36 h) already.
        running = hours.clock_in(
            session, Actor("U1", tz="America/Chicago"), None, at("2026-01-12T02:00:00"), "t"
        )
        times = pay.cap_times(session, running.id, Decimal(40))
    assert times is not None
    assert times.notice_at == at("2026-01-12T02:00:00") and times.stop_at == at("2026-01-12T05:00:00")
    with db.write() as session:
        # In UTC the week started at 00:00 on Monday 12 Jan: U2's clock-in at 23:00 the day before has
        # 1 h in the old week and 11 h in the new, never near 40 h.
        entry = hours.clock_in(session, Actor("U2"), None, at("2026-01-11T23:00:00"), "t")
        fresh = pay.cap_times(session, entry.id, Decimal(40))
    assert fresh is not None and fresh.notice_at is None and fresh.stop_at is None
    with db.write() as session:
        # A lead lowers U1's cap to 37.5 h at 03:00: reached at 02:30, but the hour already worked counts.
        pay.set_cap(session, LEAD, "U1", Decimal("37.5"), Decimal(40), at("2026-01-12T03:00:00"), "t")
        assert pay.stop_at_cap(session, running.id, at("2026-01-12T03:00:00"), Decimal(40)) is not None
        stopped = session.get(TimeEntry, running.id)
        assert stopped is not None and stopped.ended_at == at("2026-01-12T03:00:00")
        assert stopped.stop_reason == pay.CAP_STOP_REASON
    assert pay.due_week(at("2026-01-12T14:59:00"), "America/Chicago") is None
    assert pay.due_week(at("2026-01-12T15:00:00"), "America/Chicago") == MONDAY


def test_statements_are_claimed_in_short_batches_each_member_once(db: Database) -> None:
    """Thousands of members due at once are recorded a batch per transaction (SQLite's write lock
    stays short); every call makes progress and nobody is claimed twice."""
    for n in range(5):
        t = task(db, f"Task {n}", 10_000, f"UB{n}")
        work(db, f"UB{n}", "2026-01-06T08:00:00", 60, t)
    now = at("2026-01-12T10:00:00")  # Monday 10:00 UTC: last week's statements are due
    claimed: list[str] = []
    calls = 0
    more = True
    while more:
        with db.write() as session:
            batch, more = pay.claim_due_statements(session, now, batch=2)
        assert len(batch) <= 2
        claimed += [item.statement.user_id for item in batch]
        calls += 1
    assert sorted(claimed) == [f"UB{n}" for n in range(5)] and calls == 3
    with db.write() as session:
        assert pay.claim_due_statements(session, now, batch=2) == ([], False)


def test_task_times_counts_each_member_on_their_own_task_only(db: Database) -> None:
    """The review queue's time, read for a page of (member, task) pairs at once: a member's time on
    another pair's task is not theirs here, flagged time is an entry but no hours."""
    first, second = task(db, "Contracts", 10000, "U1"), task(db, "Triage", 10000, "U2")
    work(db, "U1", "2026-01-05T09:00:00", 90, first)
    work(db, "U1", "2026-01-05T12:00:00", 60, second)  # U1 on U2's task: not in any pair below
    work(db, "U2", "2026-01-05T09:00:00", 30, second)
    work(db, "U2", "2026-01-06T09:00:00", 45, second, flagged=True)
    with db.read() as session:
        times = hours.task_times(session, [("U1", first), ("U2", second), ("U3", first)])
    assert times[("U1", first)] == hours.TaskTime(Decimal("1.50"), 1)
    assert times[("U2", second)] == hours.TaskTime(Decimal("0.50"), 2)
    assert times[("U3", first)] == hours.TaskTime(Decimal("0.00"), 0)
    with db.read() as session:
        assert hours.task_time(session, "U1", second) == hours.TaskTime(Decimal("1.00"), 1)


def test_the_homes_cap_status_from_the_week_is_the_one_clocking_in_reads(db: Database) -> None:
    """The Home reads the cap line from the week it shows: the same seconds as `cap_status` (closed,
    flagged and not, the part inside the week of one started before it, the running clock-in)."""
    first = task(db, "Contracts", 10000, "U1")
    work(db, "U1", "2026-01-04T23:00:00", 120, first)  # Sunday 23:00-01:00: one hour in this week
    work(db, "U1", "2026-01-05T09:00:00", 95, first)
    work(db, "U1", "2026-01-06T09:00:00", 40, None, flagged=True)
    with db.write() as session:
        session.add(TimeEntry(user_id="U1", task_id=first, started_at=at("2026-01-07T08:00:00")))
        pay.set_cap(session, LEAD, "U1", Decimal(6), Decimal(40), at("2026-01-05T09:00:00"), "test")
    now = at("2026-01-07T09:10:00")
    with db.read() as session:
        week = hours.week(session, "U1", "UTC", now)
        from_week = pay.week_cap_status(session, week, "UTC", now, Decimal(40))
        assert from_week == pay.cap_status(session, "U1", now, Decimal(40))
    assert from_week.clocked == timedelta(minutes=60 + 95 + 40 + 70) and from_week.cap.own


def test_near_cap_sums_again_beside_the_request_and_counts_each_entry_once(db: Database) -> None:
    """Past a minute the sums are taken again on their own thread; meanwhile, and after, the list
    adds only the entries closed since the sums it uses, so no entry counts twice."""
    first = task(db, "Contracts", 10000, "U1")
    work(db, "U1", "2026-01-05T09:00:00", 300, first)  # 5 h of a 6 h cap
    with db.write() as session:
        pay.set_cap(session, LEAD, "U1", Decimal(6), Decimal(40), at("2026-01-05T09:00:00"), "test")
    near_cap = pay.NearCap(db.read)
    with db.read() as session:
        assert near_cap(session, at("2026-01-05T15:00:00"), Decimal(40)) == []  # 5 h: not yet 90%
    work(db, "U1", "2026-01-05T15:00:00", 30, first)  # closed at 15:30, after the sums
    work(db, "U1", "2026-01-05T16:00:00", 30, first)  # closed at 16:30: after the next sums' instant
    later = at("2026-01-05T16:00:00")
    with db.read() as session:
        (status,) = near_cap(session, later, Decimal(40))  # stale: older sums + closed since
    assert status.clocked == timedelta(hours=6)
    deadline = time.monotonic() + 10
    while near_cap._taken_at != later:  # the sums taken again, beside
        assert time.monotonic() < deadline, "the near-cap sums were not taken again"
        time.sleep(0.01)
    with db.read() as session:
        (status,) = near_cap(session, later + timedelta(seconds=1), Decimal(40))
    assert status.clocked == timedelta(hours=6)
