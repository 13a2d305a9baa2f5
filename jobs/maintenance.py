"""Housekeeping jobs of the foundation."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import col, delete

from db.models import ProcessedEvent
from jobs import runtime
from jobs.runtime import Services

log = logging.getLogger("crewcall.jobs")

# Slack retries a delivery for at most about an hour; a week of ids is plenty.
PROCESSED_EVENT_TTL = timedelta(days=7)


def prune_processed_events() -> None:
    services = runtime.services()
    cutoff = services.clock.now() - PROCESSED_EVENT_TTL
    with services.db.write() as session:
        session.exec(delete(ProcessedEvent).where(col(ProcessedEvent.received_at) < cutoff))  # type: ignore[call-overload]


def start(services: Services) -> None:
    services.scheduler.every("maintenance:prune-processed-events", prune_processed_events, timedelta(hours=6))
