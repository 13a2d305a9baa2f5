"""Issue 14, item 3: with several bot processes on one PostgreSQL database, what decides is in the
database. Two real `bot.py` processes share one store: a member's share is one share across both,
and an escalation's leads card is posted once, by whichever process is free, even if the process
that escalated it dies first."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack

SLOWED = "faster than I can keep up"


@pytest.fixture
def pg_url(templates) -> str:  # type: ignore[no-untyped-def]
    return str(templates.postgresql())


def _pair(fake: FakeSlack, url: str, env: dict[str, str]) -> Iterator[list[BotProcess]]:
    bots: list[BotProcess] = []
    try:
        for _ in range(2):  # one after the other: the first one migrates nothing, but starts the scheduler
            bots.append(BotProcess(fake, url, env=env).start())
        yield bots
    finally:
        for bot in bots:
            bot.stop()


@pytest.fixture
def two_bots(fake: FakeSlack, pg_url: str) -> Iterator[list[BotProcess]]:
    yield from _pair(fake, pg_url, {"MEMBER_COMMANDS_PER_MIN": "5"})


def test_a_member_over_the_share_is_refused_at_the_limit_across_processes(two_bots: list[BotProcess]) -> None:
    fake = two_bots[0].fake
    fake.add_user("U1")
    fake.add_user("U2")
    drivers = [bot.driver for bot in two_bots]
    sent = 12
    refused: list[bool] = [False] * sent
    barrier = threading.Barrier(sent)

    def command(i: int) -> None:
        barrier.wait()  # all at once, half to each process
        response = drivers[i % 2].command("U1", "/tasks", "mine")
        assert response.status == 200
        refused[i] = SLOWED in response.body

    threads = [threading.Thread(target=command, args=(i,)) for i in range(sent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each process alone would have let 5 through (10 in all): the share is counted in the store.
    assert refused.count(False) == 5, refused
    assert refused.count(True) == sent - 5
    assert SLOWED not in drivers[1].command("U2", "/tasks", "mine").body  # others are not held back
