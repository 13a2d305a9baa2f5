"""The referral rules on a real database (SQLite and PostgreSQL), without Slack: the state machine
in full, tracked hours, exactly-once eligibility and first-referral-wins under real threads, the
leaderboard and the leads' waiting list."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from core.authz import Actor, Role
from core.errors import UserError
from db.engine import Database
from db.models import AuditEntry, Referral, TimeEntry
from domain import members
from domain import referrals as rules
from domain.members import Profile

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
TEN = Decimal(10)
LEAD = Actor("ULEAD", role=Role.LEAD)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=12)
    yield database
    database.dispose()


def refer(db: Database, by: str, email: str, now: datetime = NOW) -> Referral:
    with db.write() as session:
        return rules.refer(
            session,
            by=Actor(by, email=f"{by.lower()}@example.com"),
            email=email,
            name="",
            skill=None,
            account=None,
            bonus_cents=25_000,
            now=now,
            source="test",
        )


def force_status(db: Database, referral_id: int, status: str, referee: str | None = None) -> None:
    with db.write() as session:
        values: dict[str, Any] = {"status": status}
        if referee:
            values["referee_user_id"] = referee
        session.execute(update(Referral).where(col(Referral.id) == referral_id).values(**values))


def track(db: Database, user_id: str, hours: float, **extra: Any) -> None:
    """Time on no task that a lead approved (unless `approved_by=None`): it counts toward the bonus."""
    extra.setdefault("approved_by", "ULEAD")
    with db.write() as session:
        members.ensure(session, user_id, NOW)
        ended = extra.pop("ended_at", NOW)
        session.add(
            TimeEntry(user_id=user_id, started_at=NOW - timedelta(hours=hours), ended_at=ended, **extra)
        )


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in n real threads released at the same moment; results (or exceptions) by i."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # collected for the assertions
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_every_transition_is_allowed_exactly_when_the_state_machine_says(db: Database) -> None:
    allowed = {
        ("referred", "applied"),
        ("referred", "rejected"),
        ("applied", "interviewing"),
        ("applied", "rejected"),
        ("interviewing", "hired"),
        ("interviewing", "rejected"),
        ("eligible", "paid"),
    }
    n = 0
    for before in rules.STATUSES:
        for after in rules.STATUSES:
            if before == after:
                continue
            n += 1
            referral = refer(db, "U1", f"t{n}@x.example")
            force_status(db, referral.id or 0, before)
            with db.write() as session:
                try:
                    change = rules.set_status(
                        session,
                        by=LEAD,
                        referral_id=referral.id or 0,
                        status=after,
                        threshold_hours=TEN,
                        now=NOW,
                        source="test",
                    )
                except UserError as e:
                    assert (before, after) not in allowed, e.message
                    assert f"R-{referral.id} is {before}" in e.message
                    continue
            assert (before, after) in allowed
            assert change is not None and change.referral.status == after and change.by == "ULEAD"
    # hired → eligible is the one step no lead takes: it happens by itself.
    assert rules.lead_steps("hired") == ()


def test_a_repeated_status_changes_nothing(db: Database) -> None:
    referral = refer(db, "U1", "same@x.example")
    with db.write() as session:
        assert (
            rules.set_status(
                session,
                by=LEAD,
                referral_id=referral.id or 0,
                status="referred",
                threshold_hours=TEN,
                now=NOW,
                source="test",
            )
            is None
        )
    with db.write() as session:
        assert [a.action for a in session.exec(select(AuditEntry))] == ["referral.created"]


def test_hired_and_paid_are_stamped(db: Database) -> None:
    referral = refer(db, "U1", "stamp@x.example")
    force_status(db, referral.id or 0, "interviewing")
    with db.write() as session:
        change = rules.set_status(
            session,
            by=LEAD,
            referral_id=referral.id or 0,
            status="hired",
            threshold_hours=TEN,
            now=NOW,
            source="t",
        )
    assert change is not None and change.referral.hired_at == NOW and change.referral.updated_by == "ULEAD"


def test_refusals_in_the_rules(db: Database) -> None:
    with db.write() as session, pytest.raises(UserError, match="your own address"):
        rules.refer(
            session,
            by=Actor("U1", email="Me@X.example"),
            email="me@x.example",
            name="",
            skill=None,
            account=None,
            bonus_cents=1,
            now=NOW,
            source="t",
        )
    member = Profile("U9", "nine", "Nine", "UTC", "nine@x.example")
    with db.write() as session, pytest.raises(UserError, match="already belongs to a member"):
        rules.refer(
            session,
            by=Actor("U1"),
            email="nine@x.example",
            name="",
            skill=None,
            account=member,
            bonus_cents=1,
            now=NOW,
            source="t",
        )
    refer(db, "U1", "first@x.example")
    with pytest.raises(UserError, match="already in the referral program") as refused:
        refer(db, "U2", "first@x.example")
    assert "U1" not in refused.value.message
    with db.write() as session:
        assert [r.referrer_id for r in session.exec(select(Referral))] == ["U1"]


def test_first_referral_wins_among_many_threads(db: Database) -> None:
    results = run_together(8, lambda i: refer(db, f"U{i}", "wanted@x.example"))
    won = [r for r in results if isinstance(r, Referral)]
    refused = [r for r in results if isinstance(r, UserError)]
    assert len(won) == 1 and len(refused) == 7, results
    with db.write() as session:
        rows = list(session.exec(select(Referral)))
        created = list(session.exec(select(AuditEntry).where(AuditEntry.action == "referral.created")))
    assert [r.referrer_id for r in rows] == [won[0].referrer_id]
    assert len(created) == 1


def test_bonus_hours_count_closed_unflagged_approved_entries_only(db: Database) -> None:
    track(db, "UA", 4)
    track(db, "UA", 2.5)
    track(db, "UA", 6, flagged=True, flag_reason="overlap", approved_by=None)
    track(db, "UA", 3, ended_at=None)  # still clocked in
    track(db, "UA", 5, approved_by=None)  # on no task and never reviewed
    track(db, "UB", 1)
    with db.write() as session:
        hours = rules.bonus_hours(session, ["UA", "UB", "UC"])
    assert hours == {"UA": Decimal("6.5"), "UB": Decimal(1)}


def test_eligibility_happens_exactly_once_when_checks_race(db: Database) -> None:
    referral = refer(db, "U1", "race@x.example")
    force_status(db, referral.id or 0, "hired", referee="UREF")
    track(db, "UREF", 9.99)

    def check(_: int) -> list[rules.Promotion]:
        with db.write() as session:
            return rules.promote_eligible(
                session, threshold_hours=TEN, now=NOW, source="t", referee_user_id="UREF"
            )

    assert check(0) == []  # 9.99 hours is not 10
    track(db, "UREF", 0.01)
    results = run_together(6, check)
    assert not any(isinstance(r, Exception) for r in results), results
    promoted = [p for r in results for p in r]
    assert len(promoted) == 1 and promoted[0].hours == Decimal(10)
    with db.write() as session:
        row = session.get(Referral, referral.id)
        trail = list(session.exec(select(AuditEntry).where(AuditEntry.action == "referral.status")))
    assert row is not None and (row.status, row.eligible_at, row.updated_by) == ("eligible", NOW, "crewcall")
    assert len(trail) == 1
    # The sweep afterwards finds nothing more to do.
    with db.write() as session:
        assert rules.promote_eligible(session, threshold_hours=TEN, now=NOW, source="t") == []


def test_only_hired_referrals_become_eligible(db: Database) -> None:
    for i, status in enumerate(("referred", "interviewing", "rejected", "paid")):
        referral = refer(db, "U1", f"s{i}@x.example")
        force_status(db, referral.id or 0, status, referee=f"UR{i}")
        track(db, f"UR{i}", 20)
    with db.write() as session:
        assert rules.promote_eligible(session, threshold_hours=TEN, now=NOW, source="t") == []


def test_linking_is_case_insensitive_and_once(db: Database) -> None:
    referral = refer(db, "U1", "link@x.example")
    with db.write() as session:
        linked = rules.link_referee(session, "Link@X.Example", "UNEW", NOW, "t")
    assert linked is not None and linked.id == referral.id and linked.referee_user_id == "UNEW"
    with db.write() as session:
        assert rules.link_referee(session, "link@x.example", "UOTHER", NOW, "t") is None
        assert rules.link_referee(session, "nobody@x.example", "UNEW", NOW, "t") is None
    with db.write() as session:
        row = session.get(Referral, referral.id)
    assert row is not None and row.referee_user_id == "UNEW"


def test_leaderboard_counts_this_months_hires_of_opted_in_members(db: Database) -> None:
    def hired(by: str, email: str, when: datetime, status: str = "hired") -> None:
        referral = refer(db, by, email)
        with db.write() as session:
            session.execute(
                update(Referral).where(col(Referral.id) == referral.id).values(status=status, hired_at=when)
            )

    hired("U1", "a@x.example", datetime(2026, 1, 2, tzinfo=UTC))
    hired("U1", "b@x.example", datetime(2026, 1, 31, 23, 59, tzinfo=UTC), status="paid")
    hired("U1", "c@x.example", datetime(2025, 12, 31, 23, 59, tzinfo=UTC))  # last month
    hired("U2", "d@x.example", datetime(2026, 1, 10, tzinfo=UTC))
    hired("U3", "e@x.example", datetime(2026, 1, 11, tzinfo=UTC))
    refer(db, "U3", "f@x.example")  # not hired
    with db.write() as session:
        assert rules.leaderboard(session, NOW) == []
        assert rules.set_leaderboard(session, "U1", True, NOW, "t")
        assert rules.set_leaderboard(session, "U3", True, NOW, "t")
        assert not rules.set_leaderboard(session, "U3", True, NOW, "t")
    with db.write() as session:
        assert rules.leaderboard(session, NOW) == [("U1", 2), ("U3", 1)]
        assert rules.set_leaderboard(session, "U1", False, NOW, "t")
        assert not rules.set_leaderboard(session, "U1", False, NOW, "t")
    with db.write() as session:
        assert rules.leaderboard(session, NOW) == [("U3", 1)]
        assert rules.leaderboard(session, datetime(2026, 2, 1, tzinfo=UTC)) == []


def test_waiting_on_lead_puts_owed_bonuses_first_then_the_longest_waiting(db: Database) -> None:
    statuses = ["interviewing", "referred", "hired", "eligible", "rejected", "applied", "paid"]
    for i, status in enumerate(statuses):
        referral = refer(db, "U1", f"w{i}@x.example", now=NOW + timedelta(hours=i))
        with db.write() as session:
            session.execute(
                update(Referral)
                .where(col(Referral.id) == referral.id)
                .values(status=status, updated_at=NOW + timedelta(hours=i))
            )
    with db.write() as session:
        waiting = rules.waiting_on_lead(session)
    assert waiting.counts == {"eligible": 1, "referred": 1, "applied": 1, "interviewing": 1}
    assert [r.status for r in waiting.oldest] == ["eligible", "interviewing", "referred", "applied"]
    assert waiting.owed_cents == 25_000


def test_totals_and_pages_of_a_referrer(db: Database) -> None:
    for i, status in enumerate(["referred", "hired", "eligible", "paid", "paid", "rejected"]):
        referral = refer(db, "U1", f"p{i}@x.example")
        force_status(db, referral.id or 0, status)
    refer(db, "U2", "other@x.example")
    with db.write() as session:
        totals = rules.totals_for(session, "U1")
        first, more = rules.of_referrer(session, "U1", limit=4)
        rest, end = rules.of_referrer(session, "U1", limit=4, before_id=more)
    assert totals == rules.Totals(earned_cents=25_000, pending_cents=50_000, paid_cents=50_000, count=6)
    assert [r.id for r in first] == [6, 5, 4, 3] and more == 3
    assert [r.id for r in rest] == [2, 1] and end is None


def test_month_bounds_and_hours_formatting() -> None:
    assert rules.month_bounds(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert [rules.format_hours(Decimal(x)) for x in ("10", "9.5", "9.999", "0", "12.25")] == [
        "10",
        "9.5",
        "9.99",
        "0",
        "12.25",
    ]
