"""Tests of the sandbox itself (fake Slack Web API + signed request driver); no bot needed."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from sandbox import FakeSlack, SlackDriver, dm_channel_id, static_select, users_select

SECRET = "test-signing-secret"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.api_url)


# ---------------------------------------------------------------------- fake Slack: messages


def test_api_url_shape(fake: FakeSlack) -> None:
    assert fake.api_url == f"http://127.0.0.1:{fake.port}/api/"
    assert fake.url == f"http://127.0.0.1:{fake.port}/"


def test_auth_test(client: WebClient, fake: FakeSlack) -> None:
    resp = client.auth_test()
    assert resp["team_id"] == "T0SANDBOX"
    assert resp["user_id"] == "U0BOT"
    assert resp["bot_id"] == "B0BOT"
    assert fake.last("auth.test").token == "xoxb-test"


def test_post_message_ts_increasing_and_recorded(client: WebClient, fake: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    ts_values = [
        client.chat_postMessage(channel="C1", text=f"m{i}", blocks=blocks if i == 0 else None)["ts"]
        for i in range(5)
    ]
    assert ts_values == sorted(ts_values, key=float)
    assert len(set(ts_values)) == 5
    assert all(len(ts.split(".")[1]) == 6 for ts in ts_values)

    first = fake.calls_to("chat.postMessage")[0]
    assert first.params["blocks"] == blocks  # JSON params decoded into objects
    assert first.response["channel"] == "C1"
    assert first.response["message"]["blocks"] == blocks
    assert [m["text"] for m in fake.messages["C1"]] == [f"m{i}" for i in range(5)]


def test_post_message_to_user_goes_to_dm(client: WebClient, fake: FakeSlack) -> None:
    opened = client.conversations_open(users="U123")["channel"]["id"]
    assert opened == client.conversations_open(users="U123")["channel"]["id"] == dm_channel_id("U123")
    resp = client.chat_postMessage(channel="U123", text="hello")
    assert resp["channel"] == opened
    assert fake.messages[opened][0]["text"] == "hello"


def test_post_message_errors(client: WebClient, fake: FakeSlack) -> None:
    fake.missing_channels.add("C404")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C404", text="x")
    assert err.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="U0BOT", text="x")
    assert err.value.response["error"] == "cannot_dm_bot"
    assert "C404" not in fake.messages


def test_update_delete_ephemeral(client: WebClient, fake: FakeSlack) -> None:
    ts = client.chat_postMessage(channel="C1", text="old")["ts"]
    resp = client.chat_update(channel="C1", ts=ts, text="new")
    assert (resp["channel"], resp["ts"], resp["text"]) == ("C1", ts, "new")
    assert fake.find_message("C1", ts)["text"] == "new"
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    assert client.chat_postEphemeral(channel="C1", user="U1", text="psst")["message_ts"]
    client.chat_delete(channel="C1", ts=ts)
    assert fake.messages["C1"] == []


def test_history_newest_first_with_metadata(client: WebClient) -> None:
    meta = {"event_type": "task_posted", "event_payload": {"task_id": 7}}
    first = client.chat_postMessage(channel="C1", text="a", metadata=meta)["ts"]
    client.chat_postMessage(channel="C1", text="b")
    client.chat_postMessage(channel="C1", text="reply", thread_ts=first)

    history = client.conversations_history(channel="C1", include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["b", "a"]  # thread replies not top level
    assert history["messages"][1]["metadata"] == meta
    plain = client.conversations_history(channel="C1")
    assert "metadata" not in plain["messages"][1]
    newer = client.conversations_history(channel="C1", oldest=first)
    assert [m["text"] for m in newer["messages"]] == ["b"]
    page = client.conversations_history(channel="C1", limit=1)
    assert page["has_more"] and page["response_metadata"]["next_cursor"]


def test_members_and_users_list_paginate(client: WebClient, fake: FakeSlack) -> None:
    users = fake.add_users(5)
    fake.channel_members["C1"] = [u["id"] for u in users]
    seen: list[str] = []
    cursor = None
    while True:
        resp = client.conversations_members(channel="C1", limit=2, cursor=cursor)
        seen += resp["members"]
        cursor = resp["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == fake.channel_members["C1"]
    listed = [m["id"] for page in client.users_list(limit=4) for m in page["members"]]
    assert listed == list(fake.users)  # the bot user plus the 5 added


# ---------------------------------------------------------------------- fake Slack: users


def test_users_info_found_and_not_found(client: WebClient, fake: FakeSlack) -> None:
    fake.add_user("U123", name="ada", tz="Asia/Tokyo", email="ada@example.org")
    user = client.users_info(user="U123")["user"]
    assert user["name"] == "ada"
    assert user["tz"] == "Asia/Tokyo" and user["tz_offset"] == 9 * 3600
    assert user["profile"]["email"] == "ada@example.org"
    assert user["is_bot"] is False and user["deleted"] is False
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U999")
    assert err.value.response["error"] == "user_not_found"


def test_users_lookup_by_email(client: WebClient, fake: FakeSlack) -> None:
    fake.add_user("U123", email="ada@example.org")
    assert client.users_lookupByEmail(email="ADA@example.org")["user"]["id"] == "U123"
    with pytest.raises(SlackApiError) as err:
        client.users_lookupByEmail(email="nobody@example.org")
    assert err.value.response["error"] == "users_not_found"


def test_requires_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=fake.api_url).auth_test()
    assert err.value.response["error"] == "not_authed"


# ---------------------------------------------------------------------- fake Slack: views and files


def test_views(client: WebClient, fake: FakeSlack) -> None:
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Home"}}]}
    published = client.views_publish(user_id="U1", view=home)["view"]
    assert published["id"].startswith("V")
    assert fake.home_views["U1"]["blocks"] == home["blocks"]
    assert client.views_publish(user_id="U1", view=home)["view"]["id"] == published["id"]

    modal = {
        "type": "modal",
        "callback_id": "new_task",
        "title": {"type": "plain_text", "text": "New"},
        "blocks": [{"type": "divider"}],
    }
    opened = client.views_open(trigger_id="123.456.abc", view=modal)["view"]
    assert opened["callback_id"] == "new_task" and opened["id"] != published["id"]
    updated = client.views_update(view_id=opened["id"], view={**modal, "private_metadata": "x"})["view"]
    assert updated["id"] == opened["id"] and fake.views[opened["id"]]["private_metadata"] == "x"
    assert fake.last("views.open").params["view"] == modal


def test_files_upload_v2_round_trip(client: WebClient, fake: FakeSlack) -> None:
    resp = client.files_upload_v2(
        channel="C1", filename="hours.csv", content="a,b\n1,2\n", title="Hours", initial_comment="here"
    )
    file_id = resp["file"]["id"]
    stored = fake.uploaded_files[file_id]
    assert stored["content"] == b"a,b\n1,2\n"
    assert (stored["filename"], stored["title"], stored["channel_id"]) == ("hours.csv", "Hours", "C1")
    assert fake.last("files.completeUploadExternal").params["initial_comment"] == "here"


def test_unknown_method_recorded(client: WebClient, fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("bogus.method", params={"x": "1"})
    assert err.value.response["error"] == "unknown_method"
    call = fake.last("bogus.method")
    assert call is not None and call.params == {"x": "1"} and not call.ok


def test_response_url_recorded(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    assert WebhookClient(url).send(text="only you", response_type="ephemeral").status_code == 200
    call = fake.wait_for("response_url")[0]
    assert call.params["text"] == "only you" and call.params["_url"] == url


# ---------------------------------------------------------------------- fake Slack: failures and limits


def test_fail_next_injected_errors(client: WebClient, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", "account_inactive")
    fake.fail_next("users.info", status=503)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x")
    assert err.value.response["error"] == "account_inactive"
    assert "C1" not in fake.messages  # a failed call changes nothing
    client.chat_postMessage(channel="C1", text="x")  # only the next call failed
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U0BOT")
    assert err.value.response.status_code == 503
    assert err.value.response["error"] == "internal_error"


def test_fail_next_429_honoured_by_retry_handler(client: WebClient, fake: FakeSlack) -> None:
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    resp = client.chat_postMessage(channel="C1", text="eventually")
    assert resp["ok"]
    first, second = fake.calls_to("chat.postMessage")
    assert (first.status, first.error) == (429, "ratelimited")
    assert second.ok and len(fake.messages["C1"]) == 1


def test_rate_limit_per_channel_scaled() -> None:
    with FakeSlack(rate_limits={"per_channel_per_sec": 1.0, "scale": 4}) as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        client.chat_postMessage(channel="C1", text="1")
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C1", text="2")
        resp = err.value.response
        assert resp.status_code == 429 and resp["error"] == "ratelimited"
        assert int(resp.headers["Retry-After"]) >= 1
        wait = float(resp.headers["X-Retry-After-Float"])
        assert 0 < wait <= 0.25
        client.chat_postMessage(channel="C2", text="other channel is fine")
        time.sleep(wait)
        client.chat_postMessage(channel="C1", text="2 again")
        assert fake.rate_limited_count == 1
        assert [m["text"] for m in fake.messages["C1"]] == ["1", "2 again"]
        assert fake.calls_to("chat.postMessage")[1].status == 429


def test_rate_limit_workspace_window_scaled() -> None:
    # 3 posts per minute, scale 60 -> 3 posts per 1 s sliding window.
    with FakeSlack(rate_limits={"workspace_per_min": 3, "scale": 60}) as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        for channel in ("C1", "C2", "C3"):
            client.chat_postMessage(channel=channel, text="x")
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C4", text="x")
        assert err.value.response.status_code == 429
        assert 0 < float(err.value.response.headers["X-Retry-After-Float"]) <= 1.0
        assert fake.rate_limited_count == 1 and "C4" not in fake.messages


def test_latency(client: WebClient, fake: FakeSlack) -> None:
    fake.latency = 0.05
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 0.05


# ---------------------------------------------------------------------- fake Slack: wait_for


def test_wait_for_waits_for_late_calls(client: WebClient, fake: FakeSlack) -> None:
    def later() -> None:
        time.sleep(0.1)
        client.chat_postMessage(channel="C1", text="first")
        client.chat_postMessage(channel="C2", text="second")

    threading.Thread(target=later).start()
    calls = fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "C2", timeout=3)
    assert calls[0].params["text"] == "second"
    assert len(fake.wait_for("chat.postMessage", count=2)) == 2


def test_wait_for_timeout_lists_recorded_methods(client: WebClient, fake: FakeSlack) -> None:
    client.auth_test()
    with pytest.raises(AssertionError, match=r"views\.open.*auth\.test x1"):
        fake.wait_for("views.open", timeout=0.1)
    fake.clear()
    assert fake.calls == []


# ---------------------------------------------------------------------- driver


class _Receiver:
    """A stand-in bot endpoint: verifies Slack signatures and records what arrived."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0  # seconds before answering: a slow acknowledgement
        verifier = SignatureVerifier(SECRET)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                headers = dict(self.headers.items())
                valid = verifier.is_valid_request(body, headers)
                receiver.requests.append(
                    {"path": self.path, "body": body, "headers": headers, "valid": valid}
                )
                time.sleep(receiver.delay)
                reply = json.dumps({"received": True}).encode()
                self.send_response(200 if valid else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def last_form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[-1]["body"], keep_blank_values=True).items()}

    def last_payload(self) -> dict[str, Any]:
        return json.loads(self.last_form()["payload"])


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    rec = _Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def driver(receiver: _Receiver, fake: FakeSlack) -> SlackDriver:
    return SlackDriver(receiver.url, SECRET, fake=fake)


