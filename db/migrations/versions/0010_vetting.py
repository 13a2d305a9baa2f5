"""vetting: the skill catalogue (seeded from the skills already in use), skill applications, the
welcome ledger, and tasks' AI-tools setting with submissions' attestation

The catalogue starts with every skill found in members' vetted skills, tasks and shifts, each
named after its slug (`legal` → "Legal"), so nothing in use becomes unknown.

Revision ID: 0010_vetting
Revises: 0009_audit_convention
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0010_vetting"
down_revision: str | Sequence[str] | None = "0009_audit_convention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "crewcall"


def upgrade() -> None:
    skill = op.create_table(
        "skill",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "skill_application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("skill", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("decided_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("card_channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("card_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["member.user_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("skill_application", schema=None) as batch_op:
        batch_op.create_index("ix_skill_application_state_created", ["state", "created_at"], unique=False)
        batch_op.create_index("ix_skill_application_user_skill", ["user_id", "skill", "id"], unique=False)
        batch_op.create_index(
            "uq_skill_application_open",
            ["user_id", "skill"],
            unique=True,
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        )
    op.create_table(
        "welcome",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("claimed_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("sent_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("digested_at", db.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("welcome", schema=None) as batch_op:
        batch_op.create_index("ix_welcome_state", ["state"], unique=False)
        batch_op.create_index("ix_welcome_digested", ["digested_at"], unique=False)
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ai_allowed", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attestation", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("attested_at", db.types.UTCDateTime(), nullable=True))

    # The catalogue starts with every skill already in use.
    conn = op.get_bind()
    found = conn.execute(
        sa.text(
            "SELECT skill FROM member_skill UNION SELECT skill FROM task WHERE skill IS NOT NULL "
            "UNION SELECT skill FROM shift WHERE skill IS NOT NULL"
        )
    )
    slugs = sorted({row[0].strip().lower() for row in found if row[0] and row[0].strip()})
    now = datetime.now(UTC)
    if slugs:
        op.bulk_insert(
            skill,
            [
                {
                    "slug": slug,
                    "name": slug.replace("-", " ").capitalize(),
                    "created_by": BOT,
                    "created_at": now,
                }
                for slug in slugs
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_column("attested_at")
        batch_op.drop_column("attestation")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("ai_allowed")
    with op.batch_alter_table("welcome", schema=None) as batch_op:
        batch_op.drop_index("ix_welcome_digested")
        batch_op.drop_index("ix_welcome_state")
    op.drop_table("welcome")
    with op.batch_alter_table("skill_application", schema=None) as batch_op:
        batch_op.drop_index("uq_skill_application_open")
        batch_op.drop_index("ix_skill_application_user_skill")
        batch_op.drop_index("ix_skill_application_state_created")
    op.drop_table("skill_application")
    op.drop_table("skill")
