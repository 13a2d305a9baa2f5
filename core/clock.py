"""Time, injectable: the bot asks a Clock for "now" so tests can move time without sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """The real wall clock, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock(Clock):
    """A clock that only moves when told to. `on_change` callbacks (the scheduler's wakeup) run after
    every move so that jobs falling due at the new time run at once."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)).astimezone(UTC)
        self._lock = threading.Lock()
        self.on_change: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs an aware datetime")
        with self._lock:
            self._now = when.astimezone(UTC)
        for callback in list(self.on_change):
            callback()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.set(self.now() + (delta or timedelta(**kwargs)))
        return self.now()
