"""The listener kit's shared readers and core.money: button values (a stale or forged one is
answered "out of date" through the HTTP door and changes nothing), modal fields, amounts."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from sqlalchemy import func
from sqlmodel import select

from core.grammar import SKILL, choice, integer, record_id
from core.money import cents, csv_dollars, dollars
from db.models import AnnouncementAck, Assignment, AuditEntry, LeaderboardOptIn, ShiftMember
from handlers.kit.context import FieldErrors, ViewValues
from handlers.kit.interactions import MEMBER_ID, OFFSET, ButtonReader, StaleButton
from sandbox.harness import BotHarness
from tests.shift_helpers import eventually, new_shift
from tests.tasks_support import make_lead, post

# ---- the button reader -------------------------------------------------------------------------

TASK = record_id("T", "task")
READER = ButtonReader("Type `/tasks` to see the current tasks.")


def test_button_values_are_read_into_typed_parts() -> None:
    assert READER.one("12", TASK) == 12
    assert READER.parts("12:ULEAD", TASK, MEMBER_ID) == (12, "ULEAD")
    assert READER.parts("all:20", choice("mine", "all"), OFFSET) == ("all", 20)


@pytest.mark.parametrize(
    ("value", "kinds"),
    [
        ("", (TASK,)),
        ("abc", (TASK,)),
        ("0", (TASK,)),
        ("99999999999", (TASK,)),  # past what an integer column holds
        ("12:ULEAD", (TASK,)),  # more parts than the button has
        ("12", (TASK, MEMBER_ID)),  # fewer
        ("12:", (TASK, MEMBER_ID)),
        ("12:<@U1>", (TASK, MEMBER_ID)),
        ("12:U1:U2", (TASK, MEMBER_ID)),
        ("-1", (OFFSET,)),
        ("some:10", (choice("mine", "all"), OFFSET)),
    ],
)
def test_a_value_that_does_not_fit_is_out_of_date(value: str, kinds: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(StaleButton) as raised:
        READER.parts(value, *kinds)
    assert raised.value.message == "That button is out of date. Type `/tasks` to see the current tasks."


# ---- clicked through the HTTP door -------------------------------------------------------------

MEMBER = "U1"
LEAD = "ULEAD"
# (who clicks, action_id, stale or forged values, the command the answer points to)
FORGED = [
    (MEMBER, "task_claim", ["", "abc", "0", "99999999999", "1:U1", "T-1x"], "/tasks"),
    (MEMBER, "task_release", ["abc", "1:2"], "/tasks"),
    (MEMBER, "task_submit_open", ["", "1.5"], "/tasks"),
    (MEMBER, "task_list_more", ["-10", "ten", "99999999999"], "/tasks"),
    (MEMBER, "task_mine_more", ["x", "10:10"], "/tasks"),
    (LEAD, "task_history_more", ["1", "1:x", "x:40", "1:-40"], "/tasks"),
    (LEAD, "task_approve", ["1", "1:", "x:U1", "1:not a member", "1:U1:U2"], "/tasks"),
    (LEAD, "task_reject_open", ["1", "1:<@U1>"], "/tasks"),
    (MEMBER, "shift_join", ["", "x", "S-0", "99999999999", "1:1"], "/shifts"),
    (MEMBER, "shift_leave", ["x", "1:1"], "/shifts"),
    (MEMBER, "shift_cant_make_it", ["", "one"], "/shifts"),
    (MEMBER, "shifts_more", ["all", "some:10", "mine:-1", "all:x"], "/shifts"),
    (MEMBER, "referrals_leaderboard", ["", "maybe", "on:1"], "/referrals"),
    (MEMBER, "referrals_mine_more", ["", "x", "0", "99999999999"], "/referrals"),
    (LEAD, "referrals_all_more", ["5", "bogus:5", "hired:x", "hired:5:5"], "/referrals all"),
    (MEMBER, "announce_ack", ["", "x", "0", "99999999999"], "Nothing was recorded."),
    (LEAD, "announce_list_more", ["x", "-10", "99999999999"], "/announce list"),
    (MEMBER, "policy_up", ["", "x", "0", "99999999999"], "Nothing changed."),
    (MEMBER, "policy_ask_lead", ["", "1:2"], "Nothing changed."),
    (LEAD, "policy_answer", ["x", "-1"], "Nothing changed."),
    (LEAD, "policy_faq_page", ["", "0", "x"], "/policy faq"),
    (LEAD, "policy_faq_edit", ["1", '{"faq": 1, "page": 1}', "x:1", "1:0"], "/policy faq"),
    (LEAD, "policy_faq_delete", ["1", "1:x"], "/policy faq"),
]
SIDE_EFFECTS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish")


def _rows(bot: BotHarness) -> tuple[int, ...]:
    with bot.services.db.write() as session:
        return tuple(
            session.exec(select(func.count()).select_from(model)).one()
            for model in (AuditEntry, Assignment, ShiftMember, LeaderboardOptIn, AnnouncementAck)
        )


def _slack_effects(bot: BotHarness) -> int:
    return sum(len(bot.fake.calls_to(method)) for method in SIDE_EFFECTS)


def _quiet_slack_effects(bot: BotHarness, quiet: float = 1.0, limit: float = 15.0) -> int:
    """The count once the setup's after-the-ack work (card redraws, Home publishes) has stopped
    arriving for `quiet` seconds: a fixed pause was too short on a loaded machine."""
    deadline = time.monotonic() + limit
    count = _slack_effects(bot)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = _slack_effects(bot)
        if now == count:
            return count
        count = now
    raise AssertionError(f"Slack calls kept arriving for {limit} s")


def test_stale_or_forged_button_values_answer_out_of_date_and_change_nothing(bot: BotHarness) -> None:
    make_lead(bot, LEAD)
    bot.wait_dm(LEAD, "made you a crewcall lead")
    bot.fake.add_user(MEMBER)
    post(bot, "Review contracts slots=2 rate=120 hours=6")  # T-1
    assert "You're on the referral leaderboard" in bot.command(MEMBER, "/referrals", "leaderboard on").text
    new_shift(bot, "Night review start=2026-01-06T22:00 end=2026-01-07T02:00 slots=2")  # S-1
    assert "You're on *S-1" in bot.command(MEMBER, "/shifts", "join S-1").text
    eventually(lambda: "1 of 2" in bot.fake.messages["C0SHIFTS"][0]["text"])  # the card redrawn
    effects = _quiet_slack_effects(bot)
    rows = _rows(bot)

    for user, action_id, values, hint in FORGED:
        for value in values:
            answer = bot.click(user, action_id, value).text
            assert "That button is out of date." in answer and hint in answer, (action_id, value, answer)

    assert _rows(bot) == rows
    assert _slack_effects(bot) == effects


# ---- the modal form reader ---------------------------------------------------------------------


def _values(**texts: str) -> ViewValues:
    return ViewValues(
        {block: {"value": {"type": "plain_text_input", "value": v}} for block, v in texts.items()}
    )


def test_form_collects_every_problem_under_its_block_before_answering() -> None:
    form = _values(slots="0", skill="not a skill", title="  ").form()
    assert form.parse("slots", integer(1, 5, "number of slots")) is None
    assert form.parse("rate", integer()) is None
    assert form.parse("skill", SKILL, required=False) is None
    assert form.parse("note", SKILL, required=False) is None  # optional and empty: no problem
    assert form.parse("title", SKILL) is None  # only spaces is empty
    form.fail("slots", "A later problem with the same field is not shown.")
    with pytest.raises(FieldErrors) as raised:
        form.done()
    assert raised.value.errors == {
        "slots": "The number of slots must be between 1 and 5 (got 0).",
        "rate": "Required.",
        "skill": "`not a skill` is not a skill name. Skills are short lowercase words or slugs like legal, "
        "medicine, python.",
        "title": "Required.",
    }


def test_form_reads_good_fields_and_checks_with_domain_rules() -> None:
    form = _values(slots=" 3 ", skill="Legal").form()
    assert form.parse("slots", integer(1, 5)) == 3
    assert form.parse("skill", SKILL, required=False) == "legal"
    assert form.check("slots", lambda n: n * 2, 21) == 42
    form.done()  # nothing wrong: nothing raised


# ---- money ---------------------------------------------------------------------------------------


def test_dollars_show_cents_only_when_there_are_some() -> None:
    assert [dollars(c) for c in (0, 5, 12_000, 8_750, 125_000, 123_456_789)] == [
        "$0",
        "$0.05",
        "$120",
        "$87.50",
        "$1,250",
        "$1,234,567.89",
    ]
    assert dollars(30_000, always_cents=True) == "$300.00"
    assert dollars(-150) == "-$1.50"
    assert [csv_dollars(c) for c in (0, 12_000, 123_456_789)] == ["0.00", "120.00", "1234567.89"]


def test_cents_from_dollars() -> None:
    assert cents(Decimal("120")) == 12_000
    assert cents(Decimal("87.5")) == 8_750
    assert cents(Decimal("0.01")) == 1
    assert cents(Decimal("250.005")) == 25_001  # a configured fraction of a cent: half-up, the one rule
