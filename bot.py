"""crewcall: start the bot.

    .venv/bin/python bot.py      (or `make run`)

Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on PORT (POST /slack/events, GET /healthz,
GET /metrics); with METRICS_PORT, also GET /metrics and GET /healthz alone on that port.
A missing or malformed setting, an app token Slack refuses, or a DATABASE_URL that can't be used
(its driver, its options, its role or database, a newer schema) stops start-up with one line naming
it, exit status 2 (restarting won't help). A database server or a Socket Mode connection that can't
be reached: one line, exit 1.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from core import stopping
from core.config import ConfigError, load_config

if TYPE_CHECKING:
    from handlers.kit.app import CrewApp

log = logging.getLogger("crewcall")

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

    if config.prometheus_multiproc_dir is not None:
        # prometheus_client reads it from the environment when first imported (below), also when
        # it was set in .env.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(config.prometheus_multiproc_dir.resolve())

    from core import logs

    logs.configure(config.log_level, config.secrets(), config.log_format)

    from db.engine import StoreRefused, StoreUnreachable
    from server.app import BotTokenRefused, SlackUnreachable, create_app

    try:
        app = create_app(config)
    except (BotTokenRefused, SlackUnreachable, StoreRefused, StoreUnreachable) as e:
        print(f"crewcall: {e}", file=sys.stderr)
        return 2 if isinstance(e, BotTokenRefused | StoreRefused) else 1
    # Start-up's objects (modules, the ORM's mappers, Bolt: ~150,000) live as long as the process;
    # frozen, the collector's full passes skip them. Each such pass took 50-140 ms of whichever
    # request it fell in, about once per hundred Home tabs (BENCHMARKS.md, data scale).
    gc.collect()
    gc.freeze()
    ops = None
    if config.metrics_port is not None:
        from server.observe import OpsServer

        try:  # /healthz there answers 503 until the bot serves
            ops = OpsServer(app, config.metrics_port).start()
        except OSError as e:
            app.services.db.dispose()
            print(
                f"crewcall: METRICS_PORT {config.metrics_port} can't be opened ({e.strerror})",
                file=sys.stderr,
            )
            return 1
    try:
        if config.slack_app_token is not None:  # config.socket_mode, narrowed for the type checker
            return serve_socket_mode(app, config.slack_app_token.get_secret_value(), config.http_threads)
        return serve_http(app, config.port, config.http_threads)
    finally:
        if ops is not None:
            ops.close()


def on_stop_signal(then: Callable[[], None]) -> None:
    """On SIGTERM or SIGINT: say so, then `then()`, which ends the serving."""

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("shutting down (signal %s)", signum)
        then()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def serve_socket_mode(app: CrewApp, app_token: str, threads: int) -> int:
    from server import socket_mode
    from server.app import start_background, stop_background

    try:
        # Before the scheduler starts: a bot that can't take requests must not run jobs either.
        url = socket_mode.socket_url(app, app_token)
    except (socket_mode.AppTokenRefused, socket_mode.SocketModeUnavailable) as e:
        app.services.db.dispose()
        print(f"crewcall: {e}", file=sys.stderr)
        return 2 if isinstance(e, socket_mode.AppTokenRefused) else 1
    start_background(app)
    try:
        handler = socket_mode.connect(app, app_token, url, threads)
    except socket_mode.SocketModeUnavailable as e:
        stop_background(app)
        print(f"crewcall: {e}", file=sys.stderr)
        return 1
    log.info("crewcall is running in Socket Mode")
    stop = threading.Event()
    on_stop_signal(stopping.setter(stop))
    stopping.wait_until_set(stop)
    handler.close()
    stop_background(app)
    log.info("crewcall stopped")
    return 0


def serve_http(app: CrewApp, port: int, threads: int) -> int:
    from server.app import start_background, stop_background
    from server.http import HttpServer

    start_background(app)
    server = HttpServer(app, port=port, threads=threads)

    def leave_loop() -> None:
        # New connections are refused from now on; waitress stops gracefully on SystemExit raised
        # in its loop: requests being answered finish (up to 5 s), then the acknowledged work.
        server.stop_accepting()
        raise SystemExit(0)

    on_stop_signal(leave_loop)
    log.info("crewcall is listening on port %s (POST /slack/events, GET /healthz, GET /metrics)", server.port)
    server.serve_forever()
    stop_background(app)
    log.info("crewcall stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
