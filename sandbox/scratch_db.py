"""A throwaway store for a bench: a SQLite file in a temporary folder, or a fresh PostgreSQL database
on the local server (CREWCALL_TEST_PG, as for the tests), dropped afterwards.

    with scratch_database("postgresql") as url:
        run_bench(url)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("CREWCALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database on `backend` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="crewcall-bench-"))
        try:
            yield f"sqlite:///{folder / 'bench.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    admin = make_url(PG_ADMIN_URL)
    port = admin.port or 5432
    conninfo = f"host={admin.host} port={port} user={admin.username} dbname={admin.database}"
    name = f"crewcall_bench_{uuid.uuid4().hex[:8]}"

    def execute(sql: str) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{admin.username}@{admin.host}:{port}/{name}"
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
