"""Configuration from the environment and `.env`.

Every variable crewcall reads is declared once in `SETTINGS`; README's configuration table and
`.env.example` describe the same list (a test keeps them in step). A missing or malformed value
raises `ConfigError` naming the variable and where to find it; `bot.py` turns that into one line
and exit status 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dotenv import dotenv_values

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    where: str = ""
    required: bool = False
    default: str | None = None
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SLACK_BOT_TOKEN",
        "Bot User OAuth Token (xoxb-…)",
        "the app's OAuth & Permissions page",
        required=True,
        secret=True,
    ),
    Setting(
        "SLACK_SIGNING_SECRET",
        "Signing secret used to verify requests from Slack",
        "the app's Basic Information page, App Credentials",
        required=True,
        secret=True,
    ),
    Setting(
        "SLACK_APP_TOKEN",
        "App-level token (xapp-…) with connections:write; when set, crewcall runs in Socket Mode",
        "the app's Basic Information page, App-Level Tokens",
        secret=True,
    ),
    Setting(
        "SLACK_API_URL",
        "Base URL of the Slack Web API (point it at a local fake Slack for tests)",
        default=DEFAULT_SLACK_API_URL,
    ),
    Setting(
        "DATABASE_URL",
        "SQLAlchemy URL of the store (SQLite or PostgreSQL)",
        default="sqlite:///data/crewcall.db",
    ),
    Setting("PORT", "HTTP port for /slack/events and /healthz (HTTP mode)", default="3000"),
    Setting("HTTP_THREADS", "Worker threads of the HTTP server, or of the Socket Mode client", default="16"),
    Setting(
        "ADMIN_USER_IDS",
        "Comma-separated Slack user IDs of admins (U…)",
        "each member's profile, ⋮ → Copy member ID",
    ),
    Setting(
        "LEADS_CHANNEL",
        "Channel ID (C…) where leads get escalations and digests",
        "the channel's details pane",
    ),
    Setting(
        "TASKS_CHANNEL", "Default channel ID (C…) where task cards are posted", "the channel's details pane"
    ),
    Setting("POLICY_DIR", "Directory of the Markdown contractor handbook", default="./policies"),
    Setting("POLICY_BASE_URL", "Base URL where the handbook files are browsable; answers link to it"),
    Setting("MAX_ACTIVE_CLAIMS", "How many tasks one contractor may hold at once", default="3"),
    Setting("REFERRAL_BONUS", "Referral bonus in dollars", default="250"),
    Setting(
        "REFERRAL_BONUS_HOURS", "Tracked hours a hired referee needs before the bonus is earned", default="10"
    ),
    Setting(
        "SLACK_POSTS_PER_MIN",
        "Messages per minute the bot allows itself workspace-wide, everything it posts together; reminders "
        "and cards go before announcements; 0 = no pacing",
        default="600",
    ),
    Setting(
        "SLACK_RATE_SCALE",
        "Speeds up the pacing's clock; only for benchmarks against a fake Slack with the same scale",
        default="1",
    ),
    Setting(
        "ANNOUNCE_RATE_PER_MIN",
        "Announcement messages sent per minute, all recipients together, evenly spaced; they also count "
        "against SLACK_POSTS_PER_MIN, where reminders go first",
        default="480",
    ),
    Setting(
        "ANNOUNCE_INDOUBT_WAIT",
        "Seconds the announcement sender waits after a restart before checking whether a message "
        "that was under way when the last process died reached Slack",
        default="10",
    ),
    Setting("LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", default="INFO"),
)

_SLACK_ID = re.compile(r"^[UWCGD][A-Z0-9]{2,}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Config:
    slack_bot_token: str
    slack_signing_secret: str
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    database_url: str = "sqlite:///data/crewcall.db"
    port: int = 3000
    http_threads: int = 16
    admin_user_ids: frozenset[str] = field(default_factory=frozenset)
    leads_channel: str | None = None
    tasks_channel: str | None = None
    policy_dir: Path = Path("./policies")
    policy_base_url: str | None = None
    max_active_claims: int = 3
    referral_bonus: Decimal = Decimal("250")
    referral_bonus_hours: Decimal = Decimal("10")
    slack_posts_per_min: int = 600
    slack_rate_scale: float = 1.0
    announce_rate_per_min: int = 480
    announce_indoubt_wait: float = 10.0
    log_level: str = "INFO"

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        return [s for s in (self.slack_bot_token, self.slack_signing_secret, self.slack_app_token) if s]


def load_config(
    env: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
) -> Config:
    """Read the configuration. A variable set in `env` (default: os.environ) wins over `.env`."""
    values: dict[str, str] = {}
    if dotenv_path and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if env is None else env)
    return _parse(values)


def _get(values: Mapping[str, str], name: str) -> str | None:
    setting = _SETTING_BY_NAME[name]
    raw = values.get(name, "").strip()
    if raw:
        return raw
    if setting.required:
        where = f" (find it on {setting.where})" if setting.where else ""
        raise ConfigError(f"{name} is not set: {setting.help}{where}.")
    return setting.default


def _typed(values: Mapping[str, str], name: str, convert: Callable[[str], Any], expected: str) -> Any:
    raw = _get(values, name)
    if raw is None:
        return None
    try:
        return convert(raw)
    except (ValueError, InvalidOperation):
        raise ConfigError(f"{name} is malformed: expected {expected}, got {raw!r}.") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError(raw)
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 3600:
        raise ValueError(raw)
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(raw)
    return value


def _money(raw: str) -> Decimal:
    value = Decimal(raw.lstrip("$"))
    if value < 0 or not value.is_finite():
        raise ValueError(raw)
    return value


def _channel(raw: str) -> str:
    if not _SLACK_ID.match(raw) or raw[0] not in "CG":
        raise ValueError(raw)
    return raw


def _user_ids(raw: str) -> frozenset[str]:
    ids = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if any(not _SLACK_ID.match(i) or i[0] not in "UW" for i in ids):
        raise ValueError(raw)
    return ids


def _url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(raw)
    return raw if raw.endswith("/") else raw + "/"


def _database_url(raw: str) -> str:
    if "://" not in raw:
        raise ValueError(raw)
    scheme = raw.split("://", 1)[0]
    # psycopg (v3) is the driver we ship; plain postgres URLs are pointed at it.
    if scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + raw.split("://", 1)[1]
    return raw


def _log_level(raw: str) -> str:
    if raw.upper() not in _LOG_LEVELS:
        raise ValueError(raw)
    return raw.upper()


def _token(prefix: str) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if not raw.startswith(prefix):
            raise ValueError(raw)
        return raw

    return check


def _parse(values: Mapping[str, str]) -> Config:
    bot_token = _get(values, "SLACK_BOT_TOKEN") or ""
    if not bot_token.startswith("xoxb-"):
        raise ConfigError(
            "SLACK_BOT_TOKEN is malformed: expected a bot token starting with xoxb- "
            "(find it on the app's OAuth & Permissions page)."
        )
    return Config(
        slack_bot_token=bot_token,
        slack_signing_secret=_get(values, "SLACK_SIGNING_SECRET") or "",
        slack_app_token=_typed(
            values, "SLACK_APP_TOKEN", _token("xapp-"), "an app-level token starting with xapp-"
        ),
        slack_api_url=_typed(values, "SLACK_API_URL", _url, "an http(s) URL"),
        database_url=_typed(
            values, "DATABASE_URL", _database_url, "a SQLAlchemy URL such as sqlite:///data/crewcall.db"
        ),
        port=_typed(values, "PORT", _port, "a port number 0-65535"),
        http_threads=_typed(values, "HTTP_THREADS", _positive_int, "a positive whole number"),
        admin_user_ids=_typed(values, "ADMIN_USER_IDS", _user_ids, "comma-separated user IDs like U012AB3CD")
        or frozenset(),
        leads_channel=_typed(values, "LEADS_CHANNEL", _channel, "a channel ID like C012AB3CD"),
        tasks_channel=_typed(values, "TASKS_CHANNEL", _channel, "a channel ID like C012AB3CD"),
        policy_dir=Path(_get(values, "POLICY_DIR") or "./policies"),
        policy_base_url=_typed(values, "POLICY_BASE_URL", _url, "an http(s) URL"),
        max_active_claims=_typed(values, "MAX_ACTIVE_CLAIMS", _positive_int, "a positive whole number"),
        referral_bonus=_typed(values, "REFERRAL_BONUS", _money, "an amount in dollars like 250"),
        referral_bonus_hours=_typed(values, "REFERRAL_BONUS_HOURS", _money, "a number of hours like 10"),
        slack_posts_per_min=_typed(
            values, "SLACK_POSTS_PER_MIN", _non_negative_int, "a whole number, 0 or more"
        ),
        slack_rate_scale=_typed(
            values, "SLACK_RATE_SCALE", _positive_float, "a number above 0, like 1 or 10"
        ),
        announce_rate_per_min=_typed(
            values, "ANNOUNCE_RATE_PER_MIN", _positive_int, "a positive whole number of messages"
        ),
        announce_indoubt_wait=_typed(
            values, "ANNOUNCE_INDOUBT_WAIT", _seconds, "a number of seconds between 0 and 3600"
        ),
        log_level=_typed(values, "LOG_LEVEL", _log_level, "one of " + ", ".join(_LOG_LEVELS)),
    )


_SETTING_BY_NAME = {s.name: s for s in SETTINGS}
