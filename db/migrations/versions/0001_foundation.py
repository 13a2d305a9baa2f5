"""foundation: members, skills, audit log, processed Slack deliveries

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0001_foundation"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member",
        sa.Column("user_id", sqlmodel.AutoString(length=32), primary_key=True),
        sa.Column("name", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("real_name", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("email", sqlmodel.AutoString(length=320), nullable=True),
        sa.Column("tz", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("is_lead", sa.Boolean(), nullable=False),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("profile_refreshed_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_member_email", "member", ["email"])
    op.create_table(
        "member_skill",
        sa.Column(
            "user_id", sqlmodel.AutoString(length=32), sa.ForeignKey("member.user_id"), primary_key=True
        ),
        sa.Column("skill", sqlmodel.AutoString(length=64), primary_key=True),
    )
    op.create_index("ix_member_skill_skill", "member_skill", ["skill"])
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", db.types.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("action", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("entity", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("entity_id", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.AutoString(length=120), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_entity", "audit_entry", ["entity", "entity_id", "id"])
    op.create_table(
        "processed_event",
        sa.Column("event_id", sqlmodel.AutoString(length=64), primary_key=True),
        sa.Column("received_at", db.types.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_processed_event_received_at", "processed_event", ["received_at"])


def downgrade() -> None:
    op.drop_table("processed_event")
    op.drop_table("audit_entry")
    op.drop_table("member_skill")
    op.drop_table("member")
