"""/tasks through the HTTP endpoint, on SQLite and PostgreSQL: posting, the card kept true in place,
claiming and every refusal, working a task, reviews, cancellation, expiry, lists, Home, history."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from db.models import Task
from sandbox.driver import checkboxes, conversations_select, datepicker
from sandbox.harness import BotHarness
from tests.tasks_support import (
    TASKS,
    assignments,
    card_blocks,
    click_claim,
    make_lead,
    post,
    task_row,
    wait_card,
)

# ---- posting and the card ----------------------------------------------------------------------


def test_one_line_post_makes_a_true_card(bot: BotHarness) -> None:
    make_lead(bot, tz="America/New_York")
    task_id, ts = post(
        bot, "Review 40 contract summaries slots=3 rate=120 hours=6 skill=legal due=2026-01-09"
    )
    card = card_blocks(bot, ts)
    for shown in (
        f"T-{task_id} · Review 40 contract summaries",
        "`legal`",
        "$120/h",
        "6 h",
        "3 of 3 slots left",
    ):
        assert shown in card
    assert '"action_id": "task_claim"' in card and f'"value": "{task_id}"' in card
    # Due: the last minute of Jan 9 in the lead's timezone, shown in each reader's own.
    end = int(datetime(2026, 1, 10, 4, 59, tzinfo=UTC).timestamp())
    assert f"<!date^{end}^" in card
    task = task_row(bot, task_id)
    assert (task.slots, task.rate_cents, task.est_hours, task.skill, task.state) == (
        3,
        12000,
        6.0,
        "legal",
        "open",
    )
    assert task.due_at == datetime(2026, 1, 10, 5, 0, tzinfo=UTC)
    assert (task.channel_id, task.message_ts) == (TASKS, ts)


def test_defaults_one_slot_and_tasks_channel_or_the_current_one(database_url: str, fake) -> None:  # type: ignore[no-untyped-def]
    with BotHarness(database_url, fake=fake, env={"TASKS_CHANNEL": "C0DEFAULT"}) as bot:
        make_lead(bot)
        reply = bot.command("ULEAD", "/tasks", "new Label 200 images rate=45 hours=2", channel_id="C0GENERAL")
        assert "<#C0DEFAULT>" in reply.text
        card = fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "C0DEFAULT")[0]
        assert "1 of 1 slot left" in json.dumps(card.params["blocks"])
    with BotHarness(database_url, fake=fake) as bot:
        reply = bot.command("ULEAD", "/tasks", "new Label more images rate=45 hours=2", channel_id="C0HERE")
        assert "<#C0HERE>" in reply.text
        reply = bot.command("ULEAD", "/tasks", "new From a DM rate=45 hours=2", channel_id="D0LEAD")
        assert "Say where to post the card" in reply.text


def test_modal_posts_the_same_task(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    assert bot.driver is not None
    bot.driver.command("ULEAD", "/tasks", "new", channel_id=TASKS)  # answered with a form, not a reply
    view = bot.fake.wait_for("views.open")[0].response["view"]
    assert view["callback_id"] == "task_new"
    bad = bot.submit(
        "ULEAD",
        "task_new",
        {
            "title": {"value": ""},
            "rate": {"value": "lots"},
            "hours": {"value": "6"},
            "slots": {"value": "0"},
            "due": {"value": datepicker("2025-12-31")},
            "channel": {"value": conversations_select(TASKS)},
        },
        view=view,
    )
    errors = bad.json()["errors"]
    assert set(errors) == {"title", "rate", "slots", "due"}
    assert "not an amount" in errors["rate"] and "already passed" in errors["due"]
    assert not bot.fake.calls_to("chat.postMessage") or all(
        c.params["channel"] != TASKS for c in bot.fake.calls_to("chat.postMessage")
    )
    ok = bot.submit(
        "ULEAD",
        "task_new",
        {
            "title": {"value": "Summarise 12 trial transcripts"},
            "description": {"value": "Two paragraphs each."},
            "skill": {"value": "Legal"},
            "rate": {"value": "$150"},
            "hours": {"value": "8"},
            "slots": {"value": "2"},
            "due": {"value": datepicker("2026-01-09")},
            "channel": {"value": conversations_select(TASKS)},
        },
        view=view,
    )
    assert ok.status == 200 and not ok.body.strip()
    card = bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == TASKS)[0]
    text = json.dumps(card.params["blocks"])
    assert "Summarise 12 trial transcripts" in text and "`legal`" in text and "2 of 2 slots left" in text
    assert "Two paragraphs each." in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Title rate=abc hours=2", "`abc` is not an amount"),
        ("Title hours=2", "`rate=` is required"),
        ("Title rate=100", "`hours=` is required"),
        ("rate=100 hours=2", "Missing title"),
        ("Title rate=100 hours=2 slot=3", "`slot` is not an option of `/tasks new`"),
        ("Title rate=100 hours=2 slots=0", "between 1 and 500"),
        ("Title rate=100 hours=zero", "not a number of hours"),
        ("Title rate=0 hours=2", "more than $0"),
        ("Title rate=100 hours=2 due=2025-12-01", "has already passed"),
        ("Title rate=100 hours=2 due=friday", "`friday` is not a date"),
        ("Title rate=100 hours=2 channel=general", "`general` is not a channel"),
        ("Title rate=100 hours=2 skill=Legal!", "not a skill name"),
    ],
)
def test_malformed_posts_say_what_is_wrong_and_post_nothing(
    sqlite_bot: BotHarness, text: str, expected: str
) -> None:
    bot = sqlite_bot
    make_lead(bot)
    reply = bot.command("ULEAD", "/tasks", f"new {text}", channel_id=TASKS)
    assert expected in reply.text
    assert not any(c.params.get("channel") == TASKS for c in bot.fake.calls_to("chat.postMessage"))
    with bot.services.db.write() as session:
        assert session.exec(select(Task)).first() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("claim", "Missing task (T-n)"),
        ("claim X-1", "`X-1` is not a task ID"),
        ("claim T-999", "There is no task T-999"),
        ("claim T-1 T-2", "I didn't understand `T-2`"),
        ("frobnicate", "`frobnicate` is not a /tasks subcommand"),
        ("approve T-1", "Missing member"),
        ("reject T-1 <@U1>", "Missing reason"),
        ("assign T-1 bob", "`bob` is not a person"),
        ("done", "Missing task"),
    ],
)
def test_malformed_commands_get_a_specific_error(sqlite_bot: BotHarness, text: str, expected: str) -> None:
    bot = sqlite_bot
    make_lead(bot)
    reply = bot.command("ULEAD", "/tasks", text)
    assert expected in reply.text


def test_contractors_cannot_use_lead_commands(bot: BotHarness) -> None:
    make_lead(bot)
    task_id, _ = post(bot)
    bot.fake.add_user("U1")
    for text in (
        "new X rate=1 hours=1",
        f"cancel T-{task_id}",
        f"assign T-{task_id} <@U1>",
        f"history T-{task_id}",
    ):
        assert "Only leads and admins" in bot.command("U1", "/tasks", text).text
    assert task_row(bot, task_id).state == "open"


def test_help_lists_every_subcommand(sqlite_bot: BotHarness) -> None:
    reply = sqlite_bot.command("UADMIN", "/tasks", "help")
    for sub in (
        "claim",
        "mine",
        "new",
        "release",
        "done",
        "approve",
        "reject",
        "assign",
        "cancel",
        "history",
    ):
        assert f"/tasks {sub}" in reply.all_text
    assert "/tasks claim <T-n>" in sqlite_bot.command("UADMIN", "/tasks", "claim help").all_text


def test_a_card_that_cannot_be_posted_withdraws_the_task(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.missing_channels.add("C0GONE")
    reply = bot.command("ULEAD", "/tasks", "new Lost task rate=50 hours=1 channel=<#C0GONE>")
    assert "couldn't post the card" in reply.text and "channel_not_found" in reply.text
    task = task_row(bot, 1)
    assert task.state == "cancelled" and task.message_ts is None


# ---- claiming --------------------------------------------------------------------------------


def test_claim_gives_a_slot_confirms_dms_and_updates_the_card(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", tz="Asia/Tokyo")
    task_id, ts = post(bot, "Review contracts slots=2 rate=120 hours=6 due=2026-01-09")
    reply = click_claim(bot, "U1", task_id, ts)
    assert f"T-{task_id} · Review contracts* is yours" in reply
    card = wait_card(bot, ts, "1 of 2 slots left")
    assert "task_claim" in card
    dm = bot.wait_dm("U1", "You claimed")
    details = json.dumps(dm.params["blocks"])
    assert "$120/h" in details and "What to do next" in details and f"/tasks done T-{task_id}" in details
    assert "Sat 10 Jan, 09:00 JST" in details  # the due date's end, in the member's own timezone
    assert assignments(bot, task_id) == [("U1", "claimed")]


def test_claim_by_command_works_too(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    assert "is yours" in bot.command("U1", "/tasks", f"claim t{task_id}").text
    card = wait_card(bot, ts, "Full", absent="task_claim")
    assert "0 of 1 slot left" in card


def test_full_task_refuses_and_a_stale_button_refreshes_the_card(bot: BotHarness) -> None:
    make_lead(bot)
    for user in ("U1", "U2"):
        bot.fake.add_user(user)
    task_id, ts = post(bot)
    stale_card = bot.fake.find_message(TASKS, ts)
    stale = json.loads(json.dumps(stale_card))  # the card as U2's client still shows it
    assert "is yours" in click_claim(bot, "U1", task_id, ts)
    wait_card(bot, ts, "Full", absent="task_claim")
    updates_before = len(bot.fake.calls_to("chat.update"))
    reply = bot.click("U2", "task_claim", str(task_id), message_ts=ts, channel_id=TASKS, message=stale).text
    assert f"T-{task_id} is full: all 1 slot are taken" in reply
    # The stale click redraws the card (without a button), and changes nothing else.
    bot.fake.wait_for("chat.update", count=updates_before + 1)
    last = bot.fake.calls_to("chat.update")[-1]
    assert "task_claim" not in json.dumps(last.params["blocks"]) and "Full" in json.dumps(
        last.params["blocks"]
    )
    assert assignments(bot, task_id) == [("U1", "claimed")]
    assert not bot.dms_to("U2")


def test_skill_refusal_names_the_skill(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    bot.command("ULEAD", "/crew", "skill <@U1> medicine")
    task_id, ts = post(bot, "Review contracts rate=120 hours=6 skill=legal")
    reply = click_claim(bot, "U1", task_id, ts)
    assert "needs the `legal` skill" in reply and "your skills: `medicine`" in reply
    assert assignments(bot, task_id) == []
    bot.command("ULEAD", "/crew", "skill <@U1> legal,medicine")
    assert "is yours" in click_claim(bot, "U1", task_id, ts)


def test_cap_on_active_claims(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    posted = [post(bot, f"Task {i} rate=50 hours=1") for i in range(4)]
    for task_id, ts in posted[:3]:
        assert "is yours" in click_claim(bot, "U1", task_id, ts)
    task_id, ts = posted[3]
    reply = click_claim(bot, "U1", task_id, ts)
    assert "You already hold 3 claimed tasks (T-1, T-2, T-3)" in reply
    assert assignments(bot, task_id) == []
    # Submitted work waiting for review no longer counts against the cap.
    assert "Submitted" in bot.command("U1", "/tasks", "done T-1 confirm https://docs.example.com/1").text
    assert "is yours" in click_claim(bot, "U1", task_id, ts)


def test_cap_is_configurable(sqlite_url: str, fake) -> None:  # type: ignore[no-untyped-def]
    with BotHarness(sqlite_url, fake=fake, env={"MAX_ACTIVE_CLAIMS": "1"}) as bot:
        make_lead(bot)
        fake.add_user("U1")
        first, second = post(bot, "One rate=50 hours=1"), post(bot, "Two rate=50 hours=1")
        assert "is yours" in click_claim(bot, "U1", *first)
        assert "You already hold 1 claimed tasks (T-1)" in click_claim(bot, "U1", *second)


def test_already_yours(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot, "Review contracts slots=3 rate=120 hours=6")
    assert "is yours" in click_claim(bot, "U1", task_id, ts)
    assert f"T-{task_id} is already yours" in click_claim(bot, "U1", task_id, ts)
    bot.command("U1", "/tasks", f"done T-{task_id} confirm")
    assert "you submitted it and it's waiting for review" in click_claim(bot, "U1", task_id, ts)
    assert assignments(bot, task_id) == [("U1", "submitted")]
    assert task_row(bot, task_id).claimed == 1


def test_cancelled_task_refuses_claims(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    bot.command("ULEAD", "/tasks", f"cancel T-{task_id}")
    assert f"T-{task_id} was cancelled" in click_claim(bot, "U1", task_id, ts)
    assert assignments(bot, task_id) == []


def test_past_due_task_refuses_claims(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot, "Quick review rate=80 hours=1 due=2026-01-05")
    bot.clock.set(datetime(2026, 1, 6, 0, 0, tzinfo=UTC))  # the due date is over (lead in UTC)
    assert f"T-{task_id} was due 2026-01-05 and can no longer be claimed" in click_claim(
        bot, "U1", task_id, ts
    )
    assert assignments(bot, task_id) == []
    wait_card(bot, ts, "Past due", absent="task_claim")


# ---- working a task, reviews --------------------------------------------------------------------


def test_release_frees_the_slot_and_the_button_comes_back(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    click_claim(bot, "U1", task_id, ts)
    wait_card(bot, ts, "Full", absent="task_claim")
    assert "You released" in bot.command("U1", "/tasks", f"release T-{task_id}").text
    wait_card(bot, ts, "1 of 1 slot left", "task_claim")
    assert "You no longer hold" in bot.command("U1", "/tasks", f"release T-{task_id}").text
    bot.fake.add_user("U9")
    assert "You don't hold" in bot.command("U9", "/tasks", f"release T-{task_id}").text


def test_submit_approve_and_close(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    click_claim(bot, "U1", task_id, ts)
    assert "hasn't submitted" in bot.command("ULEAD", "/tasks", f"approve T-{task_id} <@U1>").text
    reply = bot.command("U1", "/tasks", f"done T-{task_id} confirm <https://docs.example.com/x|the doc>")
    assert "Submitted" in reply.text
    bot.wait_dm("ULEAD", "submitted")
    assert "already submitted" in bot.command("U1", "/tasks", f"done T-{task_id} confirm").text
    reply = bot.command("ULEAD", "/tasks", f"approve T-{task_id} <@U1>")
    assert "Approved" in reply.text and "task is closed" in reply.text
    bot.wait_dm("U1", "approved your work")
    wait_card(bot, ts, "Closed", absent="task_claim")
    assert assignments(bot, task_id) == [("U1", "approved")]
    task = task_row(bot, task_id)
    assert (task.state, task.claimed, task.approved) == ("closed", 0, 1)
    assert "closed" in bot.command("ULEAD", "/tasks", f"cancel T-{task_id}").text


def test_reject_dms_the_reason_and_the_dispute_window_and_reopens(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", tz="Europe/Lisbon")
    task_id, ts = post(bot)
    click_claim(bot, "U1", task_id, ts)
    bot.command("U1", "/tasks", f"done T-{task_id} confirm https://docs.example.com/x")
    reply = bot.command("ULEAD", "/tasks", f"reject T-{task_id} <@U1> Summaries miss the indemnity clauses")
    assert "Rejected" in reply.text
    dm = bot.wait_dm("U1", "rejected your submission")
    assert "Summaries miss the indemnity clauses" in dm.params["text"]
    assert "dispute it within 7 days (until Mon 12 Jan, 09:00 WET)" in dm.params["text"]
    wait_card(bot, ts, "1 of 1 slot left", "task_claim")
    assert assignments(bot, task_id) == [("U1", "rejected")]
    assert "no submission" in bot.command("ULEAD", "/tasks", f"reject T-{task_id} <@U1> again").text


def test_assign_respects_slots_and_dms_the_assignee(bot: BotHarness) -> None:
    make_lead(bot)
    for user in ("U1", "U2"):
        bot.fake.add_user(user)
    task_id, ts = post(bot, "Review contracts rate=120 hours=6 skill=legal")
    reply = bot.command("ULEAD", "/tasks", f"assign T-{task_id} <@U1>")
    assert "Assigned" in reply.text and "doesn't have the `legal` skill" in reply.text
    dm = bot.wait_dm("U1", "assigned you")
    assert "<@ULEAD> assigned you" in dm.params["text"]
    wait_card(bot, ts, "Full", absent="task_claim")
    assert "already holds" in bot.command("ULEAD", "/tasks", f"assign T-{task_id} <@U1>").text
    assert "is full" in bot.command("ULEAD", "/tasks", f"assign T-{task_id} <@U2>").text
    assert assignments(bot, task_id) == [("U1", "claimed")]


def test_cancel_dms_every_claimant(bot: BotHarness) -> None:
    make_lead(bot)
    for user in ("U1", "U2", "U3"):
        bot.fake.add_user(user)
    task_id, ts = post(bot, "Review contracts slots=3 rate=120 hours=6")
    click_claim(bot, "U1", task_id, ts)
    click_claim(bot, "U2", task_id, ts)
    bot.command("U2", "/tasks", f"done T-{task_id} confirm")
    reply = bot.command("ULEAD", "/tasks", f"cancel T-{task_id}")
    assert "Cancelled" in reply.text and "DMed the 2 people" in reply.text
    for user in ("U1", "U2"):
        bot.wait_dm(user, "cancelled")
    assert not [c for c in bot.dms_to("U3")]
    wait_card(bot, ts, "Cancelled", absent="task_claim")
    assert assignments(bot, task_id) == [("U1", "released"), ("U2", "released")]
    assert "already cancelled" in bot.command("ULEAD", "/tasks", f"cancel T-{task_id}").text


# ---- expiry -------------------------------------------------------------------------------------


def test_expiry_releases_unsubmitted_claims_at_the_end_of_the_due_date(bot: BotHarness) -> None:
    make_lead(bot, tz="America/New_York")
    for user in ("U1", "U2"):
        bot.fake.add_user(user, tz="Europe/Lisbon")
    task_id, ts = post(bot, "Review contracts slots=2 rate=120 hours=6 due=2026-01-07")
    click_claim(bot, "U1", task_id, ts)
    click_claim(bot, "U2", task_id, ts)
    bot.command("U2", "/tasks", f"done T-{task_id} confirm https://docs.example.com/x")
    bot.restart()  # the expiry job is stored, not held in memory
    # Jan 8, 00:30 UTC is still Jan 7 in New York, where the lead is: nothing expires.
    bot.clock.set(datetime(2026, 1, 8, 0, 30, tzinfo=UTC))
    assert "already yours" in click_claim(bot, "U1", task_id, ts)
    bot.clock.set(datetime(2026, 1, 8, 5, 1, tzinfo=UTC))
    dm = bot.wait_dm("U1", "expired")
    assert "Thu 08 Jan, 05:00 WET" in dm.params["text"]
    wait_card(bot, ts, "Past due", "1 of 2 slots left", absent="task_claim")
    assert assignments(bot, task_id) == [("U1", "released"), ("U2", "submitted")]
    assert not any("expired" in c.params.get("text", "") for c in bot.dms_to("U2"))
    assert "expired" in bot.command("U1", "/tasks", f"done T-{task_id} confirm").text
    task = task_row(bot, task_id)
    assert (task.state, task.claimed) == ("open", 1)
    history = bot.command("ULEAD", "/tasks", f"history T-{task_id}").all_text
    assert "task.claim_expired" in history and "job task-expiry" in history


# ---- finding work, Home, history ---------------------------------------------------------------


def test_list_shows_what_this_person_may_claim_newest_first_with_more(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    bot.command("ULEAD", "/crew", "skill <@U1> legal")
    for i in range(1, 12):
        post(bot, f"Open task {i} rate=50 hours=1")
    post(bot, "Needs medicine rate=50 hours=1 skill=medicine")  # T-12: not for U1
    post(bot, "Needs legal rate=50 hours=1 skill=legal")  # T-13
    assert "is yours" in bot.command("U1", "/tasks", "claim T-5").text  # held: not listed
    page = bot.command("U1", "/tasks")
    text = page.all_text
    ids = [int(i) for i in re.findall(r"\*T-(\d+) ·", text)]
    assert ids == [13, 11, 10, 9, 8, 7, 6, 4, 3, 2]
    assert '"action_id": "task_list_more"' in text
    more = bot.click("U1", "task_list_more", "10")
    assert [int(i) for i in re.findall(r"\*T-(\d+) ·", more.all_text)] == [1]
    assert "task_list_more" not in more.all_text


def test_list_at_the_cap_says_so(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    for i in range(4):
        task_id, ts = post(bot, f"Task {i} rate=50 hours=1")
        if i < 3:
            click_claim(bot, "U1", task_id, ts)
    assert "You hold 3 claimed tasks" in bot.command("U1", "/tasks").all_text


def test_mine_lists_states_with_submit_and_release_buttons(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    first, second = post(bot, "First rate=50 hours=1"), post(bot, "Second rate=50 hours=1")
    click_claim(bot, "U1", *first)
    click_claim(bot, "U1", *second)
    bot.command("U1", "/tasks", "done T-1 confirm https://docs.example.com/1")
    mine = bot.command("U1", "/tasks", "mine").all_text
    assert "submitted" in mine and "waiting for review" in mine and "claimed" in mine
    assert mine.count('"action_id": "task_submit_open"') == 1 and '"value": "2"' in mine
    # The Submit button opens a modal; its note goes with the submission.
    assert bot.driver is not None
    bot.driver.click("U1", "task_submit_open", "2")
    view = bot.fake.wait_for("views.open")[0].response["view"]
    assert view["callback_id"] == "task_submit"
    response = bot.submit(
        "U1",
        "task_submit",
        {"note": {"value": "https://docs.example.com/2"}, "attest": {"value": checkboxes(["yes"])}},
        view["private_metadata"],
        view=view,
    )
    assert response.status == 200
    bot.wait_dm("ULEAD", "docs.example.com/2")
    assert assignments(bot, 2) == [("U1", "submitted")]
    # Release from the list.
    third = post(bot, "Third rate=50 hours=1")
    click_claim(bot, "U1", *third)
    assert "You released" in bot.click("U1", "task_release", "3").text


def test_home_shows_my_tasks_and_leads_review_from_it(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot, "Review contracts slots=2 rate=120 hours=6")
    other_id, other_ts = post(bot, "Another rate=50 hours=1")
    click_claim(bot, "U1", task_id, ts)
    click_claim(bot, "U1", other_id, other_ts)
    bot.command("U1", "/tasks", f"done T-{task_id} confirm https://docs.example.com/x")
    assert bot.driver is not None
    bot.driver.home_opened("U1")
    home = bot.fake.wait_for("views.publish", predicate=lambda c: c.params["user_id"] == "U1")[0]
    text = json.dumps(home.params["view"])
    assert "Review contracts" in text and "waiting for review" in text and "task_submit_open" in text
    assert "Awaiting review" not in text
    bot.driver.home_opened("ULEAD")
    lead_home = bot.fake.wait_for("views.publish", predicate=lambda c: c.params["user_id"] == "ULEAD")[0]
    text = json.dumps(lead_home.params["view"])
    assert "Awaiting review" in text and "task_approve" in text and "task_reject_open" in text
    assert '"text": "*Open*\\n1"' in text and '"text": "*Full*\\n1"' in text
    # Approve from Home: the contractor is DMed and the lead's Home is redrawn.
    view = bot.fake.home_views["ULEAD"]
    assert bot.driver is not None
    bot.driver.click("ULEAD", "task_approve", f"{task_id}:U1", view=view)
    bot.wait_dm("U1", "approved your work")
    notice = bot.fake.wait_for("views.open")[0].params["view"]  # the answer, where the lead acted
    assert "Approved" in json.dumps(notice)
    bot.fake.wait_for("views.publish", count=2, predicate=lambda c: c.params["user_id"] == "ULEAD")
    # Reject from Home opens a modal asking why.
    bot.command("U1", "/tasks", f"done T-{other_id} confirm")
    bot.driver.click("ULEAD", "task_reject_open", f"{other_id}:U1", view=view)
    modal = bot.fake.wait_for(
        "views.open", predicate=lambda c: c.params["view"]["callback_id"] == "task_reject"
    )[0].response["view"]
    assert modal["callback_id"] == "task_reject"
    meta = modal["private_metadata"]
    empty = bot.submit("ULEAD", "task_reject", {"reason": {"value": ""}}, meta, view=modal)
    assert "reason" in empty.json()["errors"]
    bot.submit("ULEAD", "task_reject", {"reason": {"value": "Wrong files"}}, meta, view=modal)
    assert "Wrong files" in bot.wait_dm("U1", "rejected").params["text"]
    assert assignments(bot, other_id) == [("U1", "rejected")]


def test_history_records_who_what_when_and_from_where(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    click_claim(bot, "U1", task_id, ts)
    bot.command("U1", "/tasks", f"release T-{task_id}")
    bot.command("ULEAD", "/tasks", f"assign T-{task_id} <@U1>")
    bot.command("U1", "/tasks", f"done T-{task_id} confirm https://docs.example.com/x")
    bot.command("ULEAD", "/tasks", f"reject T-{task_id} <@U1> Incomplete")
    text = bot.command("ULEAD", "/tasks", f"history T-{task_id}").all_text
    order = [
        "task.created",
        "task.claimed",
        "task.released",
        "task.assigned",
        "task.submitted",
        "task.rejected",
    ]
    positions = [text.index(action) for action in order]
    assert positions == sorted(positions)
    assert (
        "from `button task_claim`" in text and "from `/tasks release`" in text and "reason=Incomplete" in text
    )
    assert "<@U1>" in text and "<@ULEAD>" in text and "<!date^" in text


def test_history_pages_with_more(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot, "Busy task slots=2 rate=10 hours=1")
    for _ in range(25):
        bot.command("U1", "/tasks", f"claim T-{task_id}")
        bot.command("U1", "/tasks", f"release T-{task_id}")
    first = bot.command("ULEAD", "/tasks", f"history T-{task_id}").all_text
    assert first.count("task.") == 40 and f'"value": "{task_id}:40"' in first
    rest = bot.click("ULEAD", "task_history_more", f"{task_id}:40").all_text
    assert rest.count("task.") == 11 and "task_history_more" not in rest


def test_buttons_with_bad_values_answer_instead_of_crashing(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    assert "out of date" in bot.click("U1", "task_claim", "not-a-number").text
    assert "There is no task T-77" in bot.click("U1", "task_claim", "77").text
    make_lead(bot)
    assert "out of date" in bot.click("ULEAD", "task_approve", "12").text


def test_due_date_is_after_now_in_the_posters_timezone(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="Pacific/Kiritimati")  # UTC+14: Jan 5 09:00 UTC is already Jan 5 23:00 there
    bot.clock.set(datetime(2026, 1, 5, 10, 30, tzinfo=UTC))  # Jan 6, 00:30 in Kiritimati
    assert "already passed" in bot.command("ULEAD", "/tasks", "new T rate=1 hours=1 due=2026-01-05").text
    assert "Posted" in bot.command("ULEAD", "/tasks", "new T rate=1 hours=1 due=2026-01-06").text
    assert task_row(bot, 1).due_at == datetime(2026, 1, 6, 10, 0, tzinfo=UTC)