def test_command_signed_and_shaped(driver: SlackDriver, receiver: _Receiver, fake: FakeSlack) -> None:
    fake.add_user("U1", name="ada")
    resp = driver.command("U1", "/tasks", "list open", channel_id="C1")
    assert resp.status == 200 and resp.json() == {"received": True}
    req = receiver.requests[-1]
    assert req["valid"] and req["path"] == "/slack/events"
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = receiver.last_form()
    assert form["command"] == "/tasks" and form["text"] == "list open"
    assert (form["user_id"], form["user_name"], form["channel_id"]) == ("U1", "ada", "C1")
    assert form["team_id"] == "T0SANDBOX" and form["api_app_id"] == "A0CREWCALL"
    assert form["response_url"].startswith(fake.url + "response/") and form["trigger_id"]


def test_an_ack_later_than_3_s_is_a_violation(
    driver: SlackDriver, receiver: _Receiver, fake: FakeSlack
) -> None:
    receiver.delay = 3.2  # just past Slack's 3 s
    assert driver.command("U1", "/tasks", "list open").status == 200
    with pytest.raises(AssertionError) as failed:
        fake.assert_no_violations()
    assert re.search(
        r"  - ack: /tasks list open acknowledged after 3\.\d s \(Slack waits 3 s\)", str(failed.value)
    )


