"""What README's Deployment section promises: a process told to stop (SIGTERM, as systemd, a
container runtime or a platform's router send it in a rolling restart) refuses new connections at
once, so the load balancer turns to another process, and still finishes the work it acknowledged;
and the deploy/ recipes name only settings crewcall has."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

from core.config import VARIABLES
from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except (ConnectionRefusedError, ConnectionResetError):  # reset: closed with ours in its backlog
        return True


def test_sigterm_refuses_new_connections_and_finishes_acknowledged_work(
    fake: FakeSlack, sqlite_url: str
) -> None:
    fake.add_user("U1", tz="UTC")
    bot = BotProcess(fake, sqlite_url).start()
    try:
        # The answer to /crew me waits on a slow Slack (users.info) after the acknowledgement.
        fake.method_latency["users.info"] = 3.0
        assert bot.driver.command("U1", "/crew", "me").status == 200
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 2.5
        while not _refuses_connections(bot.port):
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        assert bot.proc.poll() is None, "stopped before finishing the acknowledged command"
        reply = fake.wait_for("response_url", timeout=10)[0]
        assert reply.params["text"] == "Your crewcall profile: contractor"
        assert bot.proc.wait(timeout=30) == 0
    finally:
        bot.stop()


def test_deploy_recipes_name_only_real_settings() -> None:
    deploy = ROOT / "deploy"
    example = (deploy / "crewcall.env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert named, "deploy/crewcall.env.example names no setting"
    assert named <= set(VARIABLES), f"not crewcall settings: {sorted(named - set(VARIABLES))}"
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"} <= named
    unit = (deploy / "crewcall@.service").read_text()
    assert "Environment=PORT=%i" in unit and "KillSignal=SIGTERM" in unit
    assert "bot.py" in (deploy / "Procfile").read_text()
    containerfile = (deploy / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in containerfile and "HEALTHCHECK" in containerfile
    assert re.search(r"^USER (?!root)", containerfile, re.MULTILINE)
