"""The migrations build exactly the schema the models describe, and rewrite existing rows as they
say, on both backends."""

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, column, insert, inspect, select, table
from sqlmodel import SQLModel

import db.models  # noqa: F401
from db.engine import Database
from db.models import AuditEntry, Member, MemberSkill, Shift, Skill
from db.types import UTCDateTime
from tests.migration_support import migrate


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


def test_vetting_migration_seeds_the_catalogue_from_skills_in_use(database_url: str) -> None:
    """0010 starts the catalogue with every skill found on members, tasks and shifts; its downgrade
    drops the vetting tables and columns again."""
    db = Database(database_url)
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    try:
        with db.engine.connect() as conn:
            migrate(conn, command.downgrade, "0009_audit_convention")
            member = {
                "name": "",
                "real_name": "",
                "tz": "UTC",
                "is_lead": False,
                "is_bot": False,
                "deleted": False,
            }
            conn.execute(insert(Member.__table__), [{"user_id": "U1", "created_at": at, **member}])  # type: ignore[attr-defined]
            conn.execute(insert(MemberSkill.__table__), [{"user_id": "U1", "skill": "legal"}])  # type: ignore[attr-defined]
            task = {
                "rate_cents": 100,
                "est_hours": 1,
                "slots": 1,
                "claimed": 0,
                "approved": 0,
                "description": "",
            }
            # The task table as 0009 left it (the model has 0010's ai_allowed already).
            old_task = table("task", *(column(c) for c in (*task, "title", "skill", "state", "creator_id")))
            old_task.append_column(column("created_at", UTCDateTime()))
            old_task.append_column(column("updated_at", UTCDateTime()))
            conn.execute(
                insert(old_task),
                [
                    {
                        "title": "a",
                        "skill": "medicine",
                        "state": "open",
                        "creator_id": "U1",
                        "created_at": at,
                        "updated_at": at,
                        **task,
                    },
                    {
                        "title": "b",
                        "skill": None,
                        "state": "open",
                        "creator_id": "U1",
                        "created_at": at,
                        "updated_at": at,
                        **task,
                    },
                    {
                        "title": "c",
                        "skill": "legal",
                        "state": "open",
                        "creator_id": "U1",
                        "created_at": at,
                        "updated_at": at,
                        **task,
                    },
                ],
            )
            conn.execute(
                insert(Shift.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "name": "night",
                        "tz": "UTC",
                        "first_starts_at": at,
                        "first_ends_at": at,
                        "starts_at": at,
                        "ends_at": at,
                        "occurrence": 0,
                        "last_started": -1,
                        "closed_through": -1,
                        "slots": 1,
                        "filled": 0,
                        "skill": "data-science",
                        "repeat": "none",
                        "remind_minutes": 30,
                        "channel_id": "C1",
                        "creator_id": "U1",
                        "state": "scheduled",
                        "created_at": at,
                        "updated_at": at,
                    }
                ],
            )
            conn.commit()
            migrate(conn, command.upgrade, "0010_vetting")
            skills = Skill.__table__  # type: ignore[attr-defined]
            seeded = [
                tuple(r) for r in conn.execute(select(skills.c.slug, skills.c.name).order_by(skills.c.slug))
            ]
            assert seeded == [("data-science", "Data science"), ("legal", "Legal"), ("medicine", "Medicine")]
            migrate(conn, command.downgrade, "0009_audit_convention")
            migrate(conn, command.upgrade, "head")
    finally:
        db.dispose()


def test_read_path_indexes_go_with_their_downgrade_and_come_back(database_url: str) -> None:
    db = Database(database_url)

    def indexes(conn: Connection) -> set[str]:
        found = {i["name"] for i in inspect(conn).get_indexes("time_entry")}
        return found | {i["name"] for i in inspect(conn).get_indexes("assignment")}

    ours = {"ix_time_entry_started", "ix_assignment_review_queue"}
    try:
        with db.engine.connect() as conn:
            assert ours <= indexes(conn)
            migrate(conn, command.downgrade, "0013_pay")
            assert not ours & indexes(conn)
            migrate(conn, command.upgrade, "0014_read_paths")
            assert ours <= indexes(conn)
    finally:
        db.dispose()
