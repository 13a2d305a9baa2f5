"""The main thread waiting for a stop signal (core.stopping) gets it even when the kernel hands the
signal to another thread, which does not interrupt the main thread's wait."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WAITER = """
import signal, sys, threading
from core import stopping

done = threading.Event()
stop = stopping.setter(done)
signal.signal(signal.SIGTERM, lambda *_: stop())
# The signal is sent to this other thread: its C handler runs there, and only flags it for the
# main thread, which is waiting on a lock.
threading.Timer(0.5, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGTERM)).start()
{wait}
print("stopped", flush=True)
"""


def _run(wait: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """The waiter's outcome; None if it had not stopped after `timeout` seconds."""
    try:
        return subprocess.run(
            [sys.executable, "-c", _WAITER.format(wait=wait)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None


def test_a_signal_handled_on_another_thread_still_stops_the_waiting_main_thread() -> None:
    done = _run("stopping.wait_until_set(done)", timeout=30)
    assert done is not None and done.returncode == 0 and done.stdout == "stopped\n", done


def test_a_plain_wait_would_miss_it() -> None:
    """What the regular wake-up is for: without it the main thread never learns of the signal."""
    assert _run("done.wait()", timeout=5) is None, (
        "a plain wait was woken by a signal handled on another thread"
    )
