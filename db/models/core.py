"""Members, skills, the audit log, the record of Slack deliveries already handled, and each member's
request count in their current minute."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class Member(SQLModel, table=True):
    """A Slack user the bot has met. Profile fields mirror `users.info` and are refreshed when stale."""

    user_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    real_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320, index=True)
    # core.grammar.email_key(email): the mailbox, to know a referred address under another spelling.
    email_key: str | None = Field(default=None, max_length=320, index=True)
    tz: str = Field(default="UTC", max_length=64)
    is_lead: bool = Field(default=False)
    is_bot: bool = Field(default=False)
    deleted: bool = Field(default=False)
    profile_refreshed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MemberSkill(SQLModel, table=True):
    """A vetted skill of a member, as a lowercase slug (`legal`, `medicine`, `python`)."""

    __tablename__ = "member_skill"

    user_id: str = Field(foreign_key="member.user_id", primary_key=True, max_length=32)
    skill: str = Field(primary_key=True, max_length=64, index=True)


class AuditEntry(SQLModel, table=True):
    """Who did what, when, and from where: one row per state change that matters in a dispute."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor_id: str = Field(max_length=32)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    source: str = Field(default="", max_length=120)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))


class ProcessedEvent(SQLModel, table=True):
    """A Slack delivery already handled (keyed by event_id), so a retry is acknowledged and ignored,
    across processes."""

    __tablename__ = "processed_event"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class MemberWindow(SQLModel, table=True):
    """How many requests of a kind (`commands`, `questions`) a member sent in their current minute,
    which began at their first request after the previous one ended (jobs/fairness.py). One row
    per member and kind, rewritten in place: the table never grows past the members."""

    __tablename__ = "member_window"

    user_id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(primary_key=True, max_length=16)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    count: int = Field(default=0)
