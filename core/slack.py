"""Our side of the Web API door: one WebClient, pointed at SLACK_API_URL, that waits out 429s
(Retry-After), retries connection errors and 5xx, and a gateway whose calls never crash the caller.

Calls whose failure the caller must act on (the announcement outbox, e-mail lookups) use `call`,
which raises `SlackFailure` with Slack's error code. Fire-and-forget notifications (`post`, `dm`,
`update`, …) log a failure with its context and return None: work is never dropped silently.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import IO, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from core.people import Profile

log = logging.getLogger("crewcall.slack")

PERMANENT_USER_ERRORS = frozenset({"user_not_found", "users_not_found", "account_inactive", "cannot_dm_bot"})


def retry_handlers() -> list[Any]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def make_client(token: str, base_url: str) -> WebClient:
    return WebClient(token=token, base_url=base_url, timeout=15, retry_handlers=retry_handlers())


class SlackFailure(Exception):
    """A Web API call failed after its retries; `error` is Slack's code (or the transport error)."""

    def __init__(self, method: str, error: str, retry_after: float | None = None) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.error in PERMANENT_USER_ERRORS


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class SlackGateway:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._dm_channels: dict[str, str] = {}
        self._lock = threading.Lock()

    # ---- calls whose failure the caller handles ------------------------------------------------

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call a Web API method; raise SlackFailure with Slack's error code if it fails."""
        try:
            # The typed methods know each method's encoding (form, query or JSON).
            response = getattr(self.client, method.replace(".", "_"))(**_drop_none(kwargs))
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as e:
            data = e.response.data if isinstance(e.response.data, dict) else {}
            retry_after = e.response.headers.get("Retry-After") if e.response.headers else None
            raise SlackFailure(
                method,
                str(data.get("error") or e.response.status_code),
                float(retry_after) if retry_after else None,
            ) from None
        except (SlackClientError, OSError) as e:
            raise SlackFailure(method, f"transport: {type(e).__name__}") from None

    def open_dm(self, user_id: str) -> str:
        with self._lock:
            cached = self._dm_channels.get(user_id)
        if cached:
            return cached
        channel = self.call("conversations.open", users=user_id)["channel"]["id"]
        with self._lock:
            self._dm_channels[user_id] = channel
        return channel

    def profile(self, user_id: str) -> Profile | None:
        try:
            user = self.call("users.info", user=user_id)["user"]
        except SlackFailure as e:
            log.warning("users.info failed for %s: %s", user_id, e.error)
            return None
        return profile_from_user(user)

    def lookup_by_email(self, email: str) -> Profile | None:
        """The workspace member with this address, None when there is none; SlackFailure otherwise."""
        try:
            return profile_from_user(self.call("users.lookupByEmail", email=email)["user"])
        except SlackFailure as e:
            if e.error == "users_not_found":
                return None
            raise

    # ---- notifications: logged, never raised ---------------------------------------------------

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        what: str = "message",
    ) -> Posted | None:
        try:
            data = self.call(
                "chat.postMessage",
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                metadata=metadata,
                unfurl_links=False,
            )
            return Posted(channel=data.get("channel", channel), ts=data["ts"])
        except SlackFailure as e:
            log.error("could not post %s to %s: %s", what, channel, e.error)
            return None

    def dm(
        self, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None, what: str = "DM"
    ) -> Posted | None:
        try:
            channel = self.open_dm(user_id)
        except SlackFailure as e:
            log.error("could not open a DM with %s for %s: %s", user_id, what, e.error)
            return None
        return self.post(channel, text, blocks, what=f"{what} to {user_id}")

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], what: str = "card"
    ) -> bool:
        try:
            self.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
            return True
        except SlackFailure as e:
            log.error("could not update %s %s/%s: %s", what, channel, ts, e.error)
            return False

    def ephemeral(
        self, channel: str, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> bool:
        try:
            self.call("chat.postEphemeral", channel=channel, user=user_id, text=text, blocks=blocks)
            return True
        except SlackFailure as e:
            log.warning("could not post ephemeral to %s in %s: %s", user_id, channel, e.error)
            return False

    def respond(
        self,
        response_url: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        replace_original: bool = False,
    ) -> bool:
        """An ephemeral reply through a request's response_url; with `replace_original`, it replaces
        the message whose button was clicked (e.g. to take away buttons that were used)."""
        webhook = WebhookClient(response_url, timeout=15, retry_handlers=retry_handlers())
        try:
            resp = webhook.send(
                text=text,
                blocks=blocks,
                response_type="ephemeral",
                replace_original=replace_original,
                unfurl_links=False,
            )
        except (SlackClientError, OSError) as e:
            log.warning("could not reply through response_url: %s", type(e).__name__)
            return False
        if resp.status_code >= 300:
            log.warning("response_url answered %s", resp.status_code)
            return False
        return True

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> bool:
        try:
            self.call("views.open", trigger_id=trigger_id, view=view)
            return True
        except SlackFailure as e:
            log.warning("could not open modal %s: %s", view.get("callback_id"), e.error)
            return False

    def publish_home(self, user_id: str, view: dict[str, Any]) -> bool:
        try:
            self.call("views.publish", user_id=user_id, view=view)
            return True
        except SlackFailure as e:
            log.warning("could not publish Home for %s: %s", user_id, e.error)
            return False

    def upload(
        self, channel: str, filename: str, content: bytes | IO[bytes], title: str, comment: str = ""
    ) -> bool:
        """Upload bytes, or an open binary file (read from where it stands)."""
        data = {"content": content} if isinstance(content, bytes) else {"file": content}
        try:
            self.client.files_upload_v2(
                channel=channel, filename=filename, title=title, initial_comment=comment, **data
            )
            return True
        except (SlackApiError, SlackClientError, OSError) as e:
            log.error("could not upload %s to %s: %s", filename, channel, type(e).__name__)
            return False


def profile_from_user(user: dict[str, Any]) -> Profile:
    profile = user.get("profile") or {}
    return Profile(
        user_id=user["id"],
        name=user.get("name") or "",
        real_name=user.get("real_name") or profile.get("real_name") or "",
        tz=user.get("tz") or "UTC",
        email=profile.get("email"),
        is_bot=bool(user.get("is_bot")),
        deleted=bool(user.get("deleted")),
    )


def _drop_none(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}
