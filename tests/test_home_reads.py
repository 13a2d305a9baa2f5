"""A lead's Home tab is cheap: every section reads in one read-only transaction, a failing section
doesn't spoil the others, live task counts are exact and the settled ones are at most a minute old."""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import event, text

from sandbox.harness import BotHarness
from tests.shift_helpers import add_member
from tests.tasks_support import make_lead, post


def _lead_home(bot: BotHarness) -> str:
    actor = bot.services.directory.actor("ULEAD")
    return json.dumps(bot.services.home.render(bot.services, actor))


def _count(home: str, label: str) -> str:
    return home.split(f'"text": "*{label}*\\n', 1)[1].split('"', 1)[0]


def test_home_sections_read_in_one_transaction(bot: BotHarness) -> None:
    make_lead(bot)
    post(bot, "Review contracts rate=120 hours=6")
    actor = bot.services.directory.actor("ULEAD")
    begun: list[Any] = []
    rendering = threading.current_thread()

    def on_begin(connection: Any) -> None:
        if threading.current_thread() is rendering:  # not a Home published in the background meanwhile
            begun.append(connection)

    engines = bot.services.db.engines
    for engine in engines:
        event.listen(engine, "begin", on_begin)
    try:
        home = json.dumps(bot.services.home.render(bot.services, actor))
    finally:
        for engine in engines:
            event.remove(engine, "begin", on_begin)
    assert len(begun) == 1
    assert _count(home, "Open") == "1"
    assert "could not be loaded" not in home


def test_a_failing_section_leaves_the_others_readable(bot: BotHarness) -> None:
    make_lead(bot)
    post(bot, "Review contracts rate=120 hours=6")

    def broken(services: Any, actor: Any, session: Any) -> list[Any]:
        session.execute(text("SELECT * FROM no_such_table"))  # aborts the transaction on PostgreSQL
        return []

    bot.services.home.section("broken", "Broken", order=10)(broken)
    home = _lead_home(bot)
    assert "could not be loaded" in home
    assert _count(home, "Open") == "1"  # the tasks section (order 20) still read


def test_live_counts_are_exact_and_settled_ones_a_minute_old_at_most(bot: BotHarness) -> None:
    make_lead(bot)
    first, _ = post(bot, "First rate=120 hours=6")
    post(bot, "Second rate=120 hours=6")
    home = _lead_home(bot)
    assert (_count(home, "Open"), _count(home, "Cancelled")) == ("2", "0")
    assert "Cancelled" in bot.command("ULEAD", "/tasks", f"cancel T-{first}").text
    home = _lead_home(bot)
    assert (_count(home, "Open"), _count(home, "Cancelled")) == ("1", "0")  # open: at once
    bot.clock.advance(minutes=1)
    home = _lead_home(bot)
    assert (_count(home, "Open"), _count(home, "Cancelled")) == ("1", "1")


def test_near_cap_list_counts_time_closed_since_its_last_sum(bot: BotHarness) -> None:
    """The near-cap list sums the week at most once a minute; time clocked out in between still shows."""
    make_lead(bot)
    add_member(bot, "U1", "UTC")
    bot.command("ULEAD", "/crew", "cap <@U1> 2")
    assert "Nobody is near their weekly cap" in _lead_home(bot)  # the week summed now
    bot.command("U1", "/hours", "in")
    bot.clock.advance(minutes=50)
    bot.command("U1", "/hours", "out")
    assert "Nobody is near their weekly cap" in _lead_home(bot)  # 0.83 h of 2 h
    bot.command("U1", "/hours", "in")
    bot.clock.advance(minutes=5)
    assert "Nobody is near their weekly cap" in _lead_home(bot)  # 0.92 h
    bot.clock.advance(minutes=55)
    bot.command("U1", "/hours", "out")
    assert "<@U1>: 1.83 h of 2 h" in _lead_home(bot)  # summed again (over a minute since)
    bot.command("U1", "/hours", "in")
    bot.clock.advance(seconds=30)
    bot.command("U1", "/hours", "out")
    home = _lead_home(bot)  # 30 s after the last sum: from the cache plus the entry closed since
    assert "<@U1>: 1.84 h of 2 h" in home
