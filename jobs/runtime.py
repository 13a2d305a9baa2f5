"""The services of the running bot, for scheduled jobs: the job store keeps only a function's name
and plain arguments, so a job looks up the database, Slack and the clock here when it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.services import Services

_current: Services | None = None


def install(services: Services) -> None:
    global _current
    _current = services


def uninstall(services: Services) -> None:
    global _current
    if _current is services:
        _current = None


def services() -> Services:
    if _current is None:
        raise RuntimeError("no running crewcall app: a job ran outside the bot")
    return _current
