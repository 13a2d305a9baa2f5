"""Everything a handler or job needs, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock
from core.config import Config
from core.directory import Directory
from core.events import EventBus
from core.home import HomeTab
from core.slack import SlackGateway
from db.engine import Database
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
