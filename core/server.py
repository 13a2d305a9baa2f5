"""HTTP mode: a WSGI app served by waitress (multi-threaded, production-grade).

POST /slack/events   everything Slack sends (commands, interactions, events)
GET  /healthz        200 {"ok": true, "database": true, "scheduler": true}, 503 when either is down
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import create_server

from core.app import CrewApp

log = logging.getLogger("crewcall.http")


class WsgiApp:
    def __init__(self, app: CrewApp) -> None:
        self.app = app
        self.slack = SlackRequestHandler(app, path="/slack/events")

    def health(self) -> tuple[int, dict[str, Any]]:
        database = self.app.services.db.reachable()
        scheduler = self.app.services.scheduler.running
        ok = database and scheduler
        return (200 if ok else 503), {"ok": ok, "database": database, "scheduler": scheduler}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            status, payload = self.health()
            body = json.dumps(payload).encode()
            start_response(
                f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.slack(environ, start_response)


class HttpServer:
    """waitress on a port (0 picks a free one), runnable in the foreground or on a thread."""

    def __init__(self, app: CrewApp, port: int, host: str = "0.0.0.0", threads: int = 16) -> None:
        self.server = create_server(
            WsgiApp(app),
            host=host,
            port=port,
            threads=threads,
            connection_limit=1000,
            backlog=1024,
            channel_timeout=30,
            ident="crewcall",
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.effective_port)  # type: ignore[union-attr]

    def serve_forever(self) -> None:
        """Serve until `close()` (or SIGTERM/SIGINT raising SystemExit in the main thread, which
        waitress turns into a graceful stop: in-flight requests finish)."""
        self.server.run()
        self.server.task_dispatcher.shutdown()  # type: ignore[union-attr]

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving: the sockets are closed from inside the server's own loop (closing them
        from another thread would pull them out from under its select())."""
        server = self.server
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # type: ignore[union-attr]
        if self._thread:
            self._thread.join(timeout=10)
        else:
            server.task_dispatcher.shutdown()  # type: ignore[union-attr]
