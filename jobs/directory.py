"""Who is acting: member rows, roles and profiles, kept fresh from Slack's users.info.

Slack is called outside any database transaction, so a slow API never holds a lock.
"""

from __future__ import annotations

import functools
from collections import Counter
from contextlib import ExitStack
from typing import Any

from sqlalchemy import Select, select
from sqlmodel import Session, col

from core.authz import Actor
from core.clock import Clock
from core.errors import UserError
from core.slack import SlackFailure, SlackGateway, profile_from_user
from db.engine import Database
from db.models import Member, MemberSkill
from domain import members
from jobs.fairness import MemberLimit, Refusal, counting_upsert


@functools.cache
def _counted_acting() -> Select[Any]:
    """PostgreSQL: a member's request counted (`jobs.fairness`) and the member read
    (`members.acting`), in one statement: one round trip a request instead of two. A row per skill;
    the member's columns are NULL for someone not met yet."""
    counted = counting_upsert().cte("counted")
    return (
        select(counted.c.started_at, counted.c["count"], col(Member.user_id), *members.ACTING_COLUMNS)
        .select_from(counted)
        .outerjoin(Member, col(Member.user_id) == counted.c.user_id)
        .outerjoin(MemberSkill, col(MemberSkill.user_id) == col(Member.user_id))
    )


class Directory:
    def __init__(self, db: Database, slack: SlackGateway, clock: Clock, admin_ids: frozenset[str]) -> None:
        self.db = db
        self.slack = slack
        self.clock = clock
        self.admin_ids = admin_ids

    def actor(self, user_id: str) -> Actor:
        """Every request asks; only a member met for the first time is written."""
        return self.acting(user_id)[0]

    def acting(self, user_id: str) -> tuple[Actor, bool]:
        """The actor, and whether their profile is missing or stale (see `refreshed`): one read for a
        member met before, the row written for one met for the first time."""
        with ExitStack() as reading:
            actor, stale, _ = self.acting_in(reading, user_id)
        return actor, stale

    def acting_in(self, reading: ExitStack, user_id: str) -> tuple[Actor, bool, Session | None]:
        """`acting`, whose read transaction is entered on `reading` and left open, and returned, for
        the request to go on reading in; None (and `reading` closed) for a member met for the first
        time, whose row is written."""
        session = reading.enter_context(self.db.read())
        known = members.acting(session, user_id, self.admin_ids, self.clock.now())
        if known is not None:
            return known[0], known[1], session
        reading.close()
        return self._first_met(user_id), True, None

    def counted_acting_in(
        self, reading: ExitStack, user_id: str, counting: MemberLimit
    ) -> tuple[Actor, bool, Session | None] | Refusal:
        """`acting_in` for a request counted first against the member's share (`jobs.fairness`):
        over it, a Refusal, and nothing read or written for them. On PostgreSQL the count and the
        read are one statement, on the write pool, and no read is left open (None)."""
        if self.db.dialect == "postgresql":
            return self._counted_acting(counting, user_id)
        refusal = counting.take(user_id)
        return refusal if refusal is not None else self.acting_in(reading, user_id)

    def _counted_acting(self, counting: MemberLimit, user_id: str) -> tuple[Actor, bool, None] | Refusal:
        with self.db.statement() as conn:
            rows = conn.execute(_counted_acting(), counting.counting(Counter([user_id]))).all()
        started_at, count = rows[0][0], rows[0][1]
        refusal = counting.refusal_for(started_at, count)
        if refusal is not None:
            return refusal
        met = [row[3:] for row in rows if row[2] is not None]
        known = members.acting_from(met, user_id, self.admin_ids, self.clock.now())
        if known is not None:
            return known[0], known[1], None
        return self._first_met(user_id), True, None

    def _first_met(self, user_id: str) -> Actor:
        with self.db.write() as written:
            return members.actor(written, user_id, self.admin_ids, self.clock.now())

    def refreshed(self, actor: Actor, stale: bool) -> Actor:
        """The same actor, with the profile fetched from Slack first if `acting` found it stale."""
        if not stale:
            return actor
        return self.refresh(actor.user_id) or actor

    def refresh(self, user_id: str) -> Actor | None:
        profile = self.slack.profile(user_id)
        if profile is None:
            return None
        with self.db.write() as session:
            members.apply_profile(session, profile, self.clock.now())
            return members.actor(session, user_id, self.admin_ids, self.clock.now())

    def member(self, user_id: str) -> Actor:
        """Someone a command names (`/crew lead @ana`), as Slack knows them now. A user Slack doesn't
        know, a deactivated account or a bot is refused with a specific message; so is asking when
        Slack can't be reached. Call it after the ack: it waits on users.info."""
        try:
            user = self.slack.call("users.info", user=user_id)["user"]
        except SlackFailure as e:
            if e.error in ("user_not_found", "users_not_found"):
                raise UserError(
                    f"Slack doesn't know a member `{user_id}` in this workspace. Mention them as they appear "
                    "in Slack, like @ana. Nothing changed."
                ) from None
            raise UserError(
                f"I couldn't check that member with Slack right now (`{e.error}`). Nothing changed; "
                "try again in a moment."
            ) from None
        profile = profile_from_user(user)
        if profile.deleted or profile.is_bot:
            what = "a deactivated account" if profile.deleted else "a bot"
            raise UserError(f"<@{user_id}> is {what}, not an active member. Nothing changed.")
        with self.db.write() as session:
            members.apply_profile(session, profile, self.clock.now())
            return members.actor(session, user_id, self.admin_ids, self.clock.now())

    def tz_of(self, user_id: str) -> str:
        with self.db.read() as session:
            member = session.get(Member, user_id)
            return member.tz if member else "UTC"
