"""Shifts, their members, the reminder ledger and attendance incidents.

A shift is a series of occurrences: one for `repeat="none"`, an endless daily or weekly series
otherwise. Occurrence 0 is `first_starts_at`..`first_ends_at`; occurrence n keeps the same local
wall-clock times in `tz` (see `domain.shifts.occurrence_window`). `starts_at`/`ends_at` are the
current occurrence (`occurrence`): the next one to start, or the one-off that is running.

`filled` counts members and is changed only by conditional updates. The reminder ledger
(`shift_reminder`) is what makes reminders exactly-once across restarts: the scheduler job is only
the wake-up, the ledger row says whether the DM went out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from db.models.work import TimeEntry
from db.types import UTCDateTime


class Shift(SQLModel, table=True):
    __table_args__ = (Index("ix_shift_state_starts", "state", "starts_at"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    tz: str = Field(max_length=64)  # the zone the lead set the times in; occurrences keep its wall clock
    first_starts_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    first_ends_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    starts_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    occurrence: int = Field(default=0)  # index of the occurrence starts_at/ends_at describe
    last_started: int = Field(default=-1)  # highest occurrence whose start was processed
    closed_through: int = Field(default=-1)  # highest occurrence whose attendance was judged
    slots: int
    filled: int = Field(default=0)
    skill: str | None = Field(default=None, max_length=64)
    repeat: str = Field(default="none", max_length=8)  # none / daily / weekly
    remind_minutes: int
    state: str = Field(default="scheduled", max_length=16)  # scheduled / cancelled / ended
    channel_id: str = Field(max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    creator_id: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ShiftMember(SQLModel, table=True):
    """A member signed up for a shift (for every occurrence of a repeating one)."""

    __tablename__ = "shift_member"
    __table_args__ = (Index("ix_shift_member_user", "user_id"),)

    shift_id: int = Field(foreign_key="shift.id", primary_key=True)
    user_id: str = Field(primary_key=True, max_length=32)
    joined_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ShiftReminder(SQLModel, table=True):
    """One member's reminder for one occurrence: pending → sending → sent, or skipped / failed."""

    __tablename__ = "shift_reminder"
    __table_args__ = (
        UniqueConstraint("shift_id", "occurrence", "user_id", name="uq_shift_reminder"),
        Index("ix_shift_reminder_state", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shift_id: int = Field(foreign_key="shift.id")
    occurrence: int
    user_id: str = Field(max_length=32)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    state: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)


class ShiftIncident(SQLModel, table=True):
    """An attendance record a lead may act on: `late_cancel` or `no_show`, once per occurrence."""

    __tablename__ = "shift_incident"
    __table_args__ = (
        UniqueConstraint("shift_id", "occurrence", "user_id", "kind", name="uq_shift_incident"),
        Index("ix_shift_incident_user_kind", "user_id", "kind", "occurrence_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shift_id: int = Field(foreign_key="shift.id")
    occurrence: int
    user_id: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    occurrence_start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# One open clock-in per member, decided by the database (two quick `/hours in` can't both win).
# Declared here, with the migration that adds it, so work.py stays the foundation's.
Index(
    "uq_time_entry_open",
    TimeEntry.__table__.c.user_id,  # type: ignore[attr-defined]
    unique=True,
    sqlite_where=text("ended_at IS NULL"),
    postgresql_where=text("ended_at IS NULL"),
)
