"""Fair share: one member going as fast as they can must not slow the bot down for everyone else.

Each member may send MEMBER_COMMANDS_PER_MIN commands and clicks, and ask MEMBER_QUESTIONS_PER_MIN
handbook questions, in any sliding minute (read on the bot's clock). Beyond that, a request is
refused before it is authorized or touches the store: the member is told to slow down and when
to try again, and nothing changes. A refusal is said once per streak where saying it costs a
message (a click, a DM, a mention); a command's refusal rides on its acknowledgement or response_url,
so it is always said.

The counts live in the bot process: with several processes each allows its own share (the limits
are about protecting a process's listener threads and the workspace's posting budget).
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.clock import Clock

if TYPE_CHECKING:
    from core.slack import SlackGateway
    from jobs.runtime import Services

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Refusal:
    retry_at: datetime  # when the member's oldest counted request leaves the window
    first: bool  # the first refusal since they were last let through


class MemberLimit:
    """At most `per_minute` requests per member in any sliding minute."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[datetime]] = {}
        self._told: set[str] = set()

    def take(self, user_id: str) -> Refusal | None:
        """Count one request; a Refusal when the member is over their share (then it isn't counted)."""
        now = self.clock.now()
        with self._lock:
            seen = self._seen.setdefault(user_id, deque())
            while seen and seen[0] <= now - WINDOW:
                seen.popleft()
            if len(seen) < self.per_minute:
                seen.append(now)
                self._told.discard(user_id)
                return None
            first = user_id not in self._told
            self._told.add(user_id)
            if len(self._seen) > 10_000:
                self._forget_idle(now)
            return Refusal(retry_at=seen[0] + WINDOW, first=first)

    def _forget_idle(self, now: datetime) -> None:
        for user_id in [u for u, s in self._seen.items() if not s or s[-1] <= now - WINDOW]:
            del self._seen[user_id]


@dataclass
class Limits:
    commands: MemberLimit
    questions: MemberLimit


_limits: weakref.WeakKeyDictionary[SlackGateway, Limits] = weakref.WeakKeyDictionary()
_limits_lock = threading.Lock()


def limits_for(services: Services) -> Limits:
    """This app's per-member limits (one set per Slack connection, like the pacer)."""
    with _limits_lock:
        limits = _limits.get(services.slack)
        if limits is None:
            config = services.config
            limits = Limits(
                commands=MemberLimit(config.member_commands_per_min, services.clock),
                questions=MemberLimit(config.member_questions_per_min, services.clock),
            )
            _limits[services.slack] = limits
        return limits
