"""Card redraws that coalesce: a message that can change in bursts (a task's card under a storm of
claims, a shift card, an announcement's status card) is redrawn one `chat.update` at a time, and
the changes that arrive while one is in flight cost a single further redraw, which reads the latest
state. So the last card shown is never older than the last change, and a storm of N changes costs
far fewer than N Web API calls.

Memory stays bounded: a card has an entry only while a redraw of it is in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable


class Redraws:
    def __init__(self) -> None:
        # card key -> True when another change arrived while its redraw was in flight
        self._in_flight: dict[Hashable, bool] = {}
        self._lock = threading.Lock()

    def request(self, key: Hashable, draw: Callable[[], None]) -> None:
        """Draw the card now, or, when a redraw of it is already running, leave one more to it."""
        with self._lock:
            if key in self._in_flight:
                self._in_flight[key] = True
                return
            self._in_flight[key] = False
        try:
            while True:
                draw()
                with self._lock:
                    if not self._in_flight[key]:
                        return
                    self._in_flight[key] = False
        finally:
            with self._lock:
                self._in_flight.pop(key, None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)
