"""Slack's Socket Mode door, faked on loopback: the WebSocket endpoint the bot connects to.

The bot asks the fake Web API for a URL (``apps.connections.open`` with its ``xapp-`` token) and
gets ``ws://127.0.0.1:PORT/link/?ticket=…&app_id=…`` on a :class:`SocketModeServer`. Each ticket
opens one connection, as with Slack. The server greets every connection with ``hello``; a test then
pushes envelopes and waits for the bot's acknowledgements::

    with FakeSlack() as fake:
        ...  # start the bot with SLACK_APP_TOKEN=xapp-… and SLACK_API_URL=fake.api_url
        fake.socket_mode.wait_connected()
        slack = SocketModeDriver(fake)                  # sandbox.driver
        ack = slack.wait_ack(slack.command("U1", "/crew", "help"))
        assert "/crew" in ack.payload["text"]

What it speaks, as slack_sdk's builtin client needs it (RFC 6455, standard library only): the HTTP
Upgrade handshake with ``Sec-WebSocket-Accept``; text frames (server frames unmasked, client frames
must be masked or the connection is closed with 1002); ping answered with pong (the client pings
every ``ping_interval`` and disconnects when pongs stop); close frames both ways, and a client
that just drops the socket. ``disconnect()`` sends Slack's ``{"type": "disconnect"}``, after which
the client opens a new connection with a new URL.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import logging
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("sandbox.socket_mode")

__all__ = ["Ack", "SocketModeServer"]

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR = 1000, 1002
MAX_HANDSHAKE_BYTES = 16384


class _Closed(Exception):
    """The peer went away (EOF, reset) or the connection was closed."""


@dataclass(frozen=True)
class Ack:
    """The bot's acknowledgement of an envelope: ``{"envelope_id": …, "payload": {…}}``.
    ``payload`` is what an HTTP ack's body would have been ({} for an empty ack)."""

    envelope_id: str
    payload: dict[str, Any]
    connection: int


