"""Block Kit limits: the fake refuses what Slack refuses, and our builders stay inside them."""

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox import blockkit
from sandbox.fake_slack import FakeSlack
from views.blocks import actions, button, fit_message, header, section


def test_limits_are_detected() -> None:
    assert blockkit.problems([section("ok")]) == []
    assert blockkit.problems([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    assert blockkit.problems([{"type": "divider"}] * 51)
    assert blockkit.problems([actions(button("a", "same"), button("b", "same"))])
    assert blockkit.problems([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}])


def test_builders_clip_to_the_limits() -> None:
    blocks = fit_message(
        [section("x" * 5000), header("h" * 400), actions(button("b" * 200, "a1"))] + [section("s")] * 60
    )
    assert len(blocks) == 50
    assert blockkit.problems(blocks) == []


def test_fake_slack_refuses_oversized_messages(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    try:
        client.chat_postMessage(
            channel="C1",
            text="t",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        )
    except SlackApiError as e:
        assert e.response["error"] == "invalid_blocks"
    else:
        raise AssertionError("an oversized section was accepted")
