"""Configuration: values from the environment and .env, and start-up refusals (exit 2, one line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import SETTINGS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
BASE = {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s3cret"}


def test_defaults() -> None:
    config = load_config(env=BASE, dotenv_path=None)
    assert config.port == 3000
    assert config.database_url == "sqlite:///data/crewcall.db"
    assert config.slack_api_url == "https://slack.com/api/"
    assert str(config.policy_dir) == "policies"
    assert config.max_active_claims == 3
    assert not config.socket_mode


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=4000\nLOG_LEVEL=debug\nSLACK_BOT_TOKEN=xoxb-from-file\nSLACK_SIGNING_SECRET=f\n")
    config = load_config(env={"PORT": "5000"}, dotenv_path=dotenv)
    assert config.port == 5000
    assert config.log_level == "DEBUG"
    assert config.slack_bot_token == "xoxb-from-file"


def test_values_are_parsed() -> None:
    config = load_config(
        env={
            **BASE,
            "SLACK_APP_TOKEN": "xapp-1-abc",
            "ADMIN_USER_IDS": "U012AB3CD, W0123",
            "DATABASE_URL": "postgres://u@h/db",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
        },
        dotenv_path=None,
    )
    assert config.socket_mode
    assert config.admin_user_ids == frozenset({"U012AB3CD", "W0123"})
    assert config.database_url == "postgresql+psycopg://u@h/db"
    assert config.slack_api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLACK_SIGNING_SECRET": "x"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        ({**BASE, "SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
        ({**BASE, "PORT": "eighty"}, "PORT"),
        ({**BASE, "PORT": "70000"}, "PORT"),
        ({**BASE, "ADMIN_USER_IDS": "bob"}, "ADMIN_USER_IDS"),
        ({**BASE, "LEADS_CHANNEL": "#leads"}, "LEADS_CHANNEL"),
        ({**BASE, "SLACK_API_URL": "slack.com"}, "SLACK_API_URL"),
        ({**BASE, "DATABASE_URL": "crewcall.db"}, "DATABASE_URL"),
        ({**BASE, "MAX_ACTIVE_CLAIMS": "0"}, "MAX_ACTIVE_CLAIMS"),
        ({**BASE, "REFERRAL_BONUS": "lots"}, "REFERRAL_BONUS"),
        ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({**BASE, "SLACK_APP_TOKEN": "xoxb-wrong"}, "SLACK_APP_TOKEN"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env=env, dotenv_path=None)


def _run_bot(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,  # no .env there
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_credentials_stop_startup_with_exit_2_and_setup_help(tmp_path: Path) -> None:
    result = _run_bot({}, tmp_path)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("crewcall: SLACK_BOT_TOKEN is not set")
    assert "OAuth & Permissions" in first
    assert "manifest.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_value_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = _run_bot({**BASE, "PORT": "eighty"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "crewcall: PORT is malformed: expected a port number 0-65535, got 'eighty'."
    ]


def test_env_example_and_readme_list_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert f"\n{setting.name}=" in example, f"{setting.name} missing from .env.example"
        assert f"`{setting.name}`" in readme, f"{setting.name} missing from README's configuration table"
