"""The main thread waiting for a stop signal (SIGTERM, SIGINT), in the processes that have nothing
else to do on it (Socket Mode, the sandbox).

Python runs a signal's handler on the main thread, when that thread next runs Python. The kernel
may deliver a process's signal to any of its threads; one delivered to another thread does not
interrupt the main thread's wait on a lock, so a wait without a timeout could miss a SIGTERM for
good. Waking regularly bounds how long the handler can be held back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: How long a signal's handler may wait for the main thread to run Python again.
WAKE_EVERY_S = 0.5


def setter(event: threading.Event) -> Callable[[], None]:
    """`event.set` for a signal handler, run on a new thread: the handler runs on the main thread,
    which may be holding the event's own lock inside `wait` when the signal lands, and set()
    would then wait on it forever."""
    return lambda: threading.Thread(target=event.set, name="stop-signal").start()


def wait_until_set(event: threading.Event) -> None:
    """Return once `event` is set, waking every WAKE_EVERY_S so a signal's handler gets to run."""
    while not event.wait(WAKE_EVERY_S):
        pass
