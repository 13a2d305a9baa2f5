"""The bot's side of /metrics: what kind of request each one was, the scrape itself, and the
operations port (METRICS_PORT) that serves /metrics and /healthz alone, also in Socket Mode.

GET /metrics answers in Prometheus' text format without a Slack signature (a scraper has none). With
METRICS_TOKEN set it wants `Authorization: Bearer <METRICS_TOKEN>` and answers 401 otherwise; either
way it should be reachable only by the scraper (README, Deployment). Queue depths are read from the
database when scraped (domain/backlog.py: bounded COUNTs); if the database can't be read they are
left out of that scrape and the rest is still reported.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from waitress import wasyncore
from waitress.server import create_server

from core import metrics
from domain import backlog
from handlers.kit.app import CrewApp

log = logging.getLogger("crewcall.metrics")

PATH = "/metrics"
# Where the door leaves the kind of the request it is answering, for the latency histogram.
KIND = "crewcall.kind"
REFUSED = "refused"


# In a form-encoded click: the payload's `"actions":[` (after the message, whose blocks carry
# action_ids of their own), then the clicked element's `"action_id":"…"`. Read from the encoded
# body, as the door does, since decoding a click's whole payload (its message's blocks) costs more
# than the rest of its acknowledgement.
_SPACE = r"(?:%20|\+)*"
_ACTIONS = re.compile(rf"%22actions%22{_SPACE}%3A{_SPACE}%5B", re.IGNORECASE)
_ACTION_ID = re.compile(rf"%22action_id%22{_SPACE}%3A{_SPACE}%22([A-Za-z0-9_.\-]+)%22", re.IGNORECASE)
_COMMAND = re.compile(r"(?:^|&)command=([^&]*)")


def request_kind(body: str, click: bool) -> str:
    """A label for what Slack sent (`click`: a block_actions payload, as the door found):
    `command /tasks`, `action task_claim`, `view_submission <callback_id>`, `event
    app_home_opened`, … (bounded by core.metrics)."""
    command = _COMMAND.search(body) if not body.startswith(("{", "payload=")) else None
    if command:
        return f"command {unquote_plus(command.group(1))}"
    if click:
        actions = list(_ACTIONS.finditer(body))
        action = _ACTION_ID.search(body, actions[-1].end()) if actions else None
        return f"action {action.group(1)}" if action else "action ?"
    try:
        if body.startswith("{"):
            envelope = json.loads(body)
            if envelope.get("type") == "event_callback":
                return f"event {(envelope.get('event') or {}).get('type', '?')}"
            return str(envelope.get("type") or "other")
        form = parse_qs(body)
        if "payload" in form:
            return _interaction(json.loads(form["payload"][0]))
    except (ValueError, AttributeError, TypeError, IndexError):
        pass
    return metrics.OTHER


def _interaction(payload: Mapping[str, Any]) -> str:
    kind = str(payload.get("type") or "other")
    if kind in ("block_actions", "block_suggestion"):
        actions = payload.get("actions") or [payload]
        return f"action {actions[0].get('action_id', '?')}"
    if kind in ("view_submission", "view_closed"):
        return f"{kind} {(payload.get('view') or {}).get('callback_id', '?')}"
    if kind in ("shortcut", "message_action"):
        return f"{kind} {payload.get('callback_id', '?')}"
    return kind


def envelope_kind(envelope_type: str, payload: Mapping[str, Any]) -> str:
    """The same label for a Socket Mode envelope (`slash_commands`, `interactive`, `events_api`),
    whose payload is already decoded."""
    if envelope_type == "slash_commands":
        return f"command {payload.get('command', '?')}"
    if envelope_type == "interactive":
        return _interaction(payload)
    if envelope_type == "events_api":
        return f"event {(payload.get('event') or {}).get('type', '?')}"
    return metrics.OTHER


def observe(environ: Mapping[str, Any], seconds: float) -> None:
    """Record a request the door classified (POST /slack/events); other paths are not counted."""
    kind = environ.get(KIND)
    if kind is not None:
        metrics.observe_request(kind, seconds)


class MetricsRoute:
    """GET /metrics: a WSGI answer."""

    def __init__(self, app: CrewApp) -> None:
        self.app = app
        token = app.services.config.metrics_token
        self.token = token.get_secret_value().encode() if token is not None else None
        self.depths = metrics.Gauges(self._read_depths)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self.token is not None:
            given = str(environ.get("HTTP_AUTHORIZATION", "")).encode()
            if not hmac.compare_digest(given, b"Bearer " + self.token):
                start_response("401 Unauthorized", [("Content-Length", "0")])
                return [b""]
        body = metrics.exposition([self.depths])
        start_response("200 OK", [("Content-Type", metrics.CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    def _read_depths(self) -> dict[str, tuple[str, float]]:
        services = self.app.services
        try:
            with services.db.read() as session:
                counts = backlog.depths(session, services.clock.now())
        except Exception:
            log.warning("queue depths left out of /metrics: the database could not be read", exc_info=True)
            return {}
        return {name: (backlog.DEPTHS[name], value) for name, value in counts.items()}


def health(app: CrewApp) -> tuple[int, dict[str, Any]]:
    """/healthz: 200 when the database answers and the scheduler runs, 503 otherwise."""
    database = app.services.db.reachable()
    scheduler = app.services.scheduler.running
    ok = database and scheduler
    return (200 if ok else 503), {"ok": ok, "database": database, "scheduler": scheduler}


def health_answer(app: CrewApp, start_response: Any) -> list[bytes]:
    status, payload = health(app)
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class OpsApp:
    """METRICS_PORT: GET /metrics and GET /healthz, nothing else (404)."""

    def __init__(self, app: CrewApp) -> None:
        self.app = app
        self.metrics = MetricsRoute(app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD") and path == PATH:
            return self.metrics(environ, start_response)
        if method in ("GET", "HEAD") and path == "/healthz":
            return health_answer(self.app, start_response)
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]


class OpsServer:
    """The operations port, served by two waitress threads beside the bot (either mode)."""

    def __init__(self, app: CrewApp, port: int, host: str = "0.0.0.0") -> None:
        self.server = create_server(OpsApp(app), host=host, port=port, threads=2, ident="crewcall")
        self._thread = threading.Thread(target=self.server.run, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        server = self.server
        # On the loop's thread; it may run the close (which closes the trigger too) before the
        # pull's own write reaches the trigger, which then fails: the close is done either way.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(timeout=10)
