"""Tasks, their assignments, and tracked time: the records pay is computed from.

Money is kept in integer cents; instants are UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class Task(SQLModel, table=True):
    """A paid piece of work with a number of slots. `claimed` counts active assignments
    (claimed or submitted), `approved` the slots whose work was approved; both are changed only by
    conditional updates, never read-then-write, so `claimed + approved <= slots` always holds.
    `due_at` is the instant the due date ends (midnight after `due` in the creator's timezone)."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    skill: str | None = Field(default=None, max_length=64, index=True)
    rate_cents: int
    est_hours: float = Field(default=0)
    slots: int
    claimed: int = Field(default=0)
    approved: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    due: date | None = Field(default=None)
    due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    state: str = Field(default="open", max_length=16, index=True)  # open / full / cancelled / closed
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    creator_id: str = Field(max_length=32)
    # The lead allowed AI tools on this task (`ai=allowed`); otherwise a submission carries the
    # contractor's attestation that none were used.
    ai_allowed: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Assignment(SQLModel, table=True):
    """One member's hold on one task slot: claimed → submitted → approved / rejected, or released.
    A member holds at most one active (claimed or submitted) assignment per task: a partial unique
    index says so, whatever the race."""

    __table_args__ = (
        Index("ix_assignment_member_state", "user_id", "state"),
        # Leads' review queue: submitted, oldest first (only those rows on PostgreSQL).
        Index(
            "ix_assignment_review_queue",
            "state",
            "submitted_at",
            "id",
            postgresql_where=text("state = 'submitted'"),
        ),
        Index(
            "uq_assignment_active",
            "task_id",
            "user_id",
            unique=True,
            sqlite_where=text("state IN ('claimed', 'submitted')"),
            postgresql_where=text("state IN ('claimed', 'submitted')"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    user_id: str = Field(max_length=32)
    state: str = Field(
        default="claimed", max_length=16
    )  # claimed / submitted / approved / rejected / released
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    reviewer_id: str | None = Field(default=None, max_length=32)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    submitted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # The attestation confirmed on submitting (its exact wording) and when; None when AI tools
    # were allowed on the task.
    attestation: str | None = Field(default=None, sa_column=Column(Text))
    attested_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class TimeEntry(SQLModel, table=True):
    """A stretch of tracked work: clocked in at `started_at`, out at `ended_at` (None while open),
    optionally against a task. Only tracked, approved time is paid."""

    __tablename__ = "time_entry"
    __table_args__ = (
        Index("ix_time_entry_user_started", "user_id", "started_at"),
        # Reports read the entries that started in a period or up to 12 h (the auto-close) before it.
        Index("ix_time_entry_started", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="member.user_id", max_length=32)
    task_id: int | None = Field(default=None, foreign_key="task.id")
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    flagged: bool = Field(default=False)
    flag_reason: str = Field(default="", max_length=200)
    # Why the bot closed it, when it did ("stopped at cap"); "" for a clock-out.
    stop_reason: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    # The lead who approved it (a flagged entry, or time with no task), and when.
    approved_by: str | None = Field(default=None, max_length=32)
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
