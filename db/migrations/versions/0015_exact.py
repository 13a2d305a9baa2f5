"""exact across processes: per-member request windows, and the leads' card queue in the database

- `member_window`: each member's request count in their current minute, per kind (commands,
  questions), counted by one upsert per request, so every bot process enforces one shared limit.
- `policy_question.card_due_at` / `card_claimed_at`: an escalation's leads-channel card waits in the
  database until a poster in any process claims it (FOR UPDATE SKIP LOCKED on PostgreSQL), instead
  of in the memory of the process that escalated it.

Revision ID: 0015_exact
Revises: 0014_read_paths
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from db.types import UTCDateTime

revision: str = "0015_exact"
down_revision: str | Sequence[str] | None = "0014_read_paths"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = sa.text("card_due_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "member_window",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), primary_key=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), primary_key=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("policy_question") as batch:
        batch.add_column(sa.Column("card_due_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("card_claimed_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_policy_question_card_due",
        "policy_question",
        ["card_due_at"],
        postgresql_where=DUE,
        sqlite_where=DUE,
    )


def downgrade() -> None:
    op.drop_index("ix_policy_question_card_due", table_name="policy_question")
    with op.batch_alter_table("policy_question") as batch:
        batch.drop_column("card_claimed_at")
        batch.drop_column("card_due_at")
    op.drop_table("member_window")
