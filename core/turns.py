"""On SQLite, requests take turns at the interpreter: one runs its Python at a time.

Why: the sqlite3 module lets go of the GIL around every statement, and a bot has dozens of request
threads (waitress's, the listeners', the clicks'). With several of them runnable, each let-go hands
the GIL to another thread and back: a slash command cost ~115 context switches, and the kernel's
switching was about half of the bot's CPU (bench/kernel_share.py; BENCHMARKS.md).
A request holding the turn keeps the GIL through its statements, so it runs its store work and
rendering in one go; the others wait on the turn, not on the GIL.

A request gives its turn up before it waits on anything outside the process: before it waits on
Slack or on a report's worker (`core.slack.before_waiting` calls `give_up`), and while the policy
encoder embeds its question (`stepping_out`), so a slow Slack never holds up the others. Nor can a
long request: a request waits at most `WAIT` for its turn, then runs beside the holder as it would
without turns (turns only make things cheaper; nothing relies on them for correctness).

On PostgreSQL every statement waits on the network, so requests there run side by side: no turns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

#: The longest a request waits for its turn before it runs anyway (a turn normally lasts ~2 ms).
WAIT = 0.05

_thread = threading.local()


class Turns:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._taken = False
        # Handed over in order: a turn given up goes straight to the request that waited longest
        # (a Semaphore let newcomers barge past woken waiters, who then waited out WAIT).
        self._waiting: deque[threading.Lock] = deque()

    @contextmanager
    def taken(self) -> Iterator[None]:
        """This thread's work in the block runs in its turn (until it gives it up)."""
        if not self.enabled or getattr(_thread, "turn", None) is not None:
            yield
            return
        if self._take():
            _thread.turn = self
        try:
            yield
        finally:
            give_up()

    def _take(self) -> bool:
        with self._lock:
            if not self._taken:
                self._taken = True
                return True
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append(handed)
        if handed.acquire(timeout=WAIT):
            return True
        with self._lock:
            if handed in self._waiting:  # still waiting: go without a turn
                self._waiting.remove(handed)
                return False
        return True  # handed over just as the wait ended

    def _hand_over(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._taken = False


def give_up() -> None:
    """Let the next request run: this thread is about to wait on something outside the process."""
    turns: Turns | None = getattr(_thread, "turn", None)
    if turns is not None:
        _thread.turn = None
        turns._hand_over()


@contextmanager
def stepping_out() -> Iterator[None]:
    """Without the turn for the block's wait (e.g. the policy encoder); taken again after it."""
    turns: Turns | None = getattr(_thread, "turn", None)
    if turns is None:
        yield
        return
    give_up()
    try:
        yield
    finally:
        if turns._take():
            _thread.turn = turns
