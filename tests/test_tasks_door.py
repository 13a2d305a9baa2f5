"""Clicks are acknowledged at the HTTP door: fast even when every listener thread is busy, and never
lost once acknowledged, even when the bot stops right after."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

from handlers.kit.interactions import button
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness
from server.http import STORM_ARRIVALS, Door, is_click
from tests.tasks_support import TASKS, assignments, make_lead, post


def test_a_click_is_acknowledged_while_every_listener_is_busy(sqlite_url: str, fake: FakeSlack) -> None:
    with BotHarness(sqlite_url, fake=fake, env={"HTTP_THREADS": "2"}) as bot:
        assert bot.server is not None
        listeners = bot.server.wsgi.clicks.threads  # the click workers, which run clicks' listeners
        make_lead(bot)
        fake.add_user("U1")
        task_id, ts = post(bot)
        unblock = threading.Event()
        busy = threading.Semaphore(0)

        @button(bot.app, "bench_block")
        def block(ctx, value):  # type: ignore[no-untyped-def]
            busy.release()
            unblock.wait(20)

        assert bot.driver is not None
        for _ in range(listeners):
            assert bot.driver.click("U1", "bench_block", "x").status == 200
        for _ in range(listeners):
            assert busy.acquire(timeout=10)  # every listener thread is now held
        started = time.monotonic()
        url = fake.new_response_url()
        response = bot.driver.click(
            "U1", "task_claim", str(task_id), message_ts=ts, channel_id=TASKS, response_url=url
        )
        assert response.status == 200
        assert time.monotonic() - started < 1.0
        assert assignments(bot, task_id) == []  # acknowledged, not decided yet
        unblock.set()
        reply = fake.wait_for("response_url", predicate=lambda c: c.params["_url"] == url)[0]
        assert "is yours" in reply.params["text"]


def test_a_click_acknowledged_just_before_a_stop_is_still_decided(sqlite_url: str, fake: FakeSlack) -> None:
    bot = BotHarness(sqlite_url, fake=fake).start()
    try:
        make_lead(bot)
        fake.add_user("U1")
        task_id, ts = post(bot)
        assert bot.driver is not None
        url = fake.new_response_url()
        response = bot.driver.click(
            "U1", "task_claim", str(task_id), message_ts=ts, channel_id=TASKS, response_url=url
        )
        assert response.status == 200
        bot.restart()
        assert assignments(bot, task_id) == [("U1", "claimed")]
        assert (
            "is yours"
            in fake.wait_for("response_url", predicate=lambda c: c.params["_url"] == url)[0].params["text"]
        )
    finally:
        bot.close()


def test_only_click_payloads_are_taken_for_clicks() -> None:
    def form(**fields: str) -> str:
        return urlencode(fields)

    click = {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"type": "button"}]}
    assert is_click(form(payload=json.dumps(click)))
    assert is_click(form(payload=json.dumps(click, separators=(",", ":"))))  # as Slack writes it
    typed = {"type": "plain_text_input", "value": '{"type": "block_actions"}'}
    submission = {"type": "view_submission", "view": {"state": {"values": {"b": {"a": typed}}}}}
    assert not is_click(form(payload=json.dumps(submission)))
    assert not is_click(form(command="/tasks", text='"type":"block_actions"'))
    assert not is_click(json.dumps({"type": "event_callback", "event": {"type": "block_actions"}}))


def test_the_door_tells_a_storm_from_requests_sent_one_after_another() -> None:
    door = Door()
    for _ in range(10):  # one client waiting for each answer before the next request
        door.enter()
        assert door.busy()
        door.leave()
    assert not door.busy()  # a click acknowledged now is decided at once
    for _ in range(STORM_ARRIVALS + 1):  # arriving while the others are being answered
        door.enter()
    for _ in range(STORM_ARRIVALS + 1):
        door.leave()
    assert door.busy()  # nobody inside, but a storm is on: decisions still wait
