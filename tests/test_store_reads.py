"""Units of work that only read (`Database.read()`) never wait for writers, and never write."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

import db.engine as engine_module
from db.engine import Database
from db.models import Member
from jobs.leadership import conninfo
from tests.conftest import Templates

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def _member(user_id: str) -> Member:
    return Member(user_id=user_id, created_at=NOW)


def test_a_read_runs_beside_a_write_that_holds_the_lock_on_sqlite(sqlite_url: str) -> None:
    """A writer holds SQLite's write lock (and the in-process one) until told to let go; a read
    started meanwhile finishes while the writer still holds it, seeing the last committed state.
    A second writer does wait for the first."""
    db = Database(sqlite_url)
    with db.write() as session:
        session.add(_member("U0"))
    holding, let_go = threading.Event(), threading.Event()
    read_done, second_write_done = threading.Event(), threading.Event()
    seen: list[str] = []

    def writer() -> None:
        with db.write() as session:
            session.add(_member("U1"))
            session.flush()  # the row is written, not committed: the write lock is taken
            holding.set()
            let_go.wait(timeout=60)

    def reader() -> None:
        with db.read() as session:
            seen.extend(session.exec(select(Member.user_id)).all())
        read_done.set()

    def second_writer() -> None:
        with db.write() as session:
            session.add(_member("U2"))
        second_write_done.set()

    first = threading.Thread(target=writer)
    first.start()
    try:
        assert holding.wait(timeout=30)
        second = threading.Thread(target=second_writer)
        second.start()
        threading.Thread(target=reader).start()
        finished = read_done.wait(timeout=30)
        writer_still_holds = first.is_alive() and not let_go.is_set()
        second_waited = not second_write_done.is_set()
    finally:
        let_go.set()
        first.join()
    second.join()
    assert finished, "the read waited for the writer"
    assert writer_still_holds and second_waited
    assert seen == ["U0"]  # the snapshot: the uncommitted row isn't there
    with db.read() as session:
        assert sorted(session.exec(select(Member.user_id)).all()) == ["U0", "U1", "U2"]
    db.dispose()


def test_a_read_refuses_to_write_and_leaves_the_connection_writable(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    with pytest.raises(DBAPIError), db.read() as session:
        session.add(_member("U1"))
        session.flush()
    with db.read() as session:
        assert session.exec(select(Member.user_id)).all() == []
    with db.write() as session:  # the same pooled connection, writable again
        session.add(_member("U1"))
    with db.write() as session:  # the former name still writes
        session.add(_member("U2"))
    with db.read() as session:
        assert sorted(session.exec(select(Member.user_id)).all()) == ["U1", "U2"]
    db.dispose()


def test_a_connection_lost_while_idle_is_replaced_and_a_busy_one_is_not_checked(
    templates: Templates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a pooled connection that sat idle is checked before it is handed out, and one the
    server dropped meanwhile (a restart, an administrator) is replaced without the caller seeing it;
    one back from use within IDLE_CHECK_AFTER_S is handed out without a round trip."""
    db = Database(templates.postgresql(), pool_size=1, max_connections=2)
    pings: list[object] = []
    dialect = db.read_engine.dialect  # the reads' pool's
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    backend_pid = text("SELECT pg_backend_pid()")
    monkeypatch.setattr(engine_module, "IDLE_CHECK_AFTER_S", 60.0)  # a loaded machine's pause is no idling
    for _ in range(3):
        with db.read() as session:
            first = session.execute(backend_pid).scalar()
    assert pings == []  # busy: used again at once

    monkeypatch.setattr(engine_module, "IDLE_CHECK_AFTER_S", 0.0)  # every connection counts as idle
    with psycopg.connect(conninfo(make_url(db.url)), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    with db.read() as session:
        second = session.execute(backend_pid).scalar()
        session.execute(select(Member.user_id)).all()
    assert len(pings) == 1 and second != first
    db.dispose()


def test_a_snapshot_read_sees_one_moment_and_refuses_to_write(database_url: str) -> None:
    """`read(snapshot=True)` (the reports): a row committed after its first statement is not seen by
    its later ones, on both backends; it refuses writes like any read."""
    db = Database(database_url, pool_size=2)
    with db.write() as session:
        session.add(_member("U0"))
    with db.read(snapshot=True) as session:
        assert session.exec(select(Member.user_id)).all() == ["U0"]
        with db.write() as other:
            other.add(_member("U1"))
        assert session.exec(select(Member.user_id)).all() == ["U0"]
    with db.read() as session:
        assert sorted(session.exec(select(Member.user_id)).all()) == ["U0", "U1"]
    with pytest.raises(DBAPIError), db.read(snapshot=True) as session:
        session.add(_member("U2"))
        session.flush()
    db.dispose()
