"""The public HTTP door under hostile traffic: unsigned and forged requests, huge bodies, and
connections that send their request too slowly or not at all."""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import time
from collections.abc import Iterator

import pytest

from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness


def _raw(bot: BotHarness, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes to the bot's HTTP port; everything it answers before closing (or the timeout)."""
    assert bot.server is not None
    with socket.create_connection(("127.0.0.1", bot.server.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _post(headers: dict[str, str], body: bytes = b"command=%2Fcrew&user_id=U1&text=me") -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: bot", "Content-Type: application/x-www-form-urlencoded"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if "Content-Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": str(int(time.time()))},
        {"X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": ""},
        {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(int(time.time()) - 600), "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
    ],
    ids=["none", "no-signature", "no-timestamp", "non-numeric", "blank", "huge", "stale", "forged"],
)
def test_requests_without_a_valid_signature_get_401_and_no_traceback(
    sqlite_bot: BotHarness, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    bot = sqlite_bot
    with caplog.at_level(logging.DEBUG):
        answer = _raw(bot, _post(headers))
    assert _status(answer) == 401
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    time.sleep(0.2)
    assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == []


def test_a_body_over_the_limit_gets_413_before_it_is_read(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    signed = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    # 100 MB announced, not one byte of it sent: the answer can only come from the headers.
    answer = _raw(bot, _post({**signed, "Content-Length": str(100 * 1024 * 1024)}, body=b""))
    assert _status(answer) == 413
    just_over = 1_048_576 + 1
    answer = _raw(bot, _post({**signed, "Content-Length": str(just_over)}, body=b""))
    assert _status(answer) == 413
    assert bot.command("UADMIN", "/crew", "me").text  # the door still serves Slack


@pytest.fixture
def door_bot(sqlite_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    env = {"HTTP_CONNECTION_LIMIT": "300", "HTTP_REQUEST_TIMEOUT": "2"}
    harness = BotHarness(sqlite_url, fake=fake, env=env)
    harness.start()
    yield harness
    harness.close()


def _trickled(bot: BotHarness, at_once: bytes, trickle: bytes) -> tuple[float | None, bytes]:
    """Send `at_once`, then `trickle` a byte every 0.2 s: after how many seconds the server closed the
    connection (None: not within 15 s, or not before the last byte), and what it answered first."""
    assert bot.server is not None
    answered = b""
    with socket.create_connection(("127.0.0.1", bot.server.port), timeout=1) as sock:
        started = time.monotonic()
        sock.sendall(at_once)
        for byte in trickle:
            if time.monotonic() - started > 15:
                return None, answered
            try:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    if (chunk := sock.recv(65536)) == b"":
                        return time.monotonic() - started, answered
                    answered += chunk
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - started, answered
            finally:
                sock.setblocking(True)
    return None, answered


def test_a_client_trickling_its_request_is_closed(door_bot: BotHarness) -> None:
    closed, _ = _trickled(door_bot, b"", _post({}))  # HTTP_REQUEST_TIMEOUT is 2 s
    assert closed is not None, "the server kept a connection that trickled its headers"


def test_a_client_trickling_its_body_is_closed(door_bot: BotHarness) -> None:
    """The headers arrive at once; the body (200 bytes, 40 s at this pace) a byte at a time."""
    body = b"command=%2Fcrew&user_id=U1&text=" + b"x" * 167
    signed = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    request = _post(signed, body)
    head = request[: -len(body)]
    closed, answered = _trickled(door_bot, head, body)
    assert closed is not None, "the server kept a connection that trickled its body"
    assert closed < 6, f"closed after {closed:.1f} s; HTTP_REQUEST_TIMEOUT is 2 s"
    assert answered == b"", "a request whose body never came was answered"
    assert door_bot.command("UADMIN", "/crew", "me").text  # the door still serves Slack


def test_a_thousand_slow_connections_do_not_lock_slack_out(door_bot: BotHarness) -> None:
    bot = door_bot
    assert bot.server is not None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    bot.fake.add_user("U1")
    slow: list[socket.socket] = []
    try:
        for i in range(1100):
            sock = socket.create_connection(("127.0.0.1", bot.server.port), timeout=10)
            if i % 2:  # half of them begin a request and never finish it; the others send nothing
                sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nX-Slack-")
            slow.append(sock)
        # Far more connections than HTTP_CONNECTION_LIMIT (300) are held open, and Slack's signed
        # requests are still answered.
        for _ in range(5):
            assert "contractor" in bot.command("U1", "/crew", "me")
            for sock in slow[-50:]:  # keep trickling on some of them
                with contextlib.suppress(OSError):
                    sock.send(b"x")
    finally:
        for sock in slow:
            sock.close()