class _Connection:
    """One accepted WebSocket: frames in on its own thread, frames out under a lock."""

    def __init__(self, number: int, sock: socket.socket, buffered: bytes) -> None:
        self.number = number
        self.sock = sock
        self._buffer = buffered
        self._send_lock = threading.Lock()
        self.open = True

    def send_text(self, text: str) -> None:
        self._send_frame(OPCODE_TEXT, text.encode("utf-8"))

    def pong(self, data: bytes) -> None:
        self._send_frame(OPCODE_PONG, data)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame and drop the socket (the client may not answer it: slack_sdk doesn't)."""
        if self.open:
            with contextlib.suppress(_Closed):
                self._send_frame(OPCODE_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        self.drop()

    def drop(self) -> None:
        self.open = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _send_frame(self, opcode: int, data: bytes) -> None:
        # Server frames are never masked (RFC 6455 5.1).
        head = bytes([0x80 | opcode])
        if len(data) < 126:
            head += bytes([len(data)])
        elif len(data) < 1 << 16:
            head += bytes([126]) + struct.pack("!H", len(data))
        else:
            head += bytes([127]) + struct.pack("!Q", len(data))
        with self._send_lock:
            if not self.open:
                raise _Closed
            try:
                self.sock.sendall(head + data)
            except OSError as e:
                raise _Closed from e

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise _Closed from e
            if not chunk:
                raise _Closed
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the client, unmasked: (opcode, payload)."""
        first, second = self._read(2)
        fin, opcode = first & 0x80, first & 0x0F
        masked, length = second & 0x80, second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if not masked:
            self.close(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            raise _Closed
        if not fin:
            # Nothing in the client needs fragments (it sends each message whole); refuse rather than guess.
            self.close(CLOSE_PROTOCOL_ERROR, "fragmented frames are not supported")
            raise _Closed
        mask = self._read(4)
        payload = self._read(length)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class SocketModeServer:
    """The WebSocket side of Socket Mode on ``127.0.0.1``; started by the fake Web API the first
    time it answers ``apps.connections.open``, stopped with it.

    Attributes:
        acks: every acknowledgement received, oldest first.
        pings: how many pings the clients sent (each answered with a pong).
        refuse_handshakes: answer every handshake ``503`` (Slack's WebSocket hosts unavailable).
    """

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self._cond = threading.Condition()
        self._listener: socket.socket | None = None
        self._tickets: set[str] = set()
        self._connections: list[_Connection] = []
        self._numbers = itertools.count(1)
        self.acks: list[Ack] = []
        #: envelope_id -> (when it was sent, whether the client was switching connections, payload)
        self._sent: dict[str, tuple[float, bool, dict[str, Any]]] = {}
        self._switched = 0.0  # when a connection last closed: a client switching over is ready then
        #: Called with (envelope_id, seconds, the envelope's payload) for an ack later than
        #: ``ack_deadline`` (FakeSlack records it as a violation).
        self.on_late_ack: Any = None
        self.ack_deadline = 3.0
        self.pings = 0
        self.refuse_handshakes = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SocketModeServer:
        """Listen on a free port (idempotent)."""
        with self._cond:
            if self._listener is not None:
                return self
            listener = socket.create_server(("127.0.0.1", 0))
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="fake-socket-mode", daemon=True).start()
        return self

    def stop(self) -> None:
        """Close every connection and stop listening. Safe to call twice."""
        with self._cond:
            listener, self._listener = self._listener, None
            connections = list(self._connections)
        if listener is not None:
            listener.close()
        for connection in connections:
            connection.drop()

    def new_url(self) -> str:
        """A URL for one connection, like ``apps.connections.open`` hands out."""
        with self._cond:
            assert self._listener is not None, "start() the server first"
            ticket = uuid.uuid4().hex
            self._tickets.add(ticket)
            port = self._listener.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------------ for tests

    @property
    def connections(self) -> int:
        """How many connections were ever accepted (a reconnect adds one)."""
        with self._cond:
            return len(self._connections)

    @property
    def open_connections(self) -> int:
        with self._cond:
            return sum(1 for c in self._connections if c.open)

    def wait_connected(self, count: int = 1, timeout: float = 30.0) -> None:
        """Until at least ``count`` connections were accepted (and greeted with ``hello``)."""
        self._wait(lambda: len(self._connections) >= count, timeout, f"{count} Socket Mode connection(s)")

    def send(self, message: Mapping[str, Any]) -> None:
        """Send a message on the newest open connection (Slack picks one of the app's connections)."""
        with self._cond:
            connection = next((c for c in reversed(self._connections) if c.open), None)
        if connection is None:
            raise AssertionError("no Socket Mode connection is open")
        connection.send_text(json.dumps(message))

    def send_envelope(
        self,
        envelope_type: str,
        payload: Mapping[str, Any],
        accepts_response_payload: bool,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Push an envelope as Slack does; returns its ``envelope_id``. Events API envelopes carry
        ``retry_attempt``/``retry_reason`` (0 and "" on a first delivery)."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": dict(payload),
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        self.send(envelope)
        with self._cond:
            # Timed from when it left; an envelope sent while the client is still switching to a
            # new connection (its old one open) is timed from when the old one closed.
            switching = sum(1 for c in self._connections if c.open) > 1
            self._sent[envelope_id] = (time.monotonic(), switching, dict(payload))
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's notice that this connection is going away; the client should open a new one."""
        self.send({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}})

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The acknowledgement of ``envelope_id``, once it has arrived."""
        self._wait(lambda: self._ack(envelope_id) is not None, timeout, f"the ack of envelope {envelope_id}")
        ack = self._ack(envelope_id)
        assert ack is not None
        return ack

    def _ack(self, envelope_id: str) -> Ack | None:
        with self._cond:
            return next((a for a in self.acks if a.envelope_id == envelope_id), None)

    def _wait(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._cond.wait(remaining)

    # ------------------------------------------------------------------ serving

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # stop() closed the listener
            threading.Thread(
                target=self._serve, args=(sock,), name="fake-socket-mode-conn", daemon=True
            ).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            connection = self._handshake(sock)
        except (OSError, ValueError) as e:
            log.warning("refused a WebSocket handshake: %s", e)
            sock.close()
            return
        with self._cond:
            self._connections.append(connection)
        try:
            connection.send_text(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": self.open_connections,
                        "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                        "connection_info": {"app_id": self.app_id},
                    }
                )
            )
            with self._cond:
                self._cond.notify_all()
            self._receive(connection)
        except _Closed:
            pass
        finally:
            connection.drop()
            with self._cond:
                self._switched = time.monotonic()
                self._cond.notify_all()

    def _handshake(self, sock: socket.socket) -> _Connection:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(4096)
            if not chunk or len(raw) > MAX_HANDSHAKE_BYTES:
                raise ValueError("no complete HTTP request")
            raw += chunk
        head, _, rest = raw.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        ticket = (parse_qs(urlsplit(target).query).get("ticket") or [""])[0]
        with self._cond:
            known = ticket in self._tickets
            self._tickets.discard(ticket)  # one connection per URL, as with Slack
        key = headers.get("sec-websocket-key", "")
        refusal = self._refusal(method, headers, key, known)
        if refusal:
            status, reason = refusal
            sock.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            raise ValueError(reason)
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return _Connection(next(self._numbers), sock, rest)

    def _refusal(self, method: str, headers: dict[str, str], key: str, known: bool) -> tuple[str, str] | None:
        """(HTTP status, why) for a handshake that gets no WebSocket, else None."""
        if self.refuse_handshakes:
            return "503 Service Unavailable", "refusing handshakes"
        if method != "GET" or headers.get("upgrade", "").lower() != "websocket" or not key:
            return "400 Bad Request", "not a WebSocket upgrade"
        if headers.get("sec-websocket-version") != "13":
            return "400 Bad Request", "unsupported WebSocket version"
        if not known:
            return "401 Unauthorized", "unknown or used ticket"
        return None

    def _receive(self, connection: _Connection) -> None:
        while True:
            opcode, data = connection.read_frame()
            if opcode == OPCODE_PING:
                with self._cond:
                    self.pings += 1
                connection.pong(data)
            elif opcode == OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else CLOSE_NORMAL
                connection.close(code)
                return
            elif opcode == OPCODE_TEXT:
                self._received_text(connection, data.decode("utf-8"))
            # Pongs (to pings we never send) and binary frames carry nothing for us.

    def _received_text(self, connection: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("the client sent a text frame that is not JSON: %.200s", text)
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            log.warning("the client sent something that is no acknowledgement: %.200s", text)
            return
        envelope_id = str(message["envelope_id"])
        with self._cond:
            self.acks.append(Ack(envelope_id, message.get("payload") or {}, connection.number))
            sent = self._sent.pop(envelope_id, None)
            now = time.monotonic()
            if sent is not None and sent[1]:
                sent = (self._switched if self._switched > sent[0] else now, False, sent[2])
            self._cond.notify_all()
        if sent is not None and self.on_late_ack is not None:
            delay = now - sent[0]
            if delay > self.ack_deadline:
                self.on_late_ack(envelope_id, delay, sent[2])
