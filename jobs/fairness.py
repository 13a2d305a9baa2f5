"""Fair share: one member going as fast as they can must not slow the bot down for everyone else.

Each member may send MEMBER_COMMANDS_PER_MIN commands and clicks, and ask MEMBER_QUESTIONS_PER_MIN
handbook questions, per minute (read on the bot's clock). Beyond that, a request is refused before it
is authorized or touches anything else: the member is told to slow down and when to try again, and
nothing changes. A refusal is said once per minute where saying it costs a message (a click, a DM, a
mention); a command's refusal rides on its acknowledgement or response_url, so it is always said.

On PostgreSQL the counts are in the database (`member_window`), so the limit is one limit however
many bot processes share it: each request is counted by one upsert (INSERT … ON CONFLICT DO UPDATE …
RETURNING), atomic (the row is locked while it changes). A command or click is counted by the
statement that reads its actor (`jobs.directory`): one round trip for both. Other requests counted
while a count is being made wait and are counted together, by one upsert of a row per member
(`core.combiner`): the i-th of a member's n requests in it is their count before it plus i, as if
they had come one by one.
SQLite serves one process only (README, Deployment), so there the counts live in that process
(`ProcessWindows`): a write transaction per request was a quarter of a slash command's CPU
(BENCHMARKS.md), and a count lost in a restart only gives a member a fresh minute.
A member's minute begins with their first request after the previous minute ended, so exactly
`per_minute` requests get through in it, whichever processes they reach; over any sliding minute
that is at most twice the share (the end of one minute and the start of the next).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, bindparam, case, column, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import ReturningInsert

from core.combiner import Combiner
from db.models import MemberWindow
from db.types import UTCDateTime

if TYPE_CHECKING:
    from jobs.runtime import Services

log = logging.getLogger("crewcall.fairness")

WINDOW = timedelta(minutes=1)
COMMANDS, QUESTIONS = "commands", "questions"

_windows = MemberWindow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Refusal:
    retry_at: datetime  # when the member's minute ends
    first: bool  # the first refusal of this minute


class MemberLimit:
    """At most `per_minute` requests of one kind per member in each of their minutes."""

    def __init__(self, kind: str, per_minute: int, services: Services) -> None:
        self.kind = kind
        self.per_minute = per_minute
        self.services = services

    def take(self, user_id: str) -> Refusal | None:
        """Count one request; a Refusal when the member is over their share. If the database can't
        be reached the request is let through: what it does next meets the same failure and says so."""
        if self.services.db.dialect == "sqlite":
            started_at, count = self.services.windows.count(self.kind, user_id, self.services.clock.now())
            return self.refusal_for(started_at, count)
        return _counts.submit((id(self.services), self.kind), (self, user_id))

    def counting(self, asked: Counter[str]) -> dict[str, object]:
        """The parameters of `counting_upsert` for `asked[user_id]` requests of each member, now."""
        now = self.services.clock.now()
        return {
            "kind": self.kind,
            "now": now,
            "since": now - WINDOW,
            "users": list(asked),
            "counts": list(asked.values()),
        }

    def refusal_for(self, started_at: datetime, count: int) -> Refusal | None:
        """The member's `count`-th request in the minute that began at `started_at`."""
        if count <= self.per_minute:
            return None
        return Refusal(started_at + WINDOW, count == self.per_minute + 1)


class ProcessWindows:
    """Each member's current minute and count, per kind, in this process (on SQLite)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[datetime, int]] = {}
        self._pruned_size = 1024

    def count(self, kind: str, user_id: str, now: datetime) -> tuple[datetime, int]:
        """Count one request; the start of the member's minute and their count in it so far."""
        key = (kind, user_id)
        with self._lock:
            started_at, count = self._windows.get(key, (now, 0))
            if started_at <= now - WINDOW:  # as the upsert: a minute begins with the first request after one
                started_at, count = now, 0
            self._windows[key] = (started_at, count + 1)
            if len(self._windows) > 2 * self._pruned_size:
                self._prune(now)
            return started_at, count + 1

    def _prune(self, now: datetime) -> None:
        """Forget ended minutes (amortized: only once the table has doubled since the last time)."""
        self._windows = {k: w for k, w in self._windows.items() if w[0] > now - WINDOW}
        self._pruned_size = max(1024, len(self._windows))


@functools.cache
def counting_upsert() -> ReturningInsert[Any]:
    """The counting upsert (PostgreSQL), a row per member from two arrays (`MemberLimit.counting`):
    one statement, compiled once whatever the batch's size (a multi-row VALUES was compiled again
    for every batch). It returns each member's user_id, started_at and count after it."""
    asked = (
        func.unnest(bindparam("users", type_=ARRAY(String)), bindparam("counts", type_=ARRAY(Integer)))
        .table_valued(column("user_id", String), column("count", Integer))
        .render_derived(name="asked")
    )
    rows = select(
        asked.c.user_id,
        bindparam("kind", type_=String),
        bindparam("now", type_=UTCDateTime()),
        asked.c["count"],
    )
    new = postgresql.insert(_windows).from_select(["user_id", "kind", "started_at", "count"], rows)
    # Both SET expressions read the row as it was: still in its minute, or a new minute begins.
    ongoing = _windows.c.started_at > bindparam("since", type_=UTCDateTime())
    return new.on_conflict_do_update(
        index_elements=[_windows.c.user_id, _windows.c.kind],
        set_={
            "started_at": case((ongoing, _windows.c.started_at), else_=new.excluded.started_at),
            "count": case((ongoing, _windows.c.count + new.excluded["count"]), else_=new.excluded["count"]),
        },
    ).returning(_windows.c.user_id, _windows.c.started_at, _windows.c.count)


def _count(key: Hashable, requests: Sequence[tuple[MemberLimit, str]]) -> list[Refusal | None]:
    """Count requests of one kind: one upsert, a row per member."""
    limit = requests[0][0]
    db = limit.services.db
    asked = Counter(user_id for _, user_id in requests)
    try:
        with db.statement() as conn:
            rows = conn.execute(counting_upsert(), limit.counting(asked)).all()
    except Exception:
        log.exception("could not count %d requests; letting them through", len(requests))
        return [None] * len(requests)
    # Each member's count before these requests; theirs are numbered on from it, in order.
    counts = {user_id: (started_at, count - asked[user_id]) for user_id, started_at, count in rows}
    outcomes: list[Refusal | None] = []
    for _, user_id in requests:
        started_at, before = counts[user_id]
        counts[user_id] = (started_at, before + 1)
        outcomes.append(limit.refusal_for(started_at, before + 1))
    return outcomes


_counts: Combiner[tuple[MemberLimit, str], Refusal | None] = Combiner(_count)


@dataclass(frozen=True)
class Limits:
    commands: MemberLimit
    questions: MemberLimit


def limits_for(services: Services) -> Limits:
    """This app's per-member limits (they keep nothing but the settings: the counts are in the store)."""
    config = services.config
    return Limits(
        commands=MemberLimit(COMMANDS, config.member_commands_per_min, services),
        questions=MemberLimit(QUESTIONS, config.member_questions_per_min, services),
    )
