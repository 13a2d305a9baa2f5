"""Policy answers through the HTTP door: /policy, DMs and @mentions with citations; escalation to the
leads and the lead's answer reaching the asker and becoming a FAQ; feedback; FAQ upkeep; reload."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from db.models import AuditEntry, PolicyFeedback, PolicyQuestion
from domain.policy import PolicyIndex, load_eval_cases
from domain.policy import service as rules
from sandbox.driver import checkboxes, static_select
from sandbox.fake_slack import Call, FakeSlack, dm_channel_id
from sandbox.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]
LEADS = "C0LEADS"
BASE_URL = "https://handbook.example.com/policies/"


def _env(**extra: str) -> dict[str, str]:
    return {"LEADS_CHANNEL": LEADS, "POLICY_BASE_URL": BASE_URL, **extra}


@pytest.fixture
def bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    """The bot with a leads channel and handbook links, on SQLite and PostgreSQL."""
    harness = BotHarness(database_url, fake=fake, env=_env())
    harness.start()
    _people(harness)
    yield harness
    harness.close()


@pytest.fixture
def sqlite_bot(sqlite_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(sqlite_url, fake=fake, env=_env())
    harness.start()
    _people(harness)
    yield harness
    harness.close()


def _people(bot: BotHarness) -> None:
    for user in ("U1", "U2", "ULEAD", "ULEAD2"):
        bot.fake.add_user(user, name=user.lower())
    for lead in ("ULEAD", "ULEAD2"):
        bot.command("UADMIN", "/crew", f"lead <@{lead}>")
        bot.wait_dm(lead, "made you a crewcall lead")  # settled, so later waits see only our calls


def _text(params: dict[str, Any]) -> str:
    return str(params.get("text", "")) + json.dumps(params.get("blocks") or [], ensure_ascii=False)


def _action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    ids = []
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id"):
                ids.append(element["action_id"])
        if (block.get("accessory") or {}).get("action_id"):
            ids.append(block["accessory"]["action_id"])
    return ids


def _value(blocks: list[dict[str, Any]], action_id: str) -> str:
    for block in blocks:
        for element in [*(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {json.dumps(blocks)[:500]}")


def _posts_to(bot: BotHarness, channel: str) -> list[Call]:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.ok and c.params.get("channel") == channel]


def _wait_post(bot: BotHarness, channel: str, contains: str = "", count: int = 1) -> Call:
    def matches(c: Call) -> bool:
        return c.ok and c.params.get("channel") == channel and contains in _text(c.params)

    return bot.fake.wait_for("chat.postMessage", count=count, predicate=matches)[-1]


def _questions(bot: BotHarness) -> list[PolicyQuestion]:
    with bot.services.db.write() as session:
        return list(session.exec(select(PolicyQuestion).order_by(PolicyQuestion.id)))


def _eventually(probe: Callable[[], list[Any]], timeout: float = 5.0) -> list[Any]:
    """What `probe` returns once it is non-empty (for work the bot finishes after replying)."""
    deadline = time.monotonic() + timeout
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def _escalate_by_mention(bot: BotHarness, text: str, user: str = "U1") -> tuple[str, Call]:
    """Mention the bot with a question it can't answer; return the mention's ts and the leads' card."""
    assert bot.driver is not None
    before = len(_posts_to(bot, LEADS))
    ts = bot.fake.next_ts()
    bot.driver.app_mention(user, f"<@U0BOT> {text}", channel="C0GENERAL", ts=ts)
    card = _wait_post(bot, LEADS, "policy_answer", count=before + 1)
    return ts, card


def _open_answer_modal(bot: BotHarness, lead: str, card: Call) -> dict[str, Any]:
    assert bot.driver is not None
    before = len(bot.fake.calls_to("views.open"))
    qid = _value(card.params["blocks"], "policy_answer")
    bot.driver.click(lead, "policy_answer", qid, channel_id=LEADS, message_ts=card.response["ts"])
    return bot.fake.wait_for("views.open", count=before + 1)[-1].response["view"]


