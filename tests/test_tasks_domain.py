"""The task rules on a real store (SQLite and PostgreSQL), without Slack: deadlines, counters,
state changes, the one-active-assignment index, and races decided by the database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.authz import Actor, Role
from core.errors import UserError
from db.engine import Database
from db.models import Assignment, Task
from domain import members, vetting
from domain import tasks as rules

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEAD = Actor("ULEAD", role=Role.LEAD, tz="UTC")
CAP = 3


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=40)
    yield database
    database.dispose()


def member(db: Database, user_id: str, *skills: str) -> Actor:
    with db.write() as session:
        members.ensure(session, user_id, NOW)
    return Actor(user_id, skills=frozenset(skills))


def new_task(db: Database, slots: int = 1, due: date | None = None, skill: str | None = None) -> int:
    draft = rules.TaskDraft(title="Review", rate_cents=12000, est_hours=6, slots=slots, due=due, skill=skill)
    with db.write() as session:
        task = rules.create(session, LEAD, draft, NOW, "test")
    assert task.id is not None
    return task.id


def claim(db: Database, task_id: int, who: Actor, now: datetime = NOW) -> rules.Taken:
    with db.write() as session:
        return rules.claim(session, task_id, who, now, CAP, "test")


def task(db: Database, task_id: int) -> Task:
    with db.write() as session:
        return rules.get(session, task_id)


def test_deadline_is_midnight_after_the_due_date_in_the_posters_timezone() -> None:
    assert rules.deadline(date(2026, 1, 9), "UTC") == datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    assert rules.deadline(date(2026, 1, 9), "America/New_York") == datetime(2026, 1, 10, 5, 0, tzinfo=UTC)
    assert rules.deadline(date(2026, 7, 9), "America/New_York") == datetime(2026, 7, 10, 4, 0, tzinfo=UTC)
    assert rules.deadline(date(2026, 1, 9), "Not/AZone") == datetime(2026, 1, 10, 0, 0, tzinfo=UTC)


def test_draft_checks_every_field() -> None:
    bad = rules.TaskDraft(title=" ", rate_cents=0, est_hours=0, slots=0, due=date(2026, 1, 4))
    assert set(rules.check_draft(bad, "UTC", NOW)) == {"title", "rate", "hours", "slots", "due"}
    good = rules.TaskDraft(title="Review", rate_cents=1, est_hours=0.5, slots=1, due=date(2026, 1, 5))
    assert rules.check_draft(good, "UTC", NOW) == {}


def test_counters_and_states_through_a_tasks_life(db: Database) -> None:
    task_id = new_task(db, slots=2)
    ana, bo, cy = member(db, "U1"), member(db, "U2"), member(db, "U3")
    claim(db, task_id, ana)
    taken = claim(db, task_id, bo)
    assert (taken.task.claimed, taken.task.state) == (2, rules.FULL)
    with pytest.raises(rules.TaskRefusal, match="is full") as refused:
        claim(db, task_id, cy)
    assert refused.value.card_stale
    with db.write() as session:
        rules.submit(session, task_id, "U1", "link", NOW, "test", vetting.ATTESTATION)
        after = rules.approve(session, task_id, "U1", LEAD, NOW, "test")
    assert (after.claimed, after.approved, after.state) == (1, 1, rules.FULL)  # approval keeps the slot
    with db.write() as session:
        rules.submit(session, task_id, "U2", "", NOW, "test", vetting.ATTESTATION)
        after = rules.reject(session, task_id, "U2", LEAD, "incomplete", NOW, "test")
    assert (after.claimed, after.approved, after.state) == (0, 1, rules.OPEN)  # rejection frees it
    claim(db, task_id, cy)
    with db.write() as session:
        rules.submit(session, task_id, "U3", "", NOW, "test", vetting.ATTESTATION)
        after = rules.approve(session, task_id, "U3", LEAD, NOW, "test")
    assert (after.claimed, after.approved, after.state) == (0, 2, rules.CLOSED)
    with pytest.raises(rules.TaskRefusal, match="closed"):
        claim(db, task_id, member(db, "U4"))


def test_release_only_before_submitting(db: Database) -> None:
    task_id = new_task(db, slots=1)
    claim(db, task_id, member(db, "U1"))
    with db.write() as session:
        rules.submit(session, task_id, "U1", "", NOW, "test", vetting.ATTESTATION)
    with db.write() as session, pytest.raises(UserError, match="waiting for review"):
        rules.release(session, task_id, "U1", NOW, "test")
    assert task(db, task_id).claimed == 1


def test_cap_counts_claimed_tasks_only(db: Database) -> None:
    ana = member(db, "U1")
    ids = [new_task(db) for _ in range(5)]
    for task_id in ids[:3]:
        claim(db, task_id, ana)
    with pytest.raises(rules.TaskRefusal, match=r"already hold 3 claimed tasks \(T-1, T-2, T-3\)"):
        claim(db, ids[3], ana)
    with db.write() as session:
        rules.submit(session, ids[0], "U1", "", NOW, "test", vetting.ATTESTATION)
    claim(db, ids[3], ana)


def test_one_active_assignment_per_member_and_task_is_a_database_rule(db: Database) -> None:
    task_id = new_task(db, slots=3)
    claim(db, task_id, member(db, "U1"))
    with pytest.raises(IntegrityError), db.write() as session:
        session.add(Assignment(task_id=task_id, user_id="U1", state=rules.SUBMITTED, claimed_at=NOW))
    with db.write() as session:  # a past (released) one next to an active one is fine
        session.add(Assignment(task_id=task_id, user_id="U1", state=rules.RELEASED, claimed_at=NOW))


def test_expiry_releases_claimed_not_submitted_and_only_once(db: Database) -> None:
    task_id = new_task(db, slots=3, due=date(2026, 1, 6))
    for user in ("U1", "U2"):
        claim(db, task_id, member(db, user))
    with db.write() as session:
        rules.submit(session, task_id, "U2", "", NOW, "test", vetting.ATTESTATION)
    with db.write() as session:
        assert rules.expire_claims(session, task_id, datetime(2026, 1, 6, 23, 59, tzinfo=UTC), "job")[1] == []
    later = datetime(2026, 1, 7, 0, 0, tzinfo=UTC)
    with db.write() as session:
        assert rules.expire_claims(session, task_id, later, "job")[1] == ["U1"]
    with db.write() as session:
        assert rules.expire_claims(session, task_id, later + timedelta(hours=1), "job")[1] == []
        assert rules.active_assignment(session, task_id, "U2") is not None
    assert task(db, task_id).claimed == 1
    with pytest.raises(rules.TaskRefusal, match="was due 2026-01-06"):
        claim(db, task_id, member(db, "U3"), later)


def test_concurrent_claims_never_exceed_the_slots(db: Database) -> None:
    task_id = new_task(db, slots=3)
    people = [member(db, f"U{i}") for i in range(30)]
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def attempt(who: Actor) -> None:
        barrier.wait()
        try:
            claim(db, task_id, who)
            outcomes.append("won")
        except rules.TaskRefusal as e:
            outcomes.append(e.message)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 3
    assert all("is full" in o for o in outcomes if o != "won")
    assert task(db, task_id).claimed == 3


def test_concurrent_claims_by_one_member_respect_the_cap(db: Database) -> None:
    ids = [new_task(db, slots=5) for _ in range(10)]
    ana = member(db, "U1")
    barrier = threading.Barrier(len(ids))
    won: list[int] = []

    def attempt(task_id: int) -> None:
        barrier.wait()
        try:
            claim(db, task_id, ana)
            won.append(task_id)
        except rules.TaskRefusal:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == CAP
    assert sum(task(db, i).claimed for i in ids) == CAP


def test_a_batch_of_claims_is_decided_in_click_order_as_if_one_by_one(db: Database) -> None:
    task_id = new_task(db, slots=4)
    ana, bo, cy, di, ed, fay = (member(db, u) for u in ("U1", "U2", "U3", "U4", "U5", "U6"))
    claim(db, task_id, ana)
    for _ in range(CAP):  # ed holds as many claimed tasks as anyone may
        claim(db, new_task(db), ed)
    clicks = [bo, ana, ed, bo, cy, di, fay]
    with db.write() as session:
        outcomes = rules.claim_all(session, task_id, [rules.Claim(m, "button") for m in clicks], NOW, CAP)

    said = [o.message if isinstance(o, rules.TaskRefusal) else "won" for o in outcomes]
    assert said[0] == "won"
    assert "already yours" in said[1]  # held before the batch
    assert f"You already hold {CAP} claimed tasks" in said[2]
    assert "already yours" in said[3]  # bo's second click, after their first won
    assert said[4:6] == ["won", "won"]
    assert "is full: all 4 slots are taken" in said[6]
    winners = [o for o in outcomes if isinstance(o, rules.Taken)]
    assert [w.assignment.user_id for w in winners] == ["U2", "U3", "U4"]
    assert all(w.task.claimed == 4 and w.task.state == rules.FULL for w in winners)
    assert task(db, task_id).claimed == 4
    with db.read() as session:
        entries = [e for e in rules.history(session, task_id, 0, 50)[0] if e.action == "task.claimed"]
    assert [(e.actor_id, e.source, json.loads(e.detail)["slots_left"]) for e in entries[1:]] == [
        ("U2", "button", 2),
        ("U3", "button", 1),
        ("U4", "button", 0),
    ]


def test_a_batch_on_a_cancelled_or_full_task_refuses_everyone_and_changes_nothing(db: Database) -> None:
    cancelled, full = new_task(db, slots=2), new_task(db, slots=1)
    clickers = [member(db, f"U{i}") for i in range(1, 5)]
    claim(db, cancelled, clickers[0])
    claim(db, full, clickers[0])
    with db.write() as session:
        rules.cancel(session, cancelled, LEAD, NOW, "test")
    for task_id, reason in ((cancelled, "was cancelled"), (full, "is full")):
        with db.write() as session:
            outcomes = rules.claim_all(
                session, task_id, [rules.Claim(m, "b") for m in clickers[1:]], NOW, CAP
            )
        assert all(
            isinstance(o, rules.TaskRefusal) and reason in o.message and o.card_stale for o in outcomes
        )
    assert (task(db, cancelled).claimed, task(db, full).claimed) == (0, 1)


def test_batches_racing_on_one_task_give_each_slot_once_and_each_member_one(db: Database) -> None:
    """Several deciders at once (as several processes would be), each with its batch; members appear
    in more than one batch (a click reaching two processes)."""
    task_id = new_task(db, slots=7)
    people = [member(db, f"U{i:02d}") for i in range(30)]
    batches = [[people[(b * 5 + i) % 30] for i in range(8)] for b in range(6)]
    barrier = threading.Barrier(len(batches))
    won: list[str] = []
    errors: list[BaseException] = []

    def decide(batch: list[Actor]) -> None:
        barrier.wait()
        try:
            with db.write() as session:
                outcomes = rules.claim_all(session, task_id, [rules.Claim(m, "b") for m in batch], NOW, CAP)
            won.extend(o.assignment.user_id for o in outcomes if isinstance(o, rules.Taken))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=decide, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(won) == 7 and len(set(won)) == 7
    assert (task(db, task_id).claimed, task(db, task_id).state) == (7, rules.FULL)
    with db.read() as session:
        held = session.exec(select(Assignment.user_id).where(col(Assignment.task_id) == task_id)).all()
    assert sorted(held) == sorted(won)
