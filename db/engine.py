"""Engine and sessions: a unit of work either reads or writes, and says which.

- `Database.write()` opens a transaction that commits when the block ends and rolls back on any
  exception. On SQLite it starts with BEGIN IMMEDIATE: a writer takes the write lock up front, so
  two threads that read and then write never deadlock on the lock upgrade (SQLite would fail one of
  them at once instead of waiting). Within the process, writers first queue on a lock of their own:
  SQLite's busy handler polls with sleeps of up to 100 ms, so under contention (a burst of a
  thousand reminder jobs) writers slept far longer than the lock was held; a waiter on the
  in-process lock wakes when it is freed. Claims, exactly-once ledgers and everything audited go
  through here.
- `Database.read()` is for work that only reads (lists, reports, the Home tab). On SQLite it is a
  deferred transaction without the in-process lock: in WAL mode it reads its snapshot beside a
  writer instead of queueing behind it. The connection is `PRAGMA query_only` while it lasts (and
  until a write uses it), so a write slipped into a read path fails loudly instead of running unlocked. On PostgreSQL it is a
  READ ONLY transaction (same effect).

SQLite runs in WAL mode with foreign keys on; PostgreSQL with a connection pool sized for the HTTP
worker threads and the scheduler, and capped: a burst waits for a pooled connection rather than
open more than the server allows (several processes share its max_connections). Sessions are never
shared across threads.
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

from core.turns import Turns

SQLITE_BUSY_TIMEOUT_S = 30
_WRITE_LOCK = "crewcall.write_lock"  # in a pooled connection's record_info while it holds the lock
_QUERY_ONLY = "crewcall.query_only"  # in a DBAPI connection's info while it is query_only
READ_ONLY = "crewcall_read_only"  # the execution option that makes a transaction a read


def make_engine(url: str, pool_size: int = 10, max_connections: int | None = None) -> Engine:
    """`pool_size` connections are kept; a burst may open more, up to `max_connections` on
    PostgreSQL (twice as many more when None), and waits for one beyond that."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            pool_pre_ping=False,
            # Sized like PostgreSQL's: with SQLAlchemy's default of 5 kept, a burst of requests
            # opened (and set up, PRAGMAs and all) and closed a connection per request.
            pool_size=pool_size,
            max_overflow=pool_size * 2,
        )
        _configure_sqlite(engine)
        return engine
    most = pool_size * 3 if max_connections is None else max_connections
    kept = min(pool_size, most)
    return create_engine(url, pool_size=kept, max_overflow=most - kept, pool_pre_ping=True, pool_timeout=30)


def _is_read(connection: Any) -> bool:
    return bool(connection.get_execution_options().get(READ_ONLY))


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
        fairy = connection.connection
        # Straight on the DBAPI connection: these run at every transaction's start, and SQLAlchemy's
        # statement machinery cost more than the statements.
        dbapi = fairy.dbapi_connection
        if _is_read(connection):
            # A reader neither takes the lock nor waits for it: a deferred transaction reads the
            # last committed snapshot (WAL) while a writer works. query_only stays on when the
            # connection goes back to the pool (`info` ends with the DBAPI connection): the next
            # read needs no statement for it, the next write turns it off.
            if not fairy.info.get(_QUERY_ONLY):
                dbapi.execute("PRAGMA query_only=ON")
                fairy.info[_QUERY_ONLY] = True
            dbapi.execute("BEGIN")
            return
        if fairy.info.pop(_QUERY_ONLY, False):
            dbapi.execute("PRAGMA query_only=OFF")
        held = fairy.record_info
        # Held until the connection goes back to the pool (after its commit or rollback has run).
        # Past the timeout, SQLite's own busy handler decides, as it did before this lock.
        if not held.get(_WRITE_LOCK) and write_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            held[_WRITE_LOCK] = True
        dbapi.execute("BEGIN IMMEDIATE")

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record.record_info.pop(_WRITE_LOCK, False):
            write_lock.release()


class Database:
    """The bot's store: an engine plus the unit-of-work session factory."""

    def __init__(self, url: str, pool_size: int = 10, max_connections: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, max_connections=max_connections)
        # The same engine and pool; its transactions begin as reads: on PostgreSQL with
        # `BEGIN READ ONLY` (psycopg's read_only, undone when the connection goes back to the pool:
        # no extra round trip), on SQLite through the "begin" listener.
        read_only: dict[str, Any] = {READ_ONLY: True}
        if self.engine.dialect.name == "postgresql":
            read_only["postgresql_readonly"] = True
        self._reader = self.engine.execution_options(**read_only)
        # Requests take turns at the interpreter on SQLite, where a statement never waits on a network.
        self.turns = Turns(enabled=self.dialect == "sqlite")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may write: committed when the block ends, rolled back if it raises.
        On SQLite it holds the write lock from its start to its end."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads: one consistent snapshot, no lock, no waiting for writers.
        Any write inside it is refused by the database."""
        with Session(self._reader, expire_on_commit=False) as session:
            yield session
            session.commit()  # ends the snapshot; nothing to write (and the loaded objects stay)

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