def _submit_answer(
    bot: BotHarness,
    lead: str,
    view: dict[str, Any],
    answer: str,
    save: bool = True,
    section: str | None = None,
) -> Any:
    values: dict[str, Any] = {
        "answer": {"value": answer},
        "save": {"value": checkboxes(["faq"] if save else [])},
    }
    if section:
        values["section"] = {"value": static_select(section)}
    return bot.submit(lead, "policy_answer", values, private_metadata=view["private_metadata"])


# ------------------------------------------------------------------------------- three ways to ask
def test_slash_command_answers_privately_with_quote_citation_link_and_feedback(bot: BotHarness) -> None:
    reply = bot.command("U1", "/policy", "Can I run my answers through ChatGPT?")
    assert reply.via == "response_url"  # ephemeral, after the ack
    quote = reply.blocks[0]["text"]["text"]
    assert quote.startswith(">") and "ChatGPT" in quote
    assert len(quote) < 400, "the quote is a short passage, not the whole section"
    assert f"<{BASE_URL}work-rules.md#ai-tools|AI tools>" in reply.all_text
    assert _action_ids(reply.blocks) == ["policy_up", "policy_down"]
    [question] = _questions(bot)
    assert (question.via, question.state, question.section_id) == (
        "command",
        "answered",
        "work-rules#ai-tools",
    )
    assert question.asker_id == "U1" and question.confidence >= 0.35


def test_a_dm_is_answered_in_the_dm_and_bot_messages_are_ignored(bot: BotHarness) -> None:
    assert bot.driver is not None
    bot.driver.message_im("U1", "when is payday?")
    answer = _wait_post(bot, dm_channel_id("U1"), "Friday")
    assert "Payday" in _text(answer.params) and "pay-and-hours.md#payday" in _text(answer.params)
    assert answer.params.get("thread_ts") is None
    # Edits, the bot's own messages and small talk do not become questions.
    bot.driver.event(
        {
            "type": "message",
            "channel_type": "im",
            "channel": "D1",
            "subtype": "message_changed",
            "hidden": True,
        }
    )
    bot.driver.event(
        {
            "type": "message",
            "channel_type": "im",
            "channel": "D1",
            "user": "U0BOT",
            "bot_id": "B0BOT",
            "text": "x",
        }
    )
    bot.driver.message_im("U1", "thanks!")
    hint = _wait_post(bot, dm_channel_id("U1"), "/policy your question")
    assert "policy_up" not in _text(hint.params)
    time.sleep(0.2)
    assert len(_posts_to(bot, dm_channel_id("U1"))) == 2
    assert [q.text for q in _questions(bot)] == ["when is payday?"]
    assert _posts_to(bot, LEADS) == []


def test_a_mention_is_answered_in_a_thread_without_the_mention(bot: BotHarness) -> None:
    assert bot.driver is not None
    ts = bot.fake.next_ts()
    bot.driver.app_mention("U1", "<@U0BOT> if my friend joins, do I get something?", ts=ts)
    answer = _wait_post(bot, "C0GENERAL", "Referral bonus")
    assert answer.params["thread_ts"] == ts
    assert "$250" in _text(answer.params)
    # Asked inside an existing thread: answered in that thread.
    bot.driver.event(
        {
            "type": "app_mention",
            "user": "U2",
            "channel": "C0GENERAL",
            "text": "<@U0BOT|crewcall>, how many tasks can I claim at once?",
            "ts": bot.fake.next_ts(),
            "thread_ts": "1700000000.000100",
        }
    )
    second = _wait_post(bot, "C0GENERAL", "Task claims")
    assert second.params["thread_ts"] == "1700000000.000100"
    assert [q.text for q in _questions(bot)] == [
        "if my friend joins, do I get something?",
        "how many tasks can I claim at once?",
    ]


