"""read paths: indexes for the hours report and the leads' review queue

- `ix_time_entry_started` (time_entry.started_at): the weekly report reads the entries that started
  in the week or up to 12 hours before it (an entry never outlasts the 12-hour auto-close), a range
  of this index instead of a walk over every entry.
- `ix_assignment_review_queue` (assignment.state, submitted_at, id): "submitted, oldest first" for
  leads' Home, and its count, read from the index; on PostgreSQL only the submitted rows are in it.

Revision ID: 0014_read_paths
Revises: 0013_pay
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_read_paths"
down_revision: str | Sequence[str] | None = "0013_pay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUBMITTED = sa.text("state = 'submitted'")


def upgrade() -> None:
    op.create_index("ix_time_entry_started", "time_entry", ["started_at"])
    op.create_index(
        "ix_assignment_review_queue",
        "assignment",
        ["state", "submitted_at", "id"],
        postgresql_where=SUBMITTED,
    )


def downgrade() -> None:
    op.drop_index("ix_assignment_review_queue", table_name="assignment", postgresql_where=SUBMITTED)
    op.drop_index("ix_time_entry_started", table_name="time_entry")
