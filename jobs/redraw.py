"""Card redraws that coalesce: a message that can change in bursts (a task's card under a storm of
claims, a shift card, an announcement's status card) is redrawn one `chat.update` at a time, and
the changes that arrive while one is in flight cost a single further redraw, which reads the latest
state. So a storm of N changes costs far fewer than N Web API calls.

Across processes too, the last card shown is never older than the last change: after each draw the
state is read again, and drawn again if it moved meanwhile. Another process's draw from an older
read may reach Slack after this one's; if so, it reached Slack before the re-read of the process
that sent it, which then sees the newer state and draws it.

Memory stays bounded: a card has an entry only while a redraw of it is in flight.

A redraw is a side effect of a change that has already happened (and been told to whoever made
it): when reading or drawing the card fails, the failure is logged and the card is drawn again at
its next change, while the caller goes on (a claim's winner still gets their DM, and nobody is told
"something went wrong" after their answer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from core.slack import SlackGateway

Card = TypeVar("Card")

log = logging.getLogger("crewcall.redraw")


@dataclass(frozen=True)
class InPlace:
    """A message to redraw with chat.update, as the database shows it now."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    what: str


class Redraws:
    def __init__(self) -> None:
        # card key -> True when another change arrived while its redraw was in flight
        self._in_flight: dict[Hashable, bool] = {}
        self._lock = threading.Lock()

    def request(
        self,
        key: Hashable,
        read: Callable[[], Card | None],
        show: Callable[[Card], object],
        recheck: bool = True,
    ) -> None:
        """Show the card as `read()` finds it now, or, when a redraw of it is already running,
        leave one more to it. `read()` returns None when there is no card to draw. With
        `recheck=False`, a card that is redrawn on a timer anyway is not read again after a draw."""
        with self._lock:
            if key in self._in_flight:
                self._in_flight[key] = True
                return
            self._in_flight[key] = False
        try:
            shown: Card | None = None
            while True:
                card = read()
                if card is not None and card != shown:
                    show(card)
                    shown = card
                    if recheck:
                        continue  # read again: did it move while it was being drawn?
                with self._lock:
                    if not self._in_flight[key]:
                        return
                    self._in_flight[key] = False
        except Exception:
            log.exception("redrawing card %s failed; it will be drawn at its next change", key)
        finally:
            with self._lock:
                self._in_flight.pop(key, None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def update(self, key: Hashable, slack: SlackGateway, read: Callable[[], InPlace | None]) -> None:
        """`request` for a message redrawn in place."""
        self.request(
            key,
            read,
            lambda card: slack.update(card.channel, card.ts, card.text, card.blocks, what=card.what),
        )
