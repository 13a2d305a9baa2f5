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
  until a write uses it), so a write slipped into a read path fails loudly instead of running
  unlocked. On PostgreSQL reads have a pool of their own, whose connections are read-only
  (`default_transaction_read_only`) and in autocommit: each statement is a read-only transaction of
  its own, and a write is refused as on SQLite. A transaction block around them would add BEGIN and
  COMMIT, two round trips a request, and buy nothing: at PostgreSQL's READ COMMITTED every
  statement reads the latest committed data anyway.

SQLite runs in WAL mode with foreign keys on; PostgreSQL with connection pools sized for the HTTP
worker threads and the scheduler, and capped: a burst waits for a pooled connection rather than
open more than the server allows (several processes share its max_connections). A pooled connection
is checked with a round trip only when it comes out of the pool after an idle second or more (see
`IDLE_CHECK_AFTER_S`). Sessions are never shared across threads.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

from core.turns import Turns

SQLITE_BUSY_TIMEOUT_S = 30
_WRITE_LOCK = "crewcall.write_lock"  # in a pooled connection's record_info while it holds the lock
_QUERY_ONLY = "crewcall.query_only"  # in a DBAPI connection's info while it is query_only
READ_ONLY = "crewcall_read_only"  # the execution option that makes a transaction a read
# A pooled connection idle longer than this is checked (a round trip) before it is handed out: the
# server may have restarted or dropped it meanwhile. One back from use within it is handed out as it
# is: checking every checkout cost two round trips a request, and a connection lost anyway fails
# one statement, after which the pool replaces every connection it held.
IDLE_CHECK_AFTER_S = 1.0
_RETURNED_AT = "crewcall.returned_at"  # in a pooled connection's record info: when it came back


def make_engine(
    url: str,
    pool_size: int = 10,
    max_connections: int | None = None,
    connect_args: dict[str, Any] | None = None,
    **options: Any,
) -> Engine:
    """`pool_size` connections are kept; a burst may open more, up to `max_connections` on
    PostgreSQL (twice as many more when None), and waits for one beyond that. `connect_args` and
    `options` (PostgreSQL only) go to each connection and to the engine."""
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
    engine = create_engine(
        url,
        pool_size=kept,
        max_overflow=most - kept,
        pool_timeout=30,
        connect_args=connect_args or {},
        **options,
    )
    _check_idle_connections(engine)
    return engine


