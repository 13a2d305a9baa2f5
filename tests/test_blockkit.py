"""Block Kit limits: the fake refuses what Slack refuses, and our builders stay inside them."""

import time

import pytest
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


def test_a_broken_rule_is_reported_once() -> None:
    """slack_sdk's models and the project's own checks never both report the same rule."""
    text = {"type": "plain_text", "text": "x"}
    label = {"type": "plain_text", "text": "Name"}
    broken = {
        "text attribute cannot exceed 3000 characters": {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "x" * 3001},
        },
        "text attribute cannot exceed 150 characters": {
            "type": "header",
            "text": {"type": "plain_text", "text": "h" * 151},
        },
        "fields attribute cannot exceed 10 items": {"type": "section", "fields": [text] * 11},
        "text or fields attribute must be specified": {"type": "section"},
        "elements attribute cannot exceed 10 elements": {"type": "context", "elements": [text] * 11},
        "no elements (a context block needs at least one)": {"type": "context", "elements": []},
        "block_id cannot exceed 255 characters": {"type": "divider", "block_id": "b" * 256},
        "label attribute cannot exceed 2000 characters": {
            "type": "input",
            "label": {"type": "plain_text", "text": "l" * 2001},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        "element: element is not an object": {"type": "input", "label": label, "element": "x"},
    }
    for rule, block in broken.items():
        found = blockkit.problems([block])
        assert len(found) == 1 and found[0].endswith(rule), (rule, found)


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
    assert len(fake.violations) == 1
    _expect_report(fake, "chat.postMessage: block 0 (section): text attribute cannot exceed 3000 characters")


def _expect_report(fake: FakeSlack, *lines: str) -> None:
    """The test fails, with a report naming each block and rule; then the fixture's check passes."""
    with pytest.raises(AssertionError) as failed:
        fake.assert_no_violations()
    for line in lines:
        assert f"  - {line}" in str(failed.value)
    fake.violations.clear()


def test_a_malformed_message_fails_the_test_naming_the_block_and_the_rule(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    oversized = [{"type": "divider"}] * 49 + [
        {"type": "header", "block_id": "title", "text": {"type": "mrkdwn", "text": "*bold*"}},
        {
            "type": "actions",
            "block_id": "b" * 256,
            "elements": [
                {
                    "type": "button",
                    "action_id": "claim",
                    "text": {"type": "plain_text", "text": "Claim"},
                    "value": "x",
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Sure?"},
                        "text": {"type": "mrkdwn", "text": "y" * 301},
                        "confirm": {"type": "plain_text", "text": "Yes"},
                        "deny": {"type": "plain_text", "text": "No"},
                    },
                },
                {
                    "type": "static_select",
                    "action_id": "pick",
                    "placeholder": {"type": "plain_text", "text": "p" * 151},
                    "options": [{"text": {"type": "plain_text", "text": "a"}, "value": "v" * 151}],
                },
            ],
        },
    ]
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C1", text="t", blocks=oversized, colour="red")
    assert refused.value.response["error"] == "invalid_blocks"
    assert "C1" not in fake.messages
    _expect_report(
        fake,
        "chat.postMessage: unknown argument(s) colour",
        "chat.postMessage: 51 blocks (at most 50)",
        "chat.postMessage: block 49 (header, block_id=title): header text must be a plain_text object",
        f"chat.postMessage: block 50 (actions, block_id={'b' * 256}): block_id cannot exceed 255 characters",
        f"chat.postMessage: block 50 (actions, block_id={'b' * 256}) element 0 (button): confirm text longer than 300 characters",
        f"chat.postMessage: block 50 (actions, block_id={'b' * 256}) element 1 (static_select): placeholder longer than 150 characters (151)",
        f"chat.postMessage: block 50 (actions, block_id={'b' * 256}) element 1 (static_select): option value longer than 150 characters",
    )


def test_modals_too_many_checkboxes_and_mrkdwn_title(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    options = [{"text": {"type": "plain_text", "text": str(i)}, "value": str(i)} for i in range(11)]
    view = {
        "type": "modal",
        "title": {"type": "mrkdwn", "text": "Pick"},
        "blocks": [
            {
                "type": "input",
                "block_id": "who",
                "label": {"type": "plain_text", "text": "Who"},
                "element": {"type": "checkboxes", "action_id": "value", "options": options},
            }
        ],
    }
    with pytest.raises(SlackApiError):
        client.views_publish(
            user_id="U1", view={**view, "type": "home", "blocks": [{"type": "divider"}] * 101}
        )
    with pytest.raises(SlackApiError):
        client.views_open(trigger_id=f"{int(time.time() * 1000)}.1.abc", view=view)
    _expect_report(
        fake,
        "views.publish: 101 blocks (at most 100)",
        "views.open: block 0 (input, block_id=who) element (checkboxes): checkboxes has 11 options (at most 10)",
        "views.open: modal: title must be a plain_text object",
        "views.open: modal: a modal with input blocks needs a submit button",
    )


def test_triggers_expire_and_work_once(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": [{"type": "divider"}]}
    fresh = f"{int(time.time() * 1000)}.1.abc"
    client.views_open(trigger_id=fresh, view=view)
    with pytest.raises(SlackApiError) as twice:
        client.views_open(trigger_id=fresh, view=view)
    assert twice.value.response["error"] == "exchanged_trigger_id"
    with pytest.raises(SlackApiError) as late:
        client.views_open(trigger_id=f"{int(time.time() * 1000) - 4000}.2.abc", view=view)
    assert late.value.response["error"] == "expired_trigger_id"
    with pytest.raises(AssertionError) as failed:
        fake.assert_no_violations()
    assert f"views.open: trigger_id {fresh} used twice" in str(failed.value)
    assert "s after the interaction (Slack allows 3 s)" in str(failed.value)
    fake.violations.clear()


def test_unknown_and_unimplemented_methods_missing_scopes_and_tiers() -> None:
    with FakeSlack(rate_limits={"tiers": {"users.info": 2}}, scopes=frozenset({"chat:write"})) as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        with pytest.raises(SlackApiError) as unknown:
            client.api_call("chat.shout", params={"text": "hi"})
        assert unknown.value.response["error"] == "unknown_method"
        with pytest.raises(SlackApiError) as unmodelled:
            client.admin_users_list(team_id="T1")
        assert unmodelled.value.response["error"] == "not_implemented"
        with pytest.raises(SlackApiError) as scope:
            client.conversations_history(channel="C1")
        assert scope.value.response["error"] == "missing_scope"
        fake.add_user("U1")
        fake.scopes = frozenset({"users:read"})
        client.users_info(user="U1")
        client.users_info(user="U1")
        with pytest.raises(SlackApiError) as limited:
            client.users_info(user="U1")
        assert limited.value.response.status_code == 429
        assert [str(v) for v in fake.violations] == [
            "chat.shout: unknown method",
            "admin.users.list: not implemented by the local Slack (Slack has this method)",
            "conversations.history: needs the channels:history scope, which manifest.yaml lacks",
        ]
