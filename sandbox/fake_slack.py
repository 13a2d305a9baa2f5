"""A fake Slack Web API server on loopback, for tests and the local sandbox.

Point a real ``slack_sdk.WebClient`` at it and every call is answered like Slack
would answer it, and recorded so tests can assert on it::

    from slack_sdk import WebClient
    from sandbox import FakeSlack

    with FakeSlack() as fake:
        fake.add_user("U123", name="ada", tz="Europe/London")
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        client.chat_postMessage(channel="U123", text="hi")
        call = fake.wait_for("chat.postMessage")[0]
        assert call.params["text"] == "hi"
        assert call.response["channel"] == dm_channel_id("U123")

What it models (see the ``_m_*`` methods for each Web API method):

* messages (``chat.*``) kept per channel, readable through ``conversations.history``;
* a user directory (``users.*``), channel membership (``conversations.members``);
* modals and the Home tab (``views.*``), file uploads (``files_upload_v2``'s three steps);
* ``response_url`` endpoints (:meth:`FakeSlack.new_response_url`);
* Socket Mode: ``apps.connections.open`` (with an ``xapp-`` token) hands out a ``ws://`` URL on
  :attr:`FakeSlack.socket_mode` (``sandbox.socket_mode``), where tests push envelopes;
* failure injection (:meth:`FakeSlack.fail_next`), latency (:attr:`FakeSlack.latency`)
  and Slack-like rate limiting of ``chat.postMessage`` and, by tier, of other methods
  (``rate_limits=``);
* Slack's rules: every call Slack would refuse is answered as Slack answers it and recorded in
  :attr:`FakeSlack.violations` (see the class docstring);
* the sandbox page: ``GET /`` and ``/static/*`` from ``sandbox/web``, ``/sandbox/state``,
  ``/sandbox/events`` (server-sent events) and ``POST /sandbox/<verb>`` handled by the attached
  ``sandbox.workspace.Workspace``; ephemeral messages and each user's open modals are kept
  (:attr:`FakeSlack.ephemerals`, :attr:`FakeSlack.modals`) for it.

Every response is HTTP 200 with a JSON body ``{"ok": true, ...}`` unless an error
applies (``{"ok": false, "error": "..."}``; rate limits and injected failures may
also change the HTTP status). Unknown methods answer ``unknown_method``, and methods
Slack has that the fake doesn't model ``not_implemented``; both are recorded, as
violations.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import json
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from sandbox import blockkit, rules
from sandbox.socket_mode import SocketModeServer

log = logging.getLogger("sandbox.fake_slack")

__all__ = [
    "APP_ID",
    "APP_LEVEL_METHODS",
    "APP_TOKEN",
    "BOT_ID",
    "BOT_USER_ID",
    "JSON_PARAMS",
    "TEAM_ID",
    "TEAM_NAME",
    "Call",
    "FakeSlack",
    "decode_json_params",
    "describe_request",
    "dm_channel_id",
]

TEAM_ID = "T0SANDBOX"
TEAM_NAME = "Sandbox"
TEAM_DOMAIN = "sandbox"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
BOT_NAME = "crewcall"
APP_ID = "A0CREWCALL"
#: The app-level token the fake accepts for Socket Mode (any other ``xapp-`` token is ``invalid_auth``).
APP_TOKEN = "xapp-1-A0CREWCALL-1-sandbox"
#: Methods that take the app-level token instead of the bot token.
APP_LEVEL_METHODS = frozenset({"apps.connections.open"})

#: Params that slack_sdk sends as JSON strings; they are decoded into objects when recorded.
JSON_PARAMS = frozenset({"blocks", "view", "attachments", "metadata", "files"})

#: Slack's limits on blocks: 50 in a message, 100 in a modal or Home tab.
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100


#: The sandbox page's static files (plain HTML, CSS and JS; no build step).
WEB_DIR = Path(__file__).resolve().parent / "web"
_WEB_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of calls from the bot (a claim storm's
    # replies) would be refused like no real Slack refuses them.
    request_queue_size = 1024


def dm_channel_id(user_id: str) -> str:
    """The DM channel id the fake uses for a user: ``"U123"`` -> ``"D123"``.

    ``conversations.open`` answers with it, and ``chat.postMessage(channel=<user id>)``
    posts into it, so both routes land in the same history.
    """
    return "D" + user_id[1:]


def decode_json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``params`` with the JSON-string params in :data:`JSON_PARAMS` decoded.

    slack_sdk form-encodes ``blocks``, ``view``, ``attachments``, ``metadata`` (and the
    ``files`` list of ``files.completeUploadExternal``) as JSON strings. Values that are not
    valid JSON are kept as they are.
    """
    out = dict(params)
    for key in JSON_PARAMS:
        value = out.get(key)
        if isinstance(value, str | bytes):
            with contextlib.suppress(ValueError):
                out[key] = json.loads(value)
    return out


def describe_request(payload: Mapping[str, Any]) -> str:
    """What a request from Slack was, for a late ack's report: the command and its text, the
    event's type, or the interaction's type and action_ids."""
    if "command" in payload:
        return f"{payload['command']} {payload.get('text', '')}".strip()
    if payload.get("type") == "event_callback":
        return f"event {payload.get('event', {}).get('type')}"
    actions = [a.get("action_id") for a in payload.get("actions") or []]
    return f"{payload.get('type')} {' '.join(map(str, actions))}".strip()


