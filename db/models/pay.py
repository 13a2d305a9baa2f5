"""Pay: per-member weekly caps, the once-a-week notices and statements (ledgers whose unique keys
make "once" hold across restarts, replayed jobs and several processes).

Weeks are keyed by the date of their Monday in the member's own timezone."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class WeeklyCap(SQLModel, table=True):
    """A lead's override of WEEKLY_HOURS_CAP for one member (no row, or no minutes: the default
    applies). `set_at` is when a lead last changed it: a lowered cap never takes back time clocked
    before the change."""

    __tablename__ = "weekly_cap"

    user_id: str = Field(foreign_key="member.user_id", primary_key=True, max_length=32)
    cap_minutes: int | None = Field(default=None)
    set_by: str = Field(max_length=32)
    set_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CapNotice(SQLModel, table=True):
    """The 90% notice of one member's week: the row is the "once"."""

    __tablename__ = "cap_notice"

    user_id: str = Field(primary_key=True, max_length=32)
    week_start: date = Field(primary_key=True)
    sent_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class PayStatement(SQLModel, table=True):
    """One member's weekly statement DM: sending → sent, or pending again after a transient failure,
    or failed. Unique per member and week, so it is sent once. It also keeps the instants the week
    covered and the zone it was drawn in: the week is shown with those bounds ever after (and the
    next week starts where it ended), so a member who changes timezone is paid each hour once."""

    __tablename__ = "pay_statement"
    __table_args__ = (UniqueConstraint("user_id", "week_start", name="uq_pay_statement"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=32)
    week_start: date
    state: str = Field(default="sending", max_length=16)
    attempts: int = Field(default=1)
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    total_cents: int = Field(default=0)
    message_ts: str | None = Field(default=None, max_length=32)
    starts_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    tz: str = Field(max_length=64)
