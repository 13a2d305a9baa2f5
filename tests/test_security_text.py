"""What people type stays text (issue 12, item 2): every markup form a member can get onto the wire
is injected in each place the bot re-posts member text, and what the fake Slack received shows it as
text: no broadcast mention, no user mention, no disguised link, and nothing escaped twice.

Slash commands and message events carry Slack's own markup (`should_escape`: `@channel` arrives as
`<!channel>`, a composer link as `<https://…|label>`, a typed `&` as `&amp;`); modal fields carry
exactly what was typed. Both kinds are injected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from core.text import escape, from_slack
from sandbox.driver import checkboxes, conversations_select, datepicker
from sandbox.fake_slack import Call, FakeSlack, dm_channel_id
from sandbox.harness import BotHarness
from tests.shift_helpers import eventually

LEADS, TASKS, SHIFTS, NEWS = "C0LEADS", "C0TASKS", "C0SHIFTS", "C0NEWS"
LEAD, MEMBER = "ULEAD", "U1"

#: On the wire of a command or an event: what Slack sends when the member typed @channel, @here,
#: @everyone, a user group, a composer link labelled "Payroll…", a mention, and `&` / `<` / `>`.
WIRE = (
    "<!channel> <!here> <!everyone> <!subteam^S1|@payroll-team> "
    "<https://evil.example|Payroll: confirm your bank details> <@UEVIL> Q&amp;A &lt;!channel&gt;"
)
#: Typed into a modal field: Slack sends it as typed.
TYPED = (
    "<!channel> <!here> <!everyone> <!subteam^S1> "
    "<https://evil.example|Payroll: confirm your bank details> <@UEVIL> Q&A &amp;"
)
LIVE_MARKUP = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^",
    "<https://evil.example",
    "<@UEVIL",
)


@pytest.fixture
def bot(sqlite_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(sqlite_url, fake=fake, env={"LEADS_CHANNEL": LEADS})
    harness.start()
    # A display name is member-supplied text too.
    fake.add_user(LEAD, name="lena", real_name="Lena <!here> &amp; co", display_name="<!channel>", tz="UTC")
    fake.add_user(MEMBER, tz="UTC")
    assert "is now a lead" in harness.command("UADMIN", "/crew", f"lead <@{LEAD}>").text
    harness.command(MEMBER, "/crew", "me")
    yield harness
    harness.close()


def _shown(params: dict[str, Any]) -> str:
    """Everything Slack would render of a message, view or response."""
    return json.dumps(
        {k: params.get(k) for k in ("text", "blocks", "view") if params.get(k) is not None},
        ensure_ascii=False,
    )


def _received(bot: BotHarness) -> list[Call]:
    methods = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish", "views.open")
    return [c for c in bot.fake.calls if c.method in (*methods, "response_url")]


def assert_text_only(bot: BotHarness, *, expect: tuple[str, ...]) -> None:
    """Nothing the bot sent carries live markup; each `expect` (the injected text as it must look
    on the wire) reached Slack somewhere."""
    seen = [_shown(c.params) for c in _received(bot)]
    everything = "\n".join(seen)
    for markup in LIVE_MARKUP:
        offenders = [s[:300] for s in seen if markup in s]
        assert not offenders, f"{markup} reached Slack as markup: {offenders}"
    assert "&amp;amp;" not in everything.replace(escape("&amp;"), ""), "escaped twice"
    for needle in expect:
        assert needle in everything, f"{needle!r} never reached Slack"


AS_COMMAND = escape(from_slack(WIRE))  # how command or message text must arrive: `@channel … Q&amp;A`
AS_TYPED = escape(TYPED)  # how modal text must arrive: `&lt;!channel&gt; …`


def test_the_wire_form_reads_as_plain_text() -> None:
    assert from_slack(WIRE) == (
        "@channel @here @everyone @payroll-team https://evil.example @UEVIL Q&A <!channel>"
    )
    assert AS_COMMAND.endswith("Q&amp;A &lt;!channel&gt;")


def test_tasks_titles_notes_and_reasons_stay_text(bot: BotHarness) -> None:
    reply = bot.command(LEAD, "/tasks", f"new {WIRE} rate=120 hours=6 channel=<#{TASKS}|tasks>")
    assert "Posted" in reply.text, reply.text
    card = bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == TASKS)[0]
    assert AS_COMMAND in _shown(card.params)
    assert "is yours" in bot.command(MEMBER, "/tasks", "claim T-1").text
    not_held = bot.command(LEAD, "/hours", "in T-1").text  # a refusal that names the task
    assert f"You don't hold T-1 ({AS_COMMAND})" in not_held, not_held
    assert "Submitted" in bot.command(MEMBER, "/tasks", f"done T-1 confirm {WIRE}").text
    bot.wait_dm(LEAD, "submitted")
    bot.driver.home_opened(LEAD)  # type: ignore[union-attr]
    bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == LEAD)
    assert "Rejected" in bot.command(LEAD, "/tasks", f"reject T-1 <@{MEMBER}> {WIRE}").text
    bot.wait_dm(MEMBER, "rejected")
    bot.command(LEAD, "/tasks", "history T-1")
    # The same through the form: title and description as typed.
    bot.driver.command(LEAD, "/tasks", "new", channel_id=TASKS)  # type: ignore[union-attr]
    view = bot.fake.wait_for("views.open")[0].response["view"]
    values = {
        "title": {"value": TYPED[:200]},
        "description": {"value": TYPED},
        "rate": {"value": "100"},
        "hours": {"value": "2"},
        "slots": {"value": "1"},
        "due": {"value": datepicker(None)},
        "channel": {"value": conversations_select(TASKS)},
    }
    assert bot.submit(LEAD, "task_new", values, view=view).status == 200
    bot.fake.wait_for("chat.postMessage", count=2, predicate=lambda c: c.params["channel"] == TASKS)
    assert_text_only(bot, expect=(AS_COMMAND, AS_TYPED))
    dms = [_shown(c.params) for c in bot.dms_to(LEAD) + bot.dms_to(MEMBER)]
    assert sum(AS_COMMAND in d for d in dms) >= 2  # the note to the lead, the reason to the member


def test_shift_names_stay_text(bot: BotHarness) -> None:
    reply = bot.command(
        LEAD, "/shifts", f"new {WIRE} start=2026-01-06T22:00 end=2026-01-07T02:00 channel=<#{SHIFTS}>"
    )
    assert "Scheduled" in reply.text, reply.text
    bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == SHIFTS)
    bot.command(MEMBER, "/shifts", "join S-1")
    bot.command(MEMBER, "/shifts", "all")
    assert_text_only(bot, expect=(AS_COMMAND,))
    # A refusal that names the shift shows the name as text too (one slot, already taken).
    bot.fake.add_user("U2", tz="UTC")
    full = bot.command("U2", "/shifts", "join S-1").text
    assert f"S-1 ({AS_COMMAND}) is full" in full, full


def test_referral_names_stay_text(bot: BotHarness) -> None:
    assert "recorded" in bot.command(MEMBER, "/refer", f"ana@firm.example {WIRE}").text
    bot.command(LEAD, "/referrals", "set R-1 applied")
    bot.wait_dm(MEMBER, "applied")
    bot.command(LEAD, "/referrals", "all")
    assert_text_only(bot, expect=(escape(" ".join(from_slack(WIRE).split())),))


def test_questions_and_answers_stay_text_in_the_leads_card_and_the_dm(bot: BotHarness) -> None:
    assert bot.driver is not None
    bot.command(MEMBER, "/policy", f"will it rain tomorrow in Lisbon? {WIRE}")
    bot.driver.message_im(MEMBER, f"what is the weather forecast for Porto? {WIRE}")
    bot.driver.app_mention(MEMBER, f"<@U0BOT> who won the football match? {WIRE}")
    cards = bot.fake.wait_for(
        "chat.postMessage",
        count=3,
        predicate=lambda c: c.params["channel"] == LEADS and "policy_answer" in _shown(c.params),
    )
    for card in cards:
        assert AS_COMMAND in _shown(card.params)
    question = next(
        b["elements"][0]["value"] for b in cards[0].params["blocks"] if b.get("type") == "actions"
    )
    bot.driver.click(LEAD, "policy_answer", question, channel_id=LEADS, message_ts=cards[0].response["ts"])
    view = bot.fake.wait_for("views.open")[0].response["view"]
    answer = {"answer": {"value": TYPED}, "save": {"value": checkboxes(["faq"])}}
    assert bot.submit(LEAD, "policy_answer", answer, private_metadata=view["private_metadata"]).status == 200
    bot.wait_dm(MEMBER, "answered")
    bot.command(LEAD, "/policy", "faq")
    assert_text_only(bot, expect=(AS_COMMAND, AS_TYPED))


def test_announcements_and_display_names_stay_text(bot: BotHarness) -> None:
    reply = bot.command(LEAD, "/announce", f"<#{NEWS}> Office hours moved {WIRE}")
    assert "going out" in reply.text, reply.text
    post = bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == NEWS)[0]
    assert AS_COMMAND in _shown(post.params)
    eventually(lambda: bot.dms_to(LEAD))  # the lead's status card
    assert_text_only(bot, expect=(AS_COMMAND, "Lena &lt;!here&gt; &amp;amp; co"))
    assert dm_channel_id(LEAD)