def test_policy_without_a_question_shows_how_to_ask(sqlite_bot: BotHarness) -> None:
    reply = sqlite_bot.command("U1", "/policy")
    assert "/policy faq" in reply.all_text and "/policy reload" in reply.all_text
    assert _questions(sqlite_bot) == []


# ------------------------------------------------------------------------------------ escalation
def test_escalation_reaches_a_lead_whose_answer_reaches_the_asker_and_answers_a_paraphrase(
    bot: BotHarness,
) -> None:
    assert bot.driver is not None
    ts, card = _escalate_by_mention(bot, "can I bring my dog to the team call?")
    told = _wait_post(bot, "C0GENERAL", "asked the leads")
    assert told.params["thread_ts"] == ts and "won't guess" in _text(told.params)
    assert "<@U1>" in _text(card.params) and "can I bring my dog to the team call?" in _text(card.params)
    assert "in <#C0GENERAL>" in _text(card.params)
    [question] = _eventually(lambda: [q for q in _questions(bot) if q.leads_ts])  # noted after the post
    assert question.state == "escalated" and question.leads_ts == card.response["ts"]

    # Only leads may answer.
    refused = bot.click(
        "U2", "policy_answer", str(question.id), channel_id=LEADS, message_ts=card.response["ts"]
    )
    assert "Only leads and admins can answer escalated questions" in refused.text
    assert bot.fake.calls_to("views.open") == []

    view = _open_answer_modal(bot, "ULEAD", card)
    assert view["callback_id"] == "policy_answer" and "can I bring my dog" in json.dumps(view)
    empty = _submit_answer(bot, "ULEAD", view, "   ")
    assert empty.json()["response_action"] == "errors" and "answer" in empty.json()["errors"]
    response = _submit_answer(
        bot, "ULEAD", view, "Yes, pets are welcome on calls as long as they stay quiet."
    )
    assert response.status == 200

    dm = bot.wait_dm("U1", "pets are welcome")
    assert "<@ULEAD>" in _text(dm.params) and "can I bring my dog" in _text(dm.params)
    in_thread = _wait_post(bot, "C0GENERAL", "pets are welcome")
    assert in_thread.params["thread_ts"] == ts
    update = bot.fake.wait_for("chat.update", predicate=lambda c: c.params.get("ts") == card.response["ts"])[
        0
    ]
    assert "answered by <@ULEAD>" in _text(update.params)
    assert "policy_answer" not in _action_ids(update.params["blocks"]), "the card keeps no stale button"
    confirmation = bot.fake.wait_for(
        "chat.postEphemeral", predicate=lambda c: c.params.get("user") == "ULEAD"
    )
    assert "saved it as FAQ #1" in _text(confirmation[0].params)

    # A second lead on the old card is told who answered.
    late = bot.click(
        "ULEAD2", "policy_answer", str(question.id), channel_id=LEADS, message_ts=card.response["ts"]
    )
    assert "<@ULEAD> already answered question" in late.text
    # A paraphrase is now answered from the saved FAQ, without bothering the leads.
    cards = len(_posts_to(bot, LEADS))
    reply = bot.command("U2", "/policy", "are dogs allowed on team calls?")
    assert "pets are welcome on calls" in reply.all_text
    assert "A lead's answer" in reply.all_text and "policy_up" in _action_ids(reply.blocks)
    assert len(_posts_to(bot, LEADS)) == cards
    with bot.services.db.write() as session:
        actions = [
            a.action
            for a in session.exec(
                select(AuditEntry).where(
                    AuditEntry.entity == "policy_question", AuditEntry.entity_id == str(question.id)
                )
            )
        ]
    assert actions == ["policy.escalated", "policy.answered"]


