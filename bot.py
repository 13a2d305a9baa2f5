"""crewcall: start the bot.

    .venv/bin/python bot.py      (or `make run`)

Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on PORT (POST /slack/events, GET /healthz).
A missing or malformed setting stops start-up with one line naming it, exit status 2.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from core.config import ConfigError, load_config

SETUP_HINT = """\
To connect crewcall to Slack:
  1. Create an app at https://api.slack.com/apps → "From an app manifest", paste manifest.yaml.
  2. Install it to your workspace, then copy into .env (see .env.example):
     SLACK_BOT_TOKEN (OAuth & Permissions) and SLACK_SIGNING_SECRET (Basic Information),
     plus SLACK_APP_TOKEN (xapp-…, connections:write) to run in Socket Mode without a public URL.
  3. Run `make run` again."""


def main() -> int:
    try:
        config = load_config()
    except ConfigError as e:
        print(f"crewcall: {e}", file=sys.stderr)
        if "SLACK_BOT_TOKEN is not set" in str(e) or "SLACK_SIGNING_SECRET is not set" in str(e):
            print(SETUP_HINT, file=sys.stderr)
        return 2

    from core import logs

    logs.configure(config.log_level, config.secrets())
    log = logging.getLogger("crewcall")

    from core.app import create_app, start_background, stop_background

    app = create_app(config)
    start_background(app)
    stopping = threading.Event()

    if config.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, config.slack_app_token)
        try:
            handler.connect()
        except Exception as e:
            log.error("could not open a Socket Mode connection (%s); check SLACK_APP_TOKEN", type(e).__name__)
            stop_background(app)
            return 1
        log.info("crewcall is running in Socket Mode")

        def stop_socket(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop_socket)
        signal.signal(signal.SIGINT, stop_socket)
        stopping.wait()
        handler.close()
    else:
        from core.server import HttpServer

        server = HttpServer(app, port=config.port, threads=config.http_threads)

        def stop_http(signum: int, frame: FrameType | None) -> None:
            log.info("shutting down (signal %s)", signum)
            # waitress stops gracefully on SystemExit raised in its loop: in-flight requests finish.
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop_http)
        signal.signal(signal.SIGINT, stop_http)
        log.info("crewcall is listening on port %s (POST /slack/events, GET /healthz)", server.port)
        server.serve_forever()
    stop_background(app)
    log.info("crewcall stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
