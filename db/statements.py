"""The two statement shapes crewcall decides races with: a dialect-aware INSERT … ON CONFLICT DO
NOTHING (for the few rows many threads may create at once), and a conditional UPDATE or DELETE whose
changed-row count says who won. And the instant arithmetic reports leave to the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, ColumnElement, CursorResult, Integer, func, literal
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Delete, Update
from sqlmodel import Session, SQLModel

from db.types import UTCDateTime


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


Instant = Any  # a UTCDateTime column (or expression), or a datetime bound as one


def _instant(value: Instant) -> Any:
    return literal(value, UTCDateTime()) if isinstance(value, datetime) else value


def later_of(dialect: str, a: Instant, b: Instant) -> ColumnElement[datetime]:
    """The later of two instants (a UTCDateTime column or a bound datetime)."""
    pick = func.greatest if dialect == "postgresql" else func.max  # SQLite's scalar max()
    return pick(_instant(a), _instant(b), type_=UTCDateTime())


def earlier_of(dialect: str, a: Instant, b: Instant) -> ColumnElement[datetime]:
    pick = func.least if dialect == "postgresql" else func.min
    return pick(_instant(a), _instant(b), type_=UTCDateTime())


def microseconds_between(
    dialect: str, start: ColumnElement[datetime], end: ColumnElement[datetime]
) -> ColumnElement[int]:
    """`end - start` in whole microseconds, exact, computed by the database. SQLite keeps instants
    as text, 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds from strftime('%s') of the first 19
    characters (given the fraction, SQLite would round it to the millisecond first), microseconds
    from the last six."""
    if dialect == "postgresql":
        return sql_cast(func.extract("epoch", end - start) * 1_000_000, BigInteger)

    def whole_seconds(instant: ColumnElement[datetime]) -> ColumnElement[int]:
        return sql_cast(func.strftime("%s", func.substr(instant, 1, 19)), Integer)

    seconds = whole_seconds(end) - whole_seconds(start)
    return (
        seconds * 1_000_000
        + sql_cast(func.substr(end, 21), Integer)
        - sql_cast(func.substr(start, 21), Integer)
    )
