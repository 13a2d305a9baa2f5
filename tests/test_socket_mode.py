"""Socket Mode, driven the way Slack drives it: `python bot.py` with SLACK_APP_TOKEN asks the fake
Web API for a WebSocket URL, connects to the fake's Socket Mode endpoint, and gets envelopes that
carry the same payloads the HTTP door gets; it acknowledges them over the socket."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from sqlmodel import select

from db.engine import Database
from db.models import Assignment
from sandbox.bot_process import BotProcess
from sandbox.driver import SocketModeDriver, conversations_select, datepicker
from sandbox.fake_slack import APP_TOKEN, Call, FakeSlack, dm_channel_id
from sandbox.harness import BotHarness

TASKS = "C0TASKS"


def running_in_socket_mode(fake: FakeSlack, database_url: str) -> Iterator[BotProcess]:
    bot = BotProcess(fake, database_url, env={"SLACK_APP_TOKEN": APP_TOKEN}).start()
    yield bot
    # A graceful stop waits out slack_sdk's 3 s socket receive timeout; it has a test of its own.
    bot.kill()


@pytest.fixture
def socket_bot(database_url: str, fake: FakeSlack) -> Iterator[BotProcess]:
    """`python bot.py` in Socket Mode, connected to the fake, on each backend."""
    yield from running_in_socket_mode(fake, database_url)


@pytest.fixture
def sqlite_socket_bot(sqlite_url: str, fake: FakeSlack) -> Iterator[BotProcess]:
    """The same on SQLite only, for what doesn't depend on the store."""
    yield from running_in_socket_mode(fake, sqlite_url)


@pytest.fixture
def slack(fake: FakeSlack) -> SocketModeDriver:
    return SocketModeDriver(fake)


def run_command(slack: SocketModeDriver, user_id: str, command: str, text: str) -> str:
    """What the user saw: the text in the acknowledgement, else the reply sent to the response_url."""
    assert slack.fake is not None
    url = slack.fake.new_response_url()
    ack = slack.wait_ack(slack.command(user_id, command, text, response_url=url))
    if ack.payload.get("text"):
        return str(ack.payload["text"])
    return str(
        slack.fake.wait_for("response_url", predicate=lambda c: c.params["_url"] == url)[0].params["text"]
    )


