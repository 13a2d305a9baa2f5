"""Where policy questions are decided: recording a question and the bot's answer, escalating to the
leads, a lead's answer (and the FAQ entry it becomes), feedback on answers, FAQ upkeep, and the
revision counters that keep every bot process's index fresh.

Pure rules on a Session and an explicit `now`; no Slack. States of a question:

    answered  --(👎 → "Ask a lead")-->  escalated  --(a lead answers)-->  resolved
    (not confident at asking time)  ->  escalated

Every move is a conditional UPDATE on the current state, so two leads answering at once, or a
double click, change the row once and the loser is told what happened.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlmodel import Session, col, select

from core.errors import UserError
from db.models import PolicyFaq, PolicyFeedback, PolicyQuestion, PolicyRevision
from db.statements import insert_ignore, rows_changed
from domain import audit
from domain.policy.index import MAX_QUESTION_CHARS, Analyzer, Answer, FaqEntry, Hit
from domain.policy.synonyms import tokenize

VIA_COMMAND = "command"
VIA_DM = "dm"
VIA_MENTION = "mention"

ANSWERED = "answered"
ESCALATED = "escalated"
RESOLVED = "resolved"

#: Longest answer a lead may write (it is shown in one Block Kit section, with the question).
MAX_ANSWER_CHARS = 2500
#: Longest FAQ question (an asked question, saved as is, is cut to the same length).
MAX_FAQ_QUESTION_CHARS = MAX_QUESTION_CHARS
#: A FAQ answer is quoted in full up to this length (a handbook passage is a short excerpt).
FAQ_QUOTE_CHARS = 1500

_REVISION_ROW = 1


@dataclass(frozen=True)
class Asked:
    """Who asked what, and where the answer goes back to."""

    asker_id: str
    text: str
    via: str  # VIA_COMMAND, VIA_DM or VIA_MENTION
    channel_id: str | None = None
    thread_ts: str | None = None  # the thread to answer in (a mention's thread; a DM thread if any)


@dataclass(frozen=True)
class Candidate:
    """A retrieved section or FAQ, as the lead sees it on the escalation card."""

    section_id: str | None
    title: str
    confidence: float
    faq_id: int | None = None


@dataclass(frozen=True)
class Revisions:
    handbook: int
    faqs: int


@dataclass(frozen=True)
class Resolution:
    question: PolicyQuestion
    faq: PolicyFaq | None


@dataclass(frozen=True)
class Vote:
    outcome: str  # "recorded", "changed" or "unchanged"
    helpful: bool
    up: int
    down: int
    question: PolicyQuestion


# ------------------------------------------------------------------------------------------ asking
def is_small_talk(text: str) -> bool:
    """ "thanks!", "hi", "ok": nothing to look up and nothing to bother a lead with."""
    return not any(Analyzer.is_content(word) for word in tokenize(text))


def quote_of(answer: Answer) -> tuple[str, str]:
    """What the bot quotes for a confident answer, and the title it cites.

    A handbook section is quoted as a short excerpt (its most relevant sentences); a lead's FAQ
    answer is quoted in full (up to FAQ_QUOTE_CHARS), since the lead wrote it to be the answer."""
    hit = answer.hit
    if hit is None:
        return "", ""
    if hit.faq is not None:
        return _clip(hit.faq.answer, FAQ_QUOTE_CHARS), _clip(hit.faq.question, 300)
    return answer.excerpt(), _clip(hit.title, 300)


def record_question(
    session: Session, asked: Asked, answer: Answer, now: datetime, source: str
) -> PolicyQuestion:
    """Record a question with the bot's decision: answered (confident) or escalated to the leads."""
    confident = answer.confident and answer.hit is not None
    hit = answer.hit
    quote, cited = quote_of(answer) if confident else ("", "")
    question = PolicyQuestion(
        asker_id=asked.asker_id,
        text=asked.text[:MAX_QUESTION_CHARS],
        via=asked.via,
        channel_id=asked.channel_id,
        thread_ts=asked.thread_ts,
        section_id=hit.section_id if confident and hit is not None else None,
        faq_id=hit.faq.id if confident and hit is not None and hit.faq is not None else None,
        quote=quote,
        cited=cited,
        confidence=round(hit.confidence, 4) if hit is not None else 0.0,
        off_topic=answer.off_topic,
        candidates=json.dumps([_candidate(h) for h in answer.candidates]),
        state=ANSWERED if confident else ESCALATED,
        escalated_by=None if confident else asked.asker_id,
        asked_at=now,
        escalated_at=None if confident else now,
    )
    session.add(question)
    session.flush()
    assert question.id is not None
    if not confident:
        audit.record(
            session,
            at=now,
            actor_id=asked.asker_id,
            action="policy.escalated",
            entity="policy_question",
            entity_id=question.id,
            source=source,
            reason="off_topic" if answer.off_topic else "not_confident",
            confidence=question.confidence,
        )
    return question


