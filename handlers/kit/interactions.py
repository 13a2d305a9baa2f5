"""Buttons, modals and events: declared with the role they need, dispatched through the same
authorize-ack-run path as slash commands (`handlers.kit.commands.run_handler`).

    @button(app, "task_claim")
    def claim(ctx: Ctx, value: str) -> None: ...

    @modal(app, "task_new", role=Role.LEAD, action="post tasks")
    def submitted(ctx: Ctx, values: ViewValues) -> None:   # raise FieldErrors to keep it open
        ...

    @event(app, "team_join")
    def joined(ctx: Ctx, event: dict) -> None: ...

A button's value is read with the feature's `ButtonReader`, so a stale or forged one is answered
"out of date" with what to type instead, never with a crash.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from core.authz import Actor, Role
from core.errors import UsageError, UserError
from core.grammar import Kind, integer
from core.slack import answering
from handlers.kit.commands import run_handler
from handlers.kit.context import Ctx, FieldErrors, SlackRequest, ViewValues

if TYPE_CHECKING:
    from handlers.kit.app import CrewApp

log = logging.getLogger("crewcall.interactions")


class StaleButton(UserError):
    """A button whose value its handler cannot read: left on an old message, or forged. Nothing ran."""

    def __init__(self, hint: str) -> None:
        super().__init__(f"That button is out of date. {hint}")


_MEMBER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")


def _member_id(token: str) -> str:
    if not _MEMBER_ID.match(token):
        raise UsageError(f"`{token}` is not a member ID.")
    return token


# Parts our views put in button values beside record IDs (`grammar.record_id`) and choices.
MEMBER_ID = Kind("member ID", _member_id)
OFFSET = integer(0, 1_000_000_000, "offset")


@dataclass(frozen=True)
class ButtonReader:
    """Reads a feature's button values: parts joined by `:`, each parsed by a grammar Kind. A value
    that does not fit raises StaleButton with `hint`, what to type instead.

        BUTTON = ButtonReader("Type `/tasks` to see the current tasks.")
        task_id = BUTTON.one(value, TASK)
        task_id, member = BUTTON.parts(value, TASK, MEMBER_ID)
    """

    hint: str

    def one(self, value: str, kind: Kind) -> Any:
        return self.parts(value, kind)[0]

    def parts(self, value: str, *kinds: Kind) -> tuple[Any, ...]:
        pieces = value.split(":", len(kinds) - 1)
        if len(pieces) != len(kinds):
            raise StaleButton(self.hint)
        try:
            return tuple(kind.parse(piece) for kind, piece in zip(kinds, pieces, strict=True))
        except UsageError:
            raise StaleButton(self.hint) from None


def button(
    app: CrewApp, action_id: str | re.Pattern[str], role: Role = Role.CONTRACTOR, action: str = "do that"
) -> Callable[[Callable[[Ctx, str], None]], Callable[[Ctx, str], None]]:
    def decorator(handler: Callable[[Ctx, str], None]) -> Callable[[Ctx, str], None]:
        def listener(ack: Callable[..., Any], body: dict[str, Any]) -> None:
            request = SlackRequest.from_action(body)
            run_handler(
                app.services, ack, request, role, action, lambda ctx: handler(ctx, request.value or ""), True
            )

        app.action(action_id)(listener)
        if isinstance(action_id, str):
            app.buttons[action_id] = listener
        return handler

    return decorator


def dispatch_click(app: CrewApp, body: dict[str, Any]) -> bool:
    """Run the button listener of a click acknowledged at the HTTP door, found by its action_id,
    without Bolt's dispatch: its middleware, its trying every listener's matchers in turn and
    building each listener's arguments cost ~12% of a click's CPU (bench/click_storm.py). The
    listener is the one Bolt would run (authorized in run_handler); its ack has nowhere to go.
    False when no button of ours has that action_id: Bolt's path then."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else None
    listener = app.buttons.get(str(action.get("action_id"))) if isinstance(action, dict) else None
    if listener is None:
        return False
    listener(_acked_at_door, body)
    return True


def _acked_at_door(*_args: Any, **_kwargs: Any) -> None:
    """Slack had the HTTP door's acknowledgement already."""


@dataclass(frozen=True)
class Then:
    """What a modal handler returns when work is left once its fields are valid: Slack gets
    `response` at once (None closes the modal), then `work` runs: posting the card, the DMs…
    Everything that calls the Web API belongs in `work`."""

    work: Callable[[], None]
    response: dict[str, Any] | None = None


def modal(
    app: CrewApp, callback_id: str, role: Role = Role.CONTRACTOR, action: str = "do that"
) -> Callable[[Callable[[Ctx, ViewValues], Any]], Callable[[Ctx, ViewValues], Any]]:
    """The handler runs before the ack, so it can keep the modal open with FieldErrors; it must not
    call the Web API (Slack waits 3 s, and a slow Slack would eat them). Return a dict to ack with
    (e.g. {"response_action": "update", "view": …}), None to close the modal, or `Then(work)` to
    close it and then do the work (a UserError from the work is told to the member privately)."""

    def decorator(handler: Callable[[Ctx, ViewValues], Any]) -> Callable[[Ctx, ViewValues], Any]:
        def listener(ack: Ack, body: dict[str, Any]) -> None:
            request = SlackRequest.from_view(body)
            values = ViewValues(((body.get("view") or {}).get("state") or {}).get("values") or {})
            acked = False

            def ack_once(**kwargs: Any) -> None:
                nonlocal acked
                if not acked:
                    acked = True
                    ack(**kwargs)

            def run(ctx: Ctx) -> None:
                try:
                    result = handler(ctx, values)
                except FieldErrors as e:
                    ack_once(response_action="errors", errors=e.errors)
                    return
                if isinstance(result, Then):
                    ack_once(**(result.response or {}))
                    result.work()
                    return
                ack_once(**(result or {}))

            run_handler(app.services, ack_once, request, role, action, run, ack_first=False)
            ack_once()

        app.view(callback_id)(listener)
        app.forms.add(callback_id)
        return handler

    return decorator


def event(app: CrewApp, event_type: str) -> Callable[[Callable[[Ctx, dict[str, Any]], None]], Any]:
    """Events have no role: anyone can cause them. The handler gets the event's own dict.
    Several domains may handle the same event type; `dispatch_event` hands each event to all."""

    def decorator(handler: Callable[[Ctx, dict[str, Any]], None]) -> Callable[[Ctx, dict[str, Any]], None]:
        app.event_handlers.setdefault(event_type, []).append(handler)
        return handler

    return decorator


def dispatch_event(app: CrewApp, event: dict[str, Any]) -> None:
    """Run every handler of this event's type, each isolated from the others' failures. Events
    nobody handles end here too: they are acknowledged (a 404 would make Slack retry them)."""
    handlers = app.event_handlers.get(event.get("type", ""), [])
    if not handlers:
        return
    request = SlackRequest.from_event(event)
    ctx = Ctx(app.services, request, Actor(request.user_id))
    for handler in list(handlers):
        try:
            with answering():
                handler(ctx, event)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("event handler %s for %s failed (ref %s)", handler.__name__, event.get("type"), ref)
