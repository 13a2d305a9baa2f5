"""In-process domain events, so one domain can react to another without importing it.

    services.events.on("hours.recorded", handler)        # handler(user_id=…)
    services.events.emit("hours.recorded", user_id="U1")  # after the change is committed

Emit only after the transaction that made the change has committed; a failing subscriber is logged
and does not stop the others or the emitter.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("crewcall.events")

Subscriber = Callable[..., None]

# The events crewcall emits, and what they carry.
HOURS_RECORDED = "hours.recorded"  # user_id: a time entry of this member was closed
WORK_APPROVED = "work.approved"  # user_id, task_id: a lead approved this member's work on a task
ANNOUNCEMENT_QUEUED = "announcement.queued"  # announcement_id: due now; its sender should start it
# The app's background work is stopping (no payload): a feature that started workers in its
# `start(services)` stops them on this, so a restarted app in the same process starts clean.
APP_STOPPING = "app.stopping"


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)

    def on(self, name: str, subscriber: Subscriber) -> None:
        self._subscribers[name].append(subscriber)

    def emit(self, name: str, **payload: Any) -> None:
        for subscriber in list(self._subscribers.get(name, ())):
            try:
                subscriber(**payload)
            except Exception:
                log.exception("subscriber %s of %s failed", getattr(subscriber, "__name__", "?"), name)
