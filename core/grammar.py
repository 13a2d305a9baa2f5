"""The words of a command line, as Slack sends them with `should_escape: true`.

`tokenize` splits text so that Slack's escapes stay whole (`<@U123|ana>`, `<#C123|legal>`,
`<mailto:a@b.com|a@b.com>`, `<https://x.y|label>`) and `"quoted words"` stay together.
Each `Kind` turns one token into a typed value or raises `UsageError` with a message that says
what was expected; its `placeholder` is what help shows, so the grammar and its help are one thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from core.errors import UsageError
from core.text import escape, from_slack

# An escape never contains `<` (Slack sends a typed one as `&lt;`), so `<[^<>]*>` stops at the next
# `<`: each character is looked at a bounded number of times and tokenizing stays linear, whatever
# the input (`< < < …` made `<[^>]*>` rescan to the end from every token).
_TOKEN = re.compile(r'[^\s<"]*(?:<[^<>]*>|"[^"]*")[^\s<"]*|\S+')


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int

    @property
    def unquoted(self) -> str:
        t = self.text
        return t[1:-1] if len(t) >= 2 and t[0] == t[-1] == '"' else t


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text or "")]


@dataclass(frozen=True)
class Kind:
    """How one token becomes a value: `placeholder` for help, `parse` raises UsageError."""

    placeholder: str
    parse: Callable[[str], Any]


def _fail(message: str) -> UsageError:
    return UsageError(message)


def shown(token: str, limit: int = 60) -> str:
    """What a member typed, echoed in an error: short, and as text (never a mention or a link)."""
    token = token.strip()
    return escape(token if len(token) <= limit else token[: limit - 1] + "…")


# ---- Slack escapes -----------------------------------------------------------------------------

# Bare IDs must contain a digit, so that an ordinary word is never taken for one.
_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^@?([UW][A-Z0-9]*\d[A-Z0-9]*)$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$|^#?([CG][A-Z0-9]*\d[A-Z0-9]*)$")
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")
_LINK = re.compile(r"^<(https?://[^|>]+)(?:\|[^>]*)?>$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


def parse_user(token: str) -> str:
    m = _USER.match(token.strip())
    if not m:
        raise _fail(f"`{shown(token)}` is not a person. Mention them like @ana.")
    return m.group(1) or m.group(2)


def parse_channel(token: str) -> str:
    m = _CHANNEL.match(token.strip())
    if not m:
        raise _fail(f"`{shown(token)}` is not a channel. Mention it like #legal-review.")
    return m.group(1) or m.group(2)


def normalize_email(token: str) -> str:
    """Trimmed, lower-cased address from plain text or Slack's `<mailto:…|…>` escape."""
    raw = token.strip()
    m = _MAILTO.match(raw)
    if m:
        raw = m.group(1)
    raw = raw.strip().lower()
    if not _EMAIL.match(raw) or len(raw) > 254:
        raise _fail(
            f"`{shown(token)}` is not a valid email address (expected something like ana@example.com)."
        )
    return raw


_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def email_key(address: str) -> str:
    """The mailbox an address reaches, for comparing people: `Ana.Silva+x@GoogleMail.com`,
    ` .anasilva@gmail.com. ` and `anasilva@gmail.com` are one person. Lower case; spaces and dots
    around the address and its local part dropped; a `+tag` dropped (plus-addressing); for Gmail
    (`gmail.com`, `googlemail.com`, one mailbox) the dots in the local part dropped too."""
    local, _, domain = address.strip().strip(". ").lower().rpartition("@")
    if not local:
        return address.strip().lower()
    local = local.split("+", 1)[0].strip(".")
    domain = domain.strip(".")
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def parse_url(token: str) -> str:
    m = _LINK.match(token.strip())
    raw = m.group(1) if m else token.strip()
    if not re.match(r"^https?://[^\s/]+\.[^\s]+$", raw):
        raise _fail(f"`{shown(token)}` is not a link (expected https://…).")
    return raw


def record_id(prefix: str, noun: str) -> Kind:
    """IDs as people type them: `T-12`, `T12`, `t-12` or just `12`."""
    pattern = re.compile(rf"^(?:{prefix}-?)?(\d{{1,9}})$", re.IGNORECASE)

    def parse(token: str) -> int:
        m = pattern.match(token.strip())
        if not m or int(m.group(1)) == 0:
            raise _fail(f"`{shown(token)}` is not a {noun} ID (expected something like {prefix}-12).")
        return int(m.group(1))

    return Kind(f"{prefix}-n", parse)


def integer(low: int = 0, high: int = 1_000_000, noun: str = "number") -> Kind:
    def parse(token: str) -> int:
        try:
            value = int(token)
        except ValueError:
            raise _fail(f"`{shown(token)}` is not a whole {noun}.") from None
        if not low <= value <= high:
            raise _fail(f"The {noun} must be between {low} and {high} (got {shown(token)}).")
        return value

    return Kind("N", parse)


