"""The rules of policy questions (domain/policy/service.py), directly on a real store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import UserError
from db.engine import Database
from domain.policy import PolicyIndex, load_handbook
from domain.policy import service as rules

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def index() -> PolicyIndex:
    sections, _ = load_handbook(ROOT / "policies")
    return PolicyIndex.build(sections)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def _ask(db: Database, index: PolicyIndex, text: str, asker: str = "U1", via: str = rules.VIA_COMMAND) -> int:
    with db.write() as session:
        question = rules.record_question(
            session, rules.Asked(asker, text, via, "C1"), index.answer(text), NOW, "test"
        )
        assert question.id is not None
        return question.id


def test_confident_questions_are_answered_and_the_rest_escalated(db: Database, index: PolicyIndex) -> None:
    answered = _ask(db, index, "when is payday?")
    escalated = _ask(db, index, "what's the weather in chicago?")
    with db.write() as session:
        payday = rules.get_question(session, answered)
        weather = rules.get_question(session, escalated)
        assert (payday.state, payday.section_id, payday.cited) == (
            "answered",
            "pay-and-hours#payday",
            "Payday",
        )
        assert "Friday" in payday.quote
        assert (weather.state, weather.off_topic, weather.quote, weather.escalated_by) == (
            "escalated",
            True,
            "",
            "U1",
        )
        waiting, count = rules.open_escalations(session)
        assert count == 1 and [q.id for q in waiting] == [escalated]


def test_small_talk_has_nothing_to_look_up() -> None:
    assert rules.is_small_talk("thanks!") and rules.is_small_talk("ok") and rules.is_small_talk("")
    assert not rules.is_small_talk("payday?")


def test_votes_are_one_per_person_and_changeable(db: Database, index: PolicyIndex) -> None:
    qid = _ask(db, index, "when is payday?", via=rules.VIA_MENTION)  # in a thread: anyone may vote
    with db.write() as session:
        assert rules.vote(session, qid, "U1", True, NOW).outcome == "recorded"
    with db.write() as session:
        assert rules.vote(session, qid, "U1", True, NOW).outcome == "unchanged"
    with db.write() as session:
        changed = rules.vote(session, qid, "U1", False, NOW + timedelta(minutes=1))
        assert (changed.outcome, changed.up, changed.down) == ("changed", 0, 1)
    with db.write() as session:
        other = rules.vote(session, qid, "U2", True, NOW)
        assert (other.up, other.down) == (1, 1)
    with db.write() as session, pytest.raises(UserError, match="no question #999"):
        rules.vote(session, 999, "U1", True, NOW)


def test_a_private_answer_is_the_askers_alone(db: Database, index: PolicyIndex) -> None:
    qid = _ask(db, index, "when is payday?")  # answered privately to U1
    for act in (
        lambda session: rules.vote(session, qid, "U2", True, NOW),
        lambda session: rules.escalate(session, qid, "U2", NOW, "test"),
    ):
        with db.write() as session, pytest.raises(UserError, match="given to someone else"):
            act(session)
    with db.write() as session:
        assert rules.get_question(session, qid).state == "answered"
        assert rules.tally(session, qid) == (0, 0)


def test_escalating_an_answer_happens_once(db: Database, index: PolicyIndex) -> None:
    qid = _ask(db, index, "when is payday?", via=rules.VIA_MENTION)
    with db.write() as session:
        question, moved = rules.escalate(session, qid, "U2", NOW, "test")
        assert moved and question.state == "escalated" and question.escalated_by == "U2"
    with db.write() as session:
        question, moved = rules.escalate(session, qid, "U1", NOW, "test")
        assert not moved and question.escalated_by == "U2"


def test_a_lead_answer_resolves_once_and_saves_a_faq(db: Database, index: PolicyIndex) -> None:
    qid = _ask(db, index, "can I bring my dog to the team call?")
    with db.write() as session:
        before = rules.revisions(session)
        with pytest.raises(UserError, match="Write the answer"):
            rules.resolve(session, qid, "ULEAD", "  ", section_id=None, save_faq=True, now=NOW, source="t")
        with pytest.raises(UserError, match="under 2,500"):
            rules.resolve(
                session, qid, "ULEAD", "x" * 2501, section_id=None, save_faq=True, now=NOW, source="t"
            )
    with db.write() as session:
        done = rules.resolve(
            session, qid, "ULEAD", "Yes.", section_id=None, save_faq=True, now=NOW, source="t"
        )
        assert done.question.state == "resolved" and done.faq is not None and done.faq.question_id == qid
        assert rules.revisions(session).faqs == before.faqs + 1
        assert rules.active_faqs(session)[0].question == "can I bring my dog to the team call?"
    with db.write() as session, pytest.raises(UserError, match="You already answered"):
        rules.resolve(session, qid, "ULEAD", "No.", section_id=None, save_faq=True, now=NOW, source="t")
    with db.write() as session, pytest.raises(UserError, match="<@ULEAD> already answered"):
        rules.resolve(session, qid, "ULEAD2", "No.", section_id=None, save_faq=True, now=NOW, source="t")
    answered = _ask(db, index, "when is payday?")
    with db.write() as session, pytest.raises(UserError, match="isn't waiting for a lead"):
        rules.resolve(
            session, answered, "ULEAD", "Fri.", section_id=None, save_faq=False, now=NOW, source="t"
        )
    with db.write() as session:
        assert len(rules.active_faqs(session)) == 1


def test_concurrent_answers_resolve_once(db: Database, index: PolicyIndex) -> None:
    qid = _ask(db, index, "can I bring my dog to the team call?")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def answer(lead: str) -> None:
        barrier.wait()
        try:
            with db.write() as session:
                rules.resolve(
                    session, qid, lead, f"from {lead}", section_id=None, save_faq=True, now=NOW, source="t"
                )
            outcomes.append("won")
        except UserError:
            outcomes.append("lost")

    threads = [threading.Thread(target=answer, args=(f"ULEAD{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    with db.write() as session:
        assert len(rules.active_faqs(session)) == 1


def test_faq_edit_and_delete(db: Database, index: PolicyIndex) -> None:
    qid = _ask(db, index, "can I bring my dog to the team call?")
    with db.write() as session:
        faq = rules.resolve(
            session, qid, "ULEAD", "Yes.", section_id=None, save_faq=True, now=NOW, source="t"
        ).faq
        assert faq is not None and faq.id is not None
        faq_id = faq.id
    with db.write() as session:
        edited = rules.edit_faq(
            session,
            faq_id,
            "ULEAD2",
            question="dogs on calls?",
            answer="Only internal calls.",
            section_id="community#code-of-conduct",
            now=NOW + timedelta(hours=1),
            source="t",
        )
        assert (edited.answer, edited.editor_id, edited.updated_at) == (
            "Only internal calls.",
            "ULEAD2",
            NOW + timedelta(hours=1),
        )
        rows, total = rules.list_faqs(session, 0, 10)
        assert total == 1 and rows[0].section_id == "community#code-of-conduct"
    with db.write() as session:
        rules.delete_faq(session, faq_id, "ULEAD", NOW, "t")
    with db.write() as session:
        assert rules.active_faqs(session) == [] and rules.faq_count(session) == 0
        with pytest.raises(UserError, match="deleted by <@ULEAD>"):
            rules.delete_faq(session, faq_id, "ULEAD2", NOW, "t")
        with pytest.raises(UserError, match="deleted by <@ULEAD>"):
            rules.edit_faq(
                session, faq_id, "ULEAD2", question="q", answer="a", section_id=None, now=NOW, source="t"
            )
        with pytest.raises(UserError, match="no FAQ entry #77"):
            rules.get_faq(session, 77)


def test_every_faq_change_and_reload_moves_the_revisions(db: Database, index: PolicyIndex) -> None:
    with db.write() as session:
        start = rules.revisions(session)
        after_reload = rules.handbook_reloaded(session, "ULEAD", NOW, "t", sections=17, problems=[])
    assert after_reload == rules.Revisions(start.handbook + 1, start.faqs)
    qid = _ask(db, index, "can I bring my dog to the team call?")
    with db.write() as session:
        faq = rules.resolve(
            session, qid, "ULEAD", "Yes.", section_id=None, save_faq=True, now=NOW, source="t"
        ).faq
        assert faq is not None and faq.id is not None
    with db.write() as session:
        rules.edit_faq(
            session, faq.id, "ULEAD", question="q?", answer="a.", section_id=None, now=NOW, source="t"
        )
    with db.write() as session:
        rules.delete_faq(session, faq.id, "ULEAD", NOW, "t")
    with db.write() as session:
        assert rules.revisions(session) == rules.Revisions(start.handbook + 1, start.faqs + 3)
