"""The App Home tab: one section per domain, each drawn by the domain's own provider.

A domain registers `app.home.section("tasks", "Tasks", order=20)(provider)`; the provider gets the
services, the actor and a read session, and returns blocks; sections are drawn in `order`, and a
section that fails shows a short notice instead of blanking the tab. Every section reads in the same
read-only transaction (one snapshot, no write lock). A failed statement aborts the transaction on
PostgreSQL, so after a section fails the transaction is rolled back and the sections after it read
in a new one: no savepoint per section (two more statements each, round trips on PostgreSQL, on
every Home) for what only a failure needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from core.authz import Actor
from views.blocks import Block, context, divider, fit_view, header, section

if TYPE_CHECKING:
    from jobs.runtime import Services

log = logging.getLogger("crewcall.home")

Provider = Callable[["Services", Actor, Session], list[Block]]


@dataclass
class HomeSection:
    key: str
    title: str
    order: int
    provider: Provider


class HomeTab:
    def __init__(self) -> None:
        self._sections: dict[str, HomeSection] = {}

    def section(self, key: str, title: str, order: int) -> Callable[[Provider], Provider]:
        def decorator(provider: Provider) -> Provider:
            self._sections[key] = HomeSection(key, title, order, provider)
            return provider

        return decorator

    @property
    def keys(self) -> list[str]:
        return [s.key for s in sorted(self._sections.values(), key=lambda s: s.order)]

    def render(self, services: Services, actor: Actor) -> dict[str, Any]:
        blocks: list[Block] = []
        with services.db.read() as session:
            for home_section in sorted(self._sections.values(), key=lambda s: s.order):
                blocks += [header(home_section.title)]
                blocks += self._drawn(home_section, services, actor, session)
                blocks.append(divider())
        return {"type": "home", "callback_id": "home", "blocks": fit_view(blocks or [section("Welcome!")])}

    @staticmethod
    def _drawn(home_section: HomeSection, services: Services, actor: Actor, session: Session) -> list[Block]:
        try:
            return home_section.provider(services, actor, session)
        except Exception:
            # One broken section must not blank the whole tab.
            log.exception("home section %s failed for %s", home_section.key, actor.user_id)
            session.rollback()  # the next section's statement begins a new read transaction
            return [context(":warning: This section could not be loaded right now.")]

    def publish(self, services: Services, user_id: str, actor: Actor | None = None) -> None:
        """Render and publish `user_id`'s Home tab (`actor`: them, when the caller has loaded them)."""
        actor = actor or services.directory.actor(user_id)
        services.slack.publish_home(user_id, self.render(services, actor))
