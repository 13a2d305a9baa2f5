"""One policy encoder per host, serving the embeddings of every bot process over a Unix socket.

The encoder (onnxruntime and all-MiniLM-L6-v2, see :mod:`domain.policy.embedding`) adds ~120 MB to
the process that loads it. With ``POLICY_ENCODER=shared`` no bot process loads it: the first one
that needs an embedding starts ``python -m domain.policy.encoder_server`` (detached, in a session of
its own, so it outlives a bot restart), and every bot process using the same ``POLICY_CACHE_DIR``
sends it texts and gets float32 vectors back. The same :class:`~domain.policy.embedding.Encoder`
embeds them the same way, so the vectors are bit-identical to in-process ones and the on-disk
vector cache is shared unchanged. The encoder exits after ``POLICY_ENCODER_IDLE_EXIT`` seconds
without a request; the next question starts it again.

In the cache directory, named by a fingerprint of the model and of this code (an upgrade starts a
new encoder beside the old one, which then idles out): ``encoder-<fp>.sock`` (the socket; under the
temp directory when that path is too long for a socket), ``encoder-<fp>.pid`` (locked by the serving
process for its whole life; holds its PID), ``encoder-<fp>.start`` (locked by the bot process
starting one, so several asking at once start one) and ``encoder-<fp>.log`` (its output).

Protocol, one request per connection: the client sends a 4-byte little-endian length and a JSON
array of texts; the server answers the number of rows (4 bytes, ``0xFFFFFFFF`` if it failed) and the
rows as little-endian float32. When the encoder can't be reached or started in time, :meth:`encode`
raises :class:`EncoderUnavailable`: the engine answers lexical-only, and the warning is logged once
per outage.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from domain.policy.embedding import BATCH_SIZE, DIMENSIONS, MODEL_ID, MODEL_PACKAGE, model_zip_path

log = logging.getLogger(__name__)

#: How long a bot process waits for an encoder it starts (a first start may build the ONNX graph).
START_TIMEOUT_S = 20.0
#: How long a request may take: this, plus a little per text.
REQUEST_TIMEOUT_S = 10.0
PER_TEXT_TIMEOUT_S = 0.05
#: Texts sent in one request (a handbook reload sends thousands, a question one).
TEXTS_PER_REQUEST = 64
#: After a start that failed, questions go lexical at once for this long before the next try.
RETRY_START_AFTER_S = 60.0
HEADER = struct.Struct("<I")
FAILED = 0xFFFFFFFF
#: Room left under the kernel's 108 bytes for the server's ``.<pid>`` staging name.
_MAX_SOCKET_PATH = 90
_ROOT = Path(__file__).resolve().parents[2]


class EncoderUnavailable(Exception):
    """The shared encoder could not be reached or started in time."""


class _NotServing(Exception):
    """Nothing listens on the socket (never started, exited, killed): worth starting one."""


@dataclass(frozen=True)
class EncoderPaths:
    socket: Path
    pid: Path
    start: Path
    log: Path


def _fingerprint() -> str:
    """Changes with the model package and with the code that embeds and serves."""
    digest = hashlib.sha256(MODEL_ID.encode())
    zip_path = model_zip_path()
    if zip_path is not None:
        stat = zip_path.stat()
        digest.update(f"{zip_path}\n{stat.st_size}\n{stat.st_mtime_ns}".encode())
    for name in ("embedding.py", "shared_encoder.py", "encoder_server.py"):
        source = Path(__file__).with_name(name)
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def encoder_paths(cache_dir: Path) -> EncoderPaths:
    """Where the shared encoder of ``cache_dir`` listens, locks and logs."""
    directory = Path(cache_dir).resolve()
    name = f"encoder-{_fingerprint()}"
    sock = directory / f"{name}.sock"
    if len(os.fsencode(sock)) > _MAX_SOCKET_PATH:
        sock = (
            Path(tempfile.gettempdir())
            / f"crewcall-{hashlib.sha256(os.fsencode(sock)).hexdigest()[:16]}.sock"
        )
    return EncoderPaths(
        socket=sock,
        pid=directory / f"{name}.pid",
        start=directory / f"{name}.start",
        log=directory / f"{name}.log",
    )


def recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    """``size`` bytes, or None if the peer closed the connection first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = conn.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buffer)


def lock_file(file: IO[str], deadline: float) -> bool:
    """Take the exclusive lock on ``file``, waiting until ``deadline`` (monotonic) at most."""
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


