"""The response_url transport (core.slack.ResponseUrls): kept-alive connections reused per host, a
connection the server closed while idle replaced, a 429 waited out off request threads and handed to
the retry thread on them, a 5xx never repeated."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.slack import ResponseUrls, SlackGateway, answering, make_client
from sandbox.fake_slack import FakeSlack


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """Speaks HTTP/1.1 (the fake Slack closes every connection, as HTTP/1.0 does); records each
    body with the connection it came on. `close_after` answers and then closes without saying so."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.posts.append((self.client_address[1], body))  # the client port: one per connection
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.close_connection = server.close_after


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler)
        self.lock = threading.Lock()
        self.posts: list[tuple[int, dict[str, Any]]] = []
        self.close_after = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/commands/T1/1/secret"


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_replies_to_one_host_share_a_kept_alive_connection(server: _Server) -> None:
    urls = ResponseUrls()
    for i in range(3):
        assert urls.post(server.url, {"text": f"reply {i}"})[0] == 200
    assert [body["text"] for _, body in server.posts] == ["reply 0", "reply 1", "reply 2"]
    assert len({conn for conn, _ in server.posts}) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_reply_sent_once(
    server: _Server,
) -> None:
    urls = ResponseUrls()
    server.close_after = True  # answers, then closes the connection without a Connection: close
    assert urls.post(server.url, {"text": "first"})[0] == 200
    assert urls.post(server.url, {"text": "second"})[0] == 200
    assert [body["text"] for _, body in server.posts] == ["first", "second"]
    assert len({conn for conn, _ in server.posts}) == 2


def test_a_429_is_waited_out_off_request_threads_and_sent_once(fake: FakeSlack) -> None:
    gateway = SlackGateway(make_client("xoxb-test", fake.api_url))
    url = fake.new_response_url()
    fake.fail_next("response_url", status=429, retry_after=0)
    assert gateway.respond(url, "after the limit")
    refused, delivered = fake.calls_to("response_url")
    assert refused.status == 429 and delivered.ok and delivered.params["text"] == "after the limit"


def test_a_429_on_a_request_thread_goes_to_the_retry_thread(fake: FakeSlack) -> None:
    gateway = SlackGateway(make_client("xoxb-test", fake.api_url))
    url = fake.new_response_url()
    fake.fail_next("response_url", status=429, retry_after=3)
    started = time.monotonic()
    with answering():
        assert gateway.respond(url, "later")
    took = time.monotonic() - started
    assert took < 1.0, f"the request thread waited {took:.1f} s for the rate limit"
    delivered = fake.wait_for("response_url", predicate=lambda c: c.ok, timeout=10)[0]
    refused = fake.calls_to("response_url")[0]
    assert delivered.params["text"] == "later" and delivered.arrived - refused.ts >= 2.9
    time.sleep(0.5)
    assert [c.status for c in fake.calls_to("response_url")] == [429, 200]


def test_a_5xx_is_not_repeated(fake: FakeSlack) -> None:
    gateway = SlackGateway(make_client("xoxb-test", fake.api_url))
    fake.fail_next("response_url", status=503, applied=True)
    assert gateway.respond(fake.new_response_url(), "maybe landed")  # in doubt: not said again
    assert [c.status for c in fake.calls_to("response_url")] == [503]
