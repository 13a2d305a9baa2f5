"""Bolt listeners, one module per domain, each exposing `register(app)`.

Handlers stay thin: they parse (through the command grammar), authorize (declared with each
command, button and modal), call the domain, and render with `views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers import announcements, crew, home, hours, policy, referrals, shifts, tasks

if TYPE_CHECKING:
    from core.app import CrewApp

MODULES = [home, crew, tasks, shifts, hours, announcements, policy, referrals]


def register_all(app: CrewApp) -> None:
    for module in MODULES:
        module.register(app)
