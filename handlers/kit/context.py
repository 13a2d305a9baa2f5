"""Typed wrappers around what Slack sends, and the context a handler works with.

Domain and handler code never digs through raw payload dicts: a `SlackRequest` says who acted,
where, and how to answer them; `ViewValues` reads a modal's state; `Ctx` carries the services, the
acting member and the one right way to reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal, ParamSpec

from sqlmodel import Session

from core.authz import Actor
from core.errors import UserError
from core.grammar import Kind
from core.text import from_slack
from handlers.kit.ack import PromptAck
from views.blocks import section

if TYPE_CHECKING:
    from jobs.runtime import Services

log = logging.getLogger("crewcall")

RequestKind = Literal["command", "action", "view", "event", "job"]


@dataclass(frozen=True)
class SlackRequest:
    kind: RequestKind
    user_id: str
    source: str
    channel_id: str | None = None
    trigger_id: str | None = None
    response_url: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    view_id: str | None = None
    in_home: bool = False
    private_metadata: str = ""
    text: str = ""
    value: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_command(cls, body: dict[str, Any], subcommand: str = "") -> SlackRequest:
        name = body.get("command", "")
        return cls(
            kind="command",
            user_id=body["user_id"],
            source=f"{name} {subcommand}".strip(),
            channel_id=body.get("channel_id"),
            trigger_id=body.get("trigger_id"),
            response_url=body.get("response_url"),
            text=body.get("text", ""),
        )

    @classmethod
    def from_action(cls, body: dict[str, Any]) -> SlackRequest:
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        view = body.get("view") or {}
        message = body.get("message") or {}
        return cls(
            kind="action",
            user_id=body["user"]["id"],
            source=f"button {action.get('action_id', '')}",
            channel_id=(body.get("channel") or {}).get("id") or container.get("channel_id"),
            trigger_id=body.get("trigger_id"),
            response_url=body.get("response_url"),
            message_ts=container.get("message_ts") or message.get("ts"),
            thread_ts=message.get("thread_ts"),
            view_id=view.get("id"),
            in_home=view.get("type") == "home",
            private_metadata=view.get("private_metadata", ""),
            value=action.get("value") or (action.get("selected_option") or {}).get("value"),
            metadata=_view_metadata(view.get("private_metadata", "")),
        )

    @classmethod
    def from_view(cls, body: dict[str, Any]) -> SlackRequest:
        view = body.get("view") or {}
        meta = _view_metadata(view.get("private_metadata", ""))
        return cls(
            kind="view",
            user_id=body["user"]["id"],
            source=f"modal {view.get('callback_id', '')}",
            # Never a response_url from private_metadata: the submitter could have put any URL there.
            channel_id=meta.get("channel_id"),
            view_id=view.get("id"),
            private_metadata=view.get("private_metadata", ""),
            metadata=meta,
        )

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> SlackRequest:
        user = event.get("user")
        return cls(
            kind="event",
            user_id=user["id"] if isinstance(user, dict) else (user or ""),
            source=f"event {event.get('type', '')}",
            channel_id=event.get("channel"),
            message_ts=event.get("ts"),
            thread_ts=event.get("thread_ts") or event.get("ts"),
            text=event.get("text", ""),
        )


def _view_metadata(raw: str) -> dict[str, Any]:
    """Our modals carry JSON private_metadata (origin channel, record ids); anything else is ignored."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class FieldErrors(Exception):
    """Keep a modal open and show these messages under its blocks: {block_id: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ViewValues:
    """A modal's submitted state, read by block_id (each input block holds one element)."""

    def __init__(self, state_values: dict[str, dict[str, Any]]) -> None:
        self._values = state_values or {}

    def _element(self, block_id: str) -> dict[str, Any]:
        block = self._values.get(block_id) or {}
        return next(iter(block.values()), {}) if block else {}

    def text(self, block_id: str) -> str:
        return (self._element(block_id).get("value") or "").strip()

    def selected(self, block_id: str) -> str | None:
        option = self._element(block_id).get("selected_option")
        return option.get("value") if option else None

    def selected_many(self, block_id: str) -> list[str]:
        element = self._element(block_id)
        return [o["value"] for o in element.get("selected_options") or []]

    def user(self, block_id: str) -> str | None:
        return self._element(block_id).get("selected_user")

    def users(self, block_id: str) -> list[str]:
        return list(self._element(block_id).get("selected_users") or [])

    def channel(self, block_id: str) -> str | None:
        element = self._element(block_id)
        return element.get("selected_conversation") or element.get("selected_channel")

    def channels(self, block_id: str) -> list[str]:
        element = self._element(block_id)
        return list(element.get("selected_conversations") or element.get("selected_channels") or [])

    def date(self, block_id: str) -> date | None:
        raw = self._element(block_id).get("selected_date")
        return date.fromisoformat(raw) if raw else None

    def timestamp(self, block_id: str) -> datetime | None:
        raw = self._element(block_id).get("selected_date_time")
        return datetime.fromtimestamp(int(raw), UTC) if raw else None

    def form(self) -> Form:
        """Read the fields through the command grammar, collecting every problem before answering."""
        return Form(self)


