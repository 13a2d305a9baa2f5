"""Item 1 of issue 12: everything is acknowledged within Slack's 3 seconds whatever the Web API's
latency, no Web API call comes before a modal's answer, rate-limit waits happen off the threads that
answer people, and a post Slack may have accepted is never sent twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from sqlmodel import select

from core.slack import SlackFailure, on_request_thread
from db.models import PolicyFaq, PolicyQuestion, Referral, Task
from sandbox.driver import Response, checkboxes, conversations_select, radio_buttons
from sandbox.fake_slack import Call, FakeSlack
from sandbox.harness import BotHarness
from tests.tasks_support import TASKS, make_lead, post

LEADS = "C0LEADS"
SLOW = 0.6  # seconds per Web API call: an ordinary bad day


@pytest.fixture
def bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS})
    harness.start()
    make_lead(harness)
    harness.wait_dm("ULEAD", "made you a crewcall lead")
    harness.fake.add_user("U1")
    yield harness
    harness.close()


def _task_form(title: str = "Summarise 12 trial transcripts") -> dict:
    return {
        "title": {"value": title},
        "rate": {"value": "$150"},
        "hours": {"value": "8"},
        "slots": {"value": "2"},
        "channel": {"value": conversations_select(TASKS)},
    }


def _cards(bot: BotHarness) -> list[dict]:
    return list(bot.fake.messages.get(TASKS, []))


def _timed(action):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def _submitted_in_time(bot: BotHarness, submit: Callable[[], Response]) -> tuple[Response, list[Call]]:
    """Submit with Slack answering every call in SLOW seconds: the answer, and the Web API calls
    made while it was being answered. A call the bot waited for before answering was answered by
    the fake before the bot's answer came; one made after the answer is still SLOW away then (the
    two are told apart by that, not by arrival times, which race with the answer's write)."""
    bot.fake.latency = SLOW
    sent = time.time()
    response, took = _timed(submit)
    bot.fake.latency = 0.0
    assert took < 3.0, f"answered after {took:.2f} s"
    early = [c for c in bot.fake.calls if c.arrived >= sent and c.ts <= response.answered_at]
    return response, early


def _quiet(bot: BotHarness, still: float = SLOW + 0.4, timeout: float = 20.0) -> None:
    """Wait until the bot has made no Web API call for `still` seconds (the work after an answer is done)."""
    deadline = time.monotonic() + timeout
    seen, since = len(bot.fake.calls), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(bot.fake.calls) != seen:
            seen, since = len(bot.fake.calls), time.monotonic()
        elif time.monotonic() - since >= still:
            return
    raise AssertionError("the bot kept calling Slack")