def _check_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling for connections that sat idle (IDLE_CHECK_AFTER_S)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < IDLE_CHECK_AFTER_S:
            return  # just connected, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:
            # The pool drops this connection and hands out another (a new one if need be).
            raise exc.DisconnectionError("a pooled connection was lost while idle") from e


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
    """The bot's store: its engines (`engine` for writes, `read_engine` for reads: one pool on
    SQLite, two on PostgreSQL; `engines` lists the pools' engines) and the unit-of-work session
    factories."""

    def __init__(self, url: str, pool_size: int = 10, max_connections: int | None = None) -> None:
        self.url = url
        if make_url(url).get_backend_name() == "sqlite":
            self.engine = make_engine(url, pool_size=pool_size)
            self.engines = [self.engine]
            # The same engine and pool; its transactions begin as reads (the "begin" listener).
            self.read_engine = self.engine.execution_options(**{READ_ONLY: True})
            self._snapshot_engine = self.read_engine  # a SQLite read is one snapshot
        else:
            # The budget is shared: half of it for reads, the rest for writes.
            reads = None if max_connections is None else max(1, max_connections // 2)
            writes = None if max_connections is None else max(1, max_connections - max_connections // 2)
            self.engine = make_engine(url, pool_size=pool_size, max_connections=writes)
            readers = make_engine(
                url,
                pool_size=pool_size,
                max_connections=reads,
                connect_args={"options": "-c default_transaction_read_only=on"},
                isolation_level="AUTOCOMMIT",
            )
            self.engines = [self.engine, readers]
            self.read_engine = readers.execution_options(**{READ_ONLY: True})
            self._snapshot_engine = readers.execution_options(
                **{READ_ONLY: True}, isolation_level="REPEATABLE READ"
            )
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
    def read(self, snapshot: bool = False) -> Iterator[Session]:
        """Work that only reads: no lock, no waiting for writers; any write inside it is refused by
        the database. On SQLite one snapshot; on PostgreSQL each statement reads the latest
        committed data (module docstring), unless `snapshot`: then one REPEATABLE READ transaction
        (BEGIN and COMMIT, two more round trips), for reports whose totals must match their rows
        and that stream rows from a server-side cursor (which needs a transaction)."""
        with Session(
            self._snapshot_engine if snapshot else self.read_engine, expire_on_commit=False
        ) as session:
            yield session
            session.commit()  # ends SQLite's snapshot; nothing to write (and the loaded objects stay)

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """A write-pool connection for one statement that may write (PostgreSQL): in autocommit, the
        statement is its own transaction, without BEGIN and COMMIT round trips around it."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


#: PostgreSQL's answers at connection that a restart won't change (libpq gives them as text only).
_REFUSED_BY_SERVER = re.compile(
    r'FATAL: +(?:(?:role|database) ".*" does not exist|password authentication failed)'
)


class StoreRefused(Exception):
    """DATABASE_URL can't be used as it is (its driver, its options, its file): a restart won't
    help. The message is one line naming the variable, never the URL or its password."""


class StoreUnreachable(Exception):
    """The database server did not take the connection at start-up: worth a retry."""


def open_database(url: str, pool_size: int = 10, max_connections: int | None = None) -> Database:
    """The store at `url`, connected to once, so a DATABASE_URL that can't work stops start-up with
    its reason (StoreRefused, StoreUnreachable) rather than a traceback."""
    parsed = make_url(url)
    # What the reason must not repeat: the URL as given and as SQLAlchemy writes it, the password.
    secrets = [url, parsed.render_as_string(hide_password=False), parsed.password or ""]

    def reason(error: object) -> str:
        said = (str(error).strip().splitlines() or [type(error).__name__])[0]
        for prefix in ("connection is bad: ", "connection failed: "):  # psycopg's, before libpq's words
            said = said.removeprefix(prefix)
        for secret in filter(None, secrets):
            said = said.replace(secret, "***")
        return said

    try:
        db = Database(url, pool_size=pool_size, max_connections=max_connections)
    # The dialect's driver is imported here, and options it can't take are refused (TypeError,
    # ValueError: `?timeout=abc` on SQLite, say).
    except (exc.ArgumentError, ImportError, TypeError, ValueError) as e:
        raise StoreRefused(f"DATABASE_URL can't be used: {reason(e)}.") from None
    except OSError as e:
        raise StoreRefused(
            f"DATABASE_URL can't be used: the SQLite file's directory can't be made ({e.strerror})."
        ) from None
    try:
        with db.engine.connect():
            pass
    except (TypeError, ValueError) as e:  # an option the driver reads only when it connects
        db.dispose()
        raise StoreRefused(f"DATABASE_URL can't be used: {reason(e)}.") from None
    except exc.DBAPIError as e:
        db.dispose()
        # psycopg says "connection is bad" when libpq refused the options before trying the server
        # (an sslmode it doesn't know, say), and raises ProgrammingError for an option it doesn't
        # have; a server that answered that the role, its password or the database is wrong won't
        # say otherwise after a restart; SQLite has no server to wait for.
        refused = (
            db.dialect == "sqlite"
            or isinstance(e, exc.ProgrammingError)
            or str(e.orig).startswith("connection is bad")
            or _REFUSED_BY_SERVER.search(str(e.orig)) is not None
        )
        if refused:
            raise StoreRefused(f"DATABASE_URL can't be used: {reason(e.orig)}.") from None
        raise StoreUnreachable(
            f"The database in DATABASE_URL can't be reached ({reason(e.orig)}); start again once it is."
        ) from None
    return db
