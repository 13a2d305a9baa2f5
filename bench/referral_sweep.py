"""The hourly referral sweep at community scale: how long one pass over every hired referral takes.

    .venv/bin/python -m bench.referral_sweep [--referrals 2000] [--entries 20]

Seeds N hired referrals whose referees each have E closed time entries, on SQLite and on PostgreSQL,
then times:
  * sweep     `promote_eligible` over every hired referral (what the hourly job runs): one query
              for the candidates, then their hours summed by the database, 500 referees a query;
  * baseline  the first implementation of the same decision: every closed, unflagged entry of the
              candidates fetched and the durations summed in Python.
The first sweep promotes the 10% who crossed the threshold; the figures are for the steady state
after it (nothing left to promote), the usual hourly case. Needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import col, select

from db.engine import Database
from db.migrate import upgrade
from db.models import Member, Referral, TimeEntry
from domain import referrals as rules
from sandbox.scratch_db import scratch_database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
THRESHOLD = Decimal(10)


def seed(db: Database, referrals: int, entries: int) -> None:
    with db.write() as session:
        session.add(Member(user_id="UREFERRER", created_at=NOW))
        for i in range(referrals):
            referee = f"UR{i:06d}"
            session.add(Member(user_id=referee, created_at=NOW))
            session.add(
                Referral(
                    email=f"expert{i}@bench.example",
                    email_key=f"expert{i}@bench.example",
                    referrer_id="UREFERRER",
                    referee_user_id=referee,
                    status=rules.HIRED,
                    bonus_cents=25_000,
                    created_at=NOW,
                    updated_at=NOW,
                    updated_by="ULEAD",
                    hired_at=NOW,
                )
            )
        session.flush()
        # 8 hours each, 10% of them 12 hours: those cross the threshold on the first sweep.
        for i in range(referrals):
            total = 12 if i % 10 == 0 else 8
            each = timedelta(hours=total) / entries
            for j in range(entries):
                start = NOW - timedelta(days=j + 1)
                # No task, approved by a lead: it counts toward the bonus (domain.referrals.bonus_hours).
                session.add(
                    TimeEntry(
                        user_id=f"UR{i:06d}", started_at=start, ended_at=start + each, approved_by="ULEAD"
                    )
                )


def sweep(db: Database) -> int:
    with db.write() as session:
        return len(rules.promote_eligible(session, threshold_hours=THRESHOLD, now=NOW, source="bench"))


def baseline(db: Database) -> int:
    """The first implementation: fetch every closed, unflagged entry of the candidates and sum the
    durations in Python."""
    crossed = 0
    with db.read() as session:
        hired = list(session.exec(select(Referral).where(Referral.status == rules.HIRED)))
        referees = [r.referee_user_id or "" for r in hired]
        totals: dict[str, timedelta] = defaultdict(timedelta)
        for i in range(0, len(referees), 500):
            rows = session.exec(
                select(TimeEntry.user_id, TimeEntry.started_at, TimeEntry.ended_at).where(
                    col(TimeEntry.user_id).in_(referees[i : i + 500]),
                    col(TimeEntry.ended_at).is_not(None),
                    col(TimeEntry.flagged).is_(False),
                )
            ).all()
            for user_id, started, ended in rows:
                if ended is not None and ended > started:
                    totals[user_id] += ended - started
        crossed = sum(1 for t in totals.values() if t >= timedelta(hours=float(THRESHOLD)))
    return crossed


def timed(fn, db: Database, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(db)
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(label: str, url: str, referrals: int, entries: int, runs: int) -> None:
    db = Database(url)
    upgrade(db.engine)
    seed(db, referrals, entries)
    promoted = sweep(db)
    assert promoted == referrals // 10, promoted
    assert baseline(db) == 0 and sweep(db) == 0  # steady state: nothing left to promote
    ours = timed(sweep, db, runs)
    base = timed(baseline, db, runs)
    db.dispose()
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(
        f"{label:10s} {referrals} hired x {entries} entries: first sweep promoted {promoted}; "
        f"steady sweep median {m_ours:.0f} ms (min {min(ours):.0f}), "
        f"baseline (entries summed in Python) median {m_base:.0f} ms (min {min(base):.0f}); "
        f"baseline/sweep = {m_base / m_ours:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql"):
        with scratch_database(backend) as url:
            run(backend, url, args.referrals, args.entries, args.runs)


if __name__ == "__main__":
    main()
