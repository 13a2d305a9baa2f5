"""policy: questions, faqs, feedback, revisions

Revision ID: 0007_policy
Revises: 0002_work
Create Date: 2026-11-25 21:46:01.146823
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0007_policy"
down_revision: str | Sequence[str] | None = "0002_work"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_question",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asker_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("channel_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("thread_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("section_id", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("faq_id", sa.Integer(), nullable=True),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("cited", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("off_topic", sa.Boolean(), nullable=False),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("escalated_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("lead_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("lead_answer", sa.Text(), nullable=False),
        sa.Column("leads_channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("leads_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("asked_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("escalated_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", db.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("policy_question", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_question_asker_id"), ["asker_id"], unique=False)
        batch_op.create_index("ix_policy_question_state", ["state", "id"], unique=False)

    revision_table = op.create_table(
        "policy_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handbook", sa.Integer(), nullable=False),
        sa.Column("faqs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The one row every handbook reload and FAQ change bumps (domain/policy/service.py).
    op.bulk_insert(revision_table, [{"id": 1, "handbook": 0, "faqs": 0}])
    op.create_table(
        "policy_faq",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("section_id", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("question_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("editor_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["policy_question.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("policy_faq", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_faq_deleted_at"), ["deleted_at"], unique=False)

    op.create_table(
        "policy_feedback",
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["policy_question.id"],
        ),
        sa.PrimaryKeyConstraint("question_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("policy_feedback")
    with op.batch_alter_table("policy_faq", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_faq_deleted_at"))

    op.drop_table("policy_faq")
    op.drop_table("policy_revision")
    with op.batch_alter_table("policy_question", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_question_state")
        batch_op.drop_index(batch_op.f("ix_policy_question_asker_id"))

    op.drop_table("policy_question")
