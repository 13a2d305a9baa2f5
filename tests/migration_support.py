"""Running one Alembic step on a test's own connection (a migration's up and down are tested on the
store as it is at that revision)."""

from __future__ import annotations

from collections.abc import Callable

from alembic.config import Config
from sqlalchemy import Connection

from db.migrate import alembic_config


def migrate(conn: Connection, step: Callable[[Config, str], None], revision: str) -> None:
    """`step` (`command.upgrade` or `command.downgrade`) to `revision` on `conn`, committed."""
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    step(cfg, revision)
    conn.commit()
