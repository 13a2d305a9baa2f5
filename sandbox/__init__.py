"""Slack without Slack: a fake Web API server and a signed-request driver.

* :class:`FakeSlack` (``sandbox.fake_slack``) is the Web API the bot's ``WebClient`` talks
  to (``WebClient(token=..., base_url=fake.api_url)``). It answers like Slack and records
  every call (``fake.calls``, ``fake.wait_for(...)``).
* :class:`SlackDriver` (``sandbox.driver``) is Slack calling the bot: signed slash commands,
  button clicks, modal submissions and events POSTed to ``{bot_url}/slack/events``.
* :class:`SocketModeDriver` (``sandbox.driver``) is Slack calling a bot in Socket Mode: the same
  payloads pushed as envelopes through ``fake.socket_mode`` (``sandbox.socket_mode``), the
  WebSocket endpoint ``apps.connections.open`` hands out.

A typical bot test::

    with FakeSlack() as fake:
        fake.add_user("U1", name="ada")
        bot = start_bot(slack_api_url=fake.api_url, signing_secret=SECRET)  # project-specific
        driver = SlackDriver(bot.url, SECRET, fake=fake)
        assert driver.command("U1", "/tasks").status == 200
        reply = fake.wait_for("response_url")[0].params["text"]

The same fake Slack is the sandbox workspace (``python -m sandbox``, ``make run`` without
credentials): it serves a small Slack page (``sandbox/web``, requests to the bot through
``sandbox.workspace``) and enforces Slack's rules (``sandbox.blockkit``, ``sandbox.rules``) for the
tests and the page alike. It needs slack_sdk (Slack's own Block Kit models and method signatures)
and PyYAML (the manifest); nothing else of crewcall.
"""

from .driver import (
    Response,
    SlackDriver,
    SlackPayloads,
    SocketModeDriver,
    checkboxes,
    conversations_select,
    datepicker,
    multi_static_select,
    number_input,
    plain_text,
    radio_buttons,
    static_select,
    timepicker,
    users_select,
)
from .fake_slack import (
    APP_ID,
    APP_TOKEN,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Call,
    FakeSlack,
    decode_json_params,
    dm_channel_id,
)

__all__ = [
    "APP_ID",
    "APP_TOKEN",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Call",
    "FakeSlack",
    "Response",
    "SlackDriver",
    "SlackPayloads",
    "SocketModeDriver",
    "checkboxes",
    "conversations_select",
    "datepicker",
    "decode_json_params",
    "dm_channel_id",
    "multi_static_select",
    "number_input",
    "plain_text",
    "radio_buttons",
    "static_select",
    "timepicker",
    "users_select",
]
