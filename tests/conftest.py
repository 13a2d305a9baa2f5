"""Fixtures: a fresh database per test on SQLite and on PostgreSQL, and the bot running against the
fake Slack.

Migrations run once per backend per session into a template (a SQLite file, a PostgreSQL template
database); each test gets a copy, so tests are isolated and several test runs can share one
PostgreSQL server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from db.engine import Database
from db.migrate import upgrade
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness

PG_ADMIN_URL = os.environ.get("CREWCALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _pg_conninfo(database: str | None = None) -> str:
    url = make_url(PG_ADMIN_URL)
    return f"host={url.host} port={url.port or 5432} user={url.username} dbname={database or url.database}"


def _pg_url(database: str) -> str:
    url = make_url(PG_ADMIN_URL)
    return f"postgresql+psycopg://{url.username}@{url.host}:{url.port or 5432}/{database}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(_pg_conninfo(), autocommit=True) as conn:
        conn.execute(sql)


class Templates:
    """Migrated template databases, made on first use."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.run_id = uuid.uuid4().hex[:8]
        self.sqlite_template: Path | None = None
        self.pg_template: str | None = None
        self.pg_databases: list[str] = []

    def sqlite(self) -> str:
        if self.sqlite_template is None:
            path = self.tmp / "template.db"
            db = Database(f"sqlite:///{path}")
            upgrade(db.engine)
            db.dispose()
            self.sqlite_template = path
        target = self.tmp / f"t-{uuid.uuid4().hex[:10]}.db"
        shutil.copy(self.sqlite_template, target)
        return f"sqlite:///{target}"

    def postgresql(self) -> str:
        if self.pg_template is None:
            name = f"crewcall_tpl_{self.run_id}"
            try:
                _pg_admin(f'CREATE DATABASE "{name}"')
            except psycopg.OperationalError as e:
                pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({e}); `make test` starts it.")
            db = Database(_pg_url(name))
            upgrade(db.engine)
            db.dispose()
            self.pg_template = name
            self.pg_databases.append(name)
        name = f"crewcall_t_{self.run_id}_{uuid.uuid4().hex[:8]}"
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"')
        self.pg_databases.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        for name in reversed(self.pg_databases):
            with contextlib.suppress(psycopg.Error):
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    t = Templates(tmp_path_factory.mktemp("db"))
    yield t
    t.drop_all()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, templates: Templates) -> str:
    """A freshly migrated, empty database; the test runs once on SQLite and once on PostgreSQL."""
    return templates.sqlite() if request.param == "sqlite" else templates.postgresql()


@pytest.fixture
def sqlite_url(templates: Templates) -> str:
    """For tests whose subject has nothing to do with the backend."""
    return templates.sqlite()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """The fake Slack; a test fails when it leaves behind a call Slack would refuse (a block over
    its limits, an unknown argument, a missing scope, a late ack…), with the report of each."""
    with FakeSlack() as f:
        yield f
        f.assert_no_violations()


@pytest.fixture
def bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    """The bot, running against the fake Slack, on each backend."""
    harness = BotHarness(database_url, fake=fake)
    harness.start()
    yield harness
    harness.close()


@pytest.fixture
def sqlite_bot(sqlite_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    """The bot on SQLite only: for Slack-facing behaviour that doesn't depend on the backend."""
    harness = BotHarness(sqlite_url, fake=fake)
    harness.start()
    yield harness
    harness.close()
