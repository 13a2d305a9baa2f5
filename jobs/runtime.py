"""The services of the running bot, built once per app, and where scheduled jobs find them: the job
store keeps only a function's name and plain arguments, so a job looks up the database, Slack and
the clock here when it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.clock import Clock
from core.config import Config
from core.events import EventBus
from core.slack import SlackGateway
from db.engine import Database
from jobs.directory import Directory
from jobs.fairness import ProcessWindows
from jobs.home import HomeTab
from jobs.scheduler import Scheduler


@dataclass
class Services:
    config: Config
    db: Database
    slack: SlackGateway
    clock: Clock
    scheduler: Scheduler
    directory: Directory
    home: HomeTab
    events: EventBus
    # the per-member request counts, on SQLite (jobs.fairness)
    windows: ProcessWindows = field(default_factory=ProcessWindows)


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
