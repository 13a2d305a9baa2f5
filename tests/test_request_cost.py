"""What one request costs the store and Slack: the acting member is read once, and their profile is
fetched from Slack (users.info) only when it is missing or older than a day."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from core.authz import Role
from core.clock import FakeClock
from db.models import MemberSkill
from sandbox.harness import BotHarness

_MEMBER_READ = re.compile(r"\bFROM member\b", re.IGNORECASE)


@contextmanager
def statements(bot: BotHarness) -> Iterator[list[str]]:
    """Every SQL statement the bot runs inside the block."""
    seen: list[str] = []
    lock = threading.Lock()
    engine = bot.services.db.engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with lock:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_command_reads_its_member_once_and_asks_slack_only_when_the_profile_is_stale(
    bot: BotHarness,
) -> None:
    bot.fake.add_user("U1", tz="Europe/Lisbon")
    bot.command("U1", "/tasks")  # first sight: the row is written and the profile fetched
    assert len(bot.fake.calls_to("users.info")) == 1

    for text in ("", "mine"):
        with statements(bot) as seen:
            reply = bot.command("U1", "/tasks", text)
        assert "tasks" in reply.text.lower()
        member_reads = [s for s in seen if _MEMBER_READ.search(s)]
        assert len(member_reads) == 1, member_reads
    assert len(bot.fake.calls_to("users.info")) == 1  # the profile is fresh: Slack is not asked

    assert isinstance(bot.clock, FakeClock)
    bot.clock.advance(timedelta(hours=25))
    bot.command("U1", "/tasks", "mine")
    bot.command("U1", "/tasks", "mine")
    assert len(bot.fake.calls_to("users.info")) == 2  # stale once: fetched once, then fresh again


def test_the_actor_carries_role_and_skills_from_that_one_read(bot: BotHarness) -> None:
    for user in ("ULEAD", "U2"):
        bot.fake.add_user(user, tz="UTC")
        bot.command(user, "/tasks", "mine")
    bot.command("UADMIN", "/crew", "lead <@ULEAD>")
    with bot.services.db.write() as session:
        session.add_all([MemberSkill(user_id="U2", skill="legal"), MemberSkill(user_id="U2", skill="python")])

    lead = bot.services.directory.actor("ULEAD")
    assert (lead.role, lead.skills) == (Role.LEAD, frozenset())
    contractor, stale = bot.services.directory.acting("U2")
    assert (contractor.role, contractor.skills, contractor.tz, stale) == (
        Role.CONTRACTOR,
        frozenset({"legal", "python"}),
        "UTC",
        False,
    )
    refused = bot.command("U2", "/tasks", "new Title rate=10 hours=1")
    assert "Only leads and admins" in refused.text
