"""Item 9 of issue 12: a button's value or a modal's private_metadata is never trusted for whose data
it shows or counts. Each forgery goes through the HTTP door, correctly signed (as a member's own
client would send it, with a value they edited)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlmodel import select

from db.models import AnnouncementAck, PolicyFeedback, PolicyQuestion
from sandbox.fake_slack import FakeSlack, dm_channel_id
from sandbox.harness import BotHarness
from tests.announce_helpers import wait_status

LEADS = "C0LEADS"


@pytest.fixture
def bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS})
    harness.start()
    for user in ("U1", "U2", "ULEAD"):
        harness.fake.add_user(user, name=user.lower())
    harness.command("UADMIN", "/crew", "lead <@ULEAD>")
    harness.wait_dm("ULEAD", "made you a crewcall lead")
    yield harness
    harness.close()


def _qid(blocks: list[dict]) -> str:
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == "policy_up":
                return str(element["value"])
    raise AssertionError("no feedback buttons")


def test_someone_elses_private_answer_is_neither_shown_nor_escalated_nor_voted_on(bot: BotHarness) -> None:
    answer = bot.command("U1", "/policy", "when is payday?")  # answered privately to U1
    qid = _qid(answer.blocks)
    assert "Friday" in answer.all_text

    for action in ("policy_ask_lead", "policy_up", "policy_down"):
        forged = bot.click("U2", action, qid)
        assert "given to someone else" in forged.all_text
        assert "Friday" not in forged.all_text and "when is payday" not in forged.all_text

    time.sleep(0.2)
    assert not [c for c in bot.fake.calls_to("chat.postMessage") if c.params.get("channel") == LEADS]
    with bot.services.db.write() as session:
        question = session.exec(select(PolicyQuestion)).one()
        assert question.state == "answered" and question.escalated_by is None
        assert list(session.exec(select(PolicyFeedback))) == []
    # The asker still can.
    assert "asked the leads" in bot.click("U1", "policy_ask_lead", qid).all_text


def test_got_it_counts_only_recipients_of_that_announcement(bot: BotHarness) -> None:
    bot.command("UADMIN", "/crew", "skill <@U1> legal")
    bot.command("ULEAD", "/announce", "skill=legal New NDA template")
    wait_status(bot.fake, 1, "done")
    bot.command("ULEAD", "/announce", "<#C0ALL> Office hours moved")
    wait_status(bot.fake, 2, "done")

    # U2 got neither: a Got it for A-1 from their own DM, or for A-2 from another channel, counts nothing.
    for value, channel in (("1", dm_channel_id("U2")), ("2", "C0RANDOM"), ("1", "C0ALL")):
        forged = bot.click("U2", "announce_ack", value, channel_id=channel, message_ts="1700000000.000100")
        assert "wasn't sent to you here" in forged.text
    with bot.services.db.write() as session:
        assert list(session.exec(select(AnnouncementAck))) == []

    dm = bot.wait_dm("U1", "NDA")
    real = bot.click(
        "U1", "announce_ack", "1", channel_id=dm.response["channel"], message_ts=dm.response["ts"]
    )
    assert "noted that you read A-1" in real.text
    post = bot.fake.messages["C0ALL"][0]
    assert "noted" in bot.click("U2", "announce_ack", "2", channel_id="C0ALL", message_ts=post["ts"]).text
    with bot.services.db.write() as session:
        assert {(a.announcement_id, a.user_id) for a in session.exec(select(AnnouncementAck))} == {
            (1, "U1"),
            (2, "U2"),
        }


def test_a_response_url_in_private_metadata_is_never_used(bot: BotHarness) -> None:
    trap = bot.fake.new_response_url()
    meta = json.dumps({"task": 999, "response_url": trap, "channel_id": "C0GENERAL"})
    response = bot.submit("U1", "task_submit", {"note": {"value": "done"}}, private_metadata=meta)
    # The unknown task is named in the form's own errors: the modal stays open, no Web API call.
    assert response.status == 200 and "T-999" in response.body
    meta = json.dumps({"faq_id": 1, "page": 1, "response_url": trap})
    bot.submit(
        "ULEAD",
        "policy_faq_edit",
        {"question": {"value": "q?"}, "answer": {"value": "a"}},
        private_metadata=meta,
    )
    time.sleep(0.5)
    assert [c for c in bot.fake.calls_to("response_url") if c.params.get("_url") == trap] == []
