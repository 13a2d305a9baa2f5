"""Helpers shared by the shift and hours tests: a lead, members in several timezones, rows the
/tasks feature would create, and waiting for the bot's asynchronous effects."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db.models import Assignment, Task
from sandbox.harness import BotHarness

LEAD = "ULEAD"


def make_lead(bot: BotHarness, tz: str = "America/Chicago") -> str:
    bot.fake.add_user(LEAD, name="lena", tz=tz)
    assert "is now a lead" in bot.command("UADMIN", "/crew", f"lead <@{LEAD}>").text
    return LEAD


def add_member(bot: BotHarness, user_id: str, tz: str, skills: str = "") -> str:
    bot.fake.add_user(user_id, tz=tz)
    if skills:
        bot.command(LEAD, "/crew", f"skill <@{user_id}> {skills}")
    else:
        bot.command(user_id, "/crew", "me")  # the bot meets them (member row, profile, timezone)
    return user_id


def new_shift(bot: BotHarness, text: str, channel: str = "C0SHIFTS") -> str:
    reply = bot.command(LEAD, "/shifts", f"new {text} channel=<#{channel}>")
    assert "Scheduled" in reply.text, reply.text
    return reply.text


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def reminders_to(bot: BotHarness, user_id: str) -> list[Any]:
    return [c for c in bot.dms_to(user_id) if "Reminder:" in c.params.get("text", "")]


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Wait for something a scheduler thread or a handler does after acking."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def settle(seconds: float = 0.4) -> None:
    """Give scheduler threads a moment before asserting that something did NOT happen."""
    time.sleep(seconds)


def add_task(bot: BotHarness, title: str, rate_cents: int, holder: str | None = None) -> int:
    """A task row as /tasks would leave it (built in parallel by another feature), optionally claimed."""
    now = bot.clock.now()
    with bot.services.db.write() as session:
        task = Task(
            title=title, rate_cents=rate_cents, slots=1, creator_id=LEAD, created_at=now, updated_at=now
        )
        session.add(task)
        session.flush()
        if holder:
            session.add(Assignment(task_id=task.id, user_id=holder, claimed_at=now))  # type: ignore[arg-type]
        return task.id  # type: ignore[return-value]
