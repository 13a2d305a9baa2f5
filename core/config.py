"""Configuration from the environment and `.env`.

`Config` declares every variable crewcall reads, once: its type, default, description, where to find
it and what a good value looks like. README's configuration table and `.env.example` list the same
variables (a test keeps them in step). A missing or malformed value raises `ConfigError` naming the
variable and where to find it, never echoing a secret; `bot.py` turns that into one line and exit
status 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StringConstraints, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ChannelId = Annotated[str, StringConstraints(pattern=r"^[CG][A-Z0-9]{2,}$")]
UserId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,}$")]


# The stores and drivers crewcall ships with (db/engine.py): SQLite, PostgreSQL through psycopg 3.
_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg")


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


def setting(default: Any = ..., *, help: str, where: str = "", expected: str = "", **constraints: Any) -> Any:
    """A field whose description is `help`. Start-up errors say `where` to find the value and what
    is `expected` of one."""
    return Field(
        default, description=help, json_schema_extra={"where": where, "expected": expected}, **constraints
    )


class Config(BaseSettings):
    """The settings; each is read from the variable named like the field in capitals. Build it with
    `load_config`, which hands in the environment."""

    model_config = SettingsConfigDict(
        alias_generator=str.upper,
        case_sensitive=True,
        env_file=".env",
        extra="ignore",
        frozen=True,
        validate_default=False,  # the validators see only values that were set
    )

    slack_bot_token: SecretStr = setting(
        help="Bot User OAuth Token (xoxb-…)",
        where="the app's OAuth & Permissions page",
        expected="a bot token starting with xoxb-",
    )
    slack_signing_secret: SecretStr = setting(
        help="Signing secret used to verify requests from Slack",
        where="the app's Basic Information page, App Credentials",
    )
    slack_app_token: SecretStr | None = setting(
        None,
        help="App-level token (xapp-…) with connections:write; when set, crewcall runs in Socket Mode",
        where="the app's Basic Information page, App-Level Tokens",
        expected="an app-level token starting with xapp-",
    )
    slack_api_url: str = setting(
        "https://slack.com/api/",
        help="Base URL of the Slack Web API (point it at a local fake Slack for tests)",
        expected="an http(s) URL",
    )
    database_url: SecretStr = setting(
        SecretStr("sqlite:///data/crewcall.db"),
        help="SQLAlchemy URL of the store (SQLite or PostgreSQL)",
        expected="a SQLAlchemy URL of SQLite (sqlite:///data/crewcall.db) or PostgreSQL "
        "(postgresql://user:password@host:5432/crewcall; driver psycopg, port 1-65535)",
    )
    database_max_connections: int = setting(
        30,
        help="PostgreSQL connections one bot process opens at most (its pools for reads and writes, the scheduler's lock, the report worker); N processes need N times this within the server's max_connections",
        expected="a whole number of at least 4",
        ge=4,
    )
    port: int = setting(
        3000,
        help="HTTP port for /slack/events and /healthz (HTTP mode)",
        expected="a port number 0-65535",
        ge=0,
        le=65535,
    )
    http_threads: int = setting(
        16,
        help="Worker threads of the HTTP server, or of the Socket Mode client",
        expected="a positive whole number",
        gt=0,
    )
    http_max_body_bytes: int = setting(
        1_048_576,
        help="Largest request body the HTTP door accepts; a bigger one is answered 413 before it is read",
        expected="a whole number of bytes, 1024 or more",
        ge=1024,
    )
    http_connection_limit: int = setting(
        2000,
        help="Open HTTP connections at most; at the limit the ones slowest to send their request are closed",
        expected="a whole number, 10 or more",
        ge=10,
    )
    http_request_timeout: float = setting(
        10.0,
        help="Seconds a client has to send a whole request (headers and body); slower ones are closed",
        expected="a number of seconds between 1 and 300",
        ge=1,
        le=300,
        allow_inf_nan=False,
    )
    click_hold: float = setting(
        0.2,
        help="Seconds a click's decision may wait, after its ack, for a storm of requests to be acknowledged first; 0: decide at once",
        expected="a number of seconds between 0 and 2.5 (Slack waits 3 s for an ack)",
        ge=0,
        le=2.5,
        allow_inf_nan=False,
    )
    member_commands_per_min: int = setting(
        60,
        help="Commands and clicks one member may send in a minute; beyond it they are asked to slow down",
        expected="a positive whole number",
        gt=0,
    )
    member_questions_per_min: int = setting(
        10,
        help="Handbook questions (/policy, DMs, @mentions) one member may ask in a minute",
        expected="a positive whole number",
        gt=0,
    )
    admin_user_ids: Annotated[frozenset[UserId], NoDecode] = setting(
        frozenset(),
        help="Comma-separated Slack user IDs of admins (U…)",
        where="each member's profile, ⋮ → Copy member ID",
        expected="comma-separated user IDs like U012AB3CD",
    )
    leads_channel: ChannelId | None = setting(
        None,
        help="Channel ID (C…) where leads get escalations and digests",
        where="the channel's details pane",
        expected="a channel ID like C012AB3CD",
    )
    tasks_channel: ChannelId | None = setting(
        None,
        help="Default channel ID (C…) where task cards are posted",
        where="the channel's details pane",
        expected="a channel ID like C012AB3CD",
    )
    policy_dir: Path = setting(Path("./policies"), help="Directory of the Markdown contractor handbook")
    policy_cache_dir: Path = setting(
        Path("./data/policy-cache"),
        help="Directory where the handbook's embeddings (by content hash) and the model's ONNX graph are kept",
    )
    policy_encoder: Literal["shared", "process"] = setting(
        "shared",
        help="Where handbook questions are embedded: shared (one encoder process per POLICY_CACHE_DIR serves every bot process of the host, started on demand) or process (each bot process loads the model itself, ~120 MB more each)",
    )
    policy_encoder_idle_exit: float = setting(
        600.0,
        help="Shared encoder: seconds without a request after which the encoder process exits (the next question starts it again, about a second)",
        expected="a number of seconds, 10 or more",
        ge=10,
        allow_inf_nan=False,
    )
    policy_base_url: str | None = setting(
        None,
        help="Base URL where the handbook files are browsable; answers link to it",
        expected="an http(s) URL",
    )
    max_active_claims: int = setting(
        3, help="How many tasks one contractor may hold at once", expected="a positive whole number", gt=0
    )
    referral_bonus: Decimal = setting(
        Decimal("250"), help="Referral bonus in dollars", expected="an amount in dollars like 250", ge=0
    )
    referral_bonus_hours: Decimal = setting(
        Decimal("10"),
        help="Tracked hours a hired referee needs before the bonus is earned",
        expected="a number of hours like 10",
        ge=0,
    )
    reapply_cooldown_days: int = setting(
        30,
        help="Days a member whose skill application was declined waits before applying for that skill again",
        expected="a whole number of days, 0 or more",
        ge=0,
        le=3650,
    )
    referral_model: Literal["flat", "share"] = setting(
        "flat",
        help="Referral reward for new referrals: flat (REFERRAL_BONUS after REFERRAL_BONUS_HOURS) or share "
        "(REFERRAL_SHARE_PERCENT of the referee's approved pay for REFERRAL_SHARE_MONTHS, up to REFERRAL_SHARE_CAP)",
        expected="flat or share",
    )
    referral_share_percent: Decimal = setting(
        Decimal("10"),
        help="Share model: percent of the referee's approved pay the referrer earns",
        expected="a percentage like 10 or 7.5 (two decimals at most)",
        gt=0,
        le=100,
    )
    referral_share_months: int = setting(
        12,
        help="Share model: months after the referee's hire during which their pay earns the share",
        expected="a whole number of months, 1 to 120",
        ge=1,
        le=120,
    )
    referral_share_cap: Decimal = setting(
        Decimal("1000"),
        help="Share model: the most one referral earns, in dollars",
        expected="an amount in dollars like 1000",
        ge=0,
    )
    weekly_hours_cap: Decimal = setting(
        Decimal("40"),
        help="Hours a member may clock per week (Monday 00:00 in their timezone) unless a lead sets their own cap",
        expected="a number of hours like 40, more than 0 and at most 168",
        gt=0,
        le=168,
    )
    slack_posts_per_min: int = setting(
        600,
        help="Messages per minute the bot allows itself workspace-wide, everything it posts together; "
        "reminders and cards go before announcements; 0 = no pacing",
        expected="a whole number, 0 or more",
        ge=0,
    )
    slack_rate_scale: float = setting(
        1.0,
        help="Speeds up the pacing's clock; only for benchmarks against a fake Slack with the same scale",
        expected="a number above 0, like 1 or 10",
        gt=0,
        allow_inf_nan=False,
    )
    announce_rate_per_min: int = setting(
        480,
        help="Announcement messages sent per minute, all recipients together, evenly spaced; they also "
        "count against SLACK_POSTS_PER_MIN, where reminders go first",
        expected="a positive whole number of messages",
        gt=0,
    )
    announce_indoubt_wait: float = setting(
        10.0,
        help="Seconds the announcement sender waits after a restart, and a new scheduler leader after a "
        "takeover, before checking whether a message (announcement, shift reminder) that was under way "
        "when the last process died reached Slack",
        expected="a number of seconds between 0 and 3600",
        ge=0,
        le=3600,
        allow_inf_nan=False,
    )
    scheduler_standby_retry: float = setting(
        5.0,
        help="PostgreSQL only: seconds between a standby process's tries to become the one that runs "
        "scheduled jobs; a dead leader is replaced within about this long (SIGKILL included)",
        expected="a number of seconds between 0.1 and 20",
        ge=0.1,
        le=20,
        allow_inf_nan=False,
    )
    scheduler_store_poll: float = setting(
        1.0,
        help="PostgreSQL only: seconds between the leading process's looks at the job store for jobs "
        "that other processes added",
        expected="a number of seconds between 0.1 and 60",
        ge=0.1,
        le=60,
        allow_inf_nan=False,
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", help="DEBUG, INFO, WARNING or ERROR", expected="one of DEBUG, INFO, WARNING, ERROR"
    )

    log_format: Literal["text", "json"] = setting(
        "text",
        help="text (one readable line per record) or json (one JSON object per line: ts, level, logger, message, exc)",
        expected="text or json",
    )
    metrics_token: SecretStr | None = setting(
        None,
        help="When set, GET /metrics wants the header `Authorization: Bearer` followed by this token (401 otherwise)",
        expected="a random string of 16 characters or more",
        min_length=16,
    )
    metrics_port: int | None = setting(
        None,
        help="A second port serving only GET /metrics and GET /healthz, to keep on the internal network "
        "(/metrics is then no longer served on PORT); in Socket Mode the only HTTP the bot serves",
        expected="a port number 1-65535, other than PORT",
        ge=1,
        le=65535,
    )
    prometheus_multiproc_dir: Path | None = setting(
        None,
        help="Directory shared by the bot processes of one host for their metrics, so a scrape of any of "
        "them reports all; emptied before they start; unset with one process",
        expected="an existing directory",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_config passes the environment in (os.environ, or a test's own), so it wins over .env.
        return init_settings, dotenv_settings

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        """Values are trimmed, and a blank one counts as not set (`.env.example` leaves some empty)."""
        if not isinstance(values, dict):
            return values
        trimmed = {name: v.strip() if isinstance(v, str) else v for name, v in values.items()}
        return {name: v for name, v in trimmed.items() if v != ""}

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, token: SecretStr) -> SecretStr:
        return _starting_with("xoxb-", token)

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, token: SecretStr) -> SecretStr:
        return _starting_with("xapp-", token)

    @field_validator("slack_api_url", "policy_base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("not an http(s) URL")
        # Paths are joined onto it.
        return url if url.endswith("/") else url + "/"

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, url: SecretStr) -> SecretStr:
        scheme, separator, rest = url.get_secret_value().partition("://")
        if not separator:
            raise ValueError("not a SQLAlchemy URL")
        try:  # a port that is no number, say: refused here, in one line that never shows the URL
            parsed = make_url(url.get_secret_value())
            port = parsed.port
        except (ArgumentError, ValueError):
            raise ValueError("not a SQLAlchemy URL") from None
        # Refused here rather than as a traceback when the engine is made or first connects.
        if scheme not in _DATABASE_SCHEMES:
            raise ValueError("not a database crewcall supports")
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("no such port")
        if scheme.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
            raise ValueError("an in-memory database, lost at every restart: give SQLite a file")
        # psycopg (v3) is the driver we ship; plain postgres URLs are pointed at it.
        if scheme in ("postgres", "postgresql"):
            return SecretStr("postgresql+psycopg://" + rest)
        return url

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _comma_separated(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return frozenset(part.strip() for part in raw.split(",") if part.strip())
        return raw

    @field_validator("referral_share_percent")
    @classmethod
    def _basis_points(cls, percent: Decimal) -> Decimal:
        if percent * 100 != int(percent * 100):
            raise ValueError("more than two decimals")
        return percent

    @field_validator("referral_model", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, raw: Any) -> Any:
        return raw.lower() if isinstance(raw, str) else raw

    @field_validator("referral_bonus", "referral_bonus_hours", "referral_share_cap", mode="before")
    @classmethod
    def _without_dollar_sign(cls, raw: Any) -> Any:
        return raw.lstrip("$") if isinstance(raw, str) else raw

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, raw: Any) -> Any:
        return raw.upper() if isinstance(raw, str) else raw

    @field_validator("prometheus_multiproc_dir")
    @classmethod
    def _existing_directory(cls, path: Path) -> Path:
        if not path.is_dir():
            raise ValueError("not an existing directory")
        return path

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        tokens = (self.slack_bot_token, self.slack_signing_secret, self.slack_app_token, self.metrics_token)
        values = [t.get_secret_value() for t in tokens if t is not None]
        database_password = urlsplit(self.database_url.get_secret_value()).password
        if database_password:
            values.append(database_password)
        return values


VARIABLES: dict[str, FieldInfo] = {field.alias or name: field for name, field in Config.model_fields.items()}
"""Each variable's name, and its field."""


def load_config(
    env: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
) -> Config:
    """Read the configuration. A variable set in `env` (default: os.environ) wins over `.env`."""
    environment = os.environ if env is None else env
    given: dict[str, Any] = {name: environment[name] for name in VARIABLES if name in environment}
    try:
        return Config(_env_file=dotenv_path, **given)  # type: ignore[call-arg]  # BaseSettings takes _env_file
    except ValidationError as e:
        raise ConfigError(_explain(e.errors()[0])) from None


def _explain(error: ErrorDetails) -> str:
    """One line naming the variable and where to find it; a secret's value is never repeated."""
    name = str(error["loc"][0])
    field = VARIABLES[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    where = f" (find it on {extra['where']})" if extra.get("where") else ""
    if error["type"] == "missing":
        return f"{name} is not set: {field.description}{where}."
    secret = SecretStr in (field.annotation, *get_args(field.annotation))
    got = "" if secret else f", got {error['input']!r}"
    return f"{name} is malformed: expected {extra.get('expected')}{got}{where}."


def _starting_with(prefix: str, token: SecretStr) -> SecretStr:
    if not token.get_secret_value().startswith(prefix):
        raise ValueError(f"does not start with {prefix}")
    return token
