"""HTTP mode: a WSGI app served by waitress (multi-threaded, production-grade).

POST /slack/events   everything Slack sends (commands, interactions, events)
GET  /healthz        200 {"ok": true, "database": true, "scheduler": true}, 503 when either is down
GET  /metrics        Prometheus text format (server/observe.py), no Slack signature; 404 here when
                     METRICS_PORT serves it

Button clicks (`block_actions`) are acknowledged at the door: once the request's signature checks
out, the empty 200 goes back at once and a worker thread hands the click to its button's listener
(by action_id, handlers.kit.interactions.dispatch_click; Bolt's dispatch for any other). Slack ignores
the body of a block_actions acknowledgement (answers go through response_url), so nothing is lost,
and a storm of clicks on one card is acknowledged at the pace of the HTTP server rather than queueing
behind Bolt's listener matching and its listener threads (bench/claim_storm.py measures it).
Slash commands of ours go straight to their listener too (CrewApp.answer_command), their answer
riding in the acknowledgement when it is ready in time (handlers.kit.ack). Modal submissions,
events and anything else go through Bolt.

The door refuses before it reads: a body over HTTP_MAX_BODY_BYTES gets 413 from its Content-Length
(waitress answers it before reading the body), a request without a valid signature (headers missing,
not a number, older than 5 minutes, or forged) 401, without a traceback. Every connection must send
its whole request within HTTP_REQUEST_TIMEOUT seconds or is closed, and when HTTP_CONNECTION_LIMIT
connections are open the ones that have been slowest to send their request are closed to make room,
so idle or trickling clients cannot lock Slack out (tests/test_door.py holds 1,000+ of them open).

Acknowledgements go first: Python runs one thread at a time, so while a storm of requests is on, the
clicks' decisions wait until it is over, for at most CLICK_HOLD seconds (0.2 by default). A storm is
any request being answered now, or STORM_ARRIVALS requests within STORM_WINDOW that each arrived while
others were being answered or waiting for a thread; a lone click, or one from a client that sends a
request only once the last one is answered, is decided at once. The numbers set the cap (bench/
click_storm.py, BENCHMARKS.md: 300 clicks on one card, 1 and 3 processes, 2 cores). Without the
hold-back a storm's ack p99 goes over the 250 ms target (351-827 ms, 2026-12-04). Holding until the
storm is over delays every answer by the window's 100 ms of quiet: with a 2 s cap the answer p99 on
one PostgreSQL process was 962-1,060 ms in the same rounds as 911-959 ms with 0.2 s, whose ack p99
stayed at 99-180 ms (0.15 s let it reach 293 ms).
"""

from __future__ import annotations

import collections
import io
import json
import logging
import queue
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from handlers.kit.app import ACKED_AT_DOOR, LISTENERS_PER_HTTP_THREAD, CrewApp
from handlers.kit.interactions import dispatch_click
from server import observe

log = logging.getLogger("crewcall.http")


EVENTS_PATH = "/slack/events"
_CLICK_KEY = "crewcall.click"  # environ: the click this request brought, queued once it has left
POLL = 0.01  # how often a held-back decision looks at the door again
STORM_WINDOW, STORM_ARRIVALS = 0.1, 3  # 3 requests within 100 ms, each while another was inside