def format_ts(micros: int) -> str:
    """Format microseconds since the epoch as a Slack ts: ``"1700000000.000100"``."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _truthy(value: Any) -> bool:
    return str(value).lower() in {"1", "true", "yes"}


@dataclass
class Call:
    """One request the fake received.

    Attributes:
        method: the Web API method (``"chat.postMessage"``), or ``"response_url"`` for a
            POST to a URL from :meth:`FakeSlack.new_response_url`.
        params: every param (query string + body), JSON params decoded (see
            :func:`decode_json_params`). The token is not in here: see ``token``.
            For ``response_url`` calls, the JSON body plus ``"_url"``.
        ts: wall-clock time (``time.time()``) the request was answered, after any latency.
        response: the JSON body the fake answered with.
        status: the HTTP status the fake answered with.
        token: the token sent (``Authorization: Bearer`` header or ``token`` param), if any.
        arrived: wall-clock time the request reached the fake, before any latency (to tell
            whether the bot called Slack before it answered a request).
    """

    method: str
    params: dict[str, Any]
    ts: float
    response: dict[str, Any]
    status: int = 200
    token: str | None = None
    arrived: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the fake answered ``{"ok": true}``."""
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The ``error`` of a failed call, else None."""
        return self.response.get("error")


class _ApiError(Exception):
    """Raised by a method implementation to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class Violation:
    """A call Slack would refuse or frown upon, shown on the sandbox page and failing tests.

    Attributes:
        method: the Web API method (``"chat.postMessage"``), ``"response_url"`` or ``"ack"``.
        rule: what was broken, naming the block when it is about blocks.
        ts: wall-clock time it happened.
    """

    method: str
    rule: str
    ts: float

    def __str__(self) -> str:
        return f"{self.method}: {self.rule}"


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None
    applied: bool = False


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


class _RateLimiter:
    """Slack-like limits on chat.postMessage, with time compressed by ``scale``.

    * per channel: at most ``per_channel_per_sec * scale`` posts per second, enforced as a
      minimum spacing of ``1 / (per_channel_per_sec * scale)`` seconds between accepted posts;
    * workspace-wide: at most ``workspace_per_min`` accepted posts in any sliding window of
      ``60 / scale`` seconds.
    """

    def __init__(
        self, per_channel_per_sec: float | None, workspace_per_min: int | None, scale: float
    ) -> None:
        if scale <= 0:
            raise ValueError("rate_limits['scale'] must be > 0")
        self.channel_interval = 1.0 / (per_channel_per_sec * scale) if per_channel_per_sec else None
        self.workspace_budget = int(workspace_per_min) if workspace_per_min else None
        self.window = 60.0 / scale
        self._last_by_channel: dict[str, float] = {}
        self._accepted: deque[float] = deque()

    def acquire(self, channel: str, now: float) -> float | None:
        """Take one post's budget; return None if allowed, else the seconds until it would be."""
        waits: list[float] = []
        if channel_wait := self.channel_wait(channel, now):
            waits.append(channel_wait)
        if self.workspace_budget is not None:
            while self._accepted and self._accepted[0] <= now - self.window:
                self._accepted.popleft()
            if len(self._accepted) >= self.workspace_budget:
                waits.append(self._accepted[0] + self.window - now)
        if waits:
            return max(waits)
        self._last_by_channel[channel] = now
        self._accepted.append(now)
        return None

    def channel_wait(self, channel: str, now: float) -> float:
        """Seconds until a post in `channel` passes the per-channel limit (0: it would now)."""
        last = self._last_by_channel.get(channel)
        if self.channel_interval is None or last is None:
            return 0.0
        return max(0.0, last + self.channel_interval - now)


class _TierLimiter:
    """Slack's per-method tiers: at most N calls of a method per ``60 / scale`` seconds."""

    def __init__(self, per_min: dict[str, int], scale: float) -> None:
        self.per_min = per_min
        self.window = 60.0 / scale
        self._calls: dict[str, deque[float]] = {}

    def acquire(self, method: str, now: float) -> float | None:
        budget = self.per_min.get(method)
        if not budget:
            return None
        calls = self._calls.setdefault(method, deque())
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        if len(calls) >= budget:
            return calls[0] + self.window - now
        calls.append(now)
        return None


def _tier_budgets(rate_limits: dict[str, Any]) -> dict[str, int]:
    """``rate_limits["tiers"]``: True for Slack's tiers (`sandbox.rules`), or ``{method: per_min}``
    (merged over them)."""
    tiers = rate_limits.get("tiers")
    if not tiers:
        return {}
    budgets = {m: rules.TIER_PER_MIN[t] for m, t in rules.METHOD_TIERS.items()}
    if isinstance(tiers, dict):
        budgets.update({m: int(n) for m, n in tiers.items()})
    return budgets


