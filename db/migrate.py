"""Apply Alembic migrations at start-up.

Each domain added its own revision on top of `0002_work` and `0008_merge_features` joins them into
one head; `upgrade heads` still applies every head, should branches appear again before they are
merged. Several bot processes starting at once on PostgreSQL take an advisory lock so that only one
migrates at a time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Engine

from db.engine import StoreRefused

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 7_315_001


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config()
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_lock(:k, hashtext(current_database()))"), {"k": _PG_MIGRATION_LOCK}
            )
            connection.commit()
        try:
            cfg.attributes["connection"] = connection
            try:
                command.upgrade(cfg, "heads")
            except CommandError as e:  # "Can't locate revision …": a newer crewcall migrated it
                raise StoreRefused(
                    f"DATABASE_URL's database has a schema this crewcall doesn't know ({e}): it was "
                    "migrated by a newer version. Run that version, or restore a backup."
                ) from None
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_unlock(:k, hashtext(current_database()))"),
                    {"k": _PG_MIGRATION_LOCK},
                )
                connection.commit()