class Door:
    """How busy the door is: requests being answered now, and the recent arrivals that came while
    others were under way (a storm's; one client's requests one after another are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._crowded: collections.deque[float] = collections.deque()
        # Requests the HTTP server has received and not finished, this one included (set by
        # HttpServer): a storm's requests mostly wait for a thread, not in here.
        self.received: Callable[[], int] = lambda: 1

    def enter(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._inside or self.received() > 1:
                self._crowded.append(now)
            self._inside += 1

    def leave(self) -> None:
        with self._lock:
            self._inside -= 1

    def busy(self) -> bool:
        """Answering a request, or a storm's requests are still arriving (a loaded machine leaves
        gaps between them, with nobody inside)."""
        now = time.monotonic()
        with self._lock:
            while self._crowded and self._crowded[0] < now - STORM_WINDOW:
                self._crowded.popleft()
            return bool(self._inside) or len(self._crowded) >= STORM_ARRIVALS

    def wait_quiet(self, hold: float) -> None:
        """Return once the door is not busy, or after `hold` seconds."""
        deadline = time.monotonic() + hold
        while self.busy() and time.monotonic() < deadline:
            time.sleep(POLL)


class Clicks:
    """Clicks acknowledged at the door, handed on by worker threads once the door is quiet.
    One thread waits for the quiet (so waiting costs nothing while requests are being answered),
    then passes on everything queued so far."""

    def __init__(
        self, dispatch: Callable[[str, dict[str, str]], None], door: Door, threads: int, hold: float
    ) -> None:
        self._dispatch = dispatch
        self._door = door
        self._hold = hold
        self.threads = threads
        self._queue: queue.SimpleQueue[tuple[str, dict[str, str]] | None] = queue.SimpleQueue()
        self._workers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="click")
        self._feeder = threading.Thread(target=self._feed, name="click-feeder", daemon=True)
        self._feeder.start()

    def put(self, body: str, headers: dict[str, str]) -> None:
        self._queue.put((body, headers))

    def _feed(self) -> None:
        while True:
            batch = [self._queue.get()]
            if batch[0] is not None and self._hold:
                self._door.wait_quiet(self._hold)
            while not self._queue.empty():  # what queued up meanwhile goes too (one reader: safe)
                batch.append(self._queue.get())
            for click in batch:
                if click is None:  # close(): everything before it is dispatched
                    return
                self._workers.submit(self._dispatch, *click)

    def close(self) -> None:
        """Dispatch every click already acknowledged, then stop."""
        self._queue.put(None)
        self._feeder.join()
        self._workers.shutdown(wait=True)


class WsgiApp:
    def __init__(self, app: CrewApp, click_threads: int) -> None:
        self.app = app
        self.slack = SlackRequestHandler(app, path=EVENTS_PATH)
        self.verifier = SignatureVerifier(app.services.config.slack_signing_secret.get_secret_value())
        self.door = Door()
        self.clicks = Clicks(self._dispatch_click, self.door, click_threads, app.services.config.click_hold)
        self.max_body = app.services.config.http_max_body_bytes
        # With METRICS_PORT, /metrics is served there only: the port Slack reaches need not show it.
        self.metrics = observe.MetricsRoute(app) if app.services.config.metrics_port is None else None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.door.enter()
        started = time.perf_counter()
        try:
            return self._answer(environ, start_response, time.monotonic())
        finally:
            self.door.leave()
            click = environ.get(_CLICK_KEY)
            if click is not None:  # after leaving: a lone click finds the door idle and goes at once
                self.clicks.put(*click)
            observe.observe(environ, time.perf_counter() - started)

    def _answer(self, environ: dict[str, Any], start_response: Any, received_at: float) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return observe.health_answer(self.app, start_response)
        if environ.get("PATH_INFO") == observe.PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if self.metrics is not None:
                return self.metrics(environ, start_response)
            return _refuse(start_response, "404 Not Found")
        if environ.get("PATH_INFO") == EVENTS_PATH and environ.get("REQUEST_METHOD") == "POST":
            environ[observe.KIND] = observe.REFUSED  # until the request is read and its signature checked
            length = _content_length(environ)
            if length is None:
                return _refuse(start_response, "411 Length Required")
            if length > self.max_body:
                return _refuse(start_response, "413 Payload Too Large")
            headers = {"content-type": environ.get("CONTENT_TYPE", "")}
            headers.update(
                {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k[:5] == "HTTP_"}
            )
            if not _numeric(headers.get("x-slack-request-timestamp")) or not headers.get("x-slack-signature"):
                return _refuse(start_response, "401 Unauthorized")
            raw = environ["wsgi.input"].read(length)
            body = raw.decode("utf-8", errors="replace")
            if not self._signed(body, headers):
                return _refuse(start_response, "401 Unauthorized")
            click = is_click(body)
            environ[observe.KIND] = observe.request_kind(body, click)
            if click:
                environ[_CLICK_KEY] = (body, headers)
                start_response("200 OK", [("Content-Length", "0")])
                return [b""]
            if not body.startswith(("{", "payload=")):  # a form: a slash command, Slack's ssl_check
                answer = self.app.answer_command(
                    dict(urllib.parse.parse_qsl(body, keep_blank_values=True)), received_at
                )
                if answer is not None:
                    response = WsgiHttpResponse(answer.status, answer.headers, answer.body)
                    start_response(response.status, response.get_headers())
                    return response.get_body()
            environ["wsgi.input"] = io.BytesIO(raw)
        return self.slack(environ, start_response)

    def _signed(self, body: str, headers: dict[str, str]) -> bool:
        try:
            return self.verifier.is_valid(
                body, headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
            )
        except (ValueError, TypeError):  # a timestamp no integer can be made of
            return False

    def _dispatch_click(self, body: str, headers: dict[str, str]) -> None:
        # Straight to our button's listener (authorize → run, on this thread); a click no button of
        # ours takes goes Bolt's path, whose own acknowledgement has nowhere to go and is dropped.
        try:
            if dispatch_click(self.app, _payload(body)):
                return
            bolt_headers: dict[str, str | Sequence[str]] = dict(headers)
            self.app.dispatch(BoltRequest(body=body, headers=bolt_headers, context={ACKED_AT_DOOR: True}))
        except Exception:
            log.exception("a click acknowledged at the door failed in dispatch")

    def close(self) -> None:
        self.clicks.close()


# `"type":"block_actions"` as it appears, form-encoded, in a click's `payload=`: an unescaped JSON
# key, which no other kind of payload contains (text typed by users is escaped: `\"type\"`).
# Matching the encoded body spares decoding the whole payload on the acknowledgement's path; a
# body it doesn't recognise simply takes Bolt's own path.
_CLICK = re.compile(r"%22type%22(?:%20|\+)*%3A(?:%20|\+)*%22block_actions%22", re.IGNORECASE)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = str(environ.get("CONTENT_LENGTH") or "0").strip()
    return int(raw) if raw.isdigit() else None


def _numeric(value: str | None) -> bool:
    return bool(value) and str(value).isdigit() and len(str(value)) <= 12


def _refuse(start_response: Any, status: str) -> list[bytes]:
    """An answer to a request the door won't take (not signed, too large): no body."""
    start_response(status, [("Content-Length", "0")])
    return [b""]


