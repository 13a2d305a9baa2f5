"""Alembic environment: runs against the connection `db.migrate.upgrade` hands over, or against
`DATABASE_URL` when called from the alembic command line (`make migration m="…"`)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers every table on SQLModel.metadata)
from db.engine import make_engine

target_metadata = SQLModel.metadata


def _include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    # APScheduler owns its job table.
    return not (type_ == "table" and name == "apscheduler_jobs")


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from core.config import load_config

    engine = make_engine(load_config().database_url.get_secret_value())
    with engine.connect() as conn:
        _run(conn)