def test_off_topic_questions_are_not_answered_with_a_passage(bot: BotHarness) -> None:
    reply = bot.command("U1", "/policy", "what's the weather in chicago tomorrow?")
    assert "doesn't look like something the contractor handbook covers" in reply.text
    assert not any(b["type"] == "section" and b["text"]["text"].startswith(">") for b in reply.blocks)
    assert "policy_up" not in _action_ids(reply.blocks)
    card = _wait_post(bot, LEADS, "looks off-topic")
    assert "weather in chicago" in _text(card.params)
    [question] = _questions(bot)
    assert question.off_topic and question.state == "escalated" and question.quote == ""


def test_no_off_topic_question_of_the_evaluation_set_gets_a_passage(sqlite_bot: BotHarness) -> None:
    off_topic = [
        case.question
        for key in ("questions", "holdout", "holdout2")
        for case in load_eval_cases(ROOT / "tests" / "policy_eval.yaml", key)
        if case.expected is None
    ]
    assert len(off_topic) >= 30
    for question in off_topic:
        reply = sqlite_bot.command("U1", "/policy", question)
        assert "I've asked the leads" in reply.text, question
        assert "policy_up" not in _action_ids(reply.blocks) and ">" not in reply.blocks[0]["text"]["text"]
    # The cards are queued and paced at one a second into the leads' channel, as Slack allows.
    cards = sqlite_bot.fake.wait_for(
        "chat.postMessage",
        count=len(off_topic),
        predicate=lambda c: c.ok and c.params.get("channel") == LEADS,
        timeout=len(off_topic) * 1.5 + 10,
    )
    assert len(cards) == len(off_topic)


def test_a_command_question_gets_the_lead_answer_by_dm_and_can_be_kept_out_of_the_faqs(
    bot: BotHarness,
) -> None:
    reply = bot.command("U1", "/policy", "will there be a meetup for contractors in Berlin this year?")
    assert "asked the leads" in reply.text
    card = _wait_post(bot, LEADS, "policy_answer")
    view = _open_answer_modal(bot, "ULEAD", card)
    _submit_answer(
        bot, "ULEAD", view, "No meetup is planned in Berlin; the next one is online in March.", save=False
    )
    dm = bot.wait_dm("U1", "the next one is online in March")
    assert "I've learned this answer" not in _text(dm.params)
    ack = bot.fake.wait_for("chat.postEphemeral", predicate=lambda c: c.params.get("user") == "ULEAD")[0]
    assert "didn't save it as a FAQ" in _text(ack.params)
    assert [c for c in _posts_to(bot, "C0GENERAL")] == [], "asked by command: nothing in the channel"
    again = bot.command("U2", "/policy", "will there be a meetup for contractors in Berlin this year?")
    assert "asked the leads" in again.text


def test_the_card_shows_the_closest_sections_and_the_lead_links_the_answer_to_one(
    sqlite_bot: BotHarness,
) -> None:
    bot = sqlite_bot
    reply = bot.command("U1", "/policy", "can I get my payout in euros instead of dollars?")
    assert "I'm not sure the handbook answers that" in reply.text
    card = _wait_post(bot, LEADS, "policy_answer")
    assert "Closest in the handbook" in _text(card.params)
    assert f"<{BASE_URL}pay-and-hours.md#payday|Payday>" in _text(card.params)
    view = _open_answer_modal(bot, "ULEAD", card)
    options = next(b for b in view["blocks"] if b.get("block_id") == "section")["element"]["options"]
    assert options[0]["value"] == "pay-and-hours#payday"
    gone = _submit_answer(bot, "ULEAD", view, "Payouts are in US dollars only.", section="nope#gone")
    assert "section" in gone.json()["errors"]
    _submit_answer(bot, "ULEAD", view, "Payouts are in US dollars only.", section="pay-and-hours#payday")
    bot.wait_dm("U1", "Payouts are in US dollars only.")
    again = bot.command("U2", "/policy", "can I get paid in euros?")
    assert "Payouts are in US dollars only." in again.all_text
    assert f"see <{BASE_URL}pay-and-hours.md#payday|Payday>" in again.all_text


