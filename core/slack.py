"""Our side of the Web API door: one WebClient, pointed at SLACK_API_URL, that waits out 429s
(Retry-After), retries connection errors and 5xx, and a gateway whose calls never crash the caller.

Calls whose failure the caller must act on (the announcement outbox, e-mail lookups) use `call`,
which raises `SlackFailure` with Slack's error code. Fire-and-forget notifications (`post`, `dm`,
`update`, …) log a failure with its context and return None: work is never dropped silently.

Two rules keep a slow or refusing Slack from hurting the people using the bot:

* **No waiting on a request thread.** A thread answering someone (`answering()`: listeners,
  clicks, events) never sleeps out a 429's Retry-After: the call fails at once, and a notification
  is handed to the gateway's own retry thread (`later`), which waits and sends it then.
* **A post that may have landed is not sent blindly again.** chat.postMessage and response_url
  posts are never retried by the client on a 5xx or a timeout. `post_once` marks each message with
  a key in its metadata and, when the answer is unclear, looks for that key in the channel's
  latest history before sending again, so a retry never posts a card twice.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import select
import ssl
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from core import metrics, turns
from core.people import Profile

log = logging.getLogger("crewcall.slack")

PERMANENT_USER_ERRORS = frozenset({"user_not_found", "users_not_found", "account_inactive", "cannot_dm_bot"})


# Methods that create something each time they are called: a 5xx or a timeout may hide a success.
NOT_IDEMPOTENT = ("chat.postMessage",)
IN_DOUBT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
POST_KEY_EVENT = "crewcall_post"

_thread = threading.local()


@contextmanager
def answering() -> Iterator[None]:
    """This thread is answering a request: Web API calls made in it never wait out a rate limit."""
    before = getattr(_thread, "answering", False)
    _thread.answering = True
    try:
        yield
    finally:
        _thread.answering = before


def on_request_thread() -> bool:
    return bool(getattr(_thread, "answering", False))


@contextmanager
def closing_before_slack(close: Callable[[], None]) -> Iterator[None]:
    """While it lasts, this thread's next long wait outside the process (a Web API call, a report's
    worker: `before_waiting`) first runs `close` (a request is acknowledged, and its open read
    transaction ends, before the thread waits)."""
    before = getattr(_thread, "close_before_slack", None)
    _thread.close_before_slack = close
    try:
        yield
    finally:
        _thread.close_before_slack = before


def before_waiting() -> None:
    """This thread is about to wait outside the process, on Slack or on a report's worker: no other
    request waits for it (core.turns), and a request's `closing_before_slack` runs first."""
    turns.give_up()
    close = getattr(_thread, "close_before_slack", None)
    if close is not None:
        _thread.close_before_slack = None
        close()


class _RateLimitRetry(RateLimitErrorRetryHandler):
    """Waits out Retry-After, except on a thread answering a request (it has people waiting)."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if on_request_thread():
            return False
        return bool(super()._can_retry(state=state, request=request, response=response, error=error))


class _IdempotentOnly(ServerErrorRetryHandler):
    """Retries 5xx only for calls that are safe to repeat."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if str(getattr(request, "url", "")).endswith(NOT_IDEMPOTENT):
            return False
        return bool(super()._can_retry(state=state, request=request, response=response, error=error))


class _ConnectionIdempotentOnly(ConnectionErrorRetryHandler):
    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if str(getattr(request, "url", "")).endswith(NOT_IDEMPOTENT):
            return False
        return bool(super()._can_retry(state=state, request=request, response=response, error=error))


