"""The App Home tab: published when a member opens it. Each feature registers its own section
(`app.home.section`, see `jobs.home`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.kit.context import Ctx
from handlers.kit.interactions import event

if TYPE_CHECKING:
    from handlers.kit.app import CrewApp


def register(app: CrewApp) -> None:
    @event(app, "app_home_opened")
    def opened(ctx: Ctx, home_event: dict[str, Any]) -> None:
        if home_event.get("tab", "home") != "home" or not ctx.request.user_id:
            return
        directory = ctx.services.directory
        actor = directory.refreshed(*directory.acting(ctx.request.user_id))
        ctx.services.home.publish(ctx.services, ctx.request.user_id, actor)