def test_forged_and_stale_requests_fail_verification(driver: SlackDriver, receiver: _Receiver) -> None:
    assert driver.command("U1", "/tasks", signature="v0=" + "0" * 64).status == 401
    assert driver.command("U1", "/tasks", timestamp=int(time.time()) - 600).status == 401
    assert SlackDriver(receiver.url, "wrong-secret").command("U1", "/tasks").status == 401
    assert [r["valid"] for r in receiver.requests] == [False, False, False]


def test_click_on_posted_message(
    driver: SlackDriver, receiver: _Receiver, fake: FakeSlack, client: WebClient
) -> None:
    blocks = [
        {
            "type": "actions",
            "block_id": "task_7",
            "elements": [
                {"type": "button", "action_id": "claim", "text": {"type": "plain_text", "text": "Claim"}}
            ],
        }
    ]
    posted = client.chat_postMessage(channel="C1", text="Task 7", blocks=blocks)
    resp = driver.click("U1", "claim", value="7", channel_id="C1", message_ts=posted["ts"])
    assert resp.status == 200 and receiver.requests[-1]["valid"]
    payload = receiver.last_payload()
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U1" and payload["team"]["id"] == "T0SANDBOX"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == "C1"
    assert payload["message"]["blocks"] == blocks and payload["message"]["ts"] == posted["ts"]
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "claim",
        "task_7",
        "7",
        "button",
    )
    assert payload["response_url"].startswith(fake.url) and payload["trigger_id"]


