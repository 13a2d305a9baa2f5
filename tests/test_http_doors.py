"""The HTTP door: signatures, retries, unhandled events, errors, health, restarts."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import pytest

from handlers.kit.commands import Args, SlashCommand
from handlers.kit.context import Ctx
from sandbox.harness import BotHarness


def _api_calls(bot: BotHarness) -> list[str]:
    return [c.method for c in bot.fake.calls if c.method != "auth.test"]


@pytest.mark.parametrize("kind", ["forged", "stale", "future"])
def test_bad_signatures_are_rejected_and_cause_nothing(sqlite_bot: BotHarness, kind: str) -> None:
    override = {
        "forged": {"signature": "v0=" + "0" * 64},
        "stale": {"timestamp": int(time.time()) - 6 * 60},
        "future": {"timestamp": int(time.time()) + 6 * 60},
    }[kind]
    bot = sqlite_bot
    bot.fake.add_user("U1")
    assert bot.driver is not None
    before = _api_calls(bot)
    assert bot.driver.command("U1", "/crew", "me", **override).status == 401
    assert bot.driver.home_opened("U1", **override).status == 401
    assert bot.driver.click("U1", "anything", "x", **override).status == 401
    time.sleep(0.3)  # give a wrongly accepted request the time to call Slack
    assert _api_calls(bot) == before


def test_a_retried_event_is_handled_once_even_after_a_restart(bot: BotHarness) -> None:
    bot.fake.add_user("U1")
    assert bot.driver is not None
    first = bot.driver.home_opened("U1", event_id="Ev0RETRY1")
    assert first.status == 200
    bot.fake.wait_for("views.publish")
    again = bot.driver.home_opened("U1", event_id="Ev0RETRY1", retry_num=1)
    assert again.status == 200
    bot.restart()
    assert bot.driver.home_opened("U1", event_id="Ev0RETRY1", retry_num=2).status == 200
    time.sleep(0.3)
    assert len(bot.fake.calls_to("views.publish")) == 1


def test_home_tab_has_a_section_per_domain(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1", tz="Asia/Manila")
    assert bot.driver is not None
    bot.driver.home_opened("U1")
    view = bot.fake.wait_for("views.publish")[0].params["view"]
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers[0] == "Your profile"
    assert {"Tasks", "Shifts", "Hours", "Handbook", "Referrals"} <= set(headers)
    assert "Asia/Manila" in json.dumps(view)


def test_unhandled_events_get_a_200_and_no_retry(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    assert bot.driver is not None
    response = bot.driver.event({"type": "reaction_added", "user": "U1", "reaction": "tada"})
    assert response.status == 200
    assert bot.driver.url_verification("abc123").json()["challenge"] == "abc123"


def test_a_crashing_listener_tells_the_user_and_logs_the_reference(
    sqlite_bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    boom = SlashCommand("/boom", "Always fails")

    @boom.sub("", "Fail")
    def fail(ctx: Ctx, args: Args) -> None:
        raise RuntimeError("kaboom")

    assert bot.app is not None
    boom.register(bot.app, bot.services)
    with caplog.at_level(logging.ERROR):
        reply = bot.command("U1", "/boom")
    assert "Something went wrong" in reply.text
    ref = reply.text.split("ref `")[1].split("`")[0]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)


def test_healthz_reports_database_and_scheduler(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"ok": True, "database": True, "scheduler": True}
    bot.services.scheduler.shutdown()
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(bot.url + "/healthz", timeout=5)
    assert failed.value.code == 503
    assert json.loads(failed.value.read())["scheduler"] is False


def test_data_survives_a_restart(bot: BotHarness) -> None:
    bot.fake.add_user("U7")
    bot.command("UADMIN", "/crew", "lead <@U7>")
    bot.command("UADMIN", "/crew", "skill <@U7> legal,editing")
    bot.restart()
    reply = bot.command("U7", "/crew", "me")
    assert "lead" in reply
    assert "`editing`, `legal`" in reply.all_text


def test_every_domain_handling_an_event_gets_it(sqlite_bot: BotHarness) -> None:
    from handlers.kit.interactions import event

    bot = sqlite_bot
    seen: list[str] = []
    assert bot.app is not None

    @event(bot.app, "member_joined_channel")
    def first(ctx: Ctx, ev: dict) -> None:
        raise RuntimeError("one broken handler must not starve the others")

    @event(bot.app, "member_joined_channel")
    def second(ctx: Ctx, ev: dict) -> None:
        seen.append(ctx.request.user_id)

    assert bot.event({"type": "member_joined_channel", "user": "U9", "channel": "C1"}).status == 200
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == ["U9"]


def test_a_forged_click_of_any_shape_gets_its_200_and_causes_nothing(sqlite_bot: BotHarness) -> None:
    """A click goes straight to its button's listener by action_id: whatever the payload holds
    instead of actions, it is acknowledged, nothing answers it, and the next click still works."""
    bot = sqlite_bot
    bot.fake.add_user("U1")
    assert bot.driver is not None
    before = _api_calls(bot)
    user = {"id": "U1"}
    for forged in (
        {"type": "block_actions", "user": user, "actions": "task_list_more"},
        {"type": "block_actions", "user": user, "actions": ["task_list_more"]},
        {"type": "block_actions", "user": user, "actions": [{"action_id": ["task_list_more"]}]},
        {"type": "block_actions", "user": user, "actions": [{"action_id": "no_such_button"}]},
        {"type": "block_actions", "actions": [{"action_id": "task_list_more", "value": "0"}]},
    ):
        assert bot.driver.post_payload(forged).status == 200
    time.sleep(0.3)  # give a wrongly answered click the time to call Slack
    assert _api_calls(bot) == before
    assert bot.click("U1", "task_list_more", "0").all_text  # answered through its response_url