# ------------------------------------------------------------------------------------ the client
class SharedEncoder:
    """Text -> vectors from the host's shared encoder process, started on demand. Thread-safe."""

    runtime = "shared"

    def __init__(
        self, cache_dir: Path, *, idle_exit_s: float = 600.0, start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        self.cache_dir = Path(cache_dir).resolve()
        self.paths = encoder_paths(self.cache_dir)
        self.idle_exit_s = idle_exit_s
        self.start_timeout_s = start_timeout_s
        self._retry_start_at = 0.0
        self._failing = False

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Like :meth:`Encoder.encode` (the same vectors); raises :class:`EncoderUnavailable` when
        the encoder can't be reached or started in time. Texts go ``TEXTS_PER_REQUEST`` at a time:
        a whole handbook in one request had the encoder hold its texts and vectors twice over, 30 MB
        more at the peak of a 1,000-section reload."""
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        try:
            for first in range(0, len(texts), TEXTS_PER_REQUEST):
                part = list(texts[first : first + TEXTS_PER_REQUEST])
                vectors[first : first + len(part)] = self._encoded(part, batch_size)
        except EncoderUnavailable as exc:
            if not self._failing:
                self._failing = True
                log.warning("policy answers run lexical-only until the shared encoder answers: %s", exc)
            raise
        if self._failing:
            self._failing = False
            log.warning("the shared policy encoder answers again")
        return vectors

    def _encoded(self, texts: list[str], batch_size: int) -> np.ndarray:
        """One request's vectors, the encoder started first if none answers."""
        payload = json.dumps({"texts": texts, "batch_size": batch_size}).encode()
        try:
            return self._request(payload, len(texts))
        except _NotServing:
            try:
                self._start()
            except OSError as exc:  # the cache directory can't be written, no fork…
                raise EncoderUnavailable(f"cannot start it: {exc}") from exc
            try:
                return self._request(payload, len(texts))
            except _NotServing as exc:
                raise EncoderUnavailable(f"the encoder it started does not answer ({exc})") from exc

    def _request(self, payload: bytes, rows: int) -> np.ndarray:
        timeout = REQUEST_TIMEOUT_S + PER_TEXT_TIMEOUT_S * rows
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with conn:
            conn.settimeout(timeout)
            try:
                conn.connect(str(self.paths.socket))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise _NotServing(f"{self.paths.socket}: {exc.strerror}") from exc
            except OSError as exc:
                raise EncoderUnavailable(f"cannot connect to {self.paths.socket}: {exc}") from exc
            try:
                conn.sendall(HEADER.pack(len(payload)) + payload)
                header = recv_exactly(conn, HEADER.size)
                if header is None:
                    raise _NotServing("it closed the connection")
                (answered,) = HEADER.unpack(header)
                if answered == FAILED:
                    raise EncoderUnavailable(f"it failed to embed (see {self.paths.log})")
                if answered != rows:
                    raise EncoderUnavailable(f"it answered {answered} vectors for {rows} texts")
                data = recv_exactly(conn, rows * DIMENSIONS * 4)
                if data is None:
                    raise _NotServing("it closed the connection")
            except TimeoutError as exc:
                raise EncoderUnavailable(f"no answer within {timeout:.0f} s") from exc
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise _NotServing(str(exc)) from exc
            except OSError as exc:
                raise EncoderUnavailable(str(exc)) from exc
        return np.frombuffer(data, dtype="<f4").reshape(rows, DIMENSIONS).astype(np.float32)

    def _answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.paths.socket))
                return True
            except OSError:
                return False

    def _start(self) -> None:
        """Start the encoder unless another process is doing it or just did; wait until it listens."""
        now = time.monotonic()
        if now < self._retry_start_at:
            raise EncoderUnavailable(f"its last start failed; next try in {self._retry_start_at - now:.0f} s")
        deadline = now + self.start_timeout_s
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.paths.start, "a") as starting:  # closing it releases the lock
            if not lock_file(starting, deadline):
                raise EncoderUnavailable(
                    f"another process has been starting it for {self.start_timeout_s:.0f} s"
                )
            if self._answers():
                return  # the process that held the lock started it
            process = self._spawn()
            while not self._answers():
                if process.poll() is not None:
                    self._retry_start_at = time.monotonic() + RETRY_START_AFTER_S
                    raise EncoderUnavailable(
                        f"it exited with status {process.returncode} (see {self.paths.log})"
                    )
                if time.monotonic() >= deadline:
                    self._retry_start_at = time.monotonic() + RETRY_START_AFTER_S
                    raise EncoderUnavailable(f"it did not listen within {self.start_timeout_s:.0f} s")
                time.sleep(0.02)
        # reaps it when it exits (idle) while this process still runs; a zombie otherwise
        threading.Thread(target=process.wait, name="policy-encoder-reaper", daemon=True).start()
        log.info("started the shared policy encoder (pid %d) on %s", process.pid, self.paths.socket)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
        }
        command = [
            sys.executable,
            "-m",
            "domain.policy.encoder_server",
            "--cache-dir",
            str(self.cache_dir),
            # the paths this process connects to: a server of newer code (an upgrade on disk under a
            # running bot) would fingerprint other ones
            "--socket",
            str(self.paths.socket),
            "--pid-file",
            str(self.paths.pid),
            "--idle-exit",
            str(self.idle_exit_s),
        ]
        with open(self.paths.log, "ab") as output:
            return subprocess.Popen(
                command,
                cwd=_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the bot's process group: a Ctrl-C or restart of it spares this
            )


def shared_encoder(cache_dir: Path, idle_exit_s: float) -> SharedEncoder | None:
    """The client of the host's shared encoder; ``None`` (lexical-only) when the model isn't installed."""
    if model_zip_path() is None or importlib.util.find_spec("tokenizers") is None:
        log.warning(
            "policy answers run lexical-only: the %s model package or tokenizers is not installed",
            MODEL_PACKAGE,
        )
        return None
    return SharedEncoder(cache_dir, idle_exit_s=idle_exit_s)


def running_pid(cache_dir: Path) -> int | None:
    """The PID of the shared encoder serving ``cache_dir``, or None if none is (for benches and tests)."""
    paths = encoder_paths(cache_dir)
    try:
        with open(paths.pid) as held:
            try:
                fcntl.flock(held, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = held.read().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(held, fcntl.LOCK_UN)
            return None
    except FileNotFoundError:
        return None
