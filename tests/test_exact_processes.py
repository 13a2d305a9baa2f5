"""Issue 14, item 3: with several bot processes on one PostgreSQL database, what decides is in the
database. Two real `bot.py` processes share one store: a member's share is one share across both,
and an escalation's leads card is posted once, by whichever process is free, even if the process
that escalated it dies first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.clock import FakeClock
from db.models import PolicyQuestion
from jobs.policy import CARD_CLAIM_STALE, CARD_POLL_S
from jobs.redraw import Redraws
from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness, reply_to

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

    urls = [fake.new_response_url() for _ in range(sent)]

    def command(i: int) -> None:
        barrier.wait()  # all at once, half to each process
        response = drivers[i % 2].command("U1", "/tasks", "mine", response_url=urls[i])
        refused[i] = SLOWED in reply_to(fake, response, urls[i], timeout=20)

    threads = [threading.Thread(target=command, args=(i,)) for i in range(sent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each process alone would have let 5 through (10 in all): the share is counted in the store.
    assert refused.count(False) == 5, refused
    assert refused.count(True) == sent - 5
    other = fake.new_response_url()
    response = drivers[1].command("U2", "/tasks", "mine", response_url=other)
    assert SLOWED not in reply_to(fake, response, other, timeout=20)  # others are not held back


LEADS = "C0LEADS"
QUESTION = "Can I bring my dog to the team call?"  # nothing in the handbook: it goes to the leads


def _cards(fake: FakeSlack) -> list[str]:
    """The question numbers of the leads' cards Slack stored, one entry per card."""
    return [
        c.params["text"].split()[1]
        for c in fake.calls_to("chat.postMessage")
        if c.ok and c.params.get("channel") == LEADS
    ]


def _ask(bot: BotProcess, user: str) -> None:
    url = bot.fake.new_response_url()
    assert bot.driver.command(user, "/policy", QUESTION, response_url=url).status == 200
    bot.fake.wait_for(
        "response_url",
        timeout=20,
        predicate=lambda c: c.params.get("_url") == url and "asked the leads" in str(c.params),
    )


def test_cards_queued_by_a_process_that_dies_are_posted_once_by_another(fake: FakeSlack, pg_url: str) -> None:
    askers = [f"UASK{i}" for i in range(6)]
    for user in askers:
        fake.add_user(user)
    for bots in _pair(fake, pg_url, {"LEADS_CHANNEL": LEADS}):
        doomed, survivor = bots
        # Escalations through both processes at once: each card is posted once.
        threads = [threading.Thread(target=_ask, args=(bots[i % 2], u)) for i, u in enumerate(askers[:4])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fake.wait_for(
            "chat.postMessage", count=4, timeout=30, predicate=lambda c: c.params.get("channel") == LEADS
        )
        assert sorted(_cards(fake)) == ["#1", "#2", "#3", "#4"]

        # Slack slow to take posts; one process queues two cards and is killed while posting the
        # first (Slack still stores it): the other posts the second, and neither is posted twice.
        fake.method_latency["chat.postMessage"] = 4.0
        for user in askers[4:]:
            _ask(doomed, user)
        doomed.kill()
        import sys

        print("SURVIVOR", survivor.log, "DOOMED", doomed.log, file=sys.stderr)
        fake.wait_for(
            "chat.postMessage", count=6, timeout=30, predicate=lambda c: c.params.get("channel") == LEADS
        )
        time.sleep(CARD_POLL_S + 3)  # a second copy would have come by now
        assert sorted(_cards(fake)) == ["#1", "#2", "#3", "#4", "#5", "#6"]
        assert survivor.proc is not None and survivor.proc.poll() is None


def _eventually(check, timeout: float = CARD_POLL_S * 3):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


def _question(bot: BotHarness, question_id: int) -> PolicyQuestion:
    with bot.services.db.read() as session:
        question = session.get(PolicyQuestion, question_id)
        assert question is not None
        return question


def test_a_card_whose_poster_lost_the_answer_is_looked_for_then_posted_once(
    database_url: str, fake: FakeSlack
) -> None:
    """A post in doubt keeps its claim; once the claim is stale, a poster (here the same one) looks in
    the channel before posting: a card Slack stored is recorded, not sent again; one it didn't store
    is sent once."""
    clock = FakeClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    with BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS}, clock=clock) as bot:
        for user in ("U1", "U2"):
            fake.add_user(user)
        fake.fail_next("chat.postMessage", status=500, applied=True)  # stored; the answer lost
        assert "asked the leads" in bot.command("U1", "/policy", QUESTION).text
        fake.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == LEADS)
        fake.fail_next("chat.postMessage", status=500)  # not stored
        assert "asked the leads" in bot.command("U2", "/policy", QUESTION).text
        fake.wait_for("chat.postMessage", count=2, predicate=lambda c: c.params.get("channel") == LEADS)
        time.sleep(CARD_POLL_S + 1)
        assert _question(bot, 1).leads_ts is None and _question(bot, 2).leads_ts is None  # claims held
        stored = [m["ts"] for m in fake.messages.get(LEADS, [])]
        assert len(stored) == 1

        clock.advance(CARD_CLAIM_STALE + timedelta(seconds=1))
        _eventually(lambda: _question(bot, 1).leads_ts and _question(bot, 2).leads_ts)
        assert _question(bot, 1).leads_ts == stored[0]  # found in the channel, not posted again
        assert sorted(m["text"].split()[1] for m in fake.messages[LEADS]) == ["#1", "#2"]  # one each
        q2 = _question(bot, 2)
        assert q2.card_due_at is None and q2.card_claimed_at is None


def test_a_card_redrawn_from_an_older_read_elsewhere_is_drawn_again() -> None:
    """While this process draws a card, another process changes it and draws the newer state, which
    Slack takes before this draw: this process reads again after its draw and draws the newer one."""
    state = {"taken": 4}
    shown: list[int] = []

    def show(card: int) -> None:
        shown.append(card)
        if len(shown) == 1:
            state["taken"] = 5  # the other process's change (and its draw, overwritten by ours)

    Redraws().request("card", lambda: state["taken"], show)
    assert shown == [4, 5]


def test_a_card_whose_redraw_fails_is_logged_and_drawn_at_its_next_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A redraw follows a change already made and answered (a claim): its failure (the database
    refusing a connection, say) is logged, not raised into the answered request."""
    shown: list[int] = []
    refuse = True

    def read() -> int:
        if refuse:
            raise OSError("too many clients already")
        return 5

    redraws = Redraws()
    redraws.request("card", read, shown.append)  # does not raise
    assert "redrawing card card failed" in caplog.text and "too many clients already" in caplog.text
    assert redraws.in_flight() == 0
    refuse = False
    redraws.request("card", read, shown.append)
    assert shown == [5]
