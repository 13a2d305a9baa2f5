"""`python bot.py` as a real process: serves HTTP, keeps secrets out of its logs, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sandbox.driver import SlackDriver
from sandbox.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "xoxb-9999-secret-token-value"
SIGNING = "signing-secret-never-logged"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bot_process_serves_logs_no_secrets_and_stops_on_sigterm(fake: FakeSlack, sqlite_url: str) -> None:
    fake.add_user("U1", name="ana")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
            "SLACK_API_URL": fake.api_url,
            "DATABASE_URL": sqlite_url,
            "PORT": str(port),
            "LOG_LEVEL": "DEBUG",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert json.loads(resp.read())["ok"] is True
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "bot did not become healthy"
                time.sleep(0.2)
        driver = SlackDriver(f"http://127.0.0.1:{port}", SIGNING, fake=fake)
        assert driver.command("U1", "/crew", "me").status == 200
        assert driver.command("U1", "/crew", "me", signature="v0=bad").status == 401
        fake.wait_for("response_url")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert "crewcall stopped" in output
    assert TOKEN not in output
    assert SIGNING not in output
    assert "xoxb-" not in output
