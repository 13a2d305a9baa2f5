"""Configuration: values from the environment and .env, and start-up refusals (exit 2, one line)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import VARIABLES, ConfigError, load_config
from db.engine import StoreRefused, open_database

ROOT = Path(__file__).resolve().parents[1]
BASE = {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s3cret"}


def test_defaults() -> None:
    config = load_config(env=BASE, dotenv_path=None)
    assert config.port == 3000
    assert config.database_url.get_secret_value() == "sqlite:///data/crewcall.db"
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
    assert config.slack_bot_token.get_secret_value() == "xoxb-from-file"


def test_values_are_parsed() -> None:
    config = load_config(
        env={
            **BASE,
            "SLACK_APP_TOKEN": "xapp-1-abc",
            "ADMIN_USER_IDS": "U012AB3CD, W0123",
            "DATABASE_URL": "postgres://u@h/db",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
            "LOG_FORMAT": "JSON",
        },
        dotenv_path=None,
    )
    assert config.log_format == "json"
    assert config.socket_mode
    assert config.admin_user_ids == frozenset({"U012AB3CD", "W0123"})
    assert config.database_url.get_secret_value() == "postgresql+psycopg://u@h/db"
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
        ({**BASE, "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({**BASE, "METRICS_PORT": "0"}, "METRICS_PORT"),
        ({**BASE, "PROMETHEUS_MULTIPROC_DIR": "/nonexistent/crewcall-metrics"}, "PROMETHEUS_MULTIPROC_DIR"),
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
    for name in VARIABLES:
        assert f"\n{name}=" in example, f"{name} missing from .env.example"
        assert f"`{name}`" in readme, f"{name} missing from README's configuration table"


SECRET = "hunter2-never-shown"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_BOT_TOKEN", f"xoxp-{SECRET}"),
        ("SLACK_APP_TOKEN", f"xoxb-{SECRET}"),
        ("DATABASE_URL", f"postgresql:/crewcall:{SECRET}@db.internal/crewcall"),
    ],
)
def test_a_malformed_secret_is_named_never_echoed(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as refused:
        load_config(env={**BASE, name: value}, dotenv_path=None)
    assert SECRET not in str(refused.value)


def test_a_metrics_token_too_short_is_named_never_echoed() -> None:
    with pytest.raises(ConfigError, match="METRICS_TOKEN") as refused:
        load_config(env={**BASE, "METRICS_TOKEN": "short-hunter2"}, dotenv_path=None)
    assert "hunter2" not in str(refused.value)


DATABASE_EXPECTED = (
    "crewcall: DATABASE_URL is malformed: expected a SQLAlchemy URL of SQLite (sqlite:///data/crewcall.db) "
    "or PostgreSQL (postgresql://user:password@host:5432/crewcall; driver psycopg, port 1-65535)."
)


def test_a_malformed_database_url_stops_startup_without_its_password(tmp_path: Path) -> None:
    result = _run_bot({**BASE, "DATABASE_URL": f"postgresql:/crewcall:{SECRET}@db/crewcall"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [DATABASE_EXPECTED]


UNUSABLE_URLS = [
    f"postgresql://crewcall:{SECRET}@127.0.0.1:99999999/crewcall",  # no such port
    f"postgresql://crewcall:{SECRET}@127.0.0.1:0/crewcall",
    f"mysql://crewcall:{SECRET}@127.0.0.1/crewcall",  # a database crewcall doesn't speak
    f"postgresql+asyncpg://crewcall:{SECRET}@127.0.0.1/crewcall",  # nor a driver it doesn't ship
    f"postgresql+psycopg2://crewcall:{SECRET}@127.0.0.1/crewcall",
]


# In memory: everything lost at every restart.
@pytest.mark.parametrize("url", [*UNUSABLE_URLS, "sqlite://", "sqlite:///:memory:"])
def test_a_database_url_crewcall_cannot_use_is_refused_when_read(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(env={**BASE, "DATABASE_URL": url}, dotenv_path=None)
    assert str(refused.value) == DATABASE_EXPECTED.removeprefix("crewcall: ")
    assert SECRET not in str(refused.value)


# Start-up's INFO records (Alembic's, once the store is opened) are left out: the refusal is the line.
QUIET = {**BASE, "LOG_LEVEL": "WARNING"}


def _one_line_without_the_url(result: subprocess.CompletedProcess[str], url: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr + result.stdout
    assert url not in result.stderr and url.split("?")[0] not in result.stderr
    assert lines[0].startswith("crewcall: ") and "DATABASE_URL" in lines[0]
    return lines[0]


@pytest.mark.parametrize("url", UNUSABLE_URLS)
def test_a_database_url_crewcall_cannot_use_stops_startup_with_one_line(tmp_path: Path, url: str) -> None:
    result = _run_bot({**BASE, "DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2
    assert _one_line_without_the_url(result, url) == DATABASE_EXPECTED


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # libpq refuses the option before it tries the server
        (
            f"postgresql://crewcall:{SECRET}@127.0.0.1:5432/crewcall?sslmode=bogus",
            'invalid sslmode value: "bogus"',
        ),
        (
            f"postgresql://crewcall:{SECRET}@127.0.0.1:5432/crewcall?colour=red",
            'invalid connection option "colour"',
        ),
        ("sqlite:////proc/crewcall/crewcall.db", "No such file or directory"),  # its directory can't be made
        ("sqlite:////tmp/crewcall-config-test/crewcall.db?timeout=abc", "could not convert"),
        # the server answers, and a restart won't change its answer
        (
            f"postgresql://crewcall-nobody:{SECRET}@127.0.0.1:5432/test",
            'role "crewcall-nobody" does not exist',
        ),
        (
            f"postgresql://postgres:{SECRET}@127.0.0.1:5432/crewcall_no_such_db",
            'database "crewcall_no_such_db" does not exist',
        ),
    ],
)
def test_a_database_url_whose_options_do_not_work_stops_startup_with_one_line(
    tmp_path: Path, url: str, said: str
) -> None:
    result = _run_bot({**QUIET, "DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2
    line = _one_line_without_the_url(result, url)
    assert line.startswith("crewcall: DATABASE_URL can't be used: ") and said in line, line


def test_a_database_migrated_by_a_newer_crewcall_stops_startup_with_one_line(tmp_path: Path) -> None:
    store = tmp_path / "newer.db"
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0099_from_the_future')")
    url = f"sqlite:///{store}"
    result = _run_bot({**QUIET, "DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2
    line = _one_line_without_the_url(result, url)
    assert "0099_from_the_future" in line and "migrated by a newer version" in line, line


def test_a_database_server_that_does_not_answer_stops_startup_with_one_line_worth_a_retry(
    tmp_path: Path,
) -> None:
    url = f"postgresql://crewcall:{SECRET}@127.0.0.1:9/crewcall"  # nothing listens on the discard port
    result = _run_bot({**QUIET, "DATABASE_URL": url}, tmp_path)
    assert result.returncode == 1
    line = _one_line_without_the_url(result, url)
    assert (
        line.startswith("crewcall: The database in DATABASE_URL can't be reached (")
        and "Connection refused" in line
    )


def test_secrets_stay_out_of_the_configs_repr_and_go_to_the_log_redaction() -> None:
    config = load_config(
        env={
            "SLACK_BOT_TOKEN": f"xoxb-{SECRET}",
            "SLACK_SIGNING_SECRET": f"signing-{SECRET}",
            "SLACK_APP_TOKEN": f"xapp-{SECRET}",
            "DATABASE_URL": f"postgresql://crewcall:db-{SECRET}@db.internal/crewcall",
            "METRICS_TOKEN": f"scrape-{SECRET}",
        },
        dotenv_path=None,
    )
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert set(config.secrets()) == {
        f"xoxb-{SECRET}",
        f"signing-{SECRET}",
        f"xapp-{SECRET}",
        f"db-{SECRET}",
        f"scrape-{SECRET}",
    }


def _readme_configuration_table() -> dict[str, str]:
    """Variable → its Default cell, from README's "## Configuration" section."""
    section = (ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+?) \|", section, re.MULTILINE))


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_readme_and_env_example_list_exactly_the_settings_with_their_defaults() -> None:
    table, example = _readme_configuration_table(), _env_example()
    assert sorted(table) == sorted(VARIABLES), "README's configuration table"
    assert sorted(example) == sorted(VARIABLES), ".env.example"
    defaults = load_config(env=BASE, dotenv_path=None)
    for name, field in VARIABLES.items():
        cell = table[name]
        if cell == "**required**":
            assert field.is_required() and example[name] == "", name
        elif cell == "—":  # nothing: no value, or no admins
            assert field.default in (None, frozenset()) and example[name] == "", name
        else:
            documented = cell.strip("`")
            assert example[name] == documented, name
            # The documented text, read as a value, is the default.
            read = load_config(env={**BASE, name: documented}, dotenv_path=None)
            attribute = name.lower()
            assert getattr(read, attribute) == getattr(defaults, attribute), name


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://crewcall:{SECRET}@127.0.0.1/crewcall",  # its driver isn't installed: ModuleNotFoundError
        f"nosuchdb://crewcall:{SECRET}@127.0.0.1/crewcall",  # no such dialect: NoSuchModuleError
        f"postgresql+psycopg://crewcall:{SECRET}@127.0.0.1:5432/crewcall?sslmode=bogus",
    ],
)
def test_opening_a_store_the_url_cannot_reach_says_why_in_one_line_without_the_url(url: str) -> None:
    """What start-up meets past the settings' checks (a driver removed from the environment, say)."""
    with pytest.raises(StoreRefused) as refused:
        open_database(url)
    said = str(refused.value)
    assert said.startswith("DATABASE_URL can't be used: ") and "\n" not in said
    assert SECRET not in said and url not in said