def repeated_escalation(session: Session, asked: Asked, answer: Answer) -> PolicyQuestion | None:
    """The asker's own open escalation of the same question (same words, whatever the case or
    punctuation), when this one would be escalated too: asking again adds nothing for the leads."""
    if answer.confident and answer.hit is not None:
        return None
    wanted = _words(asked.text[:MAX_QUESTION_CHARS])
    open_ones = session.exec(
        select(PolicyQuestion)
        .where(col(PolicyQuestion.asker_id) == asked.asker_id, col(PolicyQuestion.state) == ESCALATED)
        .order_by(col(PolicyQuestion.id).desc())
        .limit(50)
    )
    return next((q for q in open_ones if _words(q.text) == wanted), None)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _candidate(hit: Hit) -> dict[str, Any]:
    return {
        "section_id": hit.section_id,
        "title": _clip(hit.title, 200),
        "confidence": round(hit.confidence, 3),
        "faq_id": hit.faq.id if hit.faq is not None else None,
    }


def candidates_of(question: PolicyQuestion) -> list[Candidate]:
    try:
        raw = json.loads(question.candidates or "[]")
    except ValueError:
        return []
    return [
        Candidate(
            section_id=item.get("section_id"),
            title=str(item.get("title") or ""),
            confidence=float(item.get("confidence") or 0.0),
            faq_id=item.get("faq_id"),
        )
        for item in raw
        if isinstance(item, dict)
    ]


def get_question(session: Session, question_id: int) -> PolicyQuestion:
    question = session.get(PolicyQuestion, question_id)
    if question is None:
        raise UserError(f"I have no question #{question_id} on record.")
    return question


def queue_leads_card(session: Session, question_id: int, now: datetime) -> bool:
    """The escalation's card is to be posted in the leads' channel (by whichever process's poster
    claims it first); False when it already is queued or posted."""
    return bool(
        rows_changed(
            session,
            update(PolicyQuestion)
            .where(
                col(PolicyQuestion.id) == question_id,
                col(PolicyQuestion.state) == ESCALATED,
                col(PolicyQuestion.leads_ts).is_(None),
                col(PolicyQuestion.card_due_at).is_(None),
            )
            .values(card_due_at=now),
        )
    )


def leads_card_waiting(session: Session) -> bool:
    """Any card queued and not yet posted (a cheap look before waiting for the pacer)."""
    return (
        session.exec(
            select(PolicyQuestion.id).where(col(PolicyQuestion.card_due_at).is_not(None)).limit(1)
        ).first()
        is not None
    )


@dataclass(frozen=True)
class CardClaim:
    question: PolicyQuestion
    retried: bool  # a poster claimed it before and did not finish (it died, or Slack's answer was lost)