def test_the_task_form_is_answered_in_time_with_a_slow_slack_and_a_429_on_the_card(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each card post, timed, and whether it was made on a thread answering a request.
    posts: list[tuple[bool, float, bool]] = []  # (on a request thread, seconds, rate-limited)
    post_once = bot.services.slack.post_once

    def timed_post_once(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            posted = post_once(*args, **kwargs)
        except SlackFailure as e:
            posts.append((on_request_thread(), time.monotonic() - started, e.rate_limited))
            raise
        posts.append((on_request_thread(), time.monotonic() - started, False))
        return posted

    monkeypatch.setattr(bot.services.slack, "post_once", timed_post_once)
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=3)
    meta = json.dumps({"channel_id": TASKS})
    response, early = _submitted_in_time(
        bot, lambda: bot.submit("ULEAD", "task_new", _task_form(), private_metadata=meta)
    )
    assert response.status == 200 and not response.body.strip()  # the modal closes
    assert early == [], f"Slack was called before the answer: {[c.method for c in early]}"

    bot.fake.wait_for("chat.postEphemeral", predicate=lambda c: "Posted" in json.dumps(c.params), timeout=15)
    refused = [c for c in bot.fake.calls_to("chat.postMessage") if c.status == 429]
    assert len(refused) == 1 and refused[0].params["channel"] == TASKS
    # The listener met the 429 and let go at once; the retry thread posted after Retry-After.
    assert [limited for _, _, limited in posts] == [True, False], (
        f"the 429 was waited out in the call: {posts}"
    )
    (on_listener, seconds, _), (on_listener_again, _, _) = posts
    assert on_listener and seconds < 1.0 and not on_listener_again, posts
    card_call = next(
        c for c in bot.fake.calls_to("chat.postMessage") if c.ok and c.params["channel"] == TASKS
    )
    assert card_call.arrived - refused[0].ts >= 2.9, "posted before Retry-After was over"
    time.sleep(0.5)
    assert len(_cards(bot)) == 1, "exactly one card"
    with bot.services.db.write() as session:
        task = session.exec(select(Task)).one()
    assert task.message_ts == _cards(bot)[0]["ts"]


def test_field_errors_come_back_in_time_and_nothing_is_called(bot: BotHarness) -> None:
    before = len(bot.fake.calls)
    form = {**_task_form(), "rate": {"value": "lots"}}
    response, early = _submitted_in_time(bot, lambda: bot.submit("ULEAD", "task_new", form))
    assert response.json()["response_action"] == "errors" and "rate" in response.json()["errors"]
    assert early == []
    time.sleep(SLOW * 2)
    assert bot.fake.calls[before:] == []  # not even a profile refresh


def test_a_card_whose_answer_was_lost_is_not_posted_twice(bot: BotHarness) -> None:
    # Slack stores the card, then answers 500: the bot looks before it sends again.
    bot.fake.fail_next("chat.postMessage", status=500, applied=True)
    meta = json.dumps({"channel_id": TASKS})
    assert bot.submit("ULEAD", "task_new", _task_form(), private_metadata=meta).status == 200
    bot.fake.wait_for("chat.postEphemeral", predicate=lambda c: "Posted" in json.dumps(c.params))
    assert len(_cards(bot)) == 1
    assert bot.fake.calls_to("conversations.history")
    with bot.services.db.write() as session:
        task = session.exec(select(Task)).one()
    assert task.message_ts == _cards(bot)[0]["ts"] and task.state == "open"


def test_a_card_that_never_reached_slack_is_posted_once(bot: BotHarness) -> None:
    bot.fake.fail_next("chat.postMessage", status=500)  # refused before it was stored
    meta = json.dumps({"channel_id": TASKS})
    bot.submit("ULEAD", "task_new", _task_form(), private_metadata=meta)
    bot.fake.wait_for("chat.postEphemeral", predicate=lambda c: "Posted" in json.dumps(c.params))
    assert len(_cards(bot)) == 1


def test_a_response_url_that_failed_in_doubt_is_not_said_twice(bot: BotHarness) -> None:
    bot.fake.fail_next("response_url", status=500)
    url = bot.fake.new_response_url()
    assert bot.driver is not None
    before = len(bot.fake.calls)
    bot.driver.command("U1", "/tasks", "mine", response_url=url)
    bot.fake.wait_for("response_url", predicate=lambda c: c.status == 500)
    time.sleep(0.5)
    later = [c.method for c in bot.fake.calls[before:]]
    assert later.count("response_url") == 1
    assert "chat.postEphemeral" not in later and "chat.postMessage" not in later


def _escalated_card(bot: BotHarness) -> Call:
    assert bot.driver is not None
    bot.driver.app_mention("U1", "<@U0BOT> can I bring my dog to the team call?", channel="C0GENERAL")
    return bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: c.ok and c.params.get("channel") == LEADS, timeout=10
    )[0]


def test_the_leads_answer_form_is_answered_in_time_with_a_slow_slack(bot: BotHarness) -> None:
    card = _escalated_card(bot)
    qid = next(
        e["value"]
        for b in card.params["blocks"]
        for e in b.get("elements") or []
        if e.get("action_id") == "policy_answer"
    )
    meta = json.dumps({"channel_id": LEADS, "question_id": int(qid)})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the card's ts is stored once Slack's answer is back
        with bot.services.db.write() as session:
            if session.exec(select(PolicyQuestion)).one().leads_ts:
                break
        time.sleep(0.05)
    values = {"answer": {"value": "Yes, if it stays quiet."}, "save": {"value": checkboxes(["faq"])}}
    response, early = _submitted_in_time(
        bot, lambda: bot.submit("ULEAD", "policy_answer", values, private_metadata=meta)
    )
    assert response.status == 200 and not response.body.strip()
    assert early == [], f"Slack was called before the answer: {[c.method for c in early]}"
    bot.fake.latency = SLOW  # the work after the answer, on a slow Slack too
    bot.wait_dm("U1", "stays quiet", timeout=15)
    bot.fake.wait_for("chat.update", predicate=lambda c: c.params.get("channel") == LEADS, timeout=15)


