"""The query plans of the weekly hours report and of a lead's Home tab, on a seeded store.

    .venv/bin/python -m bench.query_plans --database-url sqlite:///data/bench-30000.db [--home]

Runs the real domain functions (`domain.hours.report` for last week; for a lead's Home: their
active assignments, the task counts, the review queue, and who is near their weekly cap), records the statements they send, and
prints each with its plan: `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN ANALYZE` on PostgreSQL.
With `--home`, instead: every statement of a whole Home tab, the lead's then the contractor's, as
the bot renders it (its sections, against a fake Slack), each with its plan.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from bench.seed import CONTRACTOR, LEAD
from core.config import load_config
from db.engine import Database
from db.migrate import upgrade
from domain import hours, pay
from domain import tasks as rules
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BOT_TOKEN, SIGNING_SECRET
from server.app import create_app


def recorded(db: Database, work: Any) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(db.read_engine, "before_cursor_execute", before)
    try:
        with db.read() as session:
            work(session)
    finally:
        event.remove(db.read_engine, "before_cursor_execute", before)
    return statements


def explain(db: Database, statement: str, parameters: Any) -> str:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.dialect == "postgresql":
            cursor.execute("EXPLAIN ANALYZE " + statement, parameters)
            return "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(f"{'  ' * _depth(rows, r[1])}{r[3]}" for rows in [cursor.fetchall()] for r in rows)
    finally:
        raw.rollback()
        raw.close()


def _depth(rows: Any, parent: int) -> int:
    ids = {r[0]: r[1] for r in rows}
    depth = 0
    while parent in ids:
        parent = ids[parent]
        depth += 1
    return depth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True)
    p.add_argument("--home", action="store_true", help="every statement of a lead's and a contractor's Home")
    args = p.parse_args()
    if args.home:
        return home_plans(args.database_url)
    db = Database(args.database_url)
    upgrade(db.engine)
    today = datetime.now(UTC).date()
    start, end = hours.week_of(today - timedelta(days=today.weekday() + 7), "UTC")
    now = datetime.now(UTC)

    def lead_home(session: Session) -> None:
        rules.assignments_of(session, LEAD, 0, 10, active_only=True)
        if hasattr(rules, "TaskCounts"):
            rules.TaskCounts().by_state(session, now)
        else:  # before the live/settled split
            rules.counts_by_state(session)  # type: ignore[attr-defined]
        rules.awaiting_review(session, 10)

    def near_cap(session: Session) -> None:
        near = pay.NearCap(db.read)
        near(session, now, Decimal(40))  # the week's sums per member (at most once a minute)
        near(
            session, now + timedelta(seconds=1), Decimal(40)
        )  # then each time: entries closed since, running ones

    for title, work in (
        (f"hours report, week of {start:%Y-%m-%d}", lambda s: hours.report(s, start, end)),
        ("lead Home: tasks section", lead_home),
        ("lead Home: hours section, who is near their cap", near_cap),
    ):
        print(f"## {title} ({db.dialect})\n")
        for statement, parameters in recorded(db, work):
            print("```sql\n" + " ".join(statement.split()) + "\n```")
            print("```\n" + explain(db, statement, parameters) + "\n```\n")
    db.dispose()


def home_plans(url: str) -> None:
    fake = FakeSlack().start()
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
    }
    services = create_app(load_config(env=env, dotenv_path=None)).services
    try:
        for who in (LEAD, CONTRACTOR):
            actor = services.directory.actor(who)
            services.home.render(services, actor)  # the first render sums the near-cap week, once
            print(f"## {who}'s Home ({services.db.dialect})\n")
            statements = recorded(services.db, lambda _, actor=actor: services.home.render(services, actor))
            for statement, parameters in statements:
                print("```sql\n" + " ".join(statement.split())[:300] + "\n```")
                print("```\n" + explain(services.db, statement, parameters) + "\n```\n")
    finally:
        services.db.dispose()
        fake.stop()


if __name__ == "__main__":
    main()