class FakeSlack:
    """A fake Slack Web API server on ``127.0.0.1`` that records every call.

    Args:
        rate_limits: optional limits on ``chat.postMessage``, e.g.
            ``{"per_channel_per_sec": 1.0, "workspace_per_min": 600, "scale": 10}``. ``scale``
            compresses time: with 10, a channel takes 10 posts a second and the workspace
            budget applies to a 6 s window instead of 60 s. Over-limit posts answer HTTP 429
            ``{"ok": false, "error": "ratelimited"}`` with ``Retry-After`` (whole seconds, at
            least 1) and ``X-Retry-After-Float`` (precise seconds); they are recorded but not
            stored. Either limit may be left out. ``"tiers": True`` adds Slack's per-method
            tiers (``sandbox.rules.METHOD_TIERS``: e.g. ``users.info`` 100 a minute), and
            ``"tiers": {"views.open": 5}`` sets a method's budget per minute.
        scopes: the bot's OAuth scopes; a method needing another answers ``missing_scope``
            (a violation). Default: the scopes ``manifest.yaml`` asks for.

    **Slack's rules.** Whatever Slack would refuse or punish is recorded in :attr:`violations`
    (and answered as Slack answers it): blocks and views that break Block Kit's rules
    (``sandbox.blockkit``), unknown methods and arguments (and methods the fake doesn't
    implement, told apart), scopes the manifest lacks, a
    ``trigger_id`` used after :attr:`trigger_ttl` seconds or twice, acks later than
    :attr:`ack_deadline` (measured by the drivers). The tests' fixture fails a test that leaves
    violations behind (:meth:`assert_no_violations`); the sandbox page shows them.

    Use it as a context manager, or call :meth:`start` / :meth:`stop`. State you can set
    up or inspect directly (guard concurrent writes with care; reads are fine):

    Attributes:
        users: the user directory, ``{user_id: user object}``; use :meth:`add_user`. The
            bot user ``U0BOT`` is in it from the start.
        channel_members: ``{channel_id: [user ids]}`` served by ``conversations.members``.
        channel_names: ``{channel_id: name}`` used by ``conversations.info``.
        missing_channels: channel ids that answer ``channel_not_found``.
        messages: ``{channel_id: [message, ...]}`` oldest first, as posted.
        home_views: ``{user_id: view}`` the latest ``views.publish`` per user.
        views: ``{view_id: view}`` every opened/pushed/updated/published view.
        uploaded_files: ``{file_id: {"filename", "content", "channel_id", "title", ...}}``.
        latency: seconds to sleep before each response (default 0).
        method_latency: ``{method: seconds}`` overriding ``latency`` for some methods
            (``"response_url"`` for response_url posts).
        require_token: answer ``not_authed`` to API calls without a token (default True).
        strict_users: if True, DMs to user ids not in :attr:`users` fail like Slack
            (``user_not_found`` / ``channel_not_found``); by default any id gets a DM.
        app_token: the app-level token ``apps.connections.open`` accepts (default
            :data:`APP_TOKEN`); set another to make the bot's token a revoked one.
        socket_mode: the Socket Mode WebSocket endpoint, listening from the first
            ``apps.connections.open``.
    """

    #: Slack gives a trigger_id 3 seconds, and an interaction 3 seconds to be acknowledged.
    trigger_ttl = 3.0
    ack_deadline = 3.0

    def __init__(
        self, rate_limits: dict[str, Any] | None = None, scopes: frozenset[str] | None = None
    ) -> None:
        self._cond = threading.Condition(threading.RLock())
        self.violations: list[Violation] = []
        self.scopes = scopes if scopes is not None else rules.manifest_scopes()
        self._tiers = _TierLimiter(
            _tier_budgets(rate_limits or {}), float((rate_limits or {}).get("scale", 1.0))
        )
        self._used_triggers: set[str] = set()
        #: Bumped on every change the sandbox page shows; ``wait_change`` blocks on it.
        self.revision = 0
        #: ``{user_id: [ephemeral message, ...]}``: what only that user sees, with its channel.
        self.ephemerals: dict[str, list[dict[str, Any]]] = {}
        #: ``{user_id: [view, ...]}``: each user's open modal stack (the last one is on top).
        self.modals: dict[str, list[dict[str, Any]]] = {}
        #: ``{trigger_id: user_id}`` and ``{response_url: context}`` for interactions started
        #: from the sandbox page, so a modal or reply reaches the user who caused it.
        self.trigger_users: dict[str, str] = {}
        self.response_contexts: dict[str, dict[str, Any]] = {}
        #: The sandbox page's connection to the app (``sandbox.workspace.Workspace``), if any.
        self.workspace: Any = None
        self._method = ""
        self._calls: list[Call] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._failures: dict[str, deque[_Failure]] = {}
        self._last_ts_micros = 0
        self._view_seq = 0
        self._file_seq = 0
        self._response_seq = 0
        self._auto_user_seq = 0
        self._rate_limited_count = 0
        self._limiter: _RateLimiter | None = None
        if rate_limits:
            self._limiter = _RateLimiter(
                rate_limits.get("per_channel_per_sec"),
                rate_limits.get("workspace_per_min"),
                float(rate_limits.get("scale", 1.0)),
            )
        self.rate_limits = dict(rate_limits or {})
        self.latency: float = 0.0
        self.method_latency: dict[str, float] = {}
        self.require_token = True
        self.strict_users = False
        self.users: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, list[str]] = {}
        self.channel_names: dict[str, str] = {}
        self.missing_channels: set[str] = set()
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.uploaded_files: dict[str, dict[str, Any]] = {}
        self.app_token = APP_TOKEN
        self.socket_mode = SocketModeServer(APP_ID)
        self.socket_mode.on_late_ack = lambda envelope_id, delay, payload: self.violation(
            "ack",
            f"{describe_request(payload)} acknowledged over Socket Mode after {delay:.1f} s (Slack waits 3 s)",
        )
        self.add_user(BOT_USER_ID, name=BOT_NAME, is_bot=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self, port: int = 0) -> FakeSlack:
        """Bind ``127.0.0.1`` on ``port`` (default: a free one) and serve on a daemon thread."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the ports. Safe to call twice."""
        self.socket_mode.stop()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def save(self, path: Path) -> None:
        """Write what the workspace shows (messages, Home tabs, views) to ``path`` (JSON)."""
        with self._cond:
            data = json.dumps(
                {
                    "messages": self.messages,
                    "home_views": self.home_views,
                    "views": self.views,
                    "last_ts": self._last_ts_micros,
                    "view_seq": self._view_seq,
                },
                default=str,
            )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(data)
        tmp.replace(path)

    def load(self, path: Path) -> None:
        """Read back what :meth:`save` wrote (nothing when the file is missing)."""
        if not path.exists():
            return
        data = json.loads(path.read_text())
        with self._cond:
            self.messages.update(data.get("messages", {}))
            self.home_views.update(data.get("home_views", {}))
            self.views.update(data.get("views", {}))
            self._last_ts_micros = max(self._last_ts_micros, int(data.get("last_ts", 0)))
            self._view_seq = max(self._view_seq, int(data.get("view_seq", 0)))
            self.changed()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server is bound to (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started; call start() or use it as a context manager")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Root URL, ``"http://127.0.0.1:PORT/"``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """Web API base URL for ``WebClient(base_url=...)``: ``"http://127.0.0.1:PORT/api/"``."""
        return self.url + "api/"

    # ------------------------------------------------------------------ recorded calls

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every recorded call, oldest first."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls to ``method`` (e.g. ``"chat.postMessage"``), oldest first."""
        with self._cond:
            return [c for c in self._calls if c.method == method]

    def last(self, method: str) -> Call | None:
        """The most recent call to ``method``, or None."""
        with self._cond:
            for call in reversed(self._calls):
                if call.method == method:
                    return call
        return None

    def clear(self) -> None:
        """Forget recorded calls (state such as messages and users is kept; see :meth:`reset`)."""
        with self._cond:
            self._calls.clear()

    def reset(self) -> None:
        """Forget calls, messages, views, files, pending failures and rate-limit history.

        Users, channel members/names and ``missing_channels`` are kept.
        """
        with self._cond:
            self._calls.clear()
            self._failures.clear()
            self.messages.clear()
            self.home_views.clear()
            self.views.clear()
            self.uploaded_files.clear()
            self.violations.clear()
            self.ephemerals.clear()
            self.modals.clear()
            self._used_triggers.clear()
            self._tiers = _TierLimiter(self._tiers.per_min, 60.0 / self._tiers.window)
            self._rate_limited_count = 0
            if self._limiter is not None:
                self._limiter = _RateLimiter(
                    self.rate_limits.get("per_channel_per_sec"),
                    self.rate_limits.get("workspace_per_min"),
                    float(self.rate_limits.get("scale", 1.0)),
                )

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Block until at least ``count`` calls to ``method`` (matching ``predicate``) arrived.

        Returns all matching calls so far, oldest first. Raises ``AssertionError`` after
        ``timeout`` seconds, listing what was recorded. Use it after driving the bot, which
        may keep working after it has acked the request::

            driver.command("U1", "/tasks")
            post = fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "C1")[0]
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [
                    c for c in self._calls if c.method == method and (predicate is None or predicate(c))
                ]
                if len(matches) >= count:
                    return matches
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = Counter(c.method for c in self._calls)
                    listed = ", ".join(f"{m} x{n}" for m, n in summary.items()) or "nothing"
                    failed = [f"{c.method}: {c.error}" for c in self._calls if not c.ok]
                    what = f"{count} call(s) to {method!r}" + (" matching the predicate" if predicate else "")
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; got {len(matches)}. "
                        f"Recorded: {listed}." + (f" Failed calls: {failed}." if failed else "")
                    )
                self._cond.wait(remaining)

    # ------------------------------------------------------------------ Slack's rules

    def violation(self, method: str, rule: str) -> Violation:
        """Record that a call broke one of Slack's rules (the drivers record late acks here)."""
        found = Violation(method, rule, time.time())
        log.warning("Slack rule broken: %s", found)
        with self._cond:
            self.violations.append(found)
            self.changed()
        return found

    def assert_no_violations(self) -> None:
        """Raise AssertionError with a report of every rule broken so far, if any."""
        with self._cond:
            found = list(self.violations)
        if found:
            lines = "\n".join(f"  - {v}" for v in found)
            raise AssertionError(f"{len(found)} call(s) Slack would refuse:\n{lines}")

    def changed(self) -> None:
        """Tell the sandbox page (waiting in :meth:`wait_change`) that something it shows changed."""
        with self._cond:
            self.revision += 1
            self._cond.notify_all()

    def wait_change(self, revision: int, timeout: float) -> int:
        """Block until :attr:`revision` moves past ``revision`` (or ``timeout``); return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.revision == revision:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self.revision

    def _check_call(self, method: str, params: dict[str, Any]) -> None:
        """Unknown arguments and scopes the app lacks, as Slack would judge them."""
        unknown = rules.unknown_arguments(method, params)
        if unknown:
            self.violation(method, f"unknown argument(s) {', '.join(unknown)}")
        scope = rules.required_scope(method, params)
        if scope and self.scopes is not None and scope not in self.scopes:
            self.violation(method, f"needs the {scope} scope, which manifest.yaml lacks")
            raise _ApiError("missing_scope")

    def _check_trigger(self, method: str, trigger_id: str) -> None:
        """A trigger_id works once, within 3 seconds of the interaction that made it."""
        if trigger_id in self._used_triggers:
            self.violation(method, f"trigger_id {trigger_id} used twice")
            raise _ApiError("exchanged_trigger_id")
        self._used_triggers.add(trigger_id)
        issued = trigger_id.split(".")[0]
        if issued.isdigit() and len(issued) == 13:  # Slack's shape: "<ms since the epoch>.<n>.<hex>"
            age = time.time() - int(issued) / 1000
            if age > self.trigger_ttl:
                self.violation(
                    method, f"trigger_id used {age:.1f} s after the interaction (Slack allows 3 s)"
                )
                raise _ApiError("expired_trigger_id")

    @property
    def rate_limited_count(self) -> int:
        """How many ``chat.postMessage`` calls were rejected by the rate limiter."""
        with self._cond:
            return self._rate_limited_count

    # ------------------------------------------------------------------ set-up helpers

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        tz: str = "America/New_York",
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """Add (or replace) a user in the directory and return its Slack user object.

        ``name`` defaults to the lower-cased id, ``real_name`` to ``name``, ``email`` to
        ``"<name>@example.com"`` (none for bots). ``tz_offset`` is computed for now.
        """
        name = name or user_id.lower()
        real_name = real_name or name
        if email is None and not is_bot:
            email = f"{name}@example.com"
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
        profile: dict[str, Any] = {
            "real_name": real_name,
            "display_name": display_name if display_name is not None else name,
        }
        if email:
            profile["email"] = email
        if is_bot:
            profile["bot_id"] = BOT_ID if user_id == BOT_USER_ID else "B" + user_id[1:]
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "is_bot": is_bot,
            "is_app_user": False,
            "deleted": deleted,
            "profile": profile,
        }
        with self._cond:
            self.users[user_id] = user
        return user

    def add_users(self, n: int, prefix: str = "U", **kwargs: Any) -> list[dict[str, Any]]:
        """Add ``n`` users with generated ids (``"USBX00001"``...) and return them.

        Extra keyword arguments go to :meth:`add_user` (e.g. ``tz="Asia/Tokyo"``).
        """
        created = []
        for _ in range(n):
            with self._cond:
                self._auto_user_seq += 1
                user_id = f"{prefix}SBX{self._auto_user_seq:05d}"
            created.append(self.add_user(user_id, **kwargs))
        return created

    def add_message(
        self, channel: str, text: str = "", user: str = BOT_USER_ID, **fields: Any
    ) -> dict[str, Any]:
        """Seed a message into a channel's history (as if posted now) and return it.

        Extra fields (``blocks=``, ``metadata=``, ``thread_ts=``, ``ts=``...) are stored as given.
        """
        with self._cond:
            message: dict[str, Any] = {"type": "message", "user": user, "text": text, "team": TEAM_ID}
            if user == BOT_USER_ID:
                message["bot_id"] = BOT_ID
            message.update(fields)
            message.setdefault("ts", self.next_ts())
            self.messages.setdefault(channel, []).append(message)
            return message

    def find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stored message with this ``ts`` in ``channel``, or None."""
        with self._cond:
            for message in self.messages.get(channel, []):
                if message.get("ts") == ts:
                    return message
        return None

    def next_ts(self) -> str:
        """A fresh message ts: wall-clock microseconds, strictly increasing across the server."""
        with self._cond:
            self._last_ts_micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
            return format_ts(self._last_ts_micros)

    def new_response_url(self) -> str:
        """A fresh ``response_url`` on this server: ``"http://127.0.0.1:PORT/response/<n>"``.

        POSTs to it are recorded as ``Call(method="response_url", params=<body> + {"_url": url})``.
        """
        with self._cond:
            self._response_seq += 1
            return f"{self.url}response/{self._response_seq}"

    def fail_next(
        self,
        method: str,
        error: str | None = None,
        status: int = 200,
        times: int = 1,
        retry_after: int | None = None,
        applied: bool = False,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail with ``{"ok": false, "error": error}``.

        ``error`` defaults to ``"ratelimited"`` for ``status=429`` and ``"internal_error"``
        otherwise; typical values: ``user_not_found``, ``account_inactive``,
        ``cannot_dm_bot``, ``channel_not_found``. With ``status=429`` and ``retry_after``
        set, a ``Retry-After: <retry_after>`` header is sent (``0`` is allowed to keep tests
        fast). Failed calls are recorded and change no state. ``method`` may also be
        ``"response_url"``. With ``applied=True`` the call does take effect (a message is
        stored) and only its answer is the failure: Slack accepted it, the answer was lost.
        """
        if error is None:
            error = "ratelimited" if status == 429 else "internal_error"
        with self._cond:
            queue = self._failures.setdefault(method, deque())
            for _ in range(times):
                queue.append(_Failure(error, status, retry_after, applied))

    # ------------------------------------------------------------------ request handling

    def _handle(self, kind: str, name: str, params: dict[str, Any], token: str | None) -> _Reply:
        """Answer one request; ``kind`` is "api", "response" or "upload". Thread-safe."""
        arrived = time.time()
        delay = self.method_latency.get(name if kind == "api" else "response_url", self.latency)
        if delay:
            time.sleep(delay)
        if kind == "upload":
            return self._handle_upload(name, params)
        method = name if kind == "api" else "response_url"
        received = time.time()
        headers: dict[str, str] = {}
        status = 200
        with self._cond:
            failure = self._pop_failure(method)
            if failure is not None and failure.applied:
                impl = getattr(self, "_m_" + method.replace(".", "_"), None)
                with contextlib.suppress(_ApiError):
                    if impl is not None:
                        impl(params)
            if failure is not None:
                status = failure.status
                response: dict[str, Any] = {"ok": False, "error": failure.error}
                if status == 429 and failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
            elif kind == "response":
                params = {**params, "_url": f"{self.url}response/{name}"}
                found = blockkit.problems(params.get("blocks"))
                response = {"ok": not found} if not found else {"ok": False, "error": "invalid_blocks"}
                for problem in found:
                    self.violation("response_url", problem)
                if found:
                    status = 400
                else:
                    self._respond(params)
                    self.changed()
            elif self.require_token and not token:
                response = {"ok": False, "error": "not_authed"}
            elif method in APP_LEVEL_METHODS and token != self.app_token:
                # Slack tells a bot token apart from an app-level token it doesn't (or no longer) know.
                error = "invalid_auth" if (token or "").startswith("xapp-") else "not_allowed_token_type"
                response = {"ok": False, "error": error}
            else:
                impl = getattr(self, "_m_" + method.replace(".", "_"), None)
                if rules.known_arguments(method) is None:
                    self.violation(method, "unknown method")
                    response = {"ok": False, "error": "unknown_method"}
                elif impl is None:  # Slack has it: the gap is the fake's, not the app's
                    self.violation(method, "not implemented by the local Slack (Slack has this method)")
                    response = {"ok": False, "error": "not_implemented"}
                else:
                    try:
                        self._check_call(method, params)
                        self._rate_limit(method)
                        self._method = method
                        response = {"ok": True, **impl(params)}
                        self.changed()
                    except _ApiError as exc:
                        response = {"ok": False, "error": exc.error}
                        status = exc.status
                        headers.update(exc.headers)
            self._calls.append(Call(method, params, received, response, status, token, arrived))
            self._cond.notify_all()
        return _Reply(status, json.dumps(response).encode(), headers)

    def _rate_limit(self, method: str) -> None:
        wait = self._tiers.acquire(method, time.monotonic())
        if wait is not None:
            self._rate_limited_count += 1
            wait = math.ceil(wait * 1000) / 1000
            headers = {"Retry-After": str(max(1, math.ceil(wait))), "X-Retry-After-Float": f"{wait:.3f}"}
            raise _ApiError("ratelimited", status=429, headers=headers)

    # ------------------------------------------------------------------ what a user sees

    def add_ephemeral(self, user_id: str, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        """Show ``message`` in ``channel`` to ``user_id`` only ("Only visible to you")."""
        with self._cond:
            message = {**message, "channel": channel, "is_ephemeral": True}
            self.ephemerals.setdefault(user_id, []).append(message)
            self.changed()
            return message

    def new_interaction(
        self, user_id: str, channel: str | None, source: dict[str, Any] | None = None
    ) -> tuple[str, str]:
        """A trigger_id and a response_url for an interaction ``user_id`` starts on the sandbox page;
        modals opened with the one and replies sent to the other reach that user (``source``:
        the message the interaction came from, replaced by ``replace_original``)."""
        with self._cond:
            self._response_seq += 1
            trigger_id = f"{int(time.time() * 1000)}.{self._response_seq}.{hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:16]}"
            url = f"{self.url}response/{self._response_seq}"
            self.trigger_users[trigger_id] = user_id
            self.response_contexts[url] = {"user": user_id, "channel": channel, "source": source}
            return trigger_id, url

    def _respond(self, params: dict[str, Any]) -> None:
        """Apply a response_url POST to what the user sees (only for interactions from the page)."""
        context = self.response_contexts.get(params["_url"])
        if context is None or not context.get("channel"):
            return
        user, channel, source = context["user"], context["channel"], context.get("source")
        if (_truthy(params.get("delete_original")) or _truthy(params.get("replace_original"))) and source:
            if source.get("is_ephemeral"):
                mine = self.ephemerals.get(user, [])
                target = next((m for m in mine if m["ts"] == source["ts"]), None)
                if target is not None and _truthy(params.get("delete_original")):
                    mine.remove(target)
                elif target is not None:
                    target.update(text=params.get("text", ""), blocks=params.get("blocks") or [])
            else:
                target = self.find_message(channel, source["ts"])
                if target is not None and _truthy(params.get("delete_original")):
                    self.messages[channel].remove(target)
                elif target is not None:
                    target.update(text=params.get("text", ""), blocks=params.get("blocks") or [])
            return
        message = self._new_message(params, self.next_ts())
        if params.get("response_type") == "in_channel":
            self.messages.setdefault(channel, []).append(message)
            self.changed()
        else:
            self.add_ephemeral(user, channel, message)

    def _pop_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue.popleft()
        if not queue:
            del self._failures[method]
        return failure

    def _handle_upload(self, file_id: str, params: dict[str, Any]) -> _Reply:
        with self._cond:
            entry = self.uploaded_files.get(file_id)
            if entry is None:
                return _Reply(404, b"file_not_found", content_type="text/plain")
            content = params.get("_raw", b"")
            entry["content"] = content
            entry["uploaded"] = True
        return _Reply(200, f"OK - {len(content)}".encode(), content_type="text/plain")

    # ------------------------------------------------------------------ helpers for methods

    @staticmethod
    def _require(params: dict[str, Any], *names: str, error: str = "invalid_arguments") -> None:
        for name in names:
            if params.get(name) in (None, ""):
                raise _ApiError(error)

    def _resolve_channel(self, channel: Any) -> str:
        """Map a user id to its DM channel; check ``missing_channels``."""
        if not channel or not isinstance(channel, str):
            raise _ApiError("channel_not_found")
        if channel[0] in "UW":
            user = self.users.get(channel)
            if user is None and self.strict_users:
                raise _ApiError("channel_not_found")
            if user is not None and user.get("is_bot"):
                raise _ApiError("cannot_dm_bot")
            channel = dm_channel_id(channel)
        if channel in self.missing_channels:
            raise _ApiError("channel_not_found")
        return channel

    def _check_blocks(self, blocks: Any, limit: int, error: str) -> None:
        """Refuse what Slack would refuse (see sandbox.blockkit), each problem a violation."""
        found = blockkit.problems(blocks, limit)
        for problem in found:
            self.violation(self._method, problem)
        if found:
            raise _ApiError(error)

    @staticmethod
    def _paginate(items: list[Any], params: dict[str, Any], default_limit: int) -> tuple[list[Any], str]:
        """Slice ``items`` by ``cursor``/``limit``; return the page and the next cursor ("" at the end)."""
        try:
            limit = int(params.get("limit") or default_limit)
        except ValueError as exc:
            raise _ApiError("invalid_limit") from exc
        limit = max(1, min(limit, 1000))
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                prefix, _, offset = base64.b64decode(str(cursor)).decode().partition(":")
                start = int(offset)
                if prefix != "offset" or start < 0:
                    raise ValueError(cursor)
            except ValueError as exc:
                raise _ApiError("invalid_cursor") from exc
        page = items[start : start + limit]
        end = start + limit
        next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
        return page, next_cursor

    def _view_object(self, view: Any, view_id: str | None = None, **extra: Any) -> dict[str, Any]:
        if not isinstance(view, dict) or "type" not in view:
            raise _ApiError("invalid_arguments")
        found = blockkit.view_problems(view)
        for problem in found:
            self.violation(self._method, problem)
        if found:
            raise _ApiError("invalid_arguments")
        if view_id is None:
            self._view_seq += 1
            view_id = f"V{self._view_seq:08d}"
        digest = hashlib.sha1(json.dumps(view, sort_keys=True).encode()).hexdigest()[:20]
        obj = {
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            **view,
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{digest}",
            "root_view_id": view_id,
            "previous_view_id": None,
        }
        obj.update(extra)
        self.views[view_id] = obj
        return obj

    def _new_message(self, params: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": params.get("text", ""),
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata", "thread_ts"):
            if params.get(key) not in (None, ""):
                message[key] = params[key]
        return message

    # ------------------------------------------------------------------ Web API methods
    # Each ``_m_<method with dots as underscores>`` takes the params and returns the
    # response fields besides ``ok``, or raises _ApiError. They run under the lock.

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "team_id": TEAM_ID,
            "user": BOT_NAME,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.socket_mode.start().new_url()}

    def channel_post_wait(self, channel: str) -> float:
        """Seconds until a chat.postMessage in `channel` passes the per-channel rate limit (0 when it
        would now, or without limits)."""
        with self._cond:
            return self._limiter.channel_wait(channel, time.monotonic()) if self._limiter else 0.0

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
            raise _ApiError("no_text")
        self._check_blocks(params.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")
        if self._limiter is not None:
            wait = self._limiter.acquire(channel, time.monotonic())
            if wait is not None:
                self._rate_limited_count += 1
                wait = math.ceil(wait * 1000) / 1000
                headers = {"Retry-After": str(max(1, math.ceil(wait))), "X-Retry-After-Float": f"{wait:.3f}"}
                raise _ApiError("ratelimited", status=429, headers=headers)
        message = self._new_message(params, self.next_ts())
        self.messages.setdefault(channel, []).append(message)
        return {"channel": channel, "ts": message["ts"], "message": dict(message)}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self._resolve_channel(params.get("channel"))
        self._require(params, "user", error="user_not_in_channel")
        if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
            raise _ApiError("no_text")
        self._check_blocks(params.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")
        channel = self._resolve_channel(params.get("channel"))
        message = self._new_message(params, self.next_ts())
        self.add_ephemeral(str(params["user"]), channel, message)
        return {"message_ts": message["ts"]}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        message = self.find_message(channel, str(params.get("ts", "")))
        if message is None:
            raise _ApiError("message_not_found")
        self._check_blocks(params.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                message[key] = params[key]
        message["edited"] = {"user": BOT_USER_ID, "ts": self.next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": dict(message),
        }

    def _m_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        message = self.find_message(channel, str(params.get("ts", "")))
        if message is None:
            raise _ApiError("message_not_found")
        self.messages[channel].remove(message)
        return {"channel": channel, "ts": message["ts"]}

    def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("message_ts", ""))
        if self.find_message(channel, ts) is None:
            raise _ApiError("message_not_found")
        return {
            "channel": channel,
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if len(users) != 1:
            raise _ApiError("users_list_not_supplied" if not users else "not_implemented")
        user = self.users.get(users[0])
        if user is None and self.strict_users:
            raise _ApiError("user_not_found")
        if user is not None and user.get("is_bot"):
            raise _ApiError("cannot_dm_bot")
        if user is not None and user.get("deleted"):
            raise _ApiError("user_disabled")
        return {"channel": {"id": dm_channel_id(users[0])}}

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        inclusive = _truthy(params.get("inclusive", ""))
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")

        def in_range(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        top_level = [
            m
            for m in reversed(self.messages.get(channel, []))
            if m.get("thread_ts") in (None, m["ts"]) and in_range(float(m["ts"]))
        ]
        page, next_cursor = self._paginate(top_level, params, default_limit=100)
        with_metadata = _truthy(params.get("include_all_metadata", ""))
        out = []
        for message in page:
            message = dict(message)
            if not with_metadata:
                message.pop("metadata", None)
            out.append(message)
        return {
            "messages": out,
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts", ""))
        if self.find_message(channel, ts) is None:
            raise _ApiError("thread_not_found")
        thread = [m for m in self.messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        page, next_cursor = self._paginate(thread, params, default_limit=1000)
        return {
            "messages": page,
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _m_conversations_members(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        members = list(self.channel_members.get(channel, []))
        page, next_cursor = self._paginate(members, params, default_limit=100)
        return {"members": page, "response_metadata": {"next_cursor": next_cursor}}

    def _m_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        is_im = channel.startswith("D")
        info: dict[str, Any] = {
            "id": channel,
            "name": self.channel_names.get(channel, channel.lower()),
            "is_channel": channel.startswith("C"),
            "is_group": channel.startswith("G"),
            "is_im": is_im,
            "is_private": not channel.startswith("C"),
            "is_archived": False,
            "is_member": True,
        }
        if channel in self.channel_members:
            info["num_members"] = len(self.channel_members[channel])
        return {"channel": info}

    def _m_conversations_join(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        members = self.channel_members.setdefault(channel, [])
        if BOT_USER_ID not in members:
            members.append(BOT_USER_ID)
        return {"channel": {"id": channel, "name": self.channel_names.get(channel, channel.lower())}}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user", "")))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": user}

    def _m_users_lookupByEmail(self, params: dict[str, Any]) -> dict[str, Any]:
        email = str(params.get("email", "")).lower()
        for user in self.users.values():
            if str(user["profile"].get("email", "")).lower() == email and email:
                return {"user": user}
        raise _ApiError("users_not_found")

    def _m_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        page, next_cursor = self._paginate(list(self.users.values()), params, default_limit=200)
        return {
            "members": page,
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _m_views_open(self, params: dict[str, Any], push: bool = False) -> dict[str, Any]:
        trigger_id = str(params.get("trigger_id") or params.get("interactivity_pointer") or "")
        if not trigger_id:
            raise _ApiError("invalid_arguments")
        self._check_trigger(self._method, trigger_id)
        obj = self._view_object(params.get("view"))
        user = self.trigger_users.get(trigger_id)
        if user is not None:
            stack = self.modals.setdefault(user, []) if push else []
            stack.append(obj)
            self.modals[user] = stack
        return {"view": obj}

    def _m_views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._m_views_open(params, push=True)

    def _m_views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = params.get("view_id") or None
        external_id = params.get("external_id")
        if view_id is None and external_id:
            view_id = next(
                (v["id"] for v in self.views.values() if v.get("external_id") == external_id), None
            )
            if view_id is None:
                raise _ApiError("not_found")
        if view_id is None:
            raise _ApiError("invalid_arguments")
        previous = self.views.get(view_id, {})
        obj = self._view_object(
            params.get("view"), view_id, root_view_id=previous.get("root_view_id", view_id)
        )
        for user_id, home in self.home_views.items():
            if home["id"] == view_id:
                self.home_views[user_id] = obj
        for stack in self.modals.values():
            for i, view in enumerate(stack):
                if view["id"] == view_id:
                    stack[i] = obj
        return {"view": obj}

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = str(params.get("user_id", ""))
        if not user_id:
            raise _ApiError("invalid_arguments")
        if self.strict_users and user_id not in self.users:
            raise _ApiError("user_not_found")
        view = params.get("view")
        if isinstance(view, dict) and view.get("type") != "home":
            raise _ApiError("invalid_arguments")
        previous = self.home_views.get(user_id)
        obj = self._view_object(view, previous["id"] if previous else None)
        self.home_views[user_id] = obj
        return {"view": obj}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        self._require(params, "filename", "length")
        try:
            length = int(params["length"])
        except ValueError as exc:
            raise _ApiError("invalid_arguments") from exc
        self._file_seq += 1
        file_id = f"F{self._file_seq:08d}"
        self.uploaded_files[file_id] = {
            "filename": params["filename"],
            "length": length,
            "content": b"",
            "uploaded": False,
            "completed": False,
            "channel_id": None,
            "title": None,
        }
        return {"upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            raise _ApiError("invalid_arguments")
        channel_id = params.get("channel_id") or None
        if channel_id is None and params.get("channels"):
            channel_id = str(params["channels"]).split(",")[0]
        if channel_id is not None:
            channel_id = self._resolve_channel(channel_id)
        out = []
        for item in files:
            entry = self.uploaded_files.get(str(item.get("id")))
            if entry is None or not entry["uploaded"]:
                raise _ApiError("file_not_found")
            entry.update(
                completed=True,
                channel_id=channel_id,
                title=item.get("title") or entry["filename"],
                initial_comment=params.get("initial_comment"),
                thread_ts=params.get("thread_ts"),
            )
            out.append(
                {
                    "id": item["id"],
                    "name": entry["filename"],
                    "title": entry["title"],
                    "size": len(entry["content"]),
                    "channels": [channel_id] if channel_id else [],
                }
            )
        return {"files": out}

    def _m_reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        self._require(params, "name")
        message = self.find_message(channel, str(params.get("timestamp", "")))
        if message is not None:
            reactions = message.setdefault("reactions", [])
            entry = next((r for r in reactions if r["name"] == params["name"]), None)
            if entry is None:
                reactions.append({"name": params["name"], "users": [BOT_USER_ID], "count": 1})
            elif BOT_USER_ID in entry["users"]:
                raise _ApiError("already_reacted")
            else:
                entry["users"].append(BOT_USER_ID)
                entry["count"] += 1
        return {}


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """Parse a request body of any content type slack_sdk or Bolt sends."""
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return {}
    if ctype == "application/json":
        data = json.loads(body.decode("utf-8"))
        return data if isinstance(data, dict) else {"_json": data}
    if ctype == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            params[str(name)] = payload if part.get_filename() else payload.decode("utf-8")
        return params
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/api/<method>``, ``/upload/<file_id>`` and ``/response/<n>`` to the FakeSlack."""

    server_version = "FakeSlack/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        segments = [s for s in parts.path.split("/") if s]
        if not segments or segments[0] in {"static", "sandbox"}:
            self._page(fake, segments, parts.query, body)
            return
        if len(segments) != 2 or segments[0] not in {"api", "upload", "response"}:
            self._send(_Reply(404, b'{"ok": false, "error": "not_found"}'))
            return
        kind, name = segments
        try:
            if kind == "upload":
                params: dict[str, Any] = {"_raw": body}
            else:
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                params.update(_parse_body(self.headers.get("Content-Type", ""), body))
                params = decode_json_params(params)
        except (ValueError, UnicodeDecodeError):
            self._send(_Reply(400, b'{"ok": false, "error": "invalid_form_data"}'))
            return
        token = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip() or None
        if kind == "api" and "token" in params:
            param_token = params.pop("token")
            token = token or (str(param_token) or None)
        self._send(fake._handle(kind, name, params, token))

    def _page(self, fake: FakeSlack, segments: list[str], query: str, body: bytes) -> None:
        """The sandbox page: ``/`` and ``/static/<file>`` from ``sandbox/web``, its state, its
        server-sent events and what the person does there (see ``sandbox.workspace``)."""
        if not segments:
            segments = ["static", "index.html"]
        if segments[0] == "static" and len(segments) == 2 and segments[1] in _WEB_FILES:
            path = WEB_DIR / segments[1]
            ctype = _WEB_FILES[segments[1]]
            self._send(_Reply(200, path.read_bytes(), {"Cache-Control": "no-store"}, ctype))
            return
        workspace = fake.workspace
        if workspace is None or len(segments) != 2 or segments[0] != "sandbox":
            self._send(_Reply(404, b'{"ok": false, "error": "not_found"}'))
            return
        verb = segments[1]
        if verb == "events":
            self._events(fake)
            return
        try:
            if verb == "state":
                answer = workspace.state(dict(parse_qsl(query)).get("user", ""))
            else:
                answer = workspace.handle(verb, json.loads(body or b"{}"))
        except (OSError, ValueError, KeyError) as e:  # the bot is restarting, a malformed request…
            log.warning("the sandbox page's %s failed: %s", verb, e)
            answer = {"ok": False, "error": str(e)}
        self._send(_Reply(200, json.dumps(answer, default=str).encode()))

    def _events(self, fake: FakeSlack) -> None:
        """Server-sent events: the new revision each time something on the page changed."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        revision = -1
        try:
            while fake._server is not None:
                revision = fake.wait_change(revision, 15.0)
                self.wfile.write(f"data: {revision}\n\n".encode())
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)