def money(low: Decimal = Decimal("0"), high: Decimal = Decimal("100000")) -> Kind:
    def parse(token: str) -> Decimal:
        cleaned = token.strip().lstrip("$").replace(",", "")
        try:
            value = Decimal(cleaned)
        except InvalidOperation:
            raise _fail(f"`{shown(token)}` is not an amount (expected dollars like 120 or 87.50).") from None
        if not value.is_finite() or not low <= value <= high or value.as_tuple().exponent < -2:  # type: ignore[operator]
            raise _fail(
                f"The amount must be between ${low} and ${high}, in dollars and cents (got {shown(token)})."
            )
        return value

    return Kind("N", parse)


def hours_amount(high: Decimal = Decimal("1000")) -> Kind:
    def parse(token: str) -> Decimal:
        try:
            value = Decimal(token.strip().rstrip("h"))
        except InvalidOperation:
            raise _fail(
                f"`{shown(token)}` is not a number of hours (expected something like 6 or 2.5)."
            ) from None
        if not value.is_finite() or not Decimal(0) < value <= high:
            raise _fail(f"Hours must be more than 0 and at most {high} (got {shown(token)}).")
        return value

    return Kind("N", parse)


#: Dates crewcall accepts at all; each rule narrows them further (a due date within a year…).
#: Beyond these, date arithmetic would overflow, and no task, shift or report means them.
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)


def _within_horizon(token: str, day: date) -> None:
    if not EARLIEST <= day <= LATEST:
        raise _fail(
            f"`{shown(token)}` is too far away: dates go from {EARLIEST.isoformat()} to {LATEST.isoformat()}."
        )


def parse_date(token: str) -> date:
    try:
        value = date.fromisoformat(token.strip())
    except ValueError:
        raise _fail(f"`{shown(token)}` is not a date (expected YYYY-MM-DD, like 2026-03-14).") from None
    _within_horizon(token, value)
    return value


def parse_local_datetime(token: str) -> datetime:
    """A wall-clock time without zone (`2026-03-14T09:30`); the caller attaches the zone."""
    try:
        value = datetime.strptime(token.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise _fail(
            f"`{shown(token)}` is not a date and time (expected YYYY-MM-DDTHH:MM, like 2026-03-14T09:30)."
        ) from None
    _within_horizon(token, value.date())
    return value


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(token: str) -> timedelta:
    """`30m`, `2h`, `1h30m`, `1d`."""
    raw = token.strip().lower()
    m = _DURATION.match(raw)
    if not raw or not m or not any(m.groups()):
        raise _fail(f"`{shown(token)}` is not a duration (expected something like 30m, 2h or 1h30m).")
    if any(len(g or "") > 9 for g in m.groups()):
        raise _fail(f"The duration must be more than 0 and at most 30 days (got {shown(token)}).")
    days, hours, minutes = (int(g or 0) for g in m.groups())
    total = (days * 24 + hours) * 60 + minutes  # in whole minutes: no overflow before the bound check
    if total <= 0 or total > 30 * 24 * 60:
        raise _fail(f"The duration must be more than 0 and at most 30 days (got {shown(token)}).")
    return timedelta(minutes=total)


def parse_timezone(token: str) -> str:
    name = token.strip()
    if name not in _zones():
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise _fail(
                f"`{shown(token)}` is not a time zone I know (expected Area/City, like America/Chicago)."
            ) from None
    return name


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def parse_skill(token: str) -> str:
    value = token.strip().lower()
    if not _SLUG.match(value):
        raise _fail(
            f"`{shown(token)}` is not a skill name. Skills are short lowercase words or slugs like legal, medicine, python."
        )
    return value


def parse_skills(token: str) -> list[str]:
    parts = [p for p in re.split(r"[,\s]+", token.strip()) if p]
    if not parts:
        raise _fail("Name at least one skill, separated by commas (like legal,medicine).")
    return sorted({parse_skill(p) for p in parts})


def choice(*values: str) -> Kind:
    def parse(token: str) -> str:
        value = token.strip().lower()
        if value not in values:
            raise _fail(f"`{shown(token)}` is not one of: {', '.join(values)}.")
        return value

    return Kind("|".join(values), parse)


USER = Kind("@person", parse_user)
CHANNEL = Kind("#channel", parse_channel)
EMAIL = Kind("email", normalize_email)
URL = Kind("link", parse_url)
DATE = Kind("YYYY-MM-DD", parse_date)
LOCAL_DATETIME = Kind("YYYY-MM-DDTHH:MM", parse_local_datetime)
DURATION = Kind("30m", parse_duration)
TIMEZONE = Kind("Area/City", parse_timezone)
SKILL = Kind("skill", parse_skill)
SKILLS = Kind("skill1,skill2", parse_skills)
#: Free words from a command line or a message: Slack's markup (`<!channel>`, `<@U1|ana>`,
#: `<https://x|label>`, `&amp;`) read as the plain text its author saw (core.text.from_slack).
TEXT = Kind("text", from_slack)
#: Text typed into a modal's field: Slack sends it as typed, so it is kept as it is.
PLAIN = Kind("text", str)
