"""statement bounds: each pay statement keeps the instants its week covered and its timezone

A week is shown with the bounds it was first drawn with, and the next week starts where it ended,
so a member who changes timezone is paid each hour once. Existing rows are filled in from the
member's timezone now (Monday 00:00 to the next Monday 00:00 local, as they were drawn unless the
member moved since); the downgrade drops the columns.

Revision ID: 0016_statement_bounds
Revises: 0015_exact
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlmodel
from alembic import op

from db.types import UTCDateTime

revision: str = "0016_statement_bounds"
down_revision: str | Sequence[str] | None = "0015_exact"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

statement = sa.table(
    "pay_statement",
    sa.column("id", sa.Integer()),
    sa.column("starts_at", UTCDateTime()),
    sa.column("ends_at", UTCDateTime()),
    sa.column("tz", sa.String()),
)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def upgrade() -> None:
    with op.batch_alter_table("pay_statement") as batch:
        batch.add_column(sa.Column("starts_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("ends_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("tz", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT s.id, s.week_start, m.tz FROM pay_statement s LEFT JOIN member m ON m.user_id = s.user_id"
        )
    ).all()
    for row_id, week_start, tz in rows:
        monday = week_start if not isinstance(week_start, str) else datetime.fromisoformat(week_start).date()
        zone = _zone(tz or "UTC")
        start, end = (
            datetime.combine(day, time(0)).replace(tzinfo=zone).astimezone(UTC)
            for day in (monday, monday + timedelta(days=7))
        )
        conn.execute(
            sa.update(statement)
            .where(statement.c.id == row_id)
            .values(starts_at=start, ends_at=end, tz=zone.key)
        )
    with op.batch_alter_table("pay_statement") as batch:
        batch.alter_column("starts_at", existing_type=UTCDateTime(), nullable=False)
        batch.alter_column("ends_at", existing_type=UTCDateTime(), nullable=False)
        batch.alter_column("tz", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("pay_statement") as batch:
        batch.drop_column("tz")
        batch.drop_column("ends_at")
        batch.drop_column("starts_at")
