"""The shared command grammar: Slack's escapes, IDs, options and typed values."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from core.errors import UsageError
from core.grammar import (
    CHANNEL,
    DATE,
    TEXT,
    integer,
    money,
    normalize_email,
    parse_channel,
    parse_duration,
    parse_local_datetime,
    parse_skills,
    parse_timezone,
    parse_url,
    parse_user,
    record_id,
    tokenize,
)
from handlers.kit.commands import Option, Param, SlashCommand


def test_tokenize_keeps_escapes_and_quotes_whole() -> None:
    text = 'new "Review 40 contracts" channel=<#C123|legal review> <@U1|ana b> <https://x.io/a|a link>'
    assert [t.text for t in tokenize(text)] == [
        "new",
        '"Review 40 contracts"',
        "channel=<#C123|legal review>",
        "<@U1|ana b>",
        "<https://x.io/a|a link>",
    ]


@pytest.mark.parametrize("raw", ["<@U123ABC|ana>", "<@U123ABC>", "U123ABC", "@U123ABC", "<@W99>"])
def test_users(raw: str) -> None:
    assert parse_user(raw) in ("U123ABC", "W99")


@pytest.mark.parametrize("raw", ["ana", "@ana", "<#C123>", "UNLEAD", ""])
def test_not_users(raw: str) -> None:
    with pytest.raises(UsageError, match="not a person"):
        parse_user(raw)


def test_channels() -> None:
    assert parse_channel("<#C0123|legal>") == "C0123"
    assert parse_channel("<#G42>") == "G42"
    assert parse_channel("C0123") == "C0123"
    with pytest.raises(UsageError, match="not a channel"):
        parse_channel("#legal")


def test_emails_are_normalized_from_slack_escapes() -> None:
    assert normalize_email("<mailto:Ana.B@Example.COM|Ana.B@Example.COM>") == "ana.b@example.com"
    assert normalize_email("  Bo@x.org ") == "bo@x.org"
    for bad in ("bo@", "bo", "bo@x", "<mailto:nope|nope>", "a b@x.org"):
        with pytest.raises(UsageError, match="not a valid email"):
            normalize_email(bad)


def test_links() -> None:
    assert parse_url("<https://docs.x.io/a?b=1|docs>") == "https://docs.x.io/a?b=1"
    assert parse_url("https://x.io") == "https://x.io"
    with pytest.raises(UsageError):
        parse_url("ftp://x.io")


@pytest.mark.parametrize("raw", ["T-12", "T12", "t-12", "12", "t12"])
def test_record_ids(raw: str) -> None:
    assert record_id("T", "task").parse(raw) == 12


@pytest.mark.parametrize("raw", ["S-12", "T-", "T-0", "twelve", "-12", "T-1x"])
def test_bad_record_ids(raw: str) -> None:
    with pytest.raises(UsageError, match="not a task ID"):
        record_id("T", "task").parse(raw)


def test_numbers_money_dates_durations_zones_skills() -> None:
    assert integer(1, 50).parse("5") == 5
    with pytest.raises(UsageError, match="between 1 and 50"):
        integer(1, 50).parse("0")
    assert money().parse("$120") == Decimal("120")
    assert money().parse("87.50") == Decimal("87.50")
    with pytest.raises(UsageError):
        money().parse("12.345")
    assert DATE.parse("2026-03-14") == date(2026, 3, 14)
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        DATE.parse("14/03/2026")
    assert parse_local_datetime("2026-03-14T09:30") == datetime(2026, 3, 14, 9, 30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("30m") == timedelta(minutes=30)
    for bad in ("soon", "0m", "90", "31d"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert parse_timezone("America/Chicago") == "America/Chicago"
    with pytest.raises(UsageError, match="time zone"):
        parse_timezone("Mars/Olympus")
    assert parse_skills("Legal, medicine legal") == ["legal", "medicine"]


def _command() -> SlashCommand:
    cmd = SlashCommand("/x", "test")

    @cmd.sub(
        "new",
        "make",
        params=[Param("title", TEXT, rest=True)],
        options=[Option("slots", integer(1, 500), default=1), Option("channel", CHANNEL)],
    )
    def new(ctx, args):  # type: ignore[no-untyped-def]
        pass

    @cmd.sub("claim", "claim", params=[Param("task", record_id("T", "task"))])
    def claim(ctx, args):  # type: ignore[no-untyped-def]
        pass

    return cmd


def test_options_anywhere_and_free_text_keeps_its_spacing() -> None:
    sub, args = _command().resolve("new Review  40 slots=3 contracts\nfast channel=<#C9|x>")  # type: ignore[misc]
    assert sub.name == "new"
    assert args.title == "Review  40 contracts\nfast"
    assert args.slots == 3
    assert args.channel == "C9"
    _, defaults = _command().resolve("new Only a title")  # type: ignore[misc]
    assert defaults.slots == 1 and defaults.channel is None


def test_parse_errors_carry_the_usage_line() -> None:
    cmd = _command()
    with pytest.raises(UsageError) as e:
        cmd.resolve("new Title slots=many")
    assert "`many` is not a whole number" in e.value.message
    assert e.value.usage == "/x new <text…> [slots=N] [channel=#channel]"
    with pytest.raises(UsageError, match="not a /x subcommand"):
        cmd.resolve("fly")
    with pytest.raises(UsageError, match="didn't understand"):
        cmd.resolve("claim T-1 T-2")
    with pytest.raises(UsageError, match="needs a value"):
        cmd.resolve("new T slots=")


def test_help_is_built_from_the_grammar() -> None:
    cmd = _command()
    assert cmd.resolve("help") is None
    assert cmd.resolve("claim help") is cmd.subcommands["claim"]
    text = cmd.help_text()
    assert "/x new <text…> [slots=N] [channel=#channel]" in text
    assert "/x claim <T-n>" in text


def test_strict_free_text_refuses_a_mistyped_option() -> None:
    cmd = SlashCommand("/x", "test")

    @cmd.sub(
        "new",
        "make",
        params=[Param("title", TEXT, rest=True, strict=True)],
        options=[Option("slots", integer())],
    )
    def new(ctx, args):  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(UsageError, match=r"`slot` is not an option of `/x new` \(options: slots\)"):
        cmd.resolve("new Review contracts slot=3")
    _, args = cmd.resolve("new Review Q=3 contracts slots=3")  # type: ignore[misc]
    assert args.title == "Review Q=3 contracts"
