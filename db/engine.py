"""Engine and sessions.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every transaction starts
with BEGIN IMMEDIATE: a writer takes the write lock up front, so two threads that read and then
write never deadlock on the lock upgrade (SQLite would fail one of them at once instead of waiting).
Within the process, transactions first queue on a lock of their own: SQLite's busy handler polls
with sleeps of up to 100 ms, so under contention (a burst of a thousand reminder jobs) writers
slept far longer than the lock was held; a waiter on the in-process lock wakes when it is freed.
PostgreSQL runs with a connection pool sized for the HTTP worker threads and the scheduler.

One session per unit of work: `Database.session()` opens a transaction that commits when the block
ends and rolls back on any exception. Sessions are never shared across threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_S = 30
_WRITE_LOCK = "crewcall.write_lock"  # in a pooled connection's record_info while it holds the lock


def make_engine(url: str, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            pool_pre_ping=False,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True, pool_timeout=30
    )


def _configure_sqlite(engine: Engine) -> None:
    # A plain Lock, not an RLock: a connection may be checked in (and the lock released) by the
    # garbage collector in another thread.
    write_lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        held = connection.connection.record_info
        # Held until the connection goes back to the pool (after its commit or rollback has run).
        # Past the timeout, SQLite's own busy handler decides, as it did before this lock.
        if not held.get(_WRITE_LOCK) and write_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            held[_WRITE_LOCK] = True
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record.record_info.pop(_WRITE_LOCK, False):
            write_lock.release()


class Database:
    """The bot's store: an engine plus the unit-of-work session factory."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
