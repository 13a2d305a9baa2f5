"""Socket Mode: Slack's door as a WebSocket the bot opens itself, so it needs no public URL.

Bolt's SocketModeHandler (slack_sdk's builtin client) receives each envelope, runs it through the
same App as the HTTP door (middleware, listeners) and acknowledges it over the socket with what the
HTTP acknowledgement would have carried. It reconnects by itself when Slack asks it to (a
`disconnect` message) or the connection goes quiet.

Start-up opens the door in two steps, so that each failure says what to fix:
1. `socket_url` asks Slack for a WebSocket URL with the app-level token (`apps.connections.open`):
   a token Slack refuses is a setting to change (`AppTokenRefused`), which no restart will cure;
2. `connect` opens the WebSocket there (`SocketModeUnavailable` when it can't: worth a retry).
"""

from __future__ import annotations

import time

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from core import metrics
from core.slack import SlackFailure
from handlers.kit.app import CrewApp
from server import observe

# apps.connections.open's answers that mean the token itself is wrong; anything else (ratelimited,
# internal_error, a 5xx, no network) may pass.
TOKEN_REFUSALS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "not_allowed_token_type",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "access_denied",
        "no_permission",
        "missing_scope",
        "org_login_required",
        "ekm_access_denied",
    }
)


class AppTokenRefused(Exception):
    """Slack refused SLACK_APP_TOKEN; the message is one line naming it and where to get another."""


class SocketModeUnavailable(Exception):
    """The Socket Mode connection could not be opened (network, Slack); the message is one line."""


def socket_url(app: CrewApp, app_token: str) -> str:
    """A fresh WebSocket URL for this app, from Slack."""
    try:
        return str(app.services.slack.call("apps.connections.open", app_token=app_token)["url"])
    except SlackFailure as e:
        if e.error not in TOKEN_REFUSALS:
            raise SocketModeUnavailable(f"could not get a Socket Mode URL from Slack ({e.error})") from None
        raise AppTokenRefused(
            f"SLACK_APP_TOKEN was refused by Slack ({e.error}): it needs to be a valid app-level token "
            "(xapp-…) with connections:write (the app's Basic Information page, App-Level Tokens)."
        ) from None


class MeasuredHandler(SocketModeHandler):
    """Bolt's handler, timing each envelope from its arrival to its acknowledgement for /metrics,
    with the same kinds as the HTTP door."""

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]  # as Bolt's
        started = time.perf_counter()
        try:
            super().handle(client, req)
        finally:
            kind = observe.envelope_kind(req.type, req.payload or {})
            metrics.observe_request(kind, time.perf_counter() - started)


def connect(app: CrewApp, app_token: str, url: str, threads: int) -> SocketModeHandler:
    """Open the WebSocket at `url` (from `socket_url`); later URLs the client fetches itself.
    `threads` envelopes are handled at once, as HTTP_THREADS requests are in HTTP mode."""
    handler = MeasuredHandler(app, app_token, concurrency=threads)
    handler.client.wss_uri = url
    handler.connect()
    # slack_sdk's builtin client logs a failed handshake and returns, leaving reconnection to a
    # monitor thread; at start-up a connection that never opened should stop the bot instead.
    if not handler.client.is_connected():
        handler.close()
        raise SocketModeUnavailable("could not open the Socket Mode WebSocket (see the log line above)")
    return handler
