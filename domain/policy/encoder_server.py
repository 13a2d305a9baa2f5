"""The shared policy encoder process: ``python -m domain.policy.encoder_server --cache-dir DIR``.

Started by a bot process's :class:`~domain.policy.shared_encoder.SharedEncoder` when nothing
listens on the cache directory's encoder socket (see that module for the files and the protocol).
It loads the model once, answers every bot process of the host, and exits after ``--idle-exit``
seconds without a request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from domain.policy.embedding import Encoder, load_encoder
from domain.policy.shared_encoder import (
    FAILED,
    HEADER,
    REQUEST_TIMEOUT_S,
    START_TIMEOUT_S,
    encoder_paths,
    lock_file,
    recv_exactly,
)

log = logging.getLogger(__name__)


class _Activity:
    """Requests under way and when the last one ended: the encoder exits when idle long enough."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._last = time.monotonic()

    def begin(self) -> None:
        with self._lock:
            self._active += 1

    def end(self) -> None:
        with self._lock:
            self._active -= 1
            self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._last


def _handle(encoder: Encoder, conn: socket.socket, activity: _Activity) -> None:
    """Answer one request; ``activity.begin()`` was called by the accepting thread."""
    try:
        with conn:
            conn.settimeout(REQUEST_TIMEOUT_S)
            try:
                header = recv_exactly(conn, HEADER.size)
                if header is None:
                    return  # a client checking that the encoder listens
                body = recv_exactly(conn, HEADER.unpack(header)[0])
                if body is None:
                    return
                request = json.loads(body)
                texts, batch_size = request["texts"], int(request["batch_size"])
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise ValueError("texts must be a list of strings")
                vectors = encoder.encode(texts, batch_size=batch_size)
                conn.sendall(HEADER.pack(len(texts)) + vectors.astype("<f4", copy=False).tobytes())
            except Exception:
                log.exception("a request failed")
                with contextlib.suppress(OSError):
                    conn.sendall(HEADER.pack(FAILED))
    finally:
        activity.end()


def serve(cache_dir: Path, socket_path: Path, pid_path: Path, idle_exit_s: float) -> int:
    """Load the encoder, listen on ``socket_path``, answer until idle for ``idle_exit_s``. 0 when
    done (or when another encoder holds ``pid_path``), 1 when the model can't be loaded."""
    with open(pid_path, "a+") as held:
        # the lock is held for this process's whole life; an encoder idling out releases it soon
        if not lock_file(held, time.monotonic() + START_TIMEOUT_S):
            log.info("another encoder serves %s", socket_path)
            return 0
        encoder = load_encoder(cache_dir)
        if encoder is None:
            return 1
        encoder.encode(["warm up"])  # the first inference allocates; no question should wait for it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = socket_path.with_name(f"{socket_path.name}.{os.getpid()}")
        staging.unlink(missing_ok=True)
        listener.bind(str(staging))
        listener.listen(128)
        os.replace(staging, socket_path)  # atomically replaces a dead encoder's socket
        listening = os.stat(socket_path).st_ino
        held.seek(0)
        held.truncate()
        held.write(f"{os.getpid()}\n")
        held.flush()
        log.info(
            "pid %d serves %s (%s), exits after %.0f s idle",
            os.getpid(),
            socket_path,
            encoder.runtime,
            idle_exit_s,
        )
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())  # stop as when idle: the socket goes
        activity = _Activity()
        listener.settimeout(min(1.0, idle_exit_s / 4))
        with listener:
            while activity.idle_for() < idle_exit_s and not stopping.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                activity.begin()  # here, not in the thread: the idle check below must see it
                threading.Thread(target=_handle, args=(encoder, conn, activity), daemon=True).start()
            # a client arriving now finds no socket (or a reset connection) and starts a new encoder
            try:
                if os.stat(socket_path).st_ino == listening:
                    socket_path.unlink()
            except FileNotFoundError:
                pass
        # Said before the pid file empties: whoever sees it empty (running_pid) finds this in the log.
        if stopping.is_set():
            log.info("pid %d stops (SIGTERM)", os.getpid())
        else:
            log.info("pid %d exits after %.0f s without a request", os.getpid(), idle_exit_s)
        held.seek(0)
        held.truncate()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="The shared policy encoder (started by the bot on demand).")
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--socket", type=Path, help="default: the cache directory's (see shared_encoder)")
    parser.add_argument("--pid-file", type=Path, help="default: the cache directory's")
    parser.add_argument("--idle-exit", type=float, default=600.0)
    args = parser.parse_args()
    paths = encoder_paths(args.cache_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s policy-encoder %(message)s")
    return serve(args.cache_dir, args.socket or paths.socket, args.pid_file or paths.pid, args.idle_exit)


if __name__ == "__main__":
    sys.exit(main())
