"""Slack calling the bot: correctly signed requests to its HTTP endpoint, or the same payloads
as Socket Mode envelopes.

:class:`SlackDriver` plays Slack's side of the "request URL" door: slash commands,
button clicks (``block_actions``), modal submissions (``view_submission``) and Events
API envelopes, all POSTed to ``{bot_url}/slack/events`` and signed with the app's
signing secret exactly like Slack signs them::

    from sandbox import FakeSlack, SlackDriver

    with FakeSlack() as fake:
        ...  # start the bot with WebClient(base_url=fake.api_url) and SIGNING_SECRET
        driver = SlackDriver(bot_url, SIGNING_SECRET, fake=fake)
        assert driver.command("U123", "/tasks", "list").status == 200
        reply = fake.wait_for("response_url")[0]          # respond(...) from the bot
        post = fake.wait_for("chat.postMessage")[0]       # client.chat_postMessage(...)
        driver.click("U123", "claim_task", value="42", message_ts=post.response["ts"],
                     channel_id=post.response["channel"])

Every helper accepts, keyword-only, ``timestamp=`` (to send a stale request),
``signature=`` (to send a forged one) and ``extra_headers=``. Helpers return a
:class:`Response`; they never raise on HTTP error statuses.

The ``plain_text`` ... ``number_input`` functions build the ``state.values`` entries
of :meth:`SlackDriver.submit_view` for each kind of input element.

Both drivers build their payloads with :class:`SlackPayloads`, so a :class:`SocketModeDriver`
envelope carries exactly what the HTTP request would (``sandbox.socket_mode`` has the WebSocket
endpoint it pushes them through).

Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .fake_slack import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, describe_request, dm_channel_id
from .socket_mode import Ack

if TYPE_CHECKING:
    from .fake_slack import FakeSlack

__all__ = [
    "Response",
    "SlackDriver",
    "SlackPayloads",
    "SocketModeDriver",
    "checkboxes",
    "datepicker",
    "multi_static_select",
    "number_input",
    "plain_text",
    "radio_buttons",
    "static_select",
    "timepicker",
    "users_select",
    "conversations_select",
]

#: A verification token placed in payloads, like Slack's (deprecated) ``token`` field.
VERIFICATION_TOKEN = "sandbox-verification-token"


@dataclass
class Response:
    """The bot's HTTP answer to a driven request.

    Attributes:
        status: HTTP status code (200 for an ack).
        body: the response body as text ("" for an empty ack).
        headers: response headers, names lower-cased.
        answered_at: wall-clock time (``time.time()``) the answer was read, to compare with
            the fake's ``Call.arrived``.
    """

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    answered_at: float = 0.0

    def json(self) -> Any:
        """The body decoded as JSON (e.g. a ``response_action`` of a view submission)."""
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


# ---------------------------------------------------------------------- state values for submit_view


def plain_text(value: str | None) -> dict[str, Any]:
    """State of a ``plain_text_input`` (what a bare ``str`` in ``values`` becomes)."""
    return {"type": "plain_text_input", "value": value}


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": text if text is not None else value, "emoji": True},
        "value": value,
    }


def static_select(value: str | None, text: str | None = None) -> dict[str, Any]:
    """State of a ``static_select``: the option with ``value`` chosen (None = nothing chosen)."""
    return {"type": "static_select", "selected_option": _option(value, text) if value is not None else None}


def radio_buttons(value: str | None, text: str | None = None) -> dict[str, Any]:
    """State of ``radio_buttons`` with the option ``value`` chosen (None = nothing chosen)."""
    return {"type": "radio_buttons", "selected_option": _option(value, text) if value is not None else None}


def multi_static_select(values: Iterable[str]) -> dict[str, Any]:
    """State of a ``multi_static_select`` with these option values chosen."""
    return {"type": "multi_static_select", "selected_options": [_option(v) for v in values]}


def checkboxes(values: Iterable[str]) -> dict[str, Any]:
    """State of ``checkboxes`` with these option values ticked."""
    return {"type": "checkboxes", "selected_options": [_option(v) for v in values]}


def users_select(user_id: str | None) -> dict[str, Any]:
    """State of a ``users_select`` with this user chosen."""
    return {"type": "users_select", "selected_user": user_id}


def conversations_select(channel_id: str | None) -> dict[str, Any]:
    """State of a ``conversations_select`` with this conversation chosen."""
    return {"type": "conversations_select", "selected_conversation": channel_id}


def datepicker(date: str | None) -> dict[str, Any]:
    """State of a ``datepicker``; ``date`` is ``"YYYY-MM-DD"``."""
    return {"type": "datepicker", "selected_date": date}


def timepicker(time_str: str | None) -> dict[str, Any]:
    """State of a ``timepicker``; ``time_str`` is ``"HH:MM"``."""
    return {"type": "timepicker", "selected_time": time_str}


def number_input(value: int | float | str | None) -> dict[str, Any]:
    """State of a ``number_input`` (Slack sends the number as a string)."""
    return {"type": "number_input", "value": None if value is None else str(value)}


def _state_value(block_id: str, action_id: str, value: Any) -> dict[str, Any]:
    if value is None or isinstance(value, str):
        return plain_text(value)
    if isinstance(value, dict) and "type" in value:
        return value
    raise TypeError(
        f"values[{block_id!r}][{action_id!r}]: expected a str (plain_text_input) or a Slack state dict "
        f"with a 'type' (see sandbox.driver.static_select, users_select, ...), got {value!r}"
    )


def _find_block_id(blocks: Any, action_id: str) -> str | None:
    """The block_id of the block holding an element with ``action_id``, if any."""
    if not isinstance(blocks, list):
        return None
    for block in blocks:
        if not isinstance(block, dict):
            continue
        elements = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        if any(isinstance(e, dict) and e.get("action_id") == action_id for e in elements):
            return block.get("block_id")
    return None


def _what(body: str) -> str:
    """What a request was, for a violation report: the command, the interaction or the event."""
    fields = dict(parse_qsl(body))
    if "command" in fields:
        return describe_request(fields)
    try:
        data = json.loads(fields.get("payload") or body)
    except ValueError:
        return "request"
    return describe_request(data) if isinstance(data, dict) else "request"


class SlackPayloads:
    """The requests Slack sends, built as Slack builds them, whichever door they go through:
    :class:`SlackDriver` POSTs them, signed, to the bot's request URL, and
    :class:`~sandbox.socket_mode.SocketModeDriver` pushes them as Socket Mode envelopes.

    Args:
        team_id: workspace id put in every payload.
        fake: the :class:`~sandbox.fake_slack.FakeSlack` the bot talks to, if any. With it,
            ``response_url``\\ s are real (recorded as ``"response_url"`` calls), user names come
            from its directory, a click on ``message_ts`` carries the stored message, and
            ``app_home_opened`` carries the published Home view.
        api_app_id: app id put in every payload.
    """

    def __init__(
        self, team_id: str = TEAM_ID, fake: FakeSlack | None = None, *, api_app_id: str = APP_ID
    ) -> None:
        self.team_id = team_id
        self.fake = fake
        self.api_app_id = api_app_id
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._last_ts_micros = 0

    # ------------------------------------------------------------------ ids and urls

    def new_trigger_id(self) -> str:
        """A fresh, unique trigger_id in Slack's shape (``"<n>.<n>.<hex>"``)."""
        return f"{int(time.time() * 1000)}.{next(self._seq)}.{secrets.token_hex(16)}"

    def new_response_url(self) -> str:
        """A response_url: a real one on the fake when attached, else a dummy that goes nowhere."""
        if self.fake is not None:
            return self.fake.new_response_url()
        return f"http://127.0.0.1:9/response/{next(self._seq)}"

    def new_ts(self) -> str:
        """A fresh message ts (the fake's clock when attached, else a local monotonic one)."""
        if self.fake is not None:
            return self.fake.next_ts()
        with self._lock:
            self._last_ts_micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
            micros = self._last_ts_micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def user_name(self, user_id: str) -> str:
        """The user's ``name`` from the fake's directory, else the lower-cased id."""
        if self.fake is not None and user_id in self.fake.users:
            return str(self.fake.users[user_id]["name"])
        return user_id.lower()

    def _user(self, user_id: str) -> dict[str, Any]:
        name = self.user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _team(self) -> dict[str, Any]:
        return {"id": self.team_id, "domain": TEAM_DOMAIN}

    @staticmethod
    def _channel_name(channel_id: str) -> str:
        if channel_id.startswith("D"):
            return "directmessage"
        if channel_id == "C0GENERAL":
            return "general"
        return channel_id.lower()

    def new_event_id(self) -> str:
        """A fresh, unique Events API event id (``"Ev..."``)."""
        return f"Ev{next(self._seq):04d}{secrets.token_hex(4).upper()}"

    # ------------------------------------------------------------------ payloads

    def command_fields(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str = "C0GENERAL",
        trigger_id: str | None = None,
        response_url: str | None = None,
    ) -> dict[str, str]:
        """The fields of a slash command (``command`` typed by ``user_id`` with ``text``):
        token, team_id, channel_id, user_id, command, text, response_url, trigger_id, ...
        ``response_url`` defaults to a fresh one on the fake; ``trigger_id`` is generated."""
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": self.user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self.new_response_url(),
            "trigger_id": trigger_id or self.new_trigger_id(),
        }

    def block_actions_payload(
        self,
        user_id: str,
        actions: list[dict[str, Any]],
        channel_id: str = "C0GENERAL",
        message_ts: str | None = None,
        message: dict[str, Any] | None = None,
        container: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        trigger_id: str | None = None,
        response_url: str | None = None,
    ) -> dict[str, Any]:
        """A ``block_actions`` interaction carrying the given ``actions`` (Slack-shaped dicts).

        * Message interaction (no ``view``): includes ``channel``, ``container`` of type
          ``"message"`` and, when ``message_ts`` is given, the ``message`` (``message`` if passed,
          else the one stored in the fake, else an empty ``{ts, text, blocks}``), plus a
          ``response_url``.
        * View interaction (``view`` given, e.g. a modal or Home tab from ``fake.views``):
          ``container`` of type ``"view"``, the ``view`` (defaults filled in), no channel.

        Missing ``block_id``\\ s in ``actions`` are looked up in the message/view blocks.
        """
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": VERIFICATION_TOKEN,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "trigger_id": trigger_id or self.new_trigger_id(),
        }
        blocks: Any = None
        if view is not None:
            full_view = self._full_view(view)
            payload["container"] = container or {"type": "view", "view_id": full_view["id"]}
            payload["view"] = full_view
            blocks = full_view.get("blocks")
        if view is None or message_ts is not None:
            payload.setdefault(
                "container",
                container
                or {
                    "type": "message",
                    "message_ts": message_ts,
                    "channel_id": channel_id,
                    "is_ephemeral": False,
                },
            )
            payload["channel"] = {"id": channel_id, "name": self._channel_name(channel_id)}
            payload["response_url"] = response_url or self.new_response_url()
            if message_ts is not None:
                if message is None and self.fake is not None:
                    message = self.fake.find_message(channel_id, message_ts)
                if message is None:
                    message = {"type": "message", "ts": message_ts, "text": "", "blocks": []}
                message = {"type": "message", "ts": message_ts, **message}
                payload["message"] = message
                blocks = message.get("blocks")
            payload["state"] = {"values": {}}
        action_ts = f"{time.time():.6f}"
        filled = []
        for action in actions:
            action = {"action_ts": action_ts, **action}
            if not action.get("block_id"):
                action["block_id"] = _find_block_id(blocks, action["action_id"]) or "sandbox_block"
            filled.append(action)
        payload["actions"] = filled
        return payload

    @staticmethod
    def button_action(
        action_id: str, value: str | None = None, block_id: str | None = None
    ) -> dict[str, Any]:
        """The ``actions`` entry of a click on the button ``action_id`` carrying ``value``."""
        action: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": action_id, "emoji": True},
        }
        if value is not None:
            action["value"] = value
        if block_id is not None:
            action["block_id"] = block_id
        return action

    def _full_view(self, view: dict[str, Any]) -> dict[str, Any]:
        """``view`` with the fields Slack always sends filled in."""
        view_id = view.get("id") or f"V{uuid.uuid4().hex[:10].upper()}"
        return {
            "type": "modal",
            "team_id": self.team_id,
            "app_id": self.api_app_id,
            "bot_id": "B0BOT",
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "blocks": [],
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "previous_view_id": None,
            **view,
            "id": view_id,
            "root_view_id": view.get("root_view_id") or view_id,
            "state": view.get("state") or {"values": {}},
        }

    def view_submission_payload(
        self,
        user_id: str,
        callback_id: str,
        values: Mapping[str, Mapping[str, Any]],
        private_metadata: str | None = None,
        view_id: str | None = None,
        *,
        view: dict[str, Any] | None = None,
        response_urls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A ``view_submission`` of the modal ``callback_id`` (see :meth:`SlackDriver.submit_view`)."""
        state = {
            block_id: {action_id: _state_value(block_id, action_id, v) for action_id, v in actions.items()}
            for block_id, actions in values.items()
        }
        base = dict(view or {})
        base.update({"callback_id": callback_id, "state": {"values": state}})
        if view_id is not None:
            base["id"] = view_id
        if private_metadata is not None:
            base["private_metadata"] = private_metadata
        return {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.new_trigger_id(),
            "view": self._full_view(base),
            "response_urls": response_urls or [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def event_callback(self, event: Mapping[str, Any], event_id: str | None = None) -> dict[str, Any]:
        """``event`` (the inner event dict) in an Events API ``event_callback`` envelope.

        ``event_id`` defaults to a fresh unique ``"Ev..."``; Slack redelivers an event under the
        same one. ``event_ts`` is filled in when missing.
        """
        inner = dict(event)
        inner.setdefault("event_ts", f"{time.time():.6f}")
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id or self.new_event_id(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def home_opened_event(self, user_id: str, tab: str = "home") -> dict[str, Any]:
        """``app_home_opened``: ``user_id`` opened the bot's Home tab; carries the user's
        published Home view when the fake has one."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": dm_channel_id(user_id),
            "tab": tab,
        }
        if self.fake is not None and user_id in self.fake.home_views:
            event["view"] = self.fake.home_views[user_id]
        return event


