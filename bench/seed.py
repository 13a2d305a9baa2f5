"""Fill a store at a real community's size, for the data-scale benches.

    .venv/bin/python -m bench.seed --members 30000 --tasks 100000 --assignments 300000 \\
        --entries 1000000 --weeks 26 [--referrals 20000] [--database-url URL]

The store (`--database-url`, else DATABASE_URL, else sqlite:///data/bench-<members>.db) is migrated
first (the same migrations as start-up), must be empty, and is then filled by bulk inserts: one
`executemany` per table on SQLite, `COPY … FROM STDIN` through psycopg on PostgreSQL. Rows are
drawn from a fixed seed (`--seed`), so two runs build the same store.

What is in it, relative to the moment it runs (`now`):
- members `U000001…` (profiles fresh, so nobody is looked up in Slack), one or two skills each; the
  first member is the bench's contractor and `ULEAD` its lead (both listed at the end);
- tasks created over `--weeks`, mostly settled: about 2% open and 0.5% full (their active claims
  and submissions awaiting review), 5% cancelled, the rest closed;
- assignments: the active ones of the live tasks, then approved / rejected / released ones of the
  settled tasks up to `--assignments`;
- closed time entries (15 min to 12 h, 2% flagged, 20% on no task) spread over the weeks;
- referrals in every status, some referees hired with hours.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

SKILLS = ("legal", "medicine", "finance", "python", "editing", "chemistry", "physics", "tax")
ZONES = (
    "UTC",
    "America/New_York",
    "America/Chicago",
    "Europe/Lisbon",
    "Europe/Berlin",
    "Asia/Manila",
    "Asia/Kolkata",
)
LEAD = "ULEAD"
CONTRACTOR = "U000001"
STATUSES = ("referred", "applied", "interviewing", "hired", "eligible", "paid", "rejected")


def member_id(n: int) -> str:
    return f"U{n:06d}"


def default_url(members: int) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///data/bench-{members}.db"


class Rows:
    """Every table's rows, as tuples in column order (instants timezone-aware UTC)."""

    def __init__(self, args: argparse.Namespace, now: datetime) -> None:
        rnd = random.Random(args.seed)
        self.now = now
        span = timedelta(weeks=args.weeks)
        first = now - span
        n_members = args.members

        def instant(lo: datetime, hi: datetime) -> datetime:
            return lo + timedelta(seconds=rnd.uniform(0, (hi - lo).total_seconds()))

        members = [member_id(i) for i in range(1, n_members + 1)]
        self.member: list[tuple[Any, ...]] = [
            (LEAD, "lead", "Lena Lead", "UTC", True, now, first)
        ] + [(m, f"user{i}", f"Member {i}", ZONES[i % len(ZONES)], False, now, first)
             for i, m in enumerate(members, 1)]  # fmt: skip
        self.member_skill: list[tuple[Any, ...]] = []
        for i, m in enumerate(members):
            for slug in {SKILLS[i % len(SKILLS)], SKILLS[(i * 7 + 3) % len(SKILLS)]}:
                self.member_skill.append((m, slug))

        # Tasks: live ones first (their ids are the newest below), then settled ones.
        n_tasks = args.tasks
        n_open, n_full = max(1, n_tasks * 2 // 100), max(1, n_tasks // 200)
        self.task: list[tuple[Any, ...]] = []
        self.assignment: list[tuple[Any, ...]] = []
        settled_slots: list[tuple[int, int, datetime]] = []
        for task_id in range(1, n_tasks + 1):
            created = instant(first, now - timedelta(hours=1))
            slots = rnd.choice((1, 1, 1, 2, 3))
            skill: str | None = rnd.choice((*SKILLS, None, None))
            rate = rnd.randrange(4_500, 25_000, 50)
            age = n_tasks - task_id  # the newest tasks are the live ones
            if age < n_open + n_full:
                state = "open" if age < n_open else "full"
                created = instant(now - timedelta(days=14), now - timedelta(hours=1))
                holders = slots if state == "full" else rnd.randrange(0, slots)
                due = (now + timedelta(days=rnd.randint(1, 30))) if rnd.random() < 0.5 else None
                picked = rnd.sample(members, holders)
                for user in picked:
                    submitted = rnd.random() < 0.5
                    claimed_at = instant(created, now)
                    self.assignment.append((
                        task_id, user, "submitted" if submitted else "claimed", claimed_at,
                        instant(claimed_at, now) if submitted else None, None, None,
                    ))  # fmt: skip
                claimed, approved = holders, 0
            else:
                state = "cancelled" if rnd.random() < 0.05 else "closed"
                due = None
                claimed, approved = 0, (slots if state == "closed" else 0)
                settled_slots.append((task_id, slots if state == "closed" else 0, created))
            self.task.append((
                task_id, f"Task {task_id}", "", skill, rate, float(rnd.randint(1, 12)), slots, claimed,
                approved, due.date() if due else None, due, state, LEAD, created, created,
            ))  # fmt: skip
        # Settled tasks' assignments: every closed slot approved, then rejected / released ones.
        budget = max(0, args.assignments - len(self.assignment))
        for task_id, approved, created in settled_slots:
            if budget <= 0:
                break
            for _ in range(min(approved, budget)):
                claimed_at = instant(created, min(now, created + timedelta(days=7)))
                done = claimed_at + timedelta(hours=rnd.uniform(1, 72))
                self.assignment.append(
                    (
                        task_id,
                        rnd.choice(members),
                        "approved",
                        claimed_at,
                        done,
                        done + timedelta(hours=4),
                        None,
                    )
                )
                budget -= 1
        while budget > 0:
            task_id, _, created = settled_slots[rnd.randrange(len(settled_slots))]
            claimed_at = instant(created, min(now, created + timedelta(days=7)))
            later = claimed_at + timedelta(hours=rnd.uniform(1, 72))
            row: tuple[Any, ...]
            if rnd.random() < 0.5:
                row = (
                    task_id,
                    rnd.choice(members),
                    "rejected",
                    claimed_at,
                    later,
                    later + timedelta(hours=2),
                    None,
                )
            else:
                row = (task_id, rnd.choice(members), "released", claimed_at, None, None, later)
            self.assignment.append(row)
            budget -= 1

        self.time_entry: list[tuple[Any, ...]] = []
        task_ids = n_tasks
        for _ in range(args.entries):
            user = members[rnd.randrange(n_members)]
            length = timedelta(seconds=rnd.uniform(900, 8 * 3600) if rnd.random() < 0.97 else 12 * 3600)
            started = instant(first, now - length - timedelta(minutes=1))
            flagged = rnd.random() < 0.02
            task = rnd.randrange(1, task_ids + 1) if rnd.random() < 0.8 else None
            self.time_entry.append((user, task, started, started + length, flagged, ""))
        # Stored in the order they were clocked in, as the bot stores them.
        self.time_entry.sort(key=lambda row: row[2])

        self.referral: list[tuple[Any, ...]] = []
        for i in range(1, args.referrals + 1):
            status = STATUSES[i % len(STATUSES)]
            created = instant(first, now - timedelta(hours=1))
            hired = instant(created, now) if status in ("hired", "eligible", "paid") else None
            referee = members[rnd.randrange(n_members)] if hired else None
            self.referral.append((
                f"expert{i}@example.com", f"expert{i}@example.com", f"Expert {i}", rnd.choice(SKILLS), members[rnd.randrange(n_members)],
                referee, status, 25_000, created, hired or created, LEAD, hired,
                hired if status in ("eligible", "paid") else None, hired if status == "paid" else None,
            ))  # fmt: skip
        # The catalogue: migration 0010 fills it from the skills in use, but here they come after it.
        self.skill: list[tuple[Any, ...]] = [(slug, slug.capitalize(), LEAD, first) for slug in SKILLS]
        self.optin: list[tuple[Any, ...]] = [
            (m, first) for m in rnd.sample(members, min(len(members), n_members // 10))
        ]


TABLES: dict[str, Sequence[str]] = {
    "member": ("user_id", "name", "real_name", "tz", "is_lead", "profile_refreshed_at", "created_at"),
    "member_skill": ("user_id", "skill"),
    "skill": ("slug", "name", "created_by", "created_at"),
    "task": (
        "id",
        "title",
        "description",
        "skill",
        "rate_cents",
        "est_hours",
        "slots",
        "claimed",
        "approved",
        "due",
        "due_at",
        "state",
        "creator_id",
        "created_at",
        "updated_at",
    ),  # fmt: skip
    "assignment": ("task_id", "user_id", "state", "claimed_at", "submitted_at", "decided_at", "released_at"),
    "time_entry": ("user_id", "task_id", "started_at", "ended_at", "flagged", "flag_reason"),
    "referral": (
        "email",
        "email_key",  # core.grammar.email_key of the address: the same, for these
        "name",
        "skill",
        "referrer_id",
        "referee_user_id",
        "status",
        "bonus_cents",
        "created_at",
        "updated_at",
        "updated_by",
        "hired_at",
        "eligible_at",
        "paid_at",
    ),  # fmt: skip
    "referral_leaderboard_optin": ("user_id", "opted_in_at"),
}
# Columns with a default the bulk insert must spell out (the ORM would fill them).
DEFAULTS: dict[str, dict[str, Any]] = {
    "member": {"email": None, "is_bot": False, "deleted": False},
    "assignment": {"note": "", "reviewer_id": None, "reason": ""},
}


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # as SQLAlchemy stores a naive UTC DateTime on SQLite
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "isoformat"):  # a date
        return value.isoformat()
    return value


def _pg_value(value: Any) -> Any:
    if isinstance(value, datetime):  # UTCDateTime columns are naive UTC on PostgreSQL too
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _secondary_indexes(engine: Engine, table: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the table's indexes that are neither its key nor a constraint's."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = (
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint WHERE conname = indexname)"
            )
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        return [(name, sql) for name, sql in conn.execute(text(query), {"t": table})]


def _insert(engine: Engine, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """Bulk-load the rows with the table's secondary indexes dropped, then build them once."""
    indexes = _secondary_indexes(engine, table)
    with engine.begin() as conn:
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
    count = _load(engine, table, columns, rows)
    with engine.begin() as conn:
        for _, create in indexes:
            conn.execute(text(create))
    return count


def _load(engine: Engine, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    extra = DEFAULTS.get(table, {})
    names = list(columns) + list(extra)
    tail = tuple(extra.values())
    raw = engine.raw_connection()
    count = 0
    try:
        if engine.dialect.name == "postgresql":
            cursor = raw.cursor()
            with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([_pg_value(v) for v in row + tail])
                    count += 1
        else:
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            marks = ", ".join("?" for _ in names)
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(tuple(_sqlite_value(v) for v in row + tail))
                if len(batch) >= 50_000:
                    cursor.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", batch)
                    count += len(batch)
                    batch = []
            if batch:
                cursor.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", batch)
                count += len(batch)
        raw.commit()
    finally:
        raw.close()
    return count


def seed(url: str, args: argparse.Namespace, out: Any = sys.stdout) -> None:
    from db.engine import Database
    from db.migrate import upgrade

    started = time.perf_counter()
    db = Database(url)
    upgrade(db.engine)
    with db.engine.connect() as conn:
        if conn.execute(text("SELECT count(*) FROM member")).scalar():
            raise SystemExit(f"{url}: the store already has members; seed an empty one")
    now = datetime.now(UTC).replace(microsecond=0)
    rows = Rows(args, now)
    built = time.perf_counter()
    print(f"rows drawn in {built - started:.1f} s (after the migrations)", file=out)
    sources: dict[str, list[tuple[Any, ...]]] = {
        "member": rows.member,
        "member_skill": rows.member_skill,
        "skill": rows.skill,
        "task": rows.task,
        "assignment": rows.assignment,
        "time_entry": rows.time_entry,
        "referral": rows.referral,
        "referral_leaderboard_optin": rows.optin,
    }
    for table, data in sources.items():
        t0 = time.perf_counter()
        n = _insert(db.engine, table, TABLES[table], data)
        print(f"{table}: {n} rows in {time.perf_counter() - t0:.1f} s", file=out)
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            for table in ("task", "assignment", "time_entry", "referral"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    db.dispose()
    print(
        f"seeded {url.split('@')[-1]} in {time.perf_counter() - started:.1f} s "
        f"(lead {LEAD}, contractor {CONTRACTOR}, now {now:%Y-%m-%dT%H:%M:%SZ})",
        file=out,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=30_000)
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--assignments", type=int, default=300_000)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--referrals", type=int, default=20_000)
    p.add_argument("--weeks", type=int, default=26)
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--database-url", default=None)
    return p


def main() -> None:
    args = parser().parse_args()
    seed(args.database_url or default_url(args.members), args)


if __name__ == "__main__":
    main()
