"""Exports and logs (issue 12, item 8): every CSV the bot produces keeps spreadsheet formulas as
text, a malformed secret stops start-up named but never echoed, and response_urls stay out of logs."""

from __future__ import annotations

import csv
import io
import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from core import logs
from core.logs import REDACTED, RedactSecrets
from core.text import csv_cell
from sandbox.harness import BotHarness
from tests.shift_helpers import LEAD, add_task, make_lead

ROOT = Path(__file__).resolve().parents[1]
FORMULAS = ['=HYPERLINK("https://evil.example","pay")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_cell_starting_like_a_formula_gets_a_leading_quote(value: str) -> None:
    assert csv_cell(value) == "'" + value
    assert csv_cell("Ana = lawyer") == "Ana = lawyer" and csv_cell(None) == "" and csv_cell(12) == "12"


def _rows(upload: dict[str, object]) -> list[dict[str, str]]:
    content = upload["content"]
    text = content.decode() if isinstance(content, bytes) else str(content)
    return list(csv.DictReader(io.StringIO(text)))


def test_the_hours_report_neutralizes_a_formula_in_a_member_name_and_a_task_title(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    bot.fake.add_user("U1", name="=HYPERLINK(1)", real_name='=HYPERLINK("https://evil.example")', tz="UTC")
    bot.command("U1", "/crew", "me")
    task = add_task(bot, "@SUM(A1:A9)", 12_000, holder="U1")
    assert "Clocked in" in bot.command("U1", "/hours", f"in T-{task}").text
    bot.clock.advance(timedelta(hours=1))
    bot.command("U1", "/hours", "out")
    assert "Sent `hours-week-of" in bot.command(LEAD, "/hours", "report").text
    upload = next(iter(bot.fake.uploaded_files.values()))
    (row,) = _rows(upload)
    assert row["member_name"].startswith("'=HYPERLINK(")
    assert row["task_title"] == "'@SUM(A1:A9)"
    assert row["hours"] == "1.00"


def test_the_referral_export_neutralizes_every_formula_start(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    bot.fake.add_user("U1", tz="UTC")
    for i, name in enumerate(["=cmd", "+cmd", "-cmd", "@cmd"]):
        assert "recorded" in bot.command("U1", "/refer", f"p{i}@firm.example {name}").text
    assert "Sent you" in bot.command(LEAD, "/referrals", "export").text
    upload = next(iter(bot.fake.uploaded_files.values()))
    assert sorted(r["name"] for r in _rows(upload)) == ["'+cmd", "'-cmd", "'=cmd", "'@cmd"]


SECRET = "hunter2-never-shown"


def _start(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {
        "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
        "SLACK_SIGNING_SECRET": "s3cret",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", f"postgresql://crewcall:{SECRET}@db.internal:notaport/crewcall"),
        ("DATABASE_URL", f"postgresql:/crewcall:{SECRET}@db/crewcall"),
        ("SLACK_BOT_TOKEN", f"xoxp-{SECRET}"),
        ("SLACK_APP_TOKEN", f"xoxb-{SECRET}"),
    ],
)
def test_a_malformed_secret_stops_startup_named_in_one_line_never_echoed(
    name: str, value: str, tmp_path: Path
) -> None:
    result = _start({name: value}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"crewcall: {name} is malformed")
    assert SECRET not in result.stderr + result.stdout


def test_a_database_that_refuses_the_connection_never_shows_its_password(tmp_path: Path) -> None:
    result = _start({"DATABASE_URL": f"postgresql://crewcall:{SECRET}@127.0.0.1:1/crewcall"}, tmp_path)
    assert result.returncode != 0
    assert SECRET not in result.stderr + result.stdout


def test_response_urls_are_scrubbed_from_log_lines() -> None:
    url = "https://hooks.slack.com/commands/T0001/1234567890/AbCdEfGhIjKlMnOp"
    line = RedactSecrets().scrub(f"could not answer {url} in time; payload {{'response_url': '{url}'}}")
    assert url not in line and line.count(REDACTED) == 2


def test_a_failing_response_url_is_logged_without_the_url(
    sqlite_bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1", tz="UTC")
    caplog.set_level(logging.DEBUG)
    url = bot.fake.url + "response/not-a-known-one"
    bot.driver.click("U1", "task_list_more", value="0", response_url=url)  # type: ignore[union-attr]
    bot.fake.wait_for("response_url", predicate=lambda c: c.params.get("_url") == url)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("crewcall"))
    assert "/response/" not in ours
    # The SDK's own DEBUG lines carry request URLs: the bot's logging keeps them at INFO and up, at
    # any LOG_LEVEL, and scrubs what is written.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("slack_sdk").level)
    try:
        logs.configure("DEBUG", [])
        assert logging.getLogger("slack_sdk").getEffectiveLevel() == logging.INFO
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("slack_sdk").setLevel(saved[2])