class SlackDriver(SlackPayloads):
    """Sends signed Slack requests to a bot's ``POST {bot_url}/slack/events`` endpoint.

    Args:
        bot_url: the bot's base URL, e.g. ``"http://127.0.0.1:3000"``.
        signing_secret: the app's signing secret (the bot must be configured with the same).
        team_id: workspace id put in every payload.
        fake: the :class:`~sandbox.fake_slack.FakeSlack` the bot talks to, if any. With it,
            ``response_url``\\ s are real (recorded as ``"response_url"`` calls), user names come
            from its directory, ``click(message_ts=...)`` sends the stored message, and
            ``home_opened`` carries the published Home view.
        path: the endpoint path (default ``"/slack/events"``).
        api_app_id: app id put in every payload.
        timeout: seconds to wait for the bot's answer (Slack gives up after 3).
    """

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        team_id: str = TEAM_ID,
        fake: FakeSlack | None = None,
        *,
        path: str = "/slack/events",
        api_app_id: str = APP_ID,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(team_id, fake, api_app_id=api_app_id)
        self.bot_url = bot_url.rstrip("/")
        self.signing_secret = signing_secret
        self.path = path
        self.timeout = timeout

    # ------------------------------------------------------------------ low level

    def sign(self, body: str, timestamp: int | str) -> str:
        """Slack's signature of ``body``: ``"v0=" + hex HMAC-SHA256(secret, f"v0:{timestamp}:{body}")``."""
        base = f"v0:{timestamp}:{body}".encode()
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()

    def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """POST a raw ``body`` to the endpoint, signed (unless ``signature`` overrides it).

        ``timestamp`` defaults to now (an int of unix seconds); pass an old one to test
        replay protection, or ``signature="v0=bad"`` to test forgery.
        """
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature if signature is not None else self.sign(body, ts),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        headers.update(extra_headers or {})
        url = urlsplit(self.bot_url + self.path)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=self.timeout)
        started = time.monotonic()
        try:
            target = url.path + (f"?{url.query}" if url.query else "")
            conn.request("POST", target, body=body.encode("utf-8"), headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", errors="replace")
            answer_headers = {k.lower(): v for k, v in resp.getheaders()}
            response = Response(resp.status, text, answer_headers, time.time())
        finally:
            conn.close()
        elapsed = time.monotonic() - started
        if self.fake is not None and elapsed > self.fake.ack_deadline:
            self.fake.violation("ack", f"{_what(body)} acknowledged after {elapsed:.1f} s (Slack waits 3 s)")
        return response

    def post_form(self, fields: Mapping[str, Any], **options: Any) -> Response:
        """POST ``fields`` form-encoded (``application/x-www-form-urlencoded``), signed.

        ``options`` are :meth:`post`'s ``timestamp``, ``signature``, ``extra_headers``.
        """
        return self.post(urlencode(fields), "application/x-www-form-urlencoded", **options)

    def post_json(self, data: Any, **options: Any) -> Response:
        """POST ``data`` as JSON (``application/json``), signed. ``options`` as for :meth:`post_form`."""
        return self.post(json.dumps(data), "application/json", **options)

    def post_payload(self, payload: Mapping[str, Any], **options: Any) -> Response:
        """POST an interaction payload as Slack does: form field ``payload=<json>``, signed."""
        return self.post_form({"payload": json.dumps(payload)}, **options)

    # ------------------------------------------------------------------ slash commands

    def command(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str = "C0GENERAL",
        trigger_id: str | None = None,
        *,
        response_url: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Run a slash command as ``user_id`` typed it: ``driver.command("U1", "/tasks", "list")``.

        Sends the form body Slack sends (see :meth:`command_fields`); read replies sent through
        the ``response_url`` with ``fake.wait_for("response_url")``.
        """
        fields = self.command_fields(user_id, command, text, channel_id, trigger_id, response_url)
        return self.post_form(fields, timestamp=timestamp, signature=signature, extra_headers=extra_headers)

    # ------------------------------------------------------------------ interactions

    def block_actions(
        self,
        user_id: str,
        actions: list[dict[str, Any]],
        channel_id: str = "C0GENERAL",
        message_ts: str | None = None,
        message: dict[str, Any] | None = None,
        container: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        *,
        trigger_id: str | None = None,
        response_url: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send a ``block_actions`` interaction (see :meth:`block_actions_payload`).

        This is what :meth:`click` and :meth:`select` build on; use it for other elements.
        """
        payload = self.block_actions_payload(
            user_id, actions, channel_id, message_ts, message, container, view, trigger_id, response_url
        )
        return self.post_payload(
            payload, timestamp=timestamp, signature=signature, extra_headers=extra_headers
        )

    def click(
        self,
        user_id: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
        channel_id: str = "C0GENERAL",
        message_ts: str | None = None,
        message: dict[str, Any] | None = None,
        container: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        *,
        trigger_id: str | None = None,
        response_url: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Click the button ``action_id`` (carrying ``value``) as ``user_id``.

        On a message: pass ``channel_id`` and ``message_ts`` of the message (e.g. from
        ``fake.last("chat.postMessage").response``). In a modal or on the Home tab: pass the
        ``view`` (e.g. ``fake.home_views["U1"]`` or ``fake.last("views.open").response["view"]``).
        See :meth:`block_actions_payload` for the payload.
        """
        return self.block_actions(
            user_id,
            [self.button_action(action_id, value, block_id)],
            channel_id=channel_id,
            message_ts=message_ts,
            message=message,
            container=container,
            view=view,
            trigger_id=trigger_id,
            response_url=response_url,
            timestamp=timestamp,
            signature=signature,
            extra_headers=extra_headers,
        )

    def select(
        self,
        user_id: str,
        action_id: str,
        value: str,
        text: str | None = None,
        block_id: str | None = None,
        channel_id: str = "C0GENERAL",
        message_ts: str | None = None,
        message: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Pick the option ``value`` (label ``text``) in the ``static_select`` ``action_id``.

        Where it is (message or view) works as for :meth:`click`.
        """
        action: dict[str, Any] = {
            "type": "static_select",
            "action_id": action_id,
            "selected_option": _option(value, text),
        }
        if block_id is not None:
            action["block_id"] = block_id
        return self.block_actions(
            user_id,
            [action],
            channel_id=channel_id,
            message_ts=message_ts,
            message=message,
            view=view,
            timestamp=timestamp,
            signature=signature,
            extra_headers=extra_headers,
        )

    def submit_view(
        self,
        user_id: str,
        callback_id: str,
        values: Mapping[str, Mapping[str, Any]],
        private_metadata: str | None = None,
        view_id: str | None = None,
        *,
        view: dict[str, Any] | None = None,
        response_urls: list[dict[str, Any]] | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Submit the modal ``callback_id`` as ``user_id`` with the inputs filled in as ``values``.

        ``values`` is ``{block_id: {action_id: value}}``: a ``str`` is a plain text input;
        for other elements pass the Slack state dict, e.g. ``static_select("high")``,
        ``users_select("U2")``, ``datepicker("2024-05-01")`` from this module (any dict with a
        ``"type"`` is passed through unchanged).

        ``view`` may be the modal the bot opened (``fake.last("views.open").response["view"]``);
        its id, blocks and private_metadata are then reused unless ``view_id`` /
        ``private_metadata`` are given. The bot's answer (e.g. ``{"response_action": "errors",
        ...}``) is in ``Response.json()``.
        """
        payload = self.view_submission_payload(
            user_id, callback_id, values, private_metadata, view_id, view=view, response_urls=response_urls
        )
        return self.post_payload(
            payload, timestamp=timestamp, signature=signature, extra_headers=extra_headers
        )

    # ------------------------------------------------------------------ Events API

    def event(
        self,
        event: Mapping[str, Any],
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Deliver ``event`` (the inner event dict) in an Events API ``event_callback`` envelope
        (see :meth:`event_callback`).

        Reuse an ``event_id`` with ``retry_num=1`` to simulate Slack redelivering it (adds
        ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``).
        """
        headers = dict(extra_headers or {})
        if retry_num is not None:
            headers.setdefault("X-Slack-Retry-Num", str(retry_num))
            headers.setdefault("X-Slack-Retry-Reason", retry_reason)
        return self.post_json(
            self.event_callback(event, event_id),
            timestamp=timestamp,
            signature=signature,
            extra_headers=headers,
        )

    def url_verification(
        self,
        challenge: str,
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send Slack's ``url_verification`` handshake; the bot should echo ``challenge``."""
        body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
        return self.post_json(body, timestamp=timestamp, signature=signature, extra_headers=extra_headers)

    def home_opened(self, user_id: str, tab: str = "home", **options: Any) -> Response:
        """``app_home_opened``: ``user_id`` opened the bot's Home tab (see :meth:`home_opened_event`).
        ``options`` go to :meth:`event` (``event_id``, ``retry_num``, ``timestamp``, ``signature``...).
        """
        return self.event(self.home_opened_event(user_id, tab), **options)

    def message_im(
        self,
        user_id: str,
        text: str,
        channel: str | None = None,
        ts: str | None = None,
        thread_ts: str | None = None,
        **options: Any,
    ) -> Response:
        """``message`` event: ``user_id`` wrote ``text`` to the bot in a DM.

        ``channel`` defaults to the user's DM id (:func:`~sandbox.fake_slack.dm_channel_id`),
        ``ts`` to a fresh one. ``options`` go to :meth:`event`.
        """
        msg_ts = ts or self.new_ts()
        event: dict[str, Any] = {
            "type": "message",
            "channel_type": "im",
            "channel": channel or dm_channel_id(user_id),
            "user": user_id,
            "text": text,
            "ts": msg_ts,
            "event_ts": msg_ts,
            "team": self.team_id,
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return self.event(event, **options)

    def app_mention(
        self,
        user_id: str,
        text: str,
        channel: str = "C0GENERAL",
        ts: str | None = None,
        **options: Any,
    ) -> Response:
        """``app_mention`` event: ``user_id`` mentioned the bot in ``channel``.

        Include the mention yourself if the bot parses it, e.g. ``text="<@U0BOT> help"``.
        ``options`` go to :meth:`event`.
        """
        msg_ts = ts or self.new_ts()
        event = {
            "type": "app_mention",
            "channel": channel,
            "user": user_id,
            "text": text,
            "ts": msg_ts,
            "event_ts": msg_ts,
            "team": self.team_id,
        }
        return self.event(event, **options)

    def team_join(self, user: Mapping[str, Any], **options: Any) -> Response:
        """``team_join`` event: ``user`` (a Slack user object) joined the workspace.

        Typically ``driver.team_join(fake.add_user("U9", name="newbie"))`` so the bot can also
        look the user up. ``options`` go to :meth:`event`.
        """
        return self.event({"type": "team_join", "user": dict(user)}, **options)


class SocketModeDriver(SlackPayloads):
    """Slack calling the bot over Socket Mode: the same payloads :class:`~sandbox.driver.SlackDriver`
    POSTs, pushed as envelopes through ``fake.socket_mode``. Each method returns the envelope id;
    :meth:`wait_ack` returns the bot's acknowledgement of it."""

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(fake=fake)
        self.server = fake.socket_mode

    def command(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str = "C0GENERAL",
        *,
        response_url: str | None = None,
    ) -> str:
        fields = self.command_fields(user_id, command, text, channel_id, response_url=response_url)
        return self.server.send_envelope("slash_commands", fields, accepts_response_payload=True)

    def click(
        self,
        user_id: str,
        action_id: str,
        value: str | None = None,
        channel_id: str = "C0GENERAL",
        message_ts: str | None = None,
        *,
        response_url: str | None = None,
    ) -> str:
        payload = self.block_actions_payload(
            user_id,
            [self.button_action(action_id, value)],
            channel_id,
            message_ts,
            response_url=response_url,
        )
        # Slack reads nothing from a block_actions ack, and says so in the envelope.
        return self.server.send_envelope("interactive", payload, accepts_response_payload=False)

    def submit_view(
        self,
        user_id: str,
        callback_id: str,
        values: Mapping[str, Mapping[str, Any]],
        private_metadata: str | None = None,
        *,
        view: dict[str, Any] | None = None,
    ) -> str:
        """A modal submitted; the bot's answer (e.g. ``{"response_action": "errors", ...}``) is the
        payload of its ack."""
        payload = self.view_submission_payload(user_id, callback_id, values, private_metadata, view=view)
        return self.server.send_envelope("interactive", payload, accepts_response_payload=True)

    def event(self, event: Mapping[str, Any], event_id: str | None = None, retry_attempt: int = 0) -> str:
        """An Events API envelope; reuse an ``event_id`` with ``retry_attempt=1`` for Slack's
        redelivery of an event it thinks was missed (a new envelope, the same event)."""
        return self.server.send_envelope(
            "events_api",
            self.event_callback(event, event_id),
            accepts_response_payload=False,
            retry_attempt=retry_attempt,
            retry_reason="timeout" if retry_attempt else "",
        )

    def home_opened(self, user_id: str, event_id: str | None = None, retry_attempt: int = 0) -> str:
        return self.event(self.home_opened_event(user_id), event_id, retry_attempt)

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        return self.server.wait_ack(envelope_id, timeout)
