"""tasks: approved count, due instant, one active assignment per member and task

Revision ID: 0003_tasks
Revises: 0002_work
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0003_tasks"
down_revision: str | Sequence[str] | None = "0002_work"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("state IN ('claimed', 'submitted')")


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("due_at", db.types.UTCDateTime(), nullable=True))

    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index(
            "uq_assignment_active",
            ["task_id", "user_id"],
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index("uq_assignment_active", sqlite_where=ACTIVE, postgresql_where=ACTIVE)

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("due_at")
        batch_op.drop_column("approved")
