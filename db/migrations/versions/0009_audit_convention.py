"""audit convention: existing rows take domain/audit.py's one form

Shifts and time entries were recorded by ref (`S-3`, `E-7`) and the handbook reload as `handbook`;
every entity is now recorded by its bare numeric id (the handbook by its `policy_revision` row,
1). Task expiry was recorded as actor `system`; the bot is now `crewcall` everywhere. The downgrade
restores the old forms: only tasks ever used `system`, so only task rows go back to it.

Revision ID: 0009_audit_convention
Revises: 0008_merge_features
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_audit_convention"
down_revision: str | Sequence[str] | None = "0008_merge_features"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFS = {"shift": "S-", "time_entry": "E-"}
HANDBOOK, HANDBOOK_ID = "handbook", "1"
OLD_BOT, BOT = "system", "crewcall"


def _digits(expression: str) -> str:
    """SQL true when `expression` is a non-empty run of digits (ltrim takes a character set on both
    SQLite and PostgreSQL)."""
    return f"({expression} <> '' AND ltrim({expression}, '0123456789') = '')"


def upgrade() -> None:
    for entity, prefix in REFS.items():
        op.execute(
            sa.text(
                "UPDATE audit_entry SET entity_id = substr(entity_id, 3) "
                f"WHERE entity = :entity AND entity_id LIKE :pattern AND {_digits('substr(entity_id, 3)')}"
            ).bindparams(entity=entity, pattern=prefix + "%")
        )
    op.execute(
        sa.text(
            "UPDATE audit_entry SET entity_id = :number WHERE entity = 'policy_handbook' AND entity_id = :word"
        ).bindparams(number=HANDBOOK_ID, word=HANDBOOK)
    )
    op.execute(
        sa.text("UPDATE audit_entry SET actor_id = :new WHERE actor_id = :old").bindparams(
            new=BOT, old=OLD_BOT
        )
    )


def downgrade() -> None:
    for entity, prefix in REFS.items():
        op.execute(
            sa.text(
                "UPDATE audit_entry SET entity_id = :prefix || entity_id "
                f"WHERE entity = :entity AND {_digits('entity_id')}"
            ).bindparams(entity=entity, prefix=prefix)
        )
    op.execute(
        sa.text(
            "UPDATE audit_entry SET entity_id = :word WHERE entity = 'policy_handbook' AND entity_id = :number"
        ).bindparams(number=HANDBOOK_ID, word=HANDBOOK)
    )
    op.execute(
        sa.text(
            "UPDATE audit_entry SET actor_id = :old WHERE entity = 'task' AND actor_id = :new"
        ).bindparams(new=BOT, old=OLD_BOT)
    )
