"""Several real bot processes (`sandbox.bot_process.BotProcess`) on one PostgreSQL database and one
FakeSlack, each on its own port, as behind a load balancer: for tests and benches of scale-out.

    with FakeSlack() as fake, Cluster(fake, database_url, processes=3) as cluster:
        cluster.driver(i).click(...)          # spread requests across the processes yourself
        leader = cluster.leader()              # the process running the scheduled jobs
        leader.kill()                          # SIGKILL
        new, seconds = cluster.wait_leader(exclude=leader)
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import psycopg
from sqlalchemy.engine import make_url

from jobs.leadership import APPLICATION_NAME, LEADER_QUERY, LOCK_KEY, conninfo
from sandbox.bot_process import BotProcess
from sandbox.driver import SlackDriver
from sandbox.fake_slack import FakeSlack


class Cluster:
    def __init__(
        self,
        fake: FakeSlack,
        database_url: str,
        processes: int = 3,
        env: dict[str, str] | None = None,
        admins: tuple[str, ...] = ("UADMIN",),
    ) -> None:
        if make_url(database_url).get_backend_name() != "postgresql":
            raise ValueError("several bot processes need PostgreSQL (SQLite: one process)")
        self.database_url = database_url
        self.bots = [BotProcess(fake, database_url, env=env, admins=admins) for _ in range(processes)]

    def start(self, timeout: float = 60.0) -> Cluster:
        """The first process migrates the database; the others then start side by side."""
        self.bots[0].start(timeout)
        errors: list[BaseException] = []

        def start(bot: BotProcess) -> None:
            try:
                bot.start(timeout)
            except BaseException as e:  # reported below, from the caller's thread
                errors.append(e)

        threads = [threading.Thread(target=start, args=(bot,)) for bot in self.bots[1:]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def stop(self) -> None:
        for bot in self.bots:
            bot.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def driver(self, i: int) -> SlackDriver:
        """The signed-request driver of process `i % processes` (round-robin spreading)."""
        return self.bots[i % len(self.bots)].driver

    def alive(self) -> list[BotProcess]:
        return [b for b in self.bots if b.proc is not None and b.proc.poll() is None]

    def leader(self) -> BotProcess | None:
        """The process whose session holds the scheduler's lock, as PostgreSQL sees it now."""
        url = make_url(self.database_url)
        try:
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                row = conn.execute(LEADER_QUERY, (LOCK_KEY,)).fetchone()  # type: ignore[arg-type]
        except psycopg.OperationalError:  # a shared server refusing a connection for a moment
            return None
        if not row or not str(row[0]).startswith(APPLICATION_NAME):
            return None
        pid = int(str(row[0]).rsplit(" ", 1)[1])
        return next((b for b in self.alive() if b.pid == pid), None)

    def wait_leader(
        self, exclude: BotProcess | None = None, timeout: float = 60.0
    ) -> tuple[BotProcess, float]:
        """The leader (other than `exclude`) once there is one, and the seconds it took to appear."""
        began = time.monotonic()
        while True:
            leader = self.leader()
            if leader is not None and leader is not exclude:
                return leader, time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"no scheduler leader among the processes after {timeout:.0f} s")
            time.sleep(0.1)
