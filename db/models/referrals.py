"""Referrals: a member vouches for an expert's email address and earns a bonus once that expert is
hired and has tracked enough hours; and who chose to appear on the monthly leaderboard.

The normalized (trimmed, lower-cased) email is unique: under concurrency the database decides which
referral of an address came first. Money is kept in integer cents; instants are UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class Referral(SQLModel, table=True):
    """referred → applied → interviewing → hired → eligible → paid, or rejected before hired.
    `status` only moves through conditional updates (`… WHERE status = :current`)."""

    __table_args__ = (
        # "If two people refer the same email address, the first referral counts": decided here.
        UniqueConstraint("email", name="uq_referral_email"),
        # …and the same mailbox under another spelling (`ana+x@`, `a.na@gmail.com`) is that address.
        UniqueConstraint("email_key", name="uq_referral_email_key"),
        Index("ix_referral_status_updated", "status", "updated_at"),
        Index("ix_referral_referrer_id", "referrer_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    email_key: str = Field(max_length=320)  # core.grammar.email_key(email): the mailbox it reaches
    name: str = Field(default="", max_length=200)
    skill: str | None = Field(default=None, max_length=64)
    referrer_id: str = Field(foreign_key="member.user_id", max_length=32)
    # The referee's Slack user, linked when they join the workspace (team_join, matched by email).
    referee_user_id: str | None = Field(default=None, max_length=32, index=True)
    status: str = Field(default="referred", max_length=16)
    # The bonus promised when the referral was made (REFERRAL_BONUS then), so a later change of the
    # setting does not change what a member was told.
    bonus_cents: int
    # The reward model the referral was made under (REFERRAL_MODEL then) and, for `share`, its terms:
    # a percentage (basis points, 10% = 1000) of the referee's approved pay for `share_months` after
    # the hire, at most `share_cap_cents`. Switching the setting changes new referrals only.
    reward_model: str = Field(default="flat", max_length=8, sa_column_kwargs={"server_default": "flat"})
    share_basis_points: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    share_months: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    share_cap_cents: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_by: str = Field(max_length=32)
    # The leads who approved the pay-relevant steps (never the referrer).
    hired_by: str | None = Field(default=None, max_length=32)
    paid_by: str | None = Field(default=None, max_length=32)
    hired_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), index=True))
    eligible_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    paid_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class LeaderboardOptIn(SQLModel, table=True):
    """A member who chose to appear on the monthly referral leaderboard (no row: hidden)."""

    __tablename__ = "referral_leaderboard_optin"

    user_id: str = Field(foreign_key="member.user_id", primary_key=True, max_length=32)
    opted_in_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