class _Counted(RetryHandler):
    """Never retries: it is asked about every HTTP answer (and failure) first, and counts it for
    /metrics by Web API method."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=0)

    def can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        method = str(getattr(request, "url", "")).rsplit("/", 1)[-1].split("?", 1)[0]
        metrics.count_slack_call(method, getattr(response, "status_code", None))
        return False


def retry_handlers() -> list[Any]:
    return [
        _Counted(),
        _ConnectionIdempotentOnly(max_retry_count=2),
        _RateLimitRetry(max_retry_count=5),
        _IdempotentOnly(max_retry_count=2),
    ]


class ResponseUrls:
    """POSTs to response_urls over kept-alive connections, pooled per host (every reply goes to the
    same few hosts: opening a connection, and a TLS session, per reply cost more than the reply).

    A response_url post creates a message, so it is sent once: a 429 (refused, nothing posted) is
    retried after its Retry-After, up to 3 times, except on a thread answering a request, where the
    429 is returned at once (`respond` hands it to the retry thread). A 5xx or a timeout is returned
    or raised, never retried. The one exception is a kept-alive connection the server closed while
    idle (the failure comes before any answer): that is the server's timing, not the request's
    failure, and it is sent once more on a new connection. A proxy set in the environment
    (HTTPS_PROXY, NO_PROXY, as urllib reads them, at the first post to a host) is used as a CONNECT
    tunnel."""

    IDLE = 30.0  # seconds a connection may wait in the pool: below common servers' keep-alive
    PER_HOST = 64  # idle connections kept per host: one per listener thread (server/app.py)
    RATE_LIMIT_RETRIES = 3

    def __init__(self, timeout: float = 15) -> None:
        self.timeout = timeout
        self._tls = ssl.create_default_context()
        self._idle: dict[tuple[str, str, int], list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        # (scheme, host, port) -> the proxy to tunnel through, None to connect straight
        self._routes: dict[tuple[str, str, int], tuple[str, int] | None] = {}

    def post(self, url: str, payload: dict[str, Any]) -> tuple[int, dict[str, str]]:
        """The answer's status and (lower-cased) headers; OSError (TimeoutError included) when there
        is none."""
        parts = urlsplit(url)
        body = json.dumps(payload).encode("utf-8")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json;charset=utf-8"}
        for attempt in range(self.RATE_LIMIT_RETRIES + 1):
            status, answer = self._send(parts.scheme, parts.hostname or "", parts.port, path, body, headers)
            metrics.count_slack_call("response_url", status)
            if status != 429 or on_request_thread() or attempt == self.RATE_LIMIT_RETRIES:
                return status, answer
            time.sleep(retry_after(answer))
        raise AssertionError("unreachable")

    def _send(
        self, scheme: str, host: str, port: int | None, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str]]:
        key = (scheme, host, port or (443 if scheme == "https" else 80))
        for fresh in (False, True):
            conn, reused = self._checkout(key, fresh)
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, ssl.SSLEOFError):
                conn.close()
                if reused:
                    continue  # the server had closed it while it waited: nothing was answered
                metrics.count_slack_call("response_url", None)
                raise
            except BaseException:
                conn.close()
                metrics.count_slack_call("response_url", None)
                raise
            answer = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                conn.close()
            else:
                self._checkin(key, conn)
            return response.status, answer
        raise AssertionError("unreachable")

    def _checkout(self, key: tuple[str, str, int], fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        while not fresh:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    break
                since, conn = idle.pop()
            if now - since < self.IDLE and not _closed_by_peer(conn):
                return conn, True
            conn.close()
        return self._connect(*key), False

    def _checkin(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.PER_HOST:
                idle.append((time.monotonic(), conn))
                return
        conn.close()

    def _connect(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        if key not in self._routes:
            # Once per host: reading the proxy settings scans the whole environment.
            proxy = None if urllib.request.proxy_bypass(host) else urllib.request.getproxies().get(scheme)
            target = urlsplit(proxy) if proxy else None
            self._routes[key] = (target.hostname or "", target.port or 80) if target else None
        route = self._routes[key]
        connect_to = route or (host, port)
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(*connect_to, timeout=self.timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(*connect_to, timeout=self.timeout)
        if route:
            conn.set_tunnel(host, port)
        return conn


def retry_after(headers: dict[str, str]) -> float:
    """Seconds to wait from a 429's Retry-After (lower-cased headers); 1 when it says nothing usable."""
    try:
        return max(0.0, float(headers.get("retry-after") or 1))
    except ValueError:
        return 1.0


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the server (or is broken)."""
    if conn.sock is None:
        return True
    try:
        return bool(select.select([conn.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class Later:
    """The gateway's retry thread: runs work after a delay (a rate limit's Retry-After), off the
    threads that answer people. Started on first use; it ends when it has had nothing to do for a while."""

    IDLE = 30.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def __call__(self, delay: float, work: Callable[[], object]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), work))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slack-later", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                idle_until = time.monotonic() + self.IDLE
                while not self._heap or self._heap[0][0] > time.monotonic():
                    now = time.monotonic()
                    if not self._heap and now >= idle_until:
                        self._thread = None
                        return
                    self._cond.wait(timeout=(self._heap[0][0] if self._heap else idle_until) - now)
                _, _, work = heapq.heappop(self._heap)
            try:
                work()
            except Exception:
                log.exception("deferred Slack work failed")


def make_client(token: str, base_url: str) -> WebClient:
    return WebClient(token=token, base_url=base_url, timeout=15, retry_handlers=retry_handlers())


class SlackFailure(Exception):
    """A Web API call failed after its retries; `error` is Slack's code (or the transport error)."""

    def __init__(self, method: str, error: str, retry_after: float | None = None) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.error in PERMANENT_USER_ERRORS

    @property
    def rate_limited(self) -> bool:
        return self.error in ("ratelimited", "429")

    @property
    def in_doubt(self) -> bool:
        """No clear answer: the call may or may not have taken effect."""
        return (
            self.error in IN_DOUBT_ERRORS
            or self.error.startswith("transport")
            or (self.error.isdigit() and int(self.error) >= 500)
        )


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class SlackGateway:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._dm_channels: dict[str, str] = {}
        self._lock = threading.Lock()
        self.later = Later()
        self.response_urls = ResponseUrls()

    # ---- calls whose failure the caller handles ------------------------------------------------

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call a Web API method; raise SlackFailure with Slack's error code if it fails."""
        before_waiting()
        try:
            # The typed methods know each method's encoding (form, query or JSON).
            response = getattr(self.client, method.replace(".", "_"))(**_drop_none(kwargs))
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as e:
            data = e.response.data if isinstance(e.response.data, dict) else {}
            retry_after = e.response.headers.get("Retry-After") if e.response.headers else None
            raise SlackFailure(
                method,
                str(data.get("error") or e.response.status_code),
                float(retry_after) if retry_after else None,
            ) from None
        except (SlackClientError, OSError) as e:
            raise SlackFailure(method, f"transport: {type(e).__name__}") from None

    def open_dm(self, user_id: str) -> str:
        with self._lock:
            cached = self._dm_channels.get(user_id)
        if cached:
            return cached
        channel = self.call("conversations.open", users=user_id)["channel"]["id"]
        with self._lock:
            self._dm_channels[user_id] = channel
        return channel

    def profile(self, user_id: str) -> Profile | None:
        try:
            user = self.call("users.info", user=user_id)["user"]
        except SlackFailure as e:
            log.warning("users.info failed for %s: %s", user_id, e.error)
            return None
        return profile_from_user(user)

    def lookup_by_email(self, email: str) -> Profile | None:
        """The workspace member with this address, None when there is none; SlackFailure otherwise."""
        try:
            return profile_from_user(self.call("users.lookupByEmail", email=email)["user"])
        except SlackFailure as e:
            if e.error == "users_not_found":
                return None
            raise

    # ---- notifications: logged, never raised ---------------------------------------------------

    def post_once(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Posted:
        """chat.postMessage at most once: a message carries a key (in its metadata, unless the caller
        brings its own), and an unclear answer (5xx, timeout) is followed by a look in the channel's
        latest messages for that key before sending it again. Raises SlackFailure."""
        key = uuid.uuid4().hex
        marked = metadata or {"event_type": POST_KEY_EVENT, "event_payload": {"key": key}}
        for attempt in (1, 2):
            try:
                data = self.call(
                    "chat.postMessage",
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=thread_ts,
                    metadata=marked,
                    unfurl_links=False,
                )
                return Posted(channel=data.get("channel", channel), ts=data["ts"])
            except SlackFailure as e:
                if not e.in_doubt or metadata is not None or attempt == 2:
                    raise
                found = self._find_key(channel, key, thread_ts)
                if found is not None:
                    log.info(
                        "a post whose answer was lost (%s) had reached %s; not sent again", e.error, channel
                    )
                    return found
        raise AssertionError("unreachable")

    def find_post(self, channel: str, key: str) -> Posted | None:
        """The message `post_once` sent to `channel` with this key in its metadata, if it is among the
        latest; raises SlackFailure when it can't be told."""
        return self._find_key(channel, key, None)

    def _find_key(self, channel: str, key: str, thread_ts: str | None) -> Posted | None:
        try:
            return self.find_by_metadata(channel, {"key": key}, thread_ts=thread_ts)
        except SlackFailure as e:
            # Can't tell: don't risk a second copy.
            raise SlackFailure("chat.postMessage", f"unverified ({e.error})") from None

    def find_by_metadata(
        self,
        channel: str,
        payload: dict[str, Any],
        event_type: str | None = None,
        thread_ts: str | None = None,
        limit: int = 50,
    ) -> Posted | None:
        """The latest `limit` messages of `channel` (or of a thread) searched for one whose metadata
        carries `payload` (and is of `event_type`, when given): how a post in doubt is told sent or
        not. Raises SlackFailure when Slack can't be asked."""
        method, where = (
            ("conversations.replies", {"ts": thread_ts}) if thread_ts else ("conversations.history", {})
        )
        data = self.call(method, channel=channel, limit=limit, include_all_metadata=True, **where)
        for message in data.get("messages") or []:
            metadata = message.get("metadata") or {}
            carried = metadata.get("event_payload") or {}
            if (event_type is None or metadata.get("event_type") == event_type) and all(
                carried.get(k) == v for k, v in payload.items()
            ):
                return Posted(channel=data.get("channel") or channel, ts=str(message.get("ts")))
        return None

    def _defer(self, failure: SlackFailure, retry: Callable[[], Any]) -> bool:
        """A rate limit met on a request thread: send it from the retry thread after Retry-After."""
        if not (failure.rate_limited and on_request_thread()):
            return False
        self.later(failure.retry_after or 1.0, retry)
        return True

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        what: str = "message",
    ) -> Posted | None:
        try:
            return self.post_once(channel, text, blocks, thread_ts, metadata)
        except SlackFailure as e:
            if self._defer(e, lambda: self.post(channel, text, blocks, thread_ts, metadata, what)):
                log.info("%s to %s rate limited; it goes out in %ss", what, channel, e.retry_after or 1)
                return None
            log.error("could not post %s to %s: %s", what, channel, e.error)
            return None

    def dm(
        self, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None, what: str = "DM"
    ) -> Posted | None:
        try:
            channel = self.open_dm(user_id)
        except SlackFailure as e:
            log.error("could not open a DM with %s for %s: %s", user_id, what, e.error)
            return None
        return self.post(channel, text, blocks, what=f"{what} to {user_id}")

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], what: str = "card"
    ) -> bool:
        try:
            self.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
            return True
        except SlackFailure as e:
            if self._defer(e, lambda: self.update(channel, ts, text, blocks, what)):
                return True
            log.error("could not update %s %s/%s: %s", what, channel, ts, e.error)
            return False

    def ephemeral(
        self, channel: str, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> bool:
        try:
            self.call("chat.postEphemeral", channel=channel, user=user_id, text=text, blocks=blocks)
            return True
        except SlackFailure as e:
            if self._defer(e, lambda: self.ephemeral(channel, user_id, text, blocks)):
                return True
            log.warning("could not post ephemeral to %s in %s: %s", user_id, channel, e.error)
            return False

    def respond(
        self,
        response_url: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        replace_original: bool = False,
    ) -> bool:
        """An ephemeral reply through a request's response_url; with `replace_original`, it replaces
        the message whose button was clicked (e.g. to take away buttons that were used)."""
        before_waiting()
        payload = _drop_none(
            {
                "text": text,
                "blocks": blocks,
                "response_type": "ephemeral",
                "replace_original": replace_original,
                "unfurl_links": False,
            }
        )
        try:
            status, headers = self.response_urls.post(response_url, payload)
        except (OSError, http.client.HTTPException) as e:
            if isinstance(e, TimeoutError):
                # Slack may have it: not repeated (nor said again another way).
                log.warning("response_url timed out; the reply may have been delivered, not repeated")
                return True
            log.warning("could not reply through response_url: %s", type(e).__name__)
            return False
        if status == 429 and on_request_thread():
            self.later(
                retry_after(headers), lambda: self.respond(response_url, text, blocks, replace_original)
            )
            return True
        if status >= 500:
            # In doubt: it may have been posted. Not repeated, nor said again another way.
            log.warning("response_url answered %s; the reply may have been delivered, not repeated", status)
            return True
        if status >= 300:
            log.warning("response_url answered %s", status)
            return False
        return True

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> bool:
        try:
            self.call("views.open", trigger_id=trigger_id, view=view)
            return True
        except SlackFailure as e:
            log.warning("could not open modal %s: %s", view.get("callback_id"), e.error)
            return False

    def publish_home(self, user_id: str, view: dict[str, Any]) -> bool:
        try:
            self.call("views.publish", user_id=user_id, view=view)
            return True
        except SlackFailure as e:
            if self._defer(e, lambda: self.publish_home(user_id, view)):
                return True
            log.warning("could not publish Home for %s: %s", user_id, e.error)
            return False

    def upload(
        self, channel: str, filename: str, content: bytes | IO[bytes], title: str, comment: str = ""
    ) -> bool:
        """Upload bytes, or an open binary file (read from where it stands)."""
        data = {"content": content} if isinstance(content, bytes) else {"file": content}
        before_waiting()
        try:
            self.client.files_upload_v2(
                channel=channel, filename=filename, title=title, initial_comment=comment, **data
            )
            return True
        except (SlackApiError, SlackClientError, OSError) as e:
            log.error("could not upload %s to %s: %s", filename, channel, type(e).__name__)
            return False


def profile_from_user(user: dict[str, Any]) -> Profile:
    profile = user.get("profile") or {}
    return Profile(
        user_id=user["id"],
        name=user.get("name") or "",
        real_name=user.get("real_name") or profile.get("real_name") or "",
        tz=user.get("tz") or "UTC",
        email=profile.get("email"),
        is_bot=bool(user.get("is_bot")),
        deleted=bool(user.get("deleted")),
    )


def _drop_none(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}