P = ParamSpec("P")


class Form:
    """A modal's fields parsed one by one; each problem is kept under its block, and `done()`
    keeps the modal open showing all of them at once (the first problem of a field is the one shown).

        form = values.form()
        rate = form.parse("rate", RATE)                       # None when missing or invalid
        skill = form.parse("skill", SKILL, required=False)
        if not values.channel("channel"):
            form.fail("channel", "Pick the channel for the card.")
        form.done()                                           # raises FieldErrors if any
    """

    def __init__(self, values: ViewValues) -> None:
        self.values = values
        self.errors: dict[str, str] = {}

    def parse(self, block_id: str, kind: Kind, required: bool = True) -> Any:
        """The text field `block_id` through `kind`; empty is "Required." unless it is optional."""
        raw = self.values.text(block_id)
        if not raw:
            if required:
                self.fail(block_id, "Required.")
            return None
        return self.check(block_id, kind.parse, raw)

    def check(self, block_id: str, rule: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> Any:
        """`rule(*args)`, or None with its UserError's message kept under `block_id` (as plain text:
        Slack shows a field error as typed, so the message's escapes and markup are read out)."""
        try:
            return rule(*args, **kwargs)
        except UserError as e:
            self.fail(block_id, from_slack(e.message))
            return None

    def fail(self, block_id: str, message: str) -> None:
        self.errors.setdefault(block_id, message)

    def done(self) -> None:
        if self.errors:
            raise FieldErrors(self.errors)


class Ctx:
    """What a handler gets: the services, who acted, and how to answer them."""

    def __init__(
        self,
        services: Services,
        request: SlackRequest,
        actor: Actor,
        reading: tuple[Session, ExitStack] | None = None,
        held: PromptAck | None = None,
    ) -> None:
        self.services = services
        self.request = request
        self.actor = actor
        # The read transaction the actor was loaded in, still open, for the first `read()`.
        self._reading = reading
        # A slash command's acknowledgement, held for its first reply (handlers.kit.ack).
        self._held = held

    @property
    def now(self) -> datetime:
        return self.services.clock.now()

    @property
    def source(self) -> str:
        return self.request.source

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that only reads (lists, reports): it never waits for a writer. The first
        one of a request continues the transaction its actor was read in (begun microseconds ago)."""
        reading, self._reading = self._reading, None
        if reading is None:
            with self.services.db.read() as session:
                yield session
            return
        session, transaction = reading
        with transaction:
            yield session

    def release(self) -> None:
        """End the actor's read transaction if no `read()` took it: before a write, and before any
        Web API call (`core.slack.closing_before_slack`), so no transaction stays open meanwhile."""
        reading, self._reading = self._reading, None
        if reading is not None:
            reading[1].close()

    def before_slack(self) -> None:
        """Before this request's first long wait outside the process (a Web API call, a report:
        `core.slack.closing_before_slack`): Slack has the acknowledgement first, and no transaction
        stays open while Slack, or the report, is waited on."""
        if self._held is not None:
            self._held()
        self.release()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that changes something, committed at the end of the block."""
        self.release()
        with self.services.db.write() as session:
            yield session

    def reply(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Answer the actor privately, where they acted: in a command's acknowledgement while it is
        held, through the response_url, an ephemeral in the channel, a notice modal from the Home
        tab, or else a DM."""
        if self._held is not None and self._held.answer(text, blocks):
            return
        slack = self.services.slack
        req = self.request
        if req.response_url and slack.respond(req.response_url, text, blocks):
            return
        if req.in_home and req.trigger_id and slack.open_view(req.trigger_id, notice_modal(text, blocks)):
            return
        in_channel = req.channel_id and not req.channel_id.startswith("D")
        if in_channel and slack.ephemeral(req.channel_id or "", req.user_id, text, blocks):
            return
        slack.dm(req.user_id, text, blocks, what="reply")

    def dm(
        self, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None, what: str = "DM"
    ) -> None:
        self.services.slack.dm(user_id, text, blocks, what=what)

    def later(self, delay: float, work: Callable[[], None]) -> None:
        """Run `work` after `delay` seconds on the Slack gateway's retry thread, not on a listener
        (e.g. a post Slack rate-limited); a UserError it raises is told to the member."""

        def run() -> None:
            try:
                work()
            except UserError as e:
                self.reply(f":warning: {e.message}")

        self.services.slack.later(delay, run)

    def open_modal(self, view: dict[str, Any]) -> None:
        if not self.request.trigger_id or not self.services.slack.open_view(self.request.trigger_id, view):
            self.reply("I couldn't open the form. Please try again in a moment.")

    def origin_metadata(self, **extra: Any) -> str:
        """private_metadata for a modal opened from here, so its submission can answer in the same place."""
        meta = {"channel_id": self.request.channel_id, **extra}
        return json.dumps({k: v for k, v in meta.items() if v is not None})


def notice_modal(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "notice",
        "title": {"type": "plain_text", "text": "crewcall"},
        "close": {"type": "plain_text", "text": "OK"},
        "blocks": blocks or [section(text)],
    }
