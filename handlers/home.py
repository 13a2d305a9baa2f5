"""The App Home tab: published when a member opens it. Each domain fills its own section; until a
domain has one, its section says which command to use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.authz import Actor
from handlers.kit.context import Ctx
from handlers.kit.interactions import event
from views.blocks import Block, section

if TYPE_CHECKING:
    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

_PLACEHOLDERS = [
    ("tasks", "Tasks", 20, "Find and claim paid tasks with `/tasks`."),
    ("shifts", "Shifts", 30, "See and join review shifts with `/shifts`."),
    ("hours", "Hours", 40, "Clock in and out with `/hours in` and `/hours out`."),
    ("policy", "Handbook", 60, "Ask any policy question with `/policy your question`."),
    ("referrals", "Referrals", 70, "Refer an expert with `/refer their@email.com`: $250 when they're hired."),
]


def register(app: CrewApp) -> None:
    for key, title, order, hint in _PLACEHOLDERS:
        app.home.section(key, title, order)(_placeholder(hint))

    @event(app, "app_home_opened")
    def opened(ctx: Ctx, home_event: dict[str, Any]) -> None:
        if home_event.get("tab", "home") != "home" or not ctx.request.user_id:
            return
        directory = ctx.services.directory
        directory.refreshed(directory.actor(ctx.request.user_id))
        ctx.services.home.publish(ctx.services, ctx.request.user_id)


def _placeholder(hint: str) -> Any:
    def provider(services: Services, actor: Actor) -> list[Block]:
        return [section(hint)]

    return provider