def test_the_referral_form_is_answered_before_slack_is_asked_about_the_address(bot: BotHarness) -> None:
    bot.fake.add_user("U1", email="ana@firm.example")
    values = {"email": {"value": "Gus.Ortega+cv@Firm.Example"}, "name": {"value": "Gus Ortega"}}
    meta = json.dumps({"channel_id": "C0GENERAL"})
    response, early = _submitted_in_time(
        bot, lambda: bot.submit("U1", "referral_new", values, private_metadata=meta)
    )
    assert early == [], f"Slack was called before the answer: {[c.method for c in early]}"
    assert response.status == 200 and not response.body.strip()  # the modal closes

    bot.fake.latency = SLOW  # the two look-ups (the address, its mailbox) and the reply, slowly
    told = bot.fake.wait_for(
        "chat.postEphemeral", predicate=lambda c: c.params.get("user") == "U1", timeout=15
    )
    assert told[0].params["channel"] == "C0GENERAL" and "Referral *R-1* recorded" in told[0].params["text"]
    assert [c.params["email"] for c in bot.fake.calls_to("users.lookupByEmail")] == [
        "gus.ortega+cv@firm.example",
        "gus.ortega@firm.example",
    ]
    _quiet(bot)
    with bot.services.db.write() as session:
        assert [r.email for r in session.exec(select(Referral))] == ["gus.ortega+cv@firm.example"]
    assert len(bot.fake.calls_to("chat.postEphemeral")) == 1


# ---- every form ----------------------------------------------------------------------------------


def _opened(bot: BotHarness, opening: Callable[[], object]) -> dict[str, Any]:
    """The view the bot opened in answer to `opening` (a command or a click)."""
    count = len(bot.fake.calls_to("views.open"))
    opening()
    return bot.fake.wait_for("views.open", count=count + 1, timeout=10)[-1].response["view"]


def _state(element: dict[str, Any], override: Any) -> Any:
    """What Slack submits for `element`: `override`, else its initial value, else a plausible choice
    (the first option, every checkbox, a channel), else None (nothing entered)."""
    if override is not None:
        return override
    kind = element["type"]
    if kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        return {"type": kind, "value": element.get("initial_value")}
    if kind in ("static_select", "radio_buttons"):
        options = element.get("options") or [
            o for g in element.get("option_groups", []) for o in g["options"]
        ]
        return {"type": kind, "selected_option": element.get("initial_option") or options[0]}
    if kind == "checkboxes":
        return {"type": kind, "selected_options": element.get("initial_options") or element["options"]}
    if kind == "conversations_select":
        return {"type": kind, "selected_conversation": element.get("initial_conversation") or "C0GENERAL"}
    if kind == "multi_conversations_select":
        return {"type": kind, "selected_conversations": element.get("initial_conversations") or []}
    if kind == "datepicker":
        return {"type": kind, "selected_date": element.get("initial_date")}
    if kind == "datetimepicker":
        return {"type": kind, "selected_date_time": element.get("initial_date_time")}
    raise AssertionError(f"no default for a {kind} input: give its value in FORMS")


