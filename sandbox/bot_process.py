"""`python bot.py` as a real, separate process, talking to a FakeSlack that runs in the caller's
process: for tests and benches that kill the bot for real (SIGKILL) and start it again on the
same database.

    with FakeSlack() as fake:
        bot = BotProcess(fake, database_url, env={"ANNOUNCE_RATE_PER_MIN": "6000"}).start()
        bot.driver.command("UADMIN", "/announce", "everyone hello")
        bot.kill()          # SIGKILL: no clean-up of any kind
        bot.start()         # same database, same fake Slack
        bot.stop()          # SIGTERM: graceful

With ``SLACK_APP_TOKEN`` in ``env`` it runs in Socket Mode: it is ready once it has connected to
``fake.socket_mode``, and is driven with ``SocketModeDriver(fake)`` instead of ``bot.driver``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sandbox.driver import SlackDriver
from sandbox.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "sandbox-signing-secret"
BOT_TOKEN = "xoxb-sandbox-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    def __init__(
        self,
        fake: FakeSlack,
        database_url: str,
        env: dict[str, str] | None = None,
        admins: tuple[str, ...] = ("UADMIN",),
    ) -> None:
        self.fake = fake
        self.database_url = database_url
        self.extra_env = env or {}
        self.admins = admins
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        fd, log = tempfile.mkstemp(prefix="crewcall-bot-", suffix=".log")
        os.close(fd)
        self.log = Path(log)
        for admin in admins:
            if admin not in fake.users:
                fake.add_user(admin, name=f"admin-{admin.lower()}", tz="UTC")

    @property
    def socket_mode(self) -> bool:
        return bool(self.extra_env.get("SLACK_APP_TOKEN"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def driver(self) -> SlackDriver:
        return SlackDriver(self.url, SIGNING_SECRET, fake=self.fake)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> BotProcess:
        """Start the bot and wait until it takes requests: /healthz answers, or in Socket Mode, it
        has opened a new connection to the fake."""
        self.port = free_port()
        connections_before = self.fake.socket_mode.connections
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.fake.api_url,
            "DATABASE_URL": self.database_url,
            "PORT": str(self.port),
            "ADMIN_USER_IDS": ",".join(self.admins),
            "LOG_LEVEL": "INFO",
            # each test's bot loads the model itself: no encoder process outlives the test
            # (tests/test_policy_shared_encoder.py and the benches ask for the shared one)
            "POLICY_ENCODER": "process",
            **self.extra_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bot.py")],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.socket_mode and self.fake.socket_mode.connections > connections_before:
                return self
            if not self.socket_mode and self._healthy():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the bot did not become healthy in {timeout}s:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("ok"))
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the process ends at once, mid-whatever it was doing."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: a graceful stop (killed if it takes longer than `timeout`)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
