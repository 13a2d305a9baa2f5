"""Which of several bot processes on one PostgreSQL database runs the scheduled work.

The leader holds a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its own,
opened here and never pooled: the lock lives exactly as long as that session. Standbys try for it
every `retry` seconds.

How long the lock outlives a dead leader, and why a leader cut off steps down before anyone takes
over:
* SIGKILL (or any exit): the kernel closes the socket, PostgreSQL's backend reads EOF at once and
  ends the session, freeing the lock; a standby takes it at its next try (within `retry`).
* The leader's host or network gone: nothing closes the socket, so PostgreSQL is told to probe it
  (server-side TCP keepalives, SERVER_SILENCE below): it drops the session after ~11 s of silence.
* The leader itself checks its connection every `heartbeat` seconds, and before handing out due
  jobs (`confirm`); a failed check, or no successful one for `LEASE` seconds (< the server's 11 s),
  and it steps down at once: `on_deposed` runs before PostgreSQL can have freed the lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import URL

log = logging.getLogger("crewcall.leadership")

LOCK_KEY = 7_315_002
APPLICATION_NAME = "crewcall-scheduler"  # the lock's session is named "crewcall-scheduler <pid>"
# Client side: a check on a silent connection fails within ~3 s instead of hanging.
CLIENT_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 3000,
    "connect_timeout": 5,
}
# Server side: PostgreSQL ends the session of a client silent for 5 + 3 × 2 = 11 s.
SERVER_SILENCE = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; "
    "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000"
)
LEASE = 4.0  # seconds a leader trusts its last good check: well under the server's 11 s


# The process (pid) whose session holds this database's lock, if any.
LEADER_QUERY = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def conninfo(url: URL) -> str:
    """libpq's form of a SQLAlchemy PostgreSQL URL (the driver name is SQLAlchemy's only)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Leadership:
    def __init__(
        self,
        url: URL,
        retry: float,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        heartbeat: float = 1.0,
    ) -> None:
        self._conninfo = conninfo(url)
        self.retry = retry
        self.heartbeat = min(heartbeat, retry)
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._conn: psycopg.Connection | None = None
        self._confirmed_at = 0.0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        """Try at once (so a lone process leads from its start), then keep trying or checking."""
        self._stop.clear()
        if self._try_lead():
            self._on_elected()
        self._thread = threading.Thread(target=self._loop, name="scheduler-leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop trying; a leader steps down and closes its session, which frees the lock at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry + LEASE + 1)
        self._step_down("stopping")

    def confirm(self) -> bool:
        """Still the leader? Asked before due jobs are handed out: the lock's session answers, or
        this process steps down (`on_deposed` runs on the caller's thread, so it must not wait
        for the caller)."""
        if self._conn is None:
            return False
        failure = self._check()
        if failure:
            self._step_down(failure)
        return not failure

    def _loop(self) -> None:
        while not self._stop.wait(self.heartbeat if self.is_leader else self.retry):
            try:
                if self._conn is None:
                    if self._try_lead():
                        self._on_elected()
                elif time.monotonic() - self._confirmed_at > LEASE:
                    self._step_down(f"no answer from its lock's session for {LEASE:.0f} s")
                elif failure := self._check():
                    self._step_down(failure)
            except Exception:
                log.exception("scheduler leadership check failed")

    def _try_lead(self) -> bool:
        try:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                # Who leads, for an operator (and the tests): pg_locks joined to pg_stat_activity.
                application_name=f"{APPLICATION_NAME} {os.getpid()}",
                **CLIENT_KEEPALIVES,  # type: ignore[arg-type]
            )
        except psycopg.Error as e:
            log.warning("could not reach PostgreSQL to stand for scheduler leadership: %s", e)
            return False
        try:
            conn.execute(SERVER_SILENCE)  # type: ignore[arg-type]
            # Advisory locks are cluster-wide: the key includes the database, so bots of different
            # databases on one server don't stand each other down.
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(current_database()))", (LOCK_KEY,)
            ).fetchone()
        except psycopg.Error as e:
            log.warning("could not stand for scheduler leadership: %s", e)
            conn.close()
            return False
        if not (row and row[0]):
            conn.close()
            return False
        with self._lock:
            self._conn = conn
            self._confirmed_at = time.monotonic()
        log.info("this process leads: it runs the scheduled jobs")
        return True

    def _check(self) -> str:
        """One round trip on the lock's session: "" if it answered, else what went wrong."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return "not the leader"
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as e:
                return f"its lock's session broke ({type(e).__name__}: {e})"
            self._confirmed_at = time.monotonic()
            return ""

    def _step_down(self, why: str) -> None:
        """Stop the leader's work first, then end the lock's session: nobody can take over while
        this process still runs jobs."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            self._on_deposed()
        finally:
            conn.close()
        log.log(
            logging.INFO if why == "stopping" else logging.WARNING, "scheduler leadership given up: %s", why
        )
