"""The two statement shapes crewcall decides races with: a dialect-aware INSERT … ON CONFLICT DO
NOTHING (for the few rows many threads may create at once), and a conditional UPDATE or DELETE whose
changed-row count says who won."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Delete, Update
from sqlmodel import Session, SQLModel


def insert_ignore(session: Session, model: type[SQLModel], values: dict[str, Any]) -> bool:
    """Insert the row unless one with the same key exists; True when this call inserted it."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: rowcount is not reliable for ON CONFLICT DO NOTHING across drivers.
    key = list(table.primary_key.columns)[0]
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(key)
    return session.execute(statement).first() is not None


def rows_changed(session: Session, statement: Update | Delete) -> int:
    """Run a conditional UPDATE or DELETE; how many rows it changed (0: another request got there first)."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount
