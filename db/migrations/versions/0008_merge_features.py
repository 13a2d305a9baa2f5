"""merge the feature branches: one head again

Revision ID: 0008_merge_features
Revises: 0003_tasks, 0004_shifts, 0005_announcements, 0006_referrals, 0007_policy
Create Date: 2026-11-26 00:40:00
"""

from collections.abc import Sequence

revision: str = "0008_merge_features"
down_revision: str | Sequence[str] | None = (
    "0003_tasks",
    "0004_shifts",
    "0005_announcements",
    "0006_referrals",
    "0007_policy",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
