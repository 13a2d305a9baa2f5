"""pay: weekly caps, the 90% notice and statement ledgers, stop reasons on time
entries, and each referral's reward model

Existing referrals are flat (the only model before); existing entries were closed by a clock-out
or the 12-hour close, so their stop reason is empty.

Revision ID: 0013_pay
Revises: 0012_duties
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0013_pay"
down_revision: str | Sequence[str] | None = "0012_duties"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "weekly_cap",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("cap_minutes", sa.Integer(), nullable=True),
        sa.Column("set_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("set_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["member.user_id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "cap_notice",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("sent_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "week_start"),
    )
    op.create_table(
        "pay_statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("message_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "week_start", name="uq_pay_statement"),
    )
    with op.batch_alter_table("time_entry", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "stop_reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reward_model",
                sqlmodel.sql.sqltypes.AutoString(length=8),
                nullable=False,
                server_default="flat",
            )
        )
        batch_op.add_column(sa.Column("share_basis_points", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("share_months", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("share_cap_cents", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_column("share_cap_cents")
        batch_op.drop_column("share_months")
        batch_op.drop_column("share_basis_points")
        batch_op.drop_column("reward_model")
    with op.batch_alter_table("time_entry", schema=None) as batch_op:
        batch_op.drop_column("stop_reason")
    op.drop_table("pay_statement")
    op.drop_table("cap_notice")
    op.drop_table("weekly_cap")
