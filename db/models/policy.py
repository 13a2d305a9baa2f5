"""Policy answers: the questions asked, the FAQ entries leads saved, feedback on answers, and the
revision counters that tell every bot process when its live index is stale."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class PolicyQuestion(SQLModel, table=True):
    """One question, from asking to answer: `answered` by the bot, `escalated` to the leads, or
    `resolved` by a lead. The state moves only by conditional UPDATEs (see domain/policy/service.py)."""

    __tablename__ = "policy_question"
    __table_args__ = (
        Index("ix_policy_question_state", "state", "id"),
        Index(
            "ix_policy_question_card_due",
            "card_due_at",
            postgresql_where=text("card_due_at IS NOT NULL"),
            sqlite_where=text("card_due_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    asker_id: str = Field(max_length=32, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    via: str = Field(max_length=16)  # command / dm / mention
    channel_id: str | None = Field(default=None, max_length=32)  # where it was asked
    thread_ts: str | None = Field(default=None, max_length=32)  # the thread to answer in (dm, mention)
    section_id: str | None = Field(default=None, max_length=300)  # the section the bot answered with
    faq_id: int | None = Field(default=None)  # or the FAQ entry (no FK: a FAQ may be deleted later)
    quote: str = Field(default="", sa_column=Column(Text, nullable=False))  # what the bot quoted
    cited: str = Field(default="", max_length=300)  # the title it cited (section heading or FAQ question)
    confidence: float = Field(default=0.0)
    off_topic: bool = Field(default=False)
    candidates: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON, for the lead
    state: str = Field(default="answered", max_length=16)
    escalated_by: str | None = Field(default=None, max_length=32)  # the asker, or who pressed 👎
    lead_id: str | None = Field(default=None, max_length=32)
    lead_answer: str = Field(default="", sa_column=Column(Text, nullable=False))
    leads_channel: str | None = Field(default=None, max_length=32)  # the leads-channel card
    leads_ts: str | None = Field(default=None, max_length=32)
    # The leads' card waits to be posted (any process's poster takes it), since this instant; and
    # when a poster took it (another may take it again once that claim is stale: the poster died).
    card_due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    card_claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    asked_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    escalated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class PolicyFaq(SQLModel, table=True):
    """A question a lead answered, served by the index from then on (with its paraphrases).
    Deleting sets `deleted_at`, so the history (and the audit log's references) stay readable."""

    __tablename__ = "policy_faq"

    id: int | None = Field(default=None, primary_key=True)
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(sa_column=Column(Text, nullable=False))
    section_id: str | None = Field(default=None, max_length=300)
    question_id: int | None = Field(default=None, foreign_key="policy_question.id")
    author_id: str = Field(max_length=32)
    editor_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), index=True))


class PolicyFeedback(SQLModel, table=True):
    """👍 / 👎 on an answer: one vote per person per question, which they may change."""

    __tablename__ = "policy_feedback"

    question_id: int = Field(foreign_key="policy_question.id", primary_key=True)
    user_id: str = Field(primary_key=True, max_length=32)
    helpful: bool
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class PolicyRevision(SQLModel, table=True):
    """One row (id 1): counters bumped in the same transaction as a handbook reload or a FAQ change.
    Each process compares them with the revisions its live index was built from."""

    __tablename__ = "policy_revision"

    id: int = Field(primary_key=True)
    handbook: int = Field(default=0)
    faqs: int = Field(default=0)