def test_a_slash_command_is_answered_over_the_socket_as_over_http(
    socket_bot: BotProcess, sqlite_bot: BotHarness, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    fake.add_user("U1", name="ana", tz="Europe/Lisbon")
    assert sqlite_bot.driver is not None
    # Help is answered in the acknowledgement itself: the envelope's ack carries the HTTP body.
    ack = slack.wait_ack(slack.command("U1", "/crew", "help"))
    assert "/crew lead <@person>" in ack.payload["text"]
    assert ack.payload == sqlite_bot.driver.command("U1", "/crew", "help").json()
    # The profile is acked empty at once, then sent through the response_url, as over HTTP.
    url = fake.new_response_url()
    assert slack.wait_ack(slack.command("U1", "/crew", "me", response_url=url)).payload == {}
    reply = fake.wait_for("response_url", predicate=lambda c: c.params["_url"] == url)[0].params
    over_http = sqlite_bot.command("U1", "/crew", "me")
    assert (reply["text"], reply["blocks"]) == (over_http.text, over_http.blocks)
    assert "contractor" in reply["text"] and "Europe/Lisbon" in json.dumps(reply["blocks"])


def test_a_claim_clicked_over_the_socket_is_decided_and_answered_through_the_web_api(
    socket_bot: BotProcess, database_url: str, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    fake.add_user("ULEAD")
    fake.add_user("U1")
    assert "is now a lead" in run_command(slack, "UADMIN", "/crew", "lead <@ULEAD>")
    posted = run_command(
        slack, "ULEAD", "/tasks", f"new Review contracts rate=120 hours=6 channel=<#{TASKS}|tasks>"
    )
    task_id = re.search(r"T-(\d+)", posted).group(1)  # type: ignore[union-attr]
    card = fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == TASKS)[0]

    url = fake.new_response_url()
    click = slack.click(
        "U1", "task_claim", task_id, channel_id=TASKS, message_ts=card.response["ts"], response_url=url
    )
    assert slack.wait_ack(click).payload == {}  # Slack reads nothing from a click's ack
    reply = fake.wait_for("response_url", predicate=lambda c: c.params["_url"] == url)[0].params
    assert f"T-{task_id} · Review contracts* is yours" in reply["text"]

    def to_u1(call: Call) -> bool:
        return call.params["channel"] in ("U1", dm_channel_id("U1")) and "You claimed" in call.params["text"]

    assert fake.wait_for("chat.postMessage", predicate=to_u1)[0].ok

    def redrawn_full(call: Call) -> bool:
        return call.params["ts"] == card.response["ts"] and "0 of 1 slot left" in json.dumps(
            call.params["blocks"]
        )

    assert "task_claim" not in json.dumps(
        fake.wait_for("chat.update", predicate=redrawn_full)[0].params["blocks"]
    )
    db = Database(database_url)
    try:
        with db.write() as session:
            claims = session.exec(select(Assignment.user_id, Assignment.state)).all()
    finally:
        db.dispose()
    assert [tuple(c) for c in claims] == [("U1", "claimed")]


def test_a_modal_submitted_over_the_socket_gets_its_errors_in_the_ack_then_posts(
    sqlite_socket_bot: BotProcess, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    fake.add_user("ULEAD")
    assert "is now a lead" in run_command(slack, "UADMIN", "/crew", "lead <@ULEAD>")
    assert slack.wait_ack(slack.command("ULEAD", "/tasks", "new", channel_id=TASKS)).payload == {}
    view = fake.wait_for("views.open")[0].response["view"]
    filled = {
        "title": {"value": "Summarise trial transcripts"},
        "rate": {"value": "lots"},
        "hours": {"value": "6"},
        "slots": {"value": "2"},
        "due": {"value": datepicker("2025-12-31")},
        "channel": {"value": conversations_select(TASKS)},
    }
    bad = slack.wait_ack(slack.submit_view("ULEAD", "task_new", filled, view=view)).payload
    assert bad["response_action"] == "errors" and set(bad["errors"]) == {"rate", "due"}
    assert not [c for c in fake.calls_to("chat.postMessage") if c.params["channel"] == TASKS]
    soon = (date.today() + timedelta(days=60)).isoformat()  # the real bot's clock: within a year
    filled.update({"rate": {"value": "120"}, "due": {"value": datepicker(soon)}})
    ok = slack.wait_ack(slack.submit_view("ULEAD", "task_new", filled, view=view)).payload
    assert ok.get("response_action") != "errors"
    card = fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == TASKS)[0]
    assert "Summarise trial transcripts" in card.params["text"] and "task_claim" in json.dumps(
        card.params["blocks"]
    )


def test_an_event_envelope_is_handled(
    socket_bot: BotProcess, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    fake.add_user("U1", tz="Asia/Manila")
    assert slack.wait_ack(slack.home_opened("U1")).payload == {}
    view = fake.wait_for("views.publish", predicate=lambda c: c.params["user_id"] == "U1")[0].params["view"]
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers[0] == "Your profile" and "Asia/Manila" in json.dumps(view)


def test_a_redelivered_event_is_handled_once(
    socket_bot: BotProcess, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    fake.add_user("U1")
    slack.wait_ack(slack.home_opened("U1", event_id="Ev0SOCKET1"))
    fake.wait_for("views.publish")
    # Slack's retry: a new envelope, the same event, retry_attempt 1.
    slack.wait_ack(slack.home_opened("U1", event_id="Ev0SOCKET1", retry_attempt=1))
    # The duplicate is acknowledged by the de-duplication, which logs it and never calls the listener.
    assert "ignored duplicate delivery of Ev0SOCKET1 (retry 1)" in socket_bot.output()
    assert len(fake.calls_to("views.publish")) == 1


def test_the_bot_reconnects_when_slack_asks_it_to(
    sqlite_socket_bot: BotProcess, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    fake.socket_mode.disconnect("refresh_requested")  # Slack does this every few hours
    fake.socket_mode.wait_connected(count=2)
    assert len(fake.calls_to("apps.connections.open")) == 2  # a fresh URL for the new connection
    fake.add_user("U1")
    ack = slack.wait_ack(slack.command("U1", "/crew", "help"))
    assert ack.connection == 2 and "/crew" in ack.payload["text"]


def test_sigterm_stops_the_bot_cleanly_in_socket_mode(
    sqlite_socket_bot: BotProcess, fake: FakeSlack, slack: SocketModeDriver
) -> None:
    bot = sqlite_socket_bot
    fake.add_user("U1")
    assert "contractor" in run_command(slack, "U1", "/crew", "me")
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.proc.wait(timeout=30) == 0
    output = bot.output()
    assert "shutting down (signal 15)" in output and output.rstrip().endswith("crewcall stopped")
    assert fake.socket_mode.open_connections == 0 and fake.socket_mode.connections == 1  # no reconnect
    assert APP_TOKEN not in output and "xapp-" not in output


def test_an_app_token_slack_refuses_stops_start_up_with_one_line(sqlite_url: str, fake: FakeSlack) -> None:
    fake.app_token = "xapp-1-A0CREWCALL-2-rotated"  # the bot's token was revoked
    bot = BotProcess(fake, sqlite_url, env={"SLACK_APP_TOKEN": APP_TOKEN})
    with pytest.raises(RuntimeError, match="exited with 2"):
        bot.start()
    output = bot.output()
    assert output.rstrip().splitlines()[-1] == (
        "crewcall: SLACK_APP_TOKEN was refused by Slack (invalid_auth): it needs to be a valid app-level "
        "token (xapp-…) with connections:write (the app's Basic Information page, App-Level Tokens)."
    )
    assert "Traceback" not in output and " ERROR " not in output and APP_TOKEN not in output
    assert "Scheduler started" not in output  # no jobs run in a bot that can't take requests
    assert [c.error for c in fake.calls_to("apps.connections.open")] == ["invalid_auth"]
    assert fake.socket_mode.connections == 0


def test_slack_unavailable_at_start_up_stops_it_with_status_1(sqlite_url: str, fake: FakeSlack) -> None:
    fake.fail_next("apps.connections.open", status=503, times=3)  # the first try and both retries
    bot = BotProcess(fake, sqlite_url, env={"SLACK_APP_TOKEN": APP_TOKEN})
    with pytest.raises(RuntimeError, match="exited with 1"):  # worth a restart, unlike a refused token
        bot.start()
    last_line = bot.output().rstrip().splitlines()[-1]
    assert last_line == "crewcall: could not get a Socket Mode URL from Slack (internal_error)"


def test_a_bot_token_slack_refuses_stops_start_up_with_one_line(sqlite_url: str, fake: FakeSlack) -> None:
    fake.fail_next("auth.test", error="invalid_auth")
    bot = BotProcess(fake, sqlite_url)
    with pytest.raises(RuntimeError, match="exited with 2"):
        bot.start()
    output = bot.output()
    assert output.rstrip().splitlines()[-1] == (
        "crewcall: SLACK_BOT_TOKEN was refused by Slack (invalid_auth): it needs to be the app's Bot User "
        "OAuth Token (xoxb-…) (the app's OAuth & Permissions page)."
    )
    assert "Traceback" not in output and "xoxb-" not in output.rstrip().splitlines()[-1].replace(
        "(xoxb-…)", ""
    )


@pytest.mark.parametrize("socket_mode", [False, True])
def test_slack_unreachable_at_start_up_stops_it_with_one_line(
    sqlite_url: str, fake: FakeSlack, socket_mode: bool
) -> None:
    env = {"SLACK_API_URL": "http://127.0.0.1:9/"}  # nothing listens on the discard port
    if socket_mode:
        env["SLACK_APP_TOKEN"] = APP_TOKEN
    bot = BotProcess(fake, sqlite_url, env=env)
    with pytest.raises(RuntimeError, match="exited with 1"):
        bot.start()
    output = bot.output()
    assert (
        output.rstrip()
        .splitlines()[-1]
        .startswith("crewcall: Slack's Web API can't be reached at http://127.0.0.1:9/ (")
    )
    assert "Traceback" not in output


def test_a_websocket_that_cannot_be_opened_stops_start_up(sqlite_url: str, fake: FakeSlack) -> None:
    fake.socket_mode.refuse_handshakes = True
    bot = BotProcess(fake, sqlite_url, env={"SLACK_APP_TOKEN": APP_TOKEN})
    with pytest.raises(RuntimeError, match="exited with 1"):
        bot.start()
    last_line = bot.output().rstrip().splitlines()[-1]
    assert last_line.startswith("crewcall: could not open the Socket Mode WebSocket")


# ---- the fake endpoint itself, against slack_sdk's builtin client ------------------------------------


def test_the_fake_hands_out_socket_urls_only_for_the_app_token(fake: FakeSlack) -> None:
    url = WebClient(base_url=fake.api_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/link/\?ticket=[0-9a-f]{32}&app_id=A0CREWCALL", url)
    for token, error in (("xapp-1-other", "invalid_auth"), ("xoxb-bot-token", "not_allowed_token_type")):
        with pytest.raises(SlackApiError) as refused:
            WebClient(base_url=fake.api_url).apps_connections_open(app_token=token)
        assert refused.value.response.data == {"ok": False, "error": error}


def test_the_builtin_client_connects_pings_and_acks(fake: FakeSlack, slack: SocketModeDriver) -> None:
    client = SocketModeClient(app_token=APP_TOKEN, web_client=WebClient(base_url=fake.api_url))
    client.socket_mode_request_listeners.append(
        lambda c, req: c.send_socket_mode_response(
            {"envelope_id": req.envelope_id, "payload": {"echo": req.type}}
        )
    )
    try:
        client.connect()
        fake.socket_mode.wait_connected()
        envelope = slack.command("U1", "/crew", "x" * 70_000)  # a frame with a 64-bit length
        assert slack.wait_ack(envelope).payload == {"echo": "slash_commands"}
        assert fake.socket_mode.pings >= 1  # sent on connecting
        deadline = time.monotonic() + 5
        while client.current_session is None or client.current_session.last_ping_pong_time is None:
            assert time.monotonic() < deadline, "the client never saw a pong to its ping"
            time.sleep(0.02)
    finally:
        client.close()


def test_an_envelope_acknowledged_after_3_s_is_a_violation(fake: FakeSlack, slack: SocketModeDriver) -> None:
    def late(c: SocketModeClient, req: SocketModeRequest) -> None:
        time.sleep(3.2)  # just past Slack's 3 s
        c.send_socket_mode_response({"envelope_id": req.envelope_id})

    client = SocketModeClient(app_token=APP_TOKEN, web_client=WebClient(base_url=fake.api_url))
    client.socket_mode_request_listeners.append(late)
    try:
        client.connect()
        fake.socket_mode.wait_connected()
        slack.wait_ack(slack.command("U1", "/tasks", "list open"))
    finally:
        client.close()
    with pytest.raises(AssertionError) as failed:
        fake.assert_no_violations()
    assert re.search(
        r"  - ack: /tasks list open acknowledged over Socket Mode after 3\.\d s \(Slack waits 3 s\)",
        str(failed.value),
    )
    fake.violations.clear()
