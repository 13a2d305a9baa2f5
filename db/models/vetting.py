"""Joining and vetting: the skill catalogue, members' applications for a skill, and the welcome
ledger that makes the welcome DM exactly-once.

An application is `open` until a lead approves or declines it; a partial unique index keeps one
open application per member and skill whatever the race. A welcome row is written before the DM
is sent (pending → sending → sent / failed), so a replayed event or a restart never sends it twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class Skill(SQLModel, table=True):
    """A skill of the catalogue: a lowercase slug (`legal`) and its name (`Legal review`)."""

    __tablename__ = "skill"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class SkillApplication(SQLModel, table=True):
    """A member asking to be vetted for a skill: open → approved / declined."""

    __tablename__ = "skill_application"
    __table_args__ = (
        Index("ix_skill_application_state_created", "state", "created_at"),
        Index("ix_skill_application_user_skill", "user_id", "skill", "id"),
        Index(
            "uq_skill_application_open",
            "user_id",
            "skill",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="member.user_id", max_length=32)
    skill: str = Field(max_length=64)
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    state: str = Field(default="open", max_length=16)  # open / approved / declined
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    card_channel: str | None = Field(default=None, max_length=32)
    card_ts: str | None = Field(default=None, max_length=32)


class Welcome(SQLModel, table=True):
    """One row per member the bot welcomed (or is welcoming): the ledger of the welcome DM, and
    what the leads' daily digest of new members reads (`digested_at`)."""

    __tablename__ = "welcome"
    __table_args__ = (Index("ix_welcome_state", "state"), Index("ix_welcome_digested", "digested_at"))

    user_id: str = Field(primary_key=True, max_length=32)
    trigger: str = Field(max_length=32)  # team_join / app_home_opened
    state: str = Field(default="pending", max_length=16)  # pending / sending / sent / failed
    attempts: int = Field(default=0)
    error: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    channel: str | None = Field(default=None, max_length=32)
    ts: str | None = Field(default=None, max_length=32)
    digested_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
