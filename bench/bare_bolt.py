"""The baseline of bench.throughput: a bare Bolt app that only acknowledges `/tasks`, on waitress.

    .venv/bin/python -m bench.bare_bolt PORT SIGNING_SECRET THREADS API_URL

Bolt's defaults (signature check, its built-in middleware, a listener thread pool) behind Bolt's
WSGI adapter, on waitress with the same thread count as the bot; `auth.test` at start-up goes to
API_URL (the bench's fake Slack), as the bot's does. It prints "ready" once it listens.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress.server import create_server


def main() -> int:
    port, secret, threads, api_url = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    client = WebClient(token="xoxb-sandbox-token", base_url=api_url.rstrip("/") + "/")
    app = App(client=client, signing_secret=secret)

    @app.command("/tasks")
    def tasks(ack: Ack, body: dict[str, Any]) -> None:
        ack()

    handler = SlackRequestHandler(app)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth" under load is expected
    server = create_server(
        handler, host="127.0.0.1", port=int(port), threads=threads, connection_limit=2000, backlog=1024
    )
    print("ready", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