def test_click_and_select_in_view(driver: SlackDriver, receiver: _Receiver) -> None:
    driver.click("U1", "refresh", view={"id": "V1", "type": "home"})
    payload = receiver.last_payload()
    assert payload["container"] == {"type": "view", "view_id": "V1"}
    assert payload["view"]["type"] == "home" and "channel" not in payload
    driver.select("U1", "priority", "high", text="High", view={"id": "V2"})
    action = receiver.last_payload()["actions"][0]
    assert action["type"] == "static_select" and action["selected_option"]["value"] == "high"


def test_submit_view_shape(driver: SlackDriver, receiver: _Receiver) -> None:
    values = {
        "title": {"title_input": "Fix the roof"},
        "prio": {"prio_select": static_select("high")},
        "owner": {"owner_select": users_select("U2")},
    }
    resp = driver.submit_view("U1", "new_task", values, private_metadata='{"x": 1}', view_id="V9")
    assert resp.status == 200 and receiver.requests[-1]["valid"]
    payload = receiver.last_payload()
    assert payload["type"] == "view_submission"
    view = payload["view"]
    assert (view["id"], view["callback_id"], view["type"], view["private_metadata"]) == (
        "V9",
        "new_task",
        "modal",
        '{"x": 1}',
    )
    state = view["state"]["values"]
    assert state["title"]["title_input"] == {"type": "plain_text_input", "value": "Fix the roof"}
    assert state["prio"]["prio_select"]["selected_option"]["value"] == "high"
    assert state["owner"]["owner_select"] == {"type": "users_select", "selected_user": "U2"}
    assert view["hash"]
    with pytest.raises(TypeError):
        driver.submit_view("U1", "new_task", {"b": {"a": 3}})


def test_event_envelope_and_retry_headers(driver: SlackDriver, receiver: _Receiver) -> None:
    resp = driver.message_im("U1", "hello bot")
    assert resp.status == 200 and receiver.requests[-1]["valid"]
    envelope = json.loads(receiver.requests[-1]["body"])
    assert envelope["type"] == "event_callback" and envelope["team_id"] == "T0SANDBOX"
    assert envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == "U0BOT"
    event = envelope["event"]
    assert (event["type"], event["channel_type"], event["channel"], event["text"]) == (
        "message",
        "im",
        "D1",
        "hello bot",
    )

    driver.event({"type": "app_home_opened", "user": "U1"}, event_id=envelope["event_id"], retry_num=1)
    retried = receiver.requests[-1]
    assert retried["valid"] and json.loads(retried["body"])["event_id"] == envelope["event_id"]
    assert retried["headers"]["X-Slack-Retry-Num"] == "1"
    assert retried["headers"]["X-Slack-Retry-Reason"] == "http_timeout"

    driver.app_mention("U1", "<@U0BOT> help", channel="C1")
    driver.team_join({"id": "U5", "name": "newbie"})
    driver.url_verification("xyz")
    bodies = [json.loads(r["body"]) for r in receiver.requests[-3:]]
    assert bodies[0]["event"]["type"] == "app_mention" and bodies[1]["event"]["user"]["id"] == "U5"
    assert bodies[2] == {"token": bodies[2]["token"], "challenge": "xyz", "type": "url_verification"}
    assert all(r["valid"] for r in receiver.requests)
    assert len({json.loads(r["body"]).get("event_id") for r in receiver.requests[-3:-1]}) == 2


def test_home_opened_carries_published_view(
    driver: SlackDriver, receiver: _Receiver, client: WebClient
) -> None:
    client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    driver.home_opened("U1")
    event = json.loads(receiver.requests[-1]["body"])["event"]
    assert event["type"] == "app_home_opened" and event["tab"] == "home"
    assert event["view"]["type"] == "home"