def test_two_leads_answering_at_once_resolve_the_question_once(bot: BotHarness) -> None:
    _, card = _escalate_by_mention(bot, "can I bring my dog to the team call?")
    views = {lead: _open_answer_modal(bot, lead, card) for lead in ("ULEAD", "ULEAD2")}
    barrier = threading.Barrier(2)

    def answer(lead: str) -> None:
        barrier.wait()
        _submit_answer(bot, lead, views[lead], f"Answer from {lead}.")

    threads = [threading.Thread(target=answer, args=(lead,)) for lead in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    told = bot.fake.wait_for("chat.postEphemeral", count=2, predicate=lambda c: c.params.get("user") in views)
    texts = sorted(_text(c.params) for c in told)
    assert sum("already answered" in t for t in texts) == 1
    [question] = _questions(bot)
    assert question.state == "resolved"
    loser = "ULEAD2" if question.lead_id == "ULEAD" else "ULEAD"
    assert any(f"<@{question.lead_id}> already answered" in t for t in texts)
    time.sleep(0.2)
    asker_dms = [c for c in bot.dms_to("U1") if "answered" in _text(c.params)]
    assert len(asker_dms) == 1 and f"Answer from {question.lead_id}." in _text(asker_dms[0].params)
    assert f"Answer from {loser}." not in json.dumps(
        [c.params for c in bot.fake.calls_to("chat.postMessage")]
    )


# -------------------------------------------------------------------------------------- feedback
def test_feedback_on_a_private_answer_replaces_the_buttons_and_a_thumbs_down_offers_a_lead(
    bot: BotHarness,
) -> None:
    reply = bot.command("U1", "/policy", "when is payday?")
    qid = _value(reply.blocks, "policy_up")
    thanks = bot.click("U1", "policy_up", qid)
    assert "Thanks for the feedback" in thanks.all_text and "Friday" in thanks.all_text
    replaced = bot.fake.last("response_url")
    assert replaced is not None and replaced.params["replace_original"] is True
    assert _action_ids(thanks.blocks) == []

    down = bot.click("U1", "policy_down", qid)  # changed their mind (e.g. from another copy)
    assert _action_ids(down.blocks) == ["policy_ask_lead"]
    with bot.services.db.write() as session:
        votes = list(session.exec(select(PolicyFeedback)))
    assert [(v.user_id, v.helpful) for v in votes] == [("U1", False)]

    escalated = bot.click("U1", "policy_ask_lead", _value(down.blocks, "policy_ask_lead"))
    assert "asked the leads" in escalated.all_text and _action_ids(escalated.blocks) == []
    card = _wait_post(bot, LEADS, "policy_answer")
    assert "said it didn't help" in _text(card.params) and "Payday" in _text(card.params)
    again = bot.click("U1", "policy_ask_lead", qid)
    assert "already with the leads" in again.all_text
    time.sleep(0.2)
    assert len(_posts_to(bot, LEADS)) == 1


def test_feedback_on_a_dm_answer_updates_the_message(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    assert bot.driver is not None
    bot.driver.message_im("U1", "when is payday?")
    answer = _wait_post(bot, dm_channel_id("U1"), "Friday")
    qid = _value(answer.params["blocks"], "policy_down")
    bot.driver.click(
        "U1", "policy_down", qid, channel_id=dm_channel_id("U1"), message_ts=answer.response["ts"]
    )
    update = bot.fake.wait_for("chat.update")[0]
    assert update.params["ts"] == answer.response["ts"]
    assert _action_ids(update.params["blocks"]) == ["policy_ask_lead"]
    bot.driver.click(
        "U1", "policy_ask_lead", qid, channel_id=dm_channel_id("U1"), message_ts=answer.response["ts"]
    )
    second = bot.fake.wait_for("chat.update", count=2)[-1]
    assert "asked the leads" in _text(second.params) and _action_ids(second.params["blocks"]) == []
    _wait_post(bot, LEADS, "by DM")


def test_votes_in_a_thread_are_one_per_person_changeable_and_tallied(bot: BotHarness) -> None:
    assert bot.driver is not None
    bot.driver.app_mention("U1", "<@U0BOT> when is payday?")
    answer = _wait_post(bot, "C0GENERAL", "Friday")
    qid, ts = _value(answer.params["blocks"], "policy_up"), answer.response["ts"]
    first = bot.click("U1", "policy_up", qid, channel_id="C0GENERAL", message_ts=ts)
    assert "Thanks for the feedback" in first.text
    bot.click("U1", "policy_up", qid, channel_id="C0GENERAL", message_ts=ts)  # a double click
    second = bot.click("U2", "policy_down", qid, channel_id="C0GENERAL", message_ts=ts)
    assert _action_ids(second.blocks) == ["policy_ask_lead"]
    bot.click("U1", "policy_down", qid, channel_id="C0GENERAL", message_ts=ts)  # U1 changes their vote
    updates = bot.fake.wait_for("chat.update", count=4)
    last = updates[-1].params
    assert _action_ids(last["blocks"]) == ["policy_up", "policy_down"], "shared: the buttons stay"
    assert ":+1: 0   :-1: 2" in _text(last)
    with bot.services.db.write() as session:
        votes = {(v.user_id, v.helpful) for v in session.exec(select(PolicyFeedback))}
    assert votes == {("U1", False), ("U2", False)}
    # Anyone in the thread may ask a lead; the answer will be posted in the thread.
    asked = bot.click("U2", "policy_ask_lead", _value(second.blocks, "policy_ask_lead"))
    assert "will be posted in the thread" in asked.text
    card = _wait_post(bot, LEADS, "policy_answer")
    assert "<@U2> said it didn't help" in _text(card.params) and "from <@U1>" in _text(card.params)


# ------------------------------------------------------------------------------------------ FAQs
def _faq_through_escalation(bot: BotHarness, question: str, answer: str) -> None:
    bot.command("U1", "/policy", question)
    card = bot.fake.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params.get("channel") == LEADS and question in _text(c.params),
    )[0]
    _submit_answer(bot, "ULEAD", _open_answer_modal(bot, "ULEAD", card), answer)
    bot.wait_dm("U1", answer)


def test_leads_list_edit_and_delete_faq_entries(bot: BotHarness) -> None:
    assert "Only leads and admins can manage FAQ entries" in bot.command("U1", "/policy", "faq").text
    assert "No FAQ entries yet" in bot.command("ULEAD", "/policy", "faq").all_text
    _faq_through_escalation(bot, "can I bring my dog to the team call?", "Yes, if it stays quiet.")
    listing = bot.command("ULEAD", "/policy", "faq")
    assert "can I bring my dog" in listing.all_text and "Yes, if it stays quiet." in listing.all_text
    assert _action_ids(listing.blocks) == ["policy_faq_edit", "policy_faq_delete"]

    assert bot.driver is not None
    opened = len(bot.fake.calls_to("views.open"))
    bot.driver.click("ULEAD", "policy_faq_edit", _value(listing.blocks, "policy_faq_edit"))
    modal = bot.fake.wait_for("views.open", count=opened + 1)[-1].response["view"]
    assert modal["callback_id"] == "policy_faq_edit"
    meta = modal["private_metadata"]
    bad = bot.submit(
        "ULEAD",
        "policy_faq_edit",
        {
            "question": {"value": "can I bring my dog?"},
            "answer": {"value": "x"},
            "section": {"value": "nope#x"},
        },
        private_metadata=meta,
    )
    assert "section" in bad.json()["errors"]
    bot.submit(
        "ULEAD",
        "policy_faq_edit",
        {
            "question": {"value": "can I bring my dog to the team call?"},
            "answer": {"value": "Only on internal calls, never on client calls."},
            "section": {"value": "community#code-of-conduct"},
        },
        private_metadata=meta,
    )
    # A fresh page, privately where the lead listed them (a submission carries no response_url of
    # Slack's own, and one in private_metadata is never trusted).
    saved = bot.fake.wait_for("chat.postEphemeral", predicate=lambda c: "Saved FAQ #1" in _text(c.params))[0]
    assert saved.params["user"] == "ULEAD"
    served = bot.command("U2", "/policy", "are dogs allowed on team calls?")
    assert "never on client calls" in served.all_text and "code-of-conduct" in served.all_text

    listing = bot.command("ULEAD", "/policy", "faq")
    deleted = bot.click("ULEAD2", "policy_faq_delete", _value(listing.blocks, "policy_faq_delete"))
    assert "Deleted FAQ #1" in deleted.all_text and "No FAQ entries yet" in deleted.all_text
    stale = bot.click("ULEAD", "policy_faq_delete", _value(listing.blocks, "policy_faq_delete"))
    assert "was deleted by <@ULEAD2>" in stale.text
    assert "asked the leads" in bot.command("U2", "/policy", "are dogs allowed on team calls?").text
    with bot.services.db.write() as session:
        actions = [
            a.action for a in session.exec(select(AuditEntry).where(AuditEntry.entity == "policy_faq"))
        ]
    assert actions == ["policy.faq.created", "policy.faq.edited", "policy.faq.deleted"]


def test_the_faq_list_pages(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    with bot.services.db.write() as session:
        for n in range(12):
            question = rules.record_question(
                session,
                rules.Asked("U1", f"odd question number {n}", "command"),
                PolicyIndex.build([]).answer(f"odd question number {n}"),  # not confident: escalated
                bot.clock.now(),
                "test",
            )
            rules.resolve(
                session,
                question.id or 0,
                "ULEAD",
                f"answer {n}",
                section_id=None,
                save_faq=True,
                now=bot.clock.now(),
                source="test",
            )
    first = bot.command("ULEAD", "/policy", "faq")
    assert "page 1 of 2" in first.all_text and "odd question number 11" in first.all_text
    assert "policy_faq_page" in _action_ids(first.blocks) and len(first.blocks) <= 50
    second = bot.click("ULEAD", "policy_faq_page", _value(first.blocks, "policy_faq_page"))
    assert "page 2 of 2" in second.all_text and "odd question number 0" in second.all_text
    assert "odd question number 11" not in second.all_text
    assert "past the end" in bot.command("ULEAD", "/policy", "faq 9").all_text
    assert "`x` is not a whole page" in bot.command("ULEAD", "/policy", "faq x").text


def test_faqs_and_reloads_from_another_bot_process_are_served(
    database_url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    directory = _handbook(tmp_path)
    env = _env(POLICY_DIR=str(directory))
    with (
        BotHarness(database_url, fake=fake, env=env) as first,
        BotHarness(database_url, fake=fake, env=env) as second,
    ):
        _people(first)
        # The second process has answered before, so it holds an index built without the FAQ.
        assert (
            "asked the leads" in second.command("U2", "/policy", "can I bring my dog to the team call?").text
        )
        _faq_through_escalation(first, "may my dog join a team call?", "Yes, if it stays quiet.")
        reply = second.command("U2", "/policy", "are dogs allowed on team calls?")
        assert "Yes, if it stays quiet." in reply.all_text

        (directory / "holidays.md").write_text(
            "# Holidays\n\n## Vacation\n\nTell your lead two weeks before a vacation and release your claims.\n"
        )
        assert "Reloaded the handbook" in first.command("ULEAD", "/policy", "reload").text
        assert (
            "two weeks before a vacation"
            in second.command("U2", "/policy", "can I take a vacation?").all_text
        )
        assert (
            "Yes, if it stays quiet."
            in second.command("U2", "/policy", "are dogs allowed on team calls?").all_text
        )


# -------------------------------------------------------------------------------------- handbook
def _handbook(tmp_path: Path) -> Path:
    directory = tmp_path / "handbook"
    shutil.copytree(ROOT / "policies", directory)
    return directory


def test_reload_reports_broken_files_and_keeps_serving_the_rest(
    sqlite_url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    directory = _handbook(tmp_path)
    with BotHarness(sqlite_url, fake=fake, env=_env(POLICY_DIR=str(directory))) as bot:
        _people(bot)
        assert "Only leads and admins can reload the handbook" in bot.command("U1", "/policy", "reload").text
        (directory / "holidays.md").write_text(
            "# Holidays\n\n## Vacation\n<!-- asks: can I take a vacation? -->\n\nTell your lead two weeks ahead; "
            "release your task claims before you leave.\n"
        )
        (directory / "broken.md").write_bytes(b"# Broken\n\n## Oops\n\xff\xfe not text\n")
        (directory / "notes.md").write_text("just some text without any heading\n")
        reply = bot.command("ULEAD", "/policy", "reload")
        assert "Reloaded the handbook" in reply.text and "4 files" in reply.text
        assert "broken.md: not valid UTF-8" in reply.text and "notes.md: no headings" in reply.text
        assert "Everything else in the handbook is still served" in reply.text
        assert "Task claims" in bot.command("U1", "/policy", "how many tasks can I claim at once?").all_text
        assert "two weeks ahead" in bot.command("U1", "/policy", "can I take a vacation?").all_text

        for path in directory.iterdir():
            path.unlink()
        kept = bot.command("ULEAD", "/policy", "reload")
        assert "kept serving the version I had" in kept.text
        assert "Friday" in bot.command("U1", "/policy", "when is payday?").all_text


def test_handbook_problems_at_start_are_posted_to_the_leads(
    sqlite_url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    directory = _handbook(tmp_path)
    (directory / "empty.md").write_text("")
    with BotHarness(sqlite_url, fake=fake, env=_env(POLICY_DIR=str(directory))) as bot:
        notice = _wait_post(bot, LEADS, "empty.md: empty file")
        assert "still served" in _text(notice.params)
        bot.fake.add_user("U1")
        assert "Friday" in bot.command("U1", "/policy", "when is payday?").all_text


# ------------------------------------------------------------------------------------------- Home
def test_home_shows_how_to_ask_and_leads_answer_what_slack_failed_to_post(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    assert bot.driver is not None
    bot.fake.fail_next("chat.postMessage", "channel_not_found")  # the leads' card
    reply = bot.command("U1", "/policy", "can I bring my dog to the team call?")
    assert "asked the leads" in reply.text
    bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.error == "channel_not_found")
    [question] = _questions(bot)
    assert question.state == "escalated" and question.leads_ts is None

    bot.driver.home_opened("U1")
    mine = bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "U1")[0]
    assert "/policy your question" in json.dumps(mine.params) and "policy_answer" not in json.dumps(
        mine.params
    )
    bot.driver.home_opened("ULEAD")
    bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "ULEAD")
    for user in ("U1", "ULEAD"):  # opening the app for the first time welcomed them
        bot.wait_dm(user, "Welcome to the crew")
    home = bot.fake.home_views["ULEAD"]
    assert "1 escalated question" in json.dumps(home)

    # Answered from the Home tab, while Slack refuses to DM the asker: the lead is told.
    bot.driver.click("ULEAD", "policy_answer", _value(home["blocks"], "policy_answer"), view=home)
    view = bot.fake.wait_for("views.open")[0].response["view"]
    bot.fake.fail_next("chat.postMessage", "user_not_found")  # the DM channel is known from the welcome
    _submit_answer(bot, "ULEAD", view, "Yes, if it stays quiet.")
    told = bot.wait_dm("ULEAD", "couldn't DM <@U1>")
    assert "saved it as FAQ #1" in _text(told.params)
    assert _questions(bot)[0].state == "resolved"
