"""duties: who approved pay, and the mailbox behind an address

`time_entry.approved_by/approved_at` record the lead who let an entry count; `referral.hired_by`
and `paid_by` the leads who approved those steps. `referral.email_key` and `member.email_key` hold
`core.grammar.email_key` of the address (case, `+tag`, Gmail dots folded), so a referral is unique
per mailbox and is matched to members by it. Existing rows are filled in here; if two referrals
already reach one mailbox, the later keeps a key of its own (`…#R<id>`) so nothing is lost.

Revision ID: 0012_duties
Revises: 0009_audit_convention
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types
from core.grammar import email_key

revision: str = "0012_duties"
down_revision: str | Sequence[str] | None = "0010_vetting"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = sqlmodel.sql.sqltypes.AutoString(length=320)
USER = sqlmodel.sql.sqltypes.AutoString(length=32)


def upgrade() -> None:
    with op.batch_alter_table("time_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_by", USER, nullable=True))
        batch_op.add_column(sa.Column("approved_at", db.types.UTCDateTime(), nullable=True))
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", ADDRESS, nullable=True))
        batch_op.create_index(batch_op.f("ix_member_email_key"), ["email_key"], unique=False)
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", ADDRESS, nullable=True))
        batch_op.add_column(sa.Column("hired_by", USER, nullable=True))
        batch_op.add_column(sa.Column("paid_by", USER, nullable=True))

    conn = op.get_bind()
    for user_id, email in conn.execute(sa.text("SELECT user_id, email FROM member WHERE email IS NOT NULL")):
        conn.execute(
            sa.text("UPDATE member SET email_key = :key WHERE user_id = :id"),
            {"key": email_key(email), "id": user_id},
        )
    taken: set[str] = set()
    for referral_id, email in conn.execute(sa.text("SELECT id, email FROM referral ORDER BY id")).all():
        key = email_key(email)
        if key in taken:
            key = f"{key}#R{referral_id}"
        taken.add(key)
        conn.execute(
            sa.text("UPDATE referral SET email_key = :key WHERE id = :id"), {"key": key, "id": referral_id}
        )

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.alter_column("email_key", existing_type=ADDRESS, nullable=False)
        batch_op.create_unique_constraint("uq_referral_email_key", ["email_key"])


def downgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_constraint("uq_referral_email_key", type_="unique")
        batch_op.drop_column("paid_by")
        batch_op.drop_column("hired_by")
        batch_op.drop_column("email_key")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_email_key"))
        batch_op.drop_column("email_key")
    with op.batch_alter_table("time_entry", schema=None) as batch_op:
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