def _values(view: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Every input of `view` as Slack submits it, with `overrides` ({block_id: state}) typed in."""
    values = {}
    for block in view["blocks"]:
        if block.get("type") == "input":
            element = block["element"]
            values[block["block_id"]] = {
                element["action_id"]: _state(element, overrides.get(block["block_id"]))
            }
    unknown = set(overrides) - set(values)
    assert not unknown, f"{view['callback_id']} has no inputs {unknown}"
    return values


def _compose_preview(bot: BotHarness) -> dict[str, Any]:
    assert bot.driver is not None
    view = _opened(bot, lambda: bot.driver.command("ULEAD", "/announce", "", channel_id="C0GENERAL"))  # type: ignore[union-attr]
    values = _values(view, COMPOSE)
    answer = bot.submit("ULEAD", "announce_compose", values, private_metadata=view["private_metadata"]).json()
    assert answer["response_action"] == "update", answer
    return dict(answer["view"])


COMPOSE = {"text": "Office hours move to Thursday", "audience": radio_buttons("everyone")}
# How each form is opened (who, and the view the bot opened) and what is typed into it; the rest of
# its inputs are submitted as Slack would (initial values, first options).
Opener = Callable[[BotHarness, Any], dict[str, Any]]
FORMS: dict[str, tuple[str, Opener, dict[str, Any]]] = {
    "task_new": (
        "ULEAD",
        lambda bot, d: _opened(bot, lambda: d.command("ULEAD", "/tasks", "new", channel_id=TASKS)),
        {
            "title": "Check 12 citations",
            "rate": "$150",
            "hours": "8",
            "slots": "2",
            "channel": conversations_select(TASKS),
        },
    ),
    "task_submit": (
        "U1",
        lambda bot, d: _opened(bot, lambda: d.click("U1", "task_submit_open", "1", channel_id=TASKS)),
        {"note": "https://docs.example.com/done"},
    ),
    "task_reject": (
        "ULEAD",
        lambda bot, d: _opened(bot, lambda: d.click("ULEAD", "task_reject_open", "2:U2", channel_id=TASKS)),
        {"reason": "Two citations are missing"},
    ),
    "shift_new": (
        "ULEAD",
        lambda bot, d: _opened(bot, lambda: d.command("ULEAD", "/shifts", "new", channel_id="C0SHIFTS")),
        {
            "name": "Weekend cover",
            "start": "2026-01-10T09:00",
            "end": "2026-01-10T17:00",
            "slots": "3",
            "channel": conversations_select("C0SHIFTS"),
        },
    ),
    "policy_answer": (
        "ULEAD",
        lambda bot, d: _opened(bot, lambda: d.click("ULEAD", "policy_answer", "1", channel_id=LEADS)),
        {"answer": "Yes, if it stays quiet."},
    ),
    "policy_faq_edit": (
        "ULEAD",
        lambda bot, d: _opened(
            bot, lambda: d.click("ULEAD", "policy_faq_edit", "1:1", channel_id="C0GENERAL")
        ),
        {"answer": "Only on internal calls."},
    ),
    "announce_compose": (
        "ULEAD",
        lambda bot, d: _opened(bot, lambda: d.command("ULEAD", "/announce", "", channel_id="C0GENERAL")),
        COMPOSE,
    ),
    "announce_confirm": ("ULEAD", lambda bot, d: _compose_preview(bot), {}),
    "vetting_apply": (
        "U2",
        lambda bot, d: _opened(bot, lambda: d.command("U2", "/crew", "apply", channel_id="C0GENERAL")),
        {"evidence": "https://cv.example/u2"},
    ),
    "vetting_decline": (
        "UADMIN",
        lambda bot, d: _opened(bot, lambda: d.click("UADMIN", "vetting_decline_open", "1", channel_id=LEADS)),
        {"reason": "Nothing we can verify yet"},
    ),
    "referral_new": (
        "U1",
        lambda bot, d: _opened(bot, lambda: d.command("U1", "/refer", "", channel_id="C0GENERAL")),
        {"email": "gus@firm.example"},
    ),
}


def test_every_form_is_answered_before_any_web_api_call(bot: BotHarness) -> None:
    """Each modal the app registers, submitted with valid values on a slow Slack: the answer comes
    within 3 s, and no Web API call before it. A new form fails here until FORMS says how to open it."""
    assert bot.app is not None and bot.driver is not None
    assert set(FORMS) == bot.app.forms, f"say in FORMS how to open {bot.app.forms - set(FORMS)}"
    # Something for each form to be about: T-1 claimed by U1, T-2 submitted by U2, question #1 with
    # the leads, an FAQ, U1's application AP-1.
    bot.fake.add_user("U2")
    post(bot)
    post(bot)
    assert "is yours" in bot.command("U1", "/tasks", "claim T-1").text
    assert "is yours" in bot.command("U2", "/tasks", "claim T-2").text
    assert "Submitted" in bot.command("U2", "/tasks", "done T-2 confirm https://docs.example.com/t2").text
    _escalated_card(bot)
    with bot.services.db.write() as session:
        now = bot.clock.now()
        session.add(
            PolicyFaq(
                question="Can I bring my dog?",
                answer="Yes.",
                author_id="ULEAD",
                created_at=now,
                updated_at=now,
            )
        )
    assert "AP-1" in bot.command("U1", "/crew", "apply legal https://cv.example/u1").text
    _quiet(bot)

    late: dict[str, str] = {}
    for callback_id, (user, opening, typed) in sorted(FORMS.items()):
        view = opening(bot, bot.driver)
        values = _values(view, typed)
        submit = partial(bot.submit, user, callback_id, values, view["private_metadata"], view=view)
        response, early = _submitted_in_time(bot, submit)
        assert response.status == 200, (callback_id, response.status)
        answer = response.json() if response.body.strip() else {}
        assert answer.get("response_action") != "errors", (callback_id, answer)
        if early:
            late[callback_id] = ", ".join(c.method for c in early)
        _quiet(bot)
    assert late == {}, f"Slack was called before these forms were answered: {late}"
