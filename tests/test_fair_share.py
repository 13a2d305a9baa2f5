"""Item 3 of issue 12: one member going as fast as they can doesn't degrade the bot for others."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from sandbox.fake_slack import FakeSlack, dm_channel_id
from sandbox.harness import BotHarness

LEADS = "C0LEADS"
SHARE = {"MEMBER_COMMANDS_PER_MIN": "60", "MEMBER_QUESTIONS_PER_MIN": "10"}  # the defaults


@pytest.fixture
def bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS, **SHARE})
    harness.start()
    for user in ("U1", "U2"):
        harness.fake.add_user(user)
    yield harness
    harness.close()


def _leads_cards(bot: BotHarness) -> list:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.ok and c.params.get("channel") == LEADS]


@pytest.fixture
def limited_bot(database_url: str) -> Iterator[BotHarness]:
    """Against a Slack that enforces its posting limits (one a second per channel, 429 beyond)."""
    with FakeSlack(rate_limits={"per_channel_per_sec": 1.0, "workspace_per_min": 600}) as fake:
        harness = BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS, **SHARE})
        harness.start()
        for user in ("U1", "U2"):
            harness.fake.add_user(user)
        yield harness
        harness.close()


def test_a_flood_of_questions_from_one_member_leaves_the_others_served(limited_bot: BotHarness) -> None:
    bot = limited_bot
    bot.fake.latency = 0.1  # Slack a little slow, as under load
    assert bot.driver is not None
    driver = bot.driver
    slowed: list[str] = []

    def flood(part: int) -> None:
        for i in range(part, 200, 8):  # 200 questions from U1, from 8 threads at once
            question = f"what is the weather in city number {i} tomorrow?"
            if i % 2:
                driver.message_im("U1", question)
            else:
                reply = bot.command("U1", "/policy", question)
                if "faster than I can keep up" in reply.text:
                    slowed.append(reply.text)

    flooders = [threading.Thread(target=flood, args=(p,)) for p in range(8)]
    for t in flooders:
        t.start()
    waits = []
    try:
        while any(t.is_alive() for t in flooders) or len(waits) < 10:
            started = time.monotonic()
            reply = bot.command("U2", "/tasks", "mine")  # the bystander
            waits.append(time.monotonic() - started)
            assert "Your tasks" in reply.all_text or "no tasks" in reply.all_text.lower()
    finally:
        for t in flooders:
            t.join()
    assert max(waits) < 3.0, f"the bystander waited {max(waits):.2f} s"

    # U1 was told to slow down, and when to try again; at most their share reached the leads.
    assert slowed and "Try again at <!date^" in slowed[0] and "Nothing was done" in slowed[0]
    time.sleep(12)  # the leads' cards are paced one a second into their channel
    assert 1 <= len(_leads_cards(bot)) <= 10
    dms = [
        c
        for c in bot.fake.calls_to("chat.postMessage")
        if c.ok and c.params.get("channel") == dm_channel_id("U1")
    ]
    assert sum("faster than I can keep up" in json.dumps(c.params) for c in dms) <= 1  # told once per streak


def test_the_same_question_asked_again_joins_the_open_escalation(bot: BotHarness) -> None:
    first = bot.command("U1", "/policy", "Can I bring my dog to the team call?")
    assert "asked the leads" in first.text
    for text in ("can I bring my dog to the team call", "CAN I BRING MY DOG TO THE TEAM CALL??"):
        again = bot.command("U1", "/policy", text)
        assert "You asked this already (question #1)" in again.text
    bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.ok and c.params.get("channel") == LEADS)
    time.sleep(1.5)
    assert len(_leads_cards(bot)) == 1
    # Someone else asking the same is their own question.
    assert "asked the leads" in bot.command("U2", "/policy", "can I bring my dog to the team call?").text


def test_commands_over_the_share_are_refused_until_the_minute_has_passed(bot: BotHarness) -> None:
    for _ in range(60):
        assert "faster than" not in bot.command("U1", "/tasks", "mine").text
    refused = bot.command("U1", "/tasks", "claim T-1")
    assert "faster than I can keep up" in refused.text and "Try again at" in refused.text
    assert "faster than" not in bot.command("U2", "/tasks", "mine").text  # others are not held back
    bot.clock.advance(seconds=61)
    assert "faster than" not in bot.command("U1", "/tasks", "mine").text


def test_requests_counted_together_are_counted_exactly(bot: BotHarness) -> None:
    """Takes from many threads at once are counted in batches (one upsert each): per member, exactly
    the share gets through and the first refusal is said once, as one by one."""
    from jobs.fairness import limits_for

    members = ["U1", "U2", "U3"]
    barrier = threading.Barrier(24)
    outcomes: dict[str, list[object]] = {u: [] for u in members}

    def take(part: int) -> None:
        limit = limits_for(bot.services).commands
        barrier.wait()
        for i in range(10):  # 24 threads x 10 = 80 takes per member
            user = members[(part + i) % 3]
            outcomes[user].append(limit.take(user))

    threads = [threading.Thread(target=take, args=(p,)) for p in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for user in members:
        refusals = [r for r in outcomes[user] if r is not None]
        assert len(outcomes[user]) == 80 and len(refusals) == 20
        assert sum(r.first for r in refusals) == 1  # type: ignore[attr-defined]


def _counted_with_actor(bot: BotHarness, user: str) -> object:
    """A command's count, made with its actor's read: the Refusal, or None when it gets through."""
    from jobs.fairness import Refusal, limits_for

    with ExitStack() as reading:
        acting = bot.services.directory.counted_acting_in(reading, user, limits_for(bot.services).commands)
    if isinstance(acting, Refusal):
        return acting
    assert acting[0].user_id == user
    return None


def test_a_count_made_with_the_actors_read_is_the_same_count(bot: BotHarness) -> None:
    """A command or click is counted together with its actor's read (one statement on PostgreSQL,
    `Directory.counted_acting_in`), a handbook question or a batch by `take`: from many threads at
    once, per member, exactly the share gets through and the first refusal is said once."""
    from jobs.fairness import Refusal, limits_for

    members = ["U1", "U2", "U3"]
    for user in members:
        bot.command(user, "/tasks", "mine")  # met: their rows exist (and each is counted once)
    limit = limits_for(bot.services).commands
    barrier = threading.Barrier(12)
    outcomes: dict[str, list[object]] = {u: [] for u in members}

    def count(part: int) -> None:
        barrier.wait()
        for i in range(14):  # 12 threads x 14 = 56 more a member, 57 in all
            user = members[(part + i) % 3]
            outcomes[user].append(limit.take(user) if i % 2 else _counted_with_actor(bot, user))

    threads = [threading.Thread(target=count, args=(p,)) for p in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(outcomes[user] == [None] * 56 for user in members)
    for user in members:  # three more each get through (60), by both paths; then both refuse
        assert [_counted_with_actor(bot, user), limit.take(user), _counted_with_actor(bot, user)] == [
            None
        ] * 3
        first, second = limit.take(user), _counted_with_actor(bot, user)
        assert isinstance(first, Refusal) and first.first
        assert isinstance(second, Refusal) and not second.first


def test_process_windows_count_minutes_and_forget_only_ended_ones() -> None:
    """On SQLite the counts live in the process (jobs.fairness.ProcessWindows): a minute begins with
    the first request after the last one ended, and pruning forgets ended minutes only."""
    from datetime import UTC, datetime, timedelta

    from jobs.fairness import ProcessWindows

    windows = ProcessWindows()
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    for i in range(3000):  # past the first pruning size: nothing has ended yet
        windows.count("commands", f"U{i}", start)
    assert windows.count("commands", "U1", start + timedelta(seconds=59)) == (start, 2)
    assert windows.count("questions", "U1", start + timedelta(seconds=59))[1] == 1  # kinds apart
    later = start + timedelta(seconds=61)
    for i in range(3000, 7000):  # prunes the ended minutes of U0…U2999
        windows.count("commands", f"U{i}", later)
    assert len(windows._windows) <= 4001
    assert windows.count("commands", "U3001", later) == (later, 2)
    assert windows.count("commands", "U1", later) == (later, 1)  # a new minute
