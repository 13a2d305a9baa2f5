"""Paced posting: spaces chat.postMessage calls so a burst of jobs (1,000 reminders due in the same
minute) stays inside Slack's limits instead of bouncing off 429s.

Slack allows about one message per second per channel and, per workspace, a budget of messages in
a sliding minute (SLACK_POSTS_PER_MIN, 600 by default). Waiting out a 429's Retry-After (whole
seconds, retried a few times by the WebClient, then given up) makes a burst late by tens of
seconds and can lose messages; pacing sends each message at the first moment the limits allow.

A post is counted from the moment its call *returned*: Slack received it no later than that, so
our window is never more generous than Slack's.

Everything the bot posts shares the one budget. Bulk posts (announcement fan-outs, which pace
themselves evenly on top of this) come last: a bulk post never takes a slot that a waiting
time-sensitive one (a reminder, a card, a start post) could use, so a reminder burst in the
middle of a broadcast goes out first and the broadcast resumes after it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.slack import SlackGateway
    from jobs.runtime import Services


@dataclass
class _Post:
    at: float  # monotonic; when the call returned once `done`
    done: bool = False


class Pacer:
    def __init__(self, per_minute: int, per_channel_per_sec: float = 1.0, scale: float = 1.0) -> None:
        """`per_minute` 0 turns pacing off. `scale` compresses time, for benches against a fake Slack
        whose limits are sped up the same way."""
        self.enabled = per_minute > 0
        self.budget = per_minute
        self.window = 60.0 / scale
        self.channel_gap = 1.0 / (per_channel_per_sec * scale)
        self._cond = threading.Condition()
        self._posts: deque[_Post] = deque()
        self._last: dict[str, _Post] = {}
        self._urgent_waiting = 0

    @contextmanager
    def slot(self, channel: str, bulk: bool = False, stop: threading.Event | None = None) -> Iterator[None]:
        """Wait until a post to `channel` is allowed, then hold the slot while the caller posts.
        A `bulk` post also waits while time-sensitive posts are waiting; once `stop` is set it
        stops waiting (a stopping sender finishes the message it has claimed)."""
        if not self.enabled:
            yield
            return
        post = self._acquire(channel, bulk, stop)
        try:
            yield
        finally:
            with self._cond:
                post.at, post.done = time.monotonic(), True
                self._cond.notify_all()

    def _acquire(self, channel: str, bulk: bool, stop: threading.Event | None) -> _Post:
        with self._cond:
            if not bulk:
                self._urgent_waiting += 1
            try:
                while True:
                    now = time.monotonic()
                    wait = self._wait_for(channel, now, bulk)
                    if wait <= 0 or (stop is not None and stop.is_set()):
                        post = _Post(at=now)
                        self._posts.append(post)
                        self._last[channel] = post
                        if len(self._last) > 4 * max(self.budget, 1):
                            self._forget_idle_channels(now)
                        return post
                    self._cond.wait(timeout=wait if stop is None else min(wait, 0.5))
            finally:
                if not bulk:
                    self._urgent_waiting -= 1
                    self._cond.notify_all()  # bulk posts may have been waiting on this one

    def _wait_for(self, channel: str, now: float, bulk: bool) -> float:
        """Seconds until a post to `channel` is allowed (0 or less: now). Called under the lock."""
        while self._posts and self._posts[0].done and self._posts[0].at <= now - self.window:
            self._posts.popleft()
        # A bulk post leaves a free slot for each time-sensitive post waiting.
        reserved = self._urgent_waiting if bulk else 0
        must_leave = len(self._posts) + reserved - self.budget + 1  # posts to leave the window first
        wait = 0.0
        if must_leave > len(self._posts):
            wait = self.window  # until the waiting urgent posts are through (they notify)
        elif must_leave > 0:
            freeing = self._posts[must_leave - 1]
            wait = freeing.at + self.window - now if freeing.done else self.window
        last = self._last.get(channel)
        if last is not None:
            # Until the previous post to this channel returns, we can't know when Slack saw it.
            wait = max(wait, last.at + self.channel_gap - now if last.done else self.channel_gap)
        return wait

    def _forget_idle_channels(self, now: float) -> None:
        idle = [c for c, p in self._last.items() if p.done and p.at <= now - self.channel_gap]
        for channel in idle:
            del self._last[channel]


_pacers: weakref.WeakKeyDictionary[SlackGateway, Pacer] = weakref.WeakKeyDictionary()
_pacers_lock = threading.Lock()


def pacer_for(services: Services) -> Pacer:
    """The pacer of this bot's Slack connection (one per workspace token)."""
    with _pacers_lock:
        pacer = _pacers.get(services.slack)
        if pacer is None:
            config = services.config
            pacer = Pacer(config.slack_posts_per_min, scale=config.slack_rate_scale)
            _pacers[services.slack] = pacer
        return pacer