def _payload(body: str) -> dict[str, Any]:
    """A form-encoded interaction's payload, as Bolt reads it; {} when it is no JSON object."""
    try:
        payload = json.loads(urllib.parse.parse_qs(body)["payload"][0])
    except (KeyError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def is_click(body: str) -> bool:
    """A block_actions interaction (a button, a select): Slack reads nothing from its ack's body."""
    return body.startswith("payload=") and _CLICK.search(body) is not None


class DoorChannel(HTTPChannel):
    """A connection that remembers when the request it is receiving began."""

    request_began: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.time()
        answered = super().received(data)
        if self.request is None:  # every request in the data was completed
            self.request_began = None
        return bool(answered)


class DoorServer(TcpWSGIServer):
    """waitress, closing connections too slow to send their request (`request_timeout`), and at the
    connection limit closing the slowest ones rather than no longer accepting anyone."""

    channel_class = DoorChannel

    def __init__(self, *args: Any, request_timeout: float, **kwargs: Any) -> None:
        self.request_timeout = request_timeout
        super().__init__(*args, **kwargs)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            began = getattr(channel, "request_began", None)
            if not channel.requests and began is not None and began < cutoff:
                channel.will_close = True

    def readable(self) -> bool:
        limit = self.adj.connection_limit
        if self.accepting and len(self._map) >= limit:
            self._make_room(len(self._map) - int(limit * 0.9))
        return bool(super().readable())

    def _make_room(self, count: int) -> None:
        """Close the `count` connections that have waited longest without a complete request
        (idle ones first: they have not even begun one)."""
        waiting = [
            c
            for c in self.active_channels.values()
            if not c.requests and not c.will_close and not getattr(c, "close_when_flushed", False)
        ]
        waiting.sort(key=lambda c: getattr(c, "request_began", None) or c.last_activity)
        for channel in waiting[:count]:
            channel.will_close = True
            channel.handle_close()
        if waiting[:count]:
            log.warning("connection limit reached: closed %d slow connections", len(waiting[:count]))


class HttpServer:
    """waitress on a port (0 picks a free one), runnable in the foreground or on a thread."""

    def __init__(self, app: CrewApp, port: int, host: str = "0.0.0.0", threads: int = 16) -> None:
        config = app.services.config
        self.wsgi = WsgiApp(app, click_threads=threads * LISTENERS_PER_HTTP_THREAD)  # clicks' listeners
        adj = Adjustments(
            host=host,
            port=port,
            threads=threads,
            connection_limit=config.http_connection_limit,
            backlog=1024,
            channel_timeout=max(5, int(config.http_request_timeout * 3)),  # idle keep-alive connections
            cleanup_interval=1,
            asyncore_use_poll=True,  # select() stops at 1,024 descriptors
            max_request_body_size=config.http_max_body_bytes,
            max_request_header_size=64 * 1024,
            ident="crewcall",
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(threads)
        self.wsgi.door.received = lambda: len(dispatcher.queue) + dispatcher.active_count
        self.server = DoorServer(
            self.wsgi,
            map={},
            dispatcher=dispatcher,
            adj=adj,
            sockinfo=adj.listen[0],
            request_timeout=config.http_request_timeout,
        )
        self._thread: threading.Thread | None = None
        self._closing = False

    @property
    def port(self) -> int:
        return int(self.server.effective_port)  # type: ignore[union-attr]

    def serve_forever(self) -> None:
        """Serve until `close()` (or SIGTERM/SIGINT raising SystemExit in the main thread, which
        waitress turns into a graceful stop: in-flight requests finish)."""
        try:
            self.server.run()
        except OSError:
            # Sockets closed under the last poll of a stopping loop (EBADF) are the stop itself.
            if not self._closing:
                raise
        finally:
            self.server.task_dispatcher.shutdown()  # type: ignore[union-attr]
            self.wsgi.close()

    def stop_accepting(self) -> None:
        """Close the listening socket, on the server loop's own thread (a signal handler there):
        new connections are refused at once, so a load balancer turns to another process, while
        the requests under way finish."""
        wasyncore.dispatcher.close(self.server)

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving: the sockets are closed from inside the server's own loop (closing them
        from another thread would pull them out from under its select())."""
        server = self.server
        self._closing = True
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # type: ignore[union-attr]
        except OSError:
            wasyncore.close_all(server._map)  # the loop is gone already; just release the sockets
        if self._thread:
            self._thread.join(timeout=10)
        else:
            server.task_dispatcher.shutdown()  # type: ignore[union-attr]
            self.wsgi.close()
