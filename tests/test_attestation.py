"""The AI-tools attestation and tracked time on submissions, through the HTTP endpoint: required
(citing the handbook), stored word for word with its time, shown to the reviewing lead and in
`/tasks history`; skipped on an `ai=allowed` task; "no time tracked" flagged to the reviewer."""

from __future__ import annotations

import json

from sqlmodel import col, select

from db.models import Assignment
from domain.vetting import ATTESTATION
from sandbox.driver import checkboxes, conversations_select
from sandbox.harness import BotHarness
from tests.tasks_support import TASKS, click_claim, make_lead, post


def assignment(bot: BotHarness, task_id: int, user_id: str = "U1") -> Assignment:
    with bot.services.db.write() as session:
        row = session.exec(
            select(Assignment).where(col(Assignment.task_id) == task_id, col(Assignment.user_id) == user_id)
        ).first()
        assert row is not None
        return row


def test_done_without_the_attestation_is_refused_citing_the_rule_then_the_form_submits(
    bot: BotHarness,
) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    click_claim(bot, "U1", task_id, ts)

    refused = bot.command("U1", "/tasks", f"done T-{task_id} https://docs.example.com/x")
    assert "is not submitted yet" in refused.text and ATTESTATION in refused.text
    assert "You must not use AI tools" in refused and "*AI tools*" in refused  # quoted and cited
    assert f"/tasks done T-{task_id} confirm" in refused
    assert assignment(bot, task_id).state == "claimed"
    assert not bot.dms_to("ULEAD") or all("submitted" not in c.params["text"] for c in bot.dms_to("ULEAD"))

    # The form it opened carries the note, the rule and the box to tick.
    view = bot.fake.wait_for("views.open")[0].response["view"]
    assert view["callback_id"] == "task_submit"
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert (
        "https://docs.example.com/x" in shown
        and "You must not use AI tools" in shown
        and ATTESTATION in shown
    )
    unticked = bot.submit(
        "U1",
        "task_submit",
        {"note": {"value": "https://docs.example.com/x"}},
        view["private_metadata"],
        view=view,
    )
    assert "attest" in unticked.json()["errors"]
    assert assignment(bot, task_id).state == "claimed"

    ticked = bot.submit(
        "U1",
        "task_submit",
        {"note": {"value": "https://docs.example.com/x"}, "attest": {"value": checkboxes(["yes"])}},
        view["private_metadata"],
        view=view,
    )
    assert ticked.status == 200 and not ticked.body.strip()
    row = assignment(bot, task_id)
    assert (row.state, row.attestation, row.attested_at) == ("submitted", ATTESTATION, bot.clock.now())

    # Shown to the reviewing lead, flagged with no time tracked, and on the record.
    dm = bot.wait_dm("ULEAD", "submitted")
    assert f"Attested “{ATTESTATION}”" in dm.params["text"]
    assert "*No time tracked* on this task (estimated ~6 h)" in dm.params["text"]
    bot.fake.add_user("ULEAD")
    assert bot.driver is not None
    bot.driver.home_opened("ULEAD")
    home = bot.fake.wait_for(
        "views.publish",
        predicate=lambda c: c.params.get("user_id") == "ULEAD" and "Attested" in json.dumps(c.params),
    )[0]
    assert "No time tracked" in json.dumps(home.params, ensure_ascii=False)
    history = bot.command("ULEAD", "/tasks", f"history T-{task_id}").all_text
    assert (
        f"attestation={ATTESTATION}" in history
        and "attested_at=" in history
        and "no_time_tracked=True" in history
    )


def test_confirm_on_the_command_line_and_tracked_hours_beside_the_estimate(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot)
    click_claim(bot, "U1", task_id, ts)
    bot.command("U1", "/hours", f"in T-{task_id}")
    bot.clock.advance(minutes=90)
    bot.command("U1", "/hours", "out")
    reply = bot.command("U1", "/tasks", f"done T-{task_id} confirm https://docs.example.com/y")
    assert "Submitted" in reply.text
    row = assignment(bot, task_id)
    assert row.attestation == ATTESTATION and row.note == "https://docs.example.com/y"
    dm = bot.wait_dm("ULEAD", "submitted")
    assert (
        "Tracked 1.5 h of ~6 h estimated" in dm.params["text"] and "No time tracked" not in dm.params["text"]
    )


def test_an_ai_allowed_task_needs_no_attestation(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot, "Grade model answers rate=60 hours=2 ai=allowed")
    assert "AI tools allowed on this task" in json.dumps(bot.fake.find_message(TASKS, ts))
    assert (
        "is not one of: allowed, forbidden"
        in bot.command("ULEAD", "/tasks", "new X rate=1 hours=1 ai=maybe").text
    )
    click_claim(bot, "U1", task_id, ts)
    assert "Submitted" in bot.command("U1", "/tasks", f"done T-{task_id} https://docs.example.com/z").text
    row = assignment(bot, task_id)
    assert (row.state, row.attestation, row.attested_at) == ("submitted", None, None)
    dm = bot.wait_dm("ULEAD", "submitted")
    assert "AI tools allowed on this task: no attestation needed" in dm.params["text"]
    history = bot.command("ULEAD", "/tasks", f"history T-{task_id}").all_text
    assert "ai_allowed=True" in history and "not required: AI tools allowed on this task" in history

    # The Submit form of such a task has no box to tick.
    bot.fake.add_user("U2")
    other, other_ts = post(bot, "More grading rate=60 hours=2 ai=allowed")
    click_claim(bot, "U2", other, other_ts)
    assert bot.driver is not None
    bot.driver.click("U2", "task_submit_open", str(other))
    view = bot.fake.wait_for("views.open")[0].response["view"]
    assert ATTESTATION not in json.dumps(view["blocks"], ensure_ascii=False)
    assert (
        bot.submit(
            "U2", "task_submit", {"note": {"value": "done"}}, view["private_metadata"], view=view
        ).status
        == 200
    )
    bot.wait_dm("ULEAD", "<@U2> submitted")


def test_the_new_task_form_sets_ai_allowed_and_checks_the_catalogue(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    assert bot.driver is not None
    bot.driver.command("ULEAD", "/tasks", "new", channel_id=TASKS)
    view = bot.fake.wait_for("views.open")[0].response["view"]
    values = {
        "title": {"value": "Label 50 images"},
        "skill": {"value": "medicne"},
        "rate": {"value": "50"},
        "hours": {"value": "2"},
        "slots": {"value": "1"},
        "channel": {"value": conversations_select(TASKS)},
        "ai": {"value": checkboxes(["allowed"])},
    }
    typo = bot.submit("ULEAD", "task_new", values, view["private_metadata"], view=view)
    assert "Did you mean `medicine`?" in typo.json()["errors"]["skill"]
    ok = bot.submit(
        "ULEAD", "task_new", {**values, "skill": {"value": "medicine"}}, view["private_metadata"], view=view
    )
    assert ok.status == 200 and not ok.body.strip()
    card = bot.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == TASKS)[0]
    assert "AI tools allowed on this task" in json.dumps(card.params["blocks"])
