"""What one request costs the store and Slack: the acting member is read once, and their profile is
fetched from Slack (users.info) only when it is missing or older than a day."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from core.authz import Role
from core.clock import FakeClock
from core.slack import closing_before_slack
from db.models import MemberSkill
from handlers.kit.context import Ctx, SlackRequest
from sandbox.harness import BotHarness
from server.app import SDK_LOGGERS

_MEMBER_READ = re.compile(r"\b(?:FROM|JOIN) member\b", re.IGNORECASE)


@contextmanager
def recorded(bot: BotHarness, what: str) -> Iterator[list[Any]]:
    """Every `what` engine event while the block runs: "before_cursor_execute" gives each
    statement's SQL, "begin" the name of the thread that began each transaction."""
    seen: list[Any] = []
    lock = threading.Lock()
    engines = bot.services.db.engines

    def record(conn: Any, *args: Any) -> None:
        with lock:
            seen.append(args[1] if args else threading.current_thread().name)

    for engine in engines:
        event.listen(engine, what, record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, what, record)


def statements(bot: BotHarness) -> Any:
    return recorded(bot, "before_cursor_execute")


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


@contextmanager
def listener_transactions(bot: BotHarness) -> Iterator[list[list[str]]]:
    """The statements of each transaction the listeners' threads run while the block runs (the
    scheduler's thread polls its job store meanwhile: it is left out)."""
    transactions: list[list[str]] = []
    open_one: dict[str, list[str]] = {}
    lock = threading.Lock()
    engines = bot.services.db.engines

    def begin(conn: Any) -> None:
        name = threading.current_thread().name
        if name.startswith("listener"):
            with lock:
                open_one[name] = []
                transactions.append(open_one[name])

    def execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with lock:
            current = open_one.get(threading.current_thread().name)
            if current is not None:
                current.append(statement)

    for engine in engines:
        event.listen(engine, "begin", begin)
        event.listen(engine, "before_cursor_execute", execute)
    try:
        yield transactions
    finally:
        for engine in engines:
            event.remove(engine, "begin", begin)
            event.remove(engine, "before_cursor_execute", execute)


def _setting(statement: str) -> bool:
    """What a transaction's start runs on SQLite (no round trip there)."""
    return statement.startswith(("PRAGMA", "BEGIN", "SET"))


def test_a_list_command_reads_in_two_round_trips_at_most(bot: BotHarness) -> None:
    """SQLite: the actor's read and the list's read are one transaction, not one each (the count is
    in the process). PostgreSQL: two statements, no transaction block: the member's count with the
    actor's read, then the list."""
    bot.fake.add_user("U1", tz="Europe/Lisbon")
    bot.command("U1", "/tasks")
    for text in ("", "mine"):
        with listener_transactions(bot) as transactions:
            bot.command("U1", "/tasks", text)
        shown = [[statement[:60] for statement in t] for t in transactions]
        statements = [[s for s in t if not _setting(s)] for t in transactions]
        if bot.services.db.dialect == "sqlite":
            assert len(transactions) == 1, shown
            assert _MEMBER_READ.search(statements[0][0]) and len(statements[0]) == 2, shown
        else:
            assert [len(t) for t in statements] == [1, 1], shown
            counted_acting = statements[0][0]
            assert "member_window" in counted_acting and _MEMBER_READ.search(counted_acting), shown


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


def test_sdk_loggers_have_a_level_so_their_debug_lines_are_not_built(sqlite_bot: BotHarness) -> None:
    """Bolt and slack_sdk build a debug line (with the whole body) when their logger's own level is
    unset (they test `logger.level <= DEBUG`); the app gives each the level in effect."""
    for name in SDK_LOGGERS:
        level = logging.getLogger(name).level
        assert level != logging.NOTSET and level == logging.getLogger(name).getEffectiveLevel()


def test_the_request_read_ends_before_the_first_web_api_call(sqlite_bot: BotHarness) -> None:
    """A body that calls Slack before reading does so with the actor's read transaction closed."""
    sqlite_bot.fake.add_user("U1", tz="UTC")
    sqlite_bot.command("U1", "/tasks", "mine")
    services = sqlite_bot.services
    reading = ExitStack()
    actor, stale, session = services.directory.acting_in(reading, "U1")
    assert session is not None and session.in_transaction() and not stale
    ctx = Ctx(services, SlackRequest(kind="command", user_id="U1", source="test"), actor, (session, reading))
    with closing_before_slack(ctx.release):
        services.slack.call("auth.test")
        assert not session.in_transaction()
        with ctx.read() as fresh:
            assert fresh is not session  # the held one was ended, so this read is a new one


def test_the_request_thread_waits_for_the_ack_without_polling(
    sqlite_bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bolt's own runner polls for a listener's ack every 10 ms (so every ack waited 10 ms); ours
    waits on an event. Bolt's polling sleeps are counted: none while commands and errors are answered."""
    import slack_bolt.listener.thread_runner as bolt_runner

    polls: list[float] = []

    class CountingTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            polls.append(seconds)
            time.sleep(seconds)

    monkeypatch.setattr(bolt_runner, "time", CountingTime())
    sqlite_bot.fake.add_user("U1", tz="UTC")
    assert "tasks" in sqlite_bot.command("U1", "/tasks").text.lower()
    assert "Your tasks" in sqlite_bot.command("U1", "/tasks", "mine").text
    assert (
        "not a /tasks subcommand" in sqlite_bot.command("U1", "/tasks", "frobnicate").text
    )  # ack with a body
    assert polls == []
