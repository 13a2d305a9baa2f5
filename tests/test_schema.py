"""The migrations build exactly the schema the models describe, and rewrite existing rows as they
say, on both backends."""

from collections.abc import Callable
from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, select
from sqlmodel import SQLModel

import db.models  # noqa: F401
from db.engine import Database
from db.migrate import alembic_config
from db.models import AuditEntry


def test_migrations_match_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": lambda obj, name, type_, reflected, compare_to: (
                        name not in ("apscheduler_jobs", "alembic_version")
                    ),
                },
            )
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        db.dispose()


FIELDS = ("entity", "entity_id", "actor_id", "action")
OLD_ROWS = [  # as round 1 wrote them
    ("task", "7", "U1", "task.claimed"),
    ("task", "7", "system", "task.claim_expired"),
    ("shift", "S-3", "U1", "shift.joined"),
    ("shift", "S-3", "crewcall", "shift.no_show"),
    ("time_entry", "E-12", "crewcall", "hours.auto_closed"),
    ("time_entry", "E-12", "ULEAD", "hours.approved"),
    ("referral", "5", "crewcall", "referral.status"),
    ("announcement", "4", "ULEAD", "announcement.created"),
    ("policy_handbook", "handbook", "ULEAD", "policy.handbook.reloaded"),
    ("member", "U2", "UADMIN", "lead.granted"),
]
NEW_ROWS = [
    ("task", "7", "U1", "task.claimed"),
    ("task", "7", "crewcall", "task.claim_expired"),
    ("shift", "3", "U1", "shift.joined"),
    ("shift", "3", "crewcall", "shift.no_show"),
    ("time_entry", "12", "crewcall", "hours.auto_closed"),
    ("time_entry", "12", "ULEAD", "hours.approved"),
    ("referral", "5", "crewcall", "referral.status"),
    ("announcement", "4", "ULEAD", "announcement.created"),
    ("policy_handbook", "1", "ULEAD", "policy.handbook.reloaded"),
    ("member", "U2", "UADMIN", "lead.granted"),
]


def test_audit_convention_migration_rewrites_old_rows_and_back(database_url: str) -> None:
    """0009 is data only, so stepping the migrated database back to 0008 gives the previous head."""
    db = Database(database_url)
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def rows(conn: Connection) -> list[tuple[str, ...]]:
        return [
            tuple(row) for row in conn.execute(select(*(table.c[f] for f in FIELDS)).order_by(table.c.id))
        ]

    def migrate(conn: Connection, step: Callable[[Config, str], None], revision: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        step(cfg, revision)
        conn.commit()

    try:
        with db.engine.connect() as conn:
            migrate(conn, command.downgrade, "0008_merge_features")
            conn.execute(
                insert(table),
                [
                    {"at": at, "source": "", "detail": "{}", **dict(zip(FIELDS, row, strict=True))}
                    for row in OLD_ROWS
                ],
            )
            conn.commit()

            migrate(conn, command.upgrade, "0009_audit_convention")
            assert rows(conn) == NEW_ROWS

            migrate(conn, command.downgrade, "0008_merge_features")
            assert rows(conn) == OLD_ROWS
    finally:
        db.dispose()


def test_read_path_indexes_go_with_their_downgrade_and_come_back(database_url: str) -> None:
    db = Database(database_url)

    def indexes(conn: Connection) -> set[str]:
        found = {i["name"] for i in inspect(conn).get_indexes("time_entry")}
        return found | {i["name"] for i in inspect(conn).get_indexes("assignment")}

    def migrate(conn: Connection, step: Callable[[Config, str], None], revision: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        step(cfg, revision)
        conn.commit()

    ours = {"ix_time_entry_started", "ix_assignment_review_queue"}
    try:
        with db.engine.connect() as conn:
            assert ours <= indexes(conn)
            migrate(conn, command.downgrade, "0009_audit_convention")
            assert not ours & indexes(conn)
            migrate(conn, command.upgrade, "0014_read_paths")
            assert ours <= indexes(conn)
    finally:
        db.dispose()
