"""Announcements, their outbox (one delivery row per recipient) and acknowledgements.

The outbox is written in the same transaction that moves an announcement from `scheduled` to
`sending`, before any message leaves; the sender (`jobs/announcements.py`) then works through it,
recording each delivery's outcome, so a restart resumes exactly where the last process stopped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class Announcement(SQLModel, table=True):
    """A lead's broadcast: `draft` (in the preview modal) → `scheduled` → `sending` → `done`, or
    `cancelled` (from scheduled or while sending). `audience` holds comma-separated channel IDs or
    skills, according to `audience_kind` (channels / skills / everyone)."""

    id: int | None = Field(default=None, primary_key=True)
    author_id: str = Field(max_length=32)
    author_name: str = Field(default="", max_length=200)
    author_tz: str = Field(default="UTC", max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    audience_kind: str = Field(max_length=16)
    audience: str = Field(default="", sa_column=Column(Text, nullable=False))
    ask_ack: bool = Field(default=True)
    state: str = Field(default="scheduled", max_length=16, index=True)
    send_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    total: int = Field(default=0)
    status_channel: str | None = Field(default=None, max_length=32)
    status_ts: str | None = Field(default=None, max_length=32)
    ack_refresh_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    cancelled_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class AnnouncementDelivery(SQLModel, table=True):
    """One message of an announcement to one recipient (a DM to a member, or a post into a channel):
    pending → sending (claimed, the API call may be under way) → sent / failed; or cancelled.
    `channel_id`/`message_ts` say where it landed."""

    __tablename__ = "announcement_delivery"
    __table_args__ = (
        UniqueConstraint("announcement_id", "target", name="uq_announcement_delivery_target"),
        Index("ix_announcement_delivery_state", "announcement_id", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    announcement_id: int = Field(foreign_key="announcement.id")
    kind: str = Field(max_length=8)  # dm / channel
    target: str = Field(max_length=32)  # user ID for a DM, channel ID for a post
    state: str = Field(default="pending", max_length=10)
    attempts: int = Field(default=0)
    last_error: str = Field(default="", max_length=100)
    claimed_by: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)


class AnnouncementAck(SQLModel, table=True):
    """A member pressed Got it: once per member and announcement (the primary key sees to it)."""

    __tablename__ = "announcement_ack"

    announcement_id: int = Field(foreign_key="announcement.id", primary_key=True)
    user_id: str = Field(primary_key=True, max_length=32)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
