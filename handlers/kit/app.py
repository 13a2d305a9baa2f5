"""The Bolt App every listener module registers on, carrying crewcall's services."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from handlers.kit.commands import CommandSet
from jobs.home import HomeTab
from jobs.runtime import Services


class CrewApp(App):
    """Bolt's App, carrying our services, the Home tab and the slash commands it registered."""

    services: Services
    commands: CommandSet
    listener_pool: ThreadPoolExecutor
    event_handlers: dict[str, list[Callable[..., None]]]

    @property
    def home(self) -> HomeTab:
        return self.services.home