def claim_leads_card(session: Session, now: datetime, stale_before: datetime) -> CardClaim | None:
    """The oldest card waiting to be posted, claimed for this poster: one nobody claimed, or whose
    claim is older than `stale_before`. On PostgreSQL the row is locked and rows other posters hold
    are skipped (FOR UPDATE SKIP LOCKED); SQLite has a single writer. Commit before posting."""
    open_claim = col(PolicyQuestion.card_claimed_at)
    question = session.exec(
        select(PolicyQuestion)
        .where(
            col(PolicyQuestion.card_due_at).is_not(None),
            open_claim.is_(None) | (open_claim < stale_before),
        )
        .order_by(col(PolicyQuestion.card_due_at), col(PolicyQuestion.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if question is None:
        return None
    retried = question.card_claimed_at is not None
    question.card_claimed_at = now
    session.add(question)
    session.flush()
    return CardClaim(question, retried)


def set_leads_card(session: Session, question_id: int, channel: str, ts: str) -> None:
    """Remember where the escalation card was posted, so it can be updated when answered; it no
    longer waits to be posted."""
    session.execute(
        update(PolicyQuestion)
        .where(col(PolicyQuestion.id) == question_id)
        .values(leads_channel=channel, leads_ts=ts, card_due_at=None, card_claimed_at=None)
    )


def drop_leads_card(session: Session, question_id: int) -> None:
    """The card won't be posted (Slack refused it, or the question left the leads' hands first):
    the question still waits on every lead's Home tab while it is escalated."""
    session.execute(
        update(PolicyQuestion)
        .where(col(PolicyQuestion.id) == question_id)
        .values(card_due_at=None, card_claimed_at=None)
    )


# -------------------------------------------------------------------------------------- escalation
def check_private(question: PolicyQuestion, user_id: str) -> None:
    """An answer given privately (to /policy or in a DM) is the asker's alone: nobody else may vote
    on it, send it to the leads or see it, whatever question number a button carries. An answer in
    a channel thread is there for everyone in it."""
    if question.via != VIA_MENTION and question.asker_id != user_id:
        raise UserError("That answer was given to someone else, so there is nothing for you to do there.")


def escalate(
    session: Session, question_id: int, by_user_id: str, now: datetime, source: str
) -> tuple[PolicyQuestion, bool]:
    """An answered question goes to the leads (someone said the answer didn't help).

    Returns the question and whether this call escalated it (False: it already was, or a lead
    already answered it; the caller says which)."""
    check_private(get_question(session, question_id), by_user_id)
    moved = rows_changed(
        session,
        update(PolicyQuestion)
        .where(col(PolicyQuestion.id) == question_id, col(PolicyQuestion.state) == ANSWERED)
        .values(state=ESCALATED, escalated_by=by_user_id, escalated_at=now),
    )
    question = get_question(session, question_id)
    session.refresh(question)
    if moved:
        audit.record(
            session,
            at=now,
            actor_id=by_user_id,
            action="policy.escalated",
            entity="policy_question",
            entity_id=question_id,
            source=source,
            reason="not_helpful",
            answered_with=question.section_id or (f"faq:{question.faq_id}" if question.faq_id else None),
        )
    return question, bool(moved)


def answer_problem(text: str) -> str | None:
    """Why a lead's answer can't be sent as it is, or None."""
    if not text.strip():
        return "Write the answer the member should get."
    if len(text) > MAX_ANSWER_CHARS:
        return f"Keep the answer under {MAX_ANSWER_CHARS:,} characters (it is {len(text):,})."
    return None


def faq_question_problem(text: str) -> str | None:
    if not text.strip():
        return "A FAQ entry needs the question it answers."
    if len(text) > MAX_FAQ_QUESTION_CHARS:
        return f"Keep the question under {MAX_FAQ_QUESTION_CHARS} characters (it is {len(text):,})."
    return None


def resolve(
    session: Session,
    question_id: int,
    lead_id: str,
    answer: str,
    *,
    section_id: str | None,
    save_faq: bool,
    now: datetime,
    source: str,
) -> Resolution:
    """A lead answers an escalated question; with `save_faq` the answer becomes a FAQ entry that
    the bot serves for this question and its paraphrases from now on."""
    answer = answer.strip()
    problem = answer_problem(answer)
    if problem:
        raise UserError(problem)
    moved = rows_changed(
        session,
        update(PolicyQuestion)
        .where(col(PolicyQuestion.id) == question_id, col(PolicyQuestion.state) == ESCALATED)
        .values(state=RESOLVED, lead_id=lead_id, lead_answer=answer, resolved_at=now),
    )
    question = get_question(session, question_id)
    session.refresh(question)
    if not moved:
        if question.state == RESOLVED:
            who = "You" if question.lead_id == lead_id else f"<@{question.lead_id}>"
            raise UserError(f"{who} already answered question #{question_id}. Nothing changed.")
        raise UserError(
            f"Question #{question_id} was answered from the handbook and isn't waiting for a lead."
        )
    faq = None
    if save_faq:
        faq = PolicyFaq(
            question=question.text,
            answer=answer,
            section_id=section_id,
            question_id=question_id,
            author_id=lead_id,
            created_at=now,
            updated_at=now,
        )
        session.add(faq)
        session.flush()
        _bump(session, faqs=True)
        audit.record(
            session,
            at=now,
            actor_id=lead_id,
            action="policy.faq.created",
            entity="policy_faq",
            entity_id=faq.id or 0,
            source=source,
            question=faq.question,
            section_id=section_id,
        )
    audit.record(
        session,
        at=now,
        actor_id=lead_id,
        action="policy.answered",
        entity="policy_question",
        entity_id=question_id,
        source=source,
        answer=answer,
        faq_id=faq.id if faq else None,
    )
    return Resolution(question=question, faq=faq)


# Built once: a lead's every Home runs them (building them cost more than running them).
_ESCALATED_COUNT = select(func.count()).where(col(PolicyQuestion.state) == ESCALATED)
_ESCALATED = (
    select(PolicyQuestion)
    .where(col(PolicyQuestion.state) == ESCALATED)
    .order_by(col(PolicyQuestion.id))
    .limit(bindparam("limit"))
)
_FAQ_COUNT = select(func.count()).select_from(PolicyFaq).where(col(PolicyFaq.deleted_at).is_(None))


def open_escalations(session: Session, limit: int = 5) -> tuple[list[PolicyQuestion], int]:
    """The oldest questions still waiting for a lead, and how many there are."""
    count = session.exec(_ESCALATED_COUNT).one()
    rows = session.exec(_ESCALATED, params={"limit": limit}).all()
    return list(rows), int(count)


# ---------------------------------------------------------------------------------------- feedback
def vote(session: Session, question_id: int, user_id: str, helpful: bool, now: datetime) -> Vote:
    """👍 / 👎 on an answer: one vote per person per question; voting again changes it."""
    question = get_question(session, question_id)
    check_private(question, user_id)
    inserted = insert_ignore(
        session,
        PolicyFeedback,
        {
            "question_id": question_id,
            "user_id": user_id,
            "helpful": helpful,
            "created_at": now,
            "updated_at": now,
        },
    )
    if inserted:
        outcome = "recorded"
    else:
        changed = rows_changed(
            session,
            update(PolicyFeedback)
            .where(
                col(PolicyFeedback.question_id) == question_id,
                col(PolicyFeedback.user_id) == user_id,
                col(PolicyFeedback.helpful) != helpful,
            )
            .values(helpful=helpful, updated_at=now),
        )
        outcome = "changed" if changed else "unchanged"
    up, down = tally(session, question_id)
    return Vote(outcome=outcome, helpful=helpful, up=up, down=down, question=question)


def tally(session: Session, question_id: int) -> tuple[int, int]:
    rows = session.exec(
        select(PolicyFeedback.helpful, func.count())
        .where(col(PolicyFeedback.question_id) == question_id)
        .group_by(col(PolicyFeedback.helpful))
    ).all()
    counts = {bool(helpful): int(n) for helpful, n in rows}
    return counts.get(True, 0), counts.get(False, 0)


# -------------------------------------------------------------------------------------------- FAQs
def active_faqs(session: Session) -> list[FaqEntry]:
    """The FAQ entries the index serves."""
    rows = session.exec(
        select(PolicyFaq).where(col(PolicyFaq.deleted_at).is_(None)).order_by(col(PolicyFaq.id))
    ).all()
    return [
        FaqEntry(id=r.id or 0, question=r.question, answer=r.answer, section_id=r.section_id) for r in rows
    ]


def faq_count(session: Session) -> int:
    return int(session.exec(_FAQ_COUNT).one())


def list_faqs(session: Session, offset: int, limit: int) -> tuple[list[PolicyFaq], int]:
    """A page of FAQ entries, newest first, and how many there are."""
    rows = session.exec(
        select(PolicyFaq)
        .where(col(PolicyFaq.deleted_at).is_(None))
        .order_by(col(PolicyFaq.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), faq_count(session)


def get_faq(session: Session, faq_id: int) -> PolicyFaq:
    faq = session.get(PolicyFaq, faq_id)
    if faq is None:
        raise UserError(f"There is no FAQ entry #{faq_id}.")
    if faq.deleted_at is not None:
        raise UserError(f"FAQ entry #{faq_id} was deleted by <@{faq.editor_id}>. Nothing changed.")
    return faq


def edit_faq(
    session: Session,
    faq_id: int,
    editor_id: str,
    *,
    question: str,
    answer: str,
    section_id: str | None,
    now: datetime,
    source: str,
) -> PolicyFaq:
    question, answer = question.strip(), answer.strip()
    problem = faq_question_problem(question) or answer_problem(answer)
    if problem:
        raise UserError(problem)
    before = get_faq(session, faq_id)
    old = {"question": before.question, "answer": before.answer, "section_id": before.section_id}
    moved = rows_changed(
        session,
        update(PolicyFaq)
        .where(col(PolicyFaq.id) == faq_id, col(PolicyFaq.deleted_at).is_(None))
        .values(question=question, answer=answer, section_id=section_id, editor_id=editor_id, updated_at=now),
    )
    if not moved:
        get_faq(session, faq_id)  # raises: deleted meanwhile
    session.refresh(before)
    _bump(session, faqs=True)
    audit.record(
        session,
        at=now,
        actor_id=editor_id,
        action="policy.faq.edited",
        entity="policy_faq",
        entity_id=faq_id,
        source=source,
        before=old,
        after={"question": question, "answer": answer, "section_id": section_id},
    )
    return before


def delete_faq(session: Session, faq_id: int, by_id: str, now: datetime, source: str) -> PolicyFaq:
    """Stop serving a FAQ entry. Deleting one already deleted says who did."""
    faq = get_faq(session, faq_id)
    moved = rows_changed(
        session,
        update(PolicyFaq)
        .where(col(PolicyFaq.id) == faq_id, col(PolicyFaq.deleted_at).is_(None))
        .values(deleted_at=now, editor_id=by_id, updated_at=now),
    )
    session.refresh(faq)
    if not moved:
        get_faq(session, faq_id)  # raises: deleted by someone else meanwhile
    _bump(session, faqs=True)
    audit.record(
        session,
        at=now,
        actor_id=by_id,
        action="policy.faq.deleted",
        entity="policy_faq",
        entity_id=faq_id,
        source=source,
        question=faq.question,
    )
    return faq


# --------------------------------------------------------------------------------------- revisions
def revisions(session: Session) -> Revisions:
    """The counters a live index is compared with (one primary-key read)."""
    row = session.get(PolicyRevision, _REVISION_ROW)
    return Revisions(handbook=row.handbook, faqs=row.faqs) if row else Revisions(0, 0)


def handbook_reloaded(
    session: Session, by_id: str, now: datetime, source: str, *, sections: int, problems: list[str]
) -> Revisions:
    """A lead reloaded the handbook: every process reloads it when it next answers."""
    _bump(session, handbook=True)
    audit.record(
        session,
        at=now,
        actor_id=by_id,
        action="policy.handbook.reloaded",
        entity="policy_handbook",
        entity_id=_REVISION_ROW,
        source=source,
        sections=sections,
        problems=problems,
    )
    return revisions(session)


def _bump(session: Session, *, handbook: bool = False, faqs: bool = False) -> None:
    values: dict[str, Any] = {}
    if handbook:
        values["handbook"] = PolicyRevision.handbook + 1
    if faqs:
        values["faqs"] = PolicyRevision.faqs + 1
    moved = rows_changed(
        session, update(PolicyRevision).where(col(PolicyRevision.id) == _REVISION_ROW).values(**values)
    )
    if not moved:  # the migration seeds the row; recreate it if someone deleted it
        insert_ignore(
            session, PolicyRevision, {"id": _REVISION_ROW, "handbook": int(handbook), "faqs": int(faqs)}
        )


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
