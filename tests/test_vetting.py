"""Joining and vetting through the HTTP endpoint: the welcome (once, with the handbook's rules),
the leads' daily digest, the skill catalogue and its typo refusals, applications from apply to
decision, and the cooldown."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.clock import FakeClock
from db.models import AuditEntry, SkillApplication, Welcome
from sandbox.driver import static_select
from sandbox.fake_slack import Call, FakeSlack
from sandbox.harness import BotHarness

ROOT = Path(__file__).resolve().parent.parent
LEADS = "C0LEADS"
AI_RULE = "You must not use AI tools"


@pytest.fixture
def handbook(tmp_path: Path) -> Path:
    """A copy of the handbook the test may edit."""
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target)
    return target


@pytest.fixture
def vbot(database_url: str, fake: FakeSlack, handbook: Path) -> Iterator[BotHarness]:
    env = {
        "LEADS_CHANNEL": LEADS,
        "POLICY_DIR": str(handbook),
        "POLICY_BASE_URL": "https://handbook.example/",
    }
    with BotHarness(database_url, fake=fake, env=env) as bot:
        yield bot


def text_of(call: Call) -> str:
    return call.params.get("text", "") + json.dumps(call.params.get("blocks") or [], ensure_ascii=False)


def welcomes(bot: BotHarness, user_id: str) -> list[Call]:
    return [c for c in bot.dms_to(user_id) if "Welcome to the crew" in text_of(c)]


def settle() -> None:
    """Events are handled after their ack: give a replay that must do nothing the time to do it."""
    time.sleep(0.7)


def lead_with(bot: BotHarness, user_id: str, skills: str = "") -> str:
    bot.fake.add_user(user_id)
    assert "is now a lead" in bot.command("UADMIN", "/crew", f"lead <@{user_id}>").text
    if skills:
        assert "skills are now" in bot.command("UADMIN", "/crew", f"skill <@{user_id}> {skills}").text
    return user_id


def leads_posts(bot: BotHarness) -> list[Call]:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.ok and c.params.get("channel") == LEADS]


# ---- the welcome ---------------------------------------------------------------------------------


def test_welcome_once_on_team_join_quoting_the_handbook(vbot: BotHarness, handbook: Path) -> None:
    bot = vbot
    rules = handbook / "work-rules.md"
    rules.write_text(rules.read_text().replace(AI_RULE, "Under no circumstances use AI tools"))
    user = bot.fake.add_user("UNEW", name="nia")
    assert bot.driver is not None
    assert bot.driver.team_join(user, event_id="EvJOIN1").status == 200
    dm = bot.wait_dm("UNEW", "Welcome to the crew")
    text = text_of(dm)
    # The three rules, quoted from the handbook as it is now, each cited with its link.
    assert "Under no circumstances use AI tools" in text and AI_RULE not in text
    assert "The time tracker must be running whenever you do billable work" in text
    assert "Task content, client names and screenshots are not shared" in text
    for link in ("pay-and-hours.md#time-tracking", "work-rules.md#ai-tools", "community.md#confidentiality"):
        assert f"https://handbook.example/{link}" in text
    buttons = [e for b in dm.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Apply for a skill", "Ask the handbook"]

    # Slack redelivering it, the same event delivered again under a new id, the member opening the
    # app, and a restart: still one welcome.
    bot.driver.team_join(user, event_id="EvJOIN1", retry_num=1)
    bot.driver.team_join(user)
    bot.driver.home_opened("UNEW")
    bot.restart()
    assert bot.driver is not None
    bot.driver.home_opened("UNEW")
    bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "UNEW", count=2)
    settle()
    assert len(welcomes(bot, "UNEW")) == 1
    with bot.services.db.write() as session:
        row = session.get(Welcome, "UNEW")
        assert row is not None and (row.state, row.trigger, row.attempts) == ("sent", "team_join", 1)


def test_welcome_on_first_opening_the_app_and_not_for_bots(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    assert bot.driver is not None
    bot.fake.add_user("U1")
    bot.driver.home_opened("U1")
    bot.wait_dm("U1", "Welcome to the crew")
    bot.driver.team_join(bot.fake.add_user("UBOT", is_bot=True))
    bot.driver.home_opened("U1")
    settle()
    assert len(welcomes(bot, "U1")) == 1 and welcomes(bot, "UBOT") == []

    # The buttons: Apply opens the form, Ask the handbook says how to ask.
    bot.driver.click("U1", "vetting_apply_open", "welcome", channel_id="DU1")
    assert bot.fake.wait_for("views.open")[0].response["view"]["callback_id"] == "vetting_apply"
    reply = bot.click("U1", "vetting_ask_handbook", "welcome", channel_id="DU1")
    assert "Ask me anything about the contractor handbook" in reply.text


def test_a_failed_welcome_is_retried_once_slack_answers_and_never_doubled(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    assert bot.driver is not None
    bot.fake.fail_next("chat.postMessage", "internal_error")
    bot.driver.team_join(bot.fake.add_user("U2"))
    bot.fake.wait_for("chat.postMessage", predicate=lambda c: not c.ok)
    settle()
    with bot.services.db.write() as session:
        row = session.get(Welcome, "U2")
        assert row is not None and row.state in ("pending", "sent")
    bot.clock.advance(minutes=5)  # the sweep
    bot.wait_dm("U2", "Welcome to the crew")
    bot.clock.advance(minutes=5)
    settle()
    assert len(welcomes(bot, "U2")) == 1


def test_a_welcome_left_in_doubt_is_looked_up_before_it_is_sent_again(sqlite_bot: BotHarness) -> None:
    """A sender that died between chat.postMessage and recording it left the row `sending`: the
    sweep finds the DM in Slack's history (by its metadata) and records it instead of resending;
    a row whose DM never reached Slack is sent."""
    bot = sqlite_bot
    now = bot.clock.now()
    bot.fake.add_user("U3")
    bot.fake.add_user("U4")
    channel = bot.services.slack.open_dm("U3")
    bot.fake.add_message(
        channel,
        "Welcome to the crew!",
        metadata={"event_type": "crewcall_welcome", "event_payload": {"user": "U3"}},
    )
    with bot.services.db.write() as session:
        for user in ("U3", "U4"):
            session.add(
                Welcome(
                    user_id=user,
                    trigger="team_join",
                    state="sending",
                    attempts=1,
                    created_at=now,
                    claimed_at=now,
                )
            )
    bot.clock.advance(minutes=5)
    bot.wait_dm("U4", "Welcome to the crew")

    def settled() -> bool:
        with bot.services.db.write() as session:
            return all(
                (session.get(Welcome, u) or Welcome(user_id=u, trigger="", created_at=now)).state == "sent"
                for u in ("U3", "U4")
            )

    deadline = time.monotonic() + 10
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert settled()
    assert welcomes(bot, "U3") == []  # found in the history, not sent again


def test_leads_get_one_daily_digest_of_new_members(database_url: str, fake: FakeSlack) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))  # after today's 09:00 digest
    with BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS}, clock=clock) as bot:
        _daily_digest(bot)


def _daily_digest(bot: BotHarness) -> None:
    assert bot.driver is not None
    for user in ("UA", "UB"):
        bot.driver.team_join(bot.fake.add_user(user))
        bot.wait_dm(user, "Welcome to the crew")
    assert not any("new member" in text_of(c) for c in leads_posts(bot))  # not one post per join
    bot.clock.advance(days=1)  # 09:00 UTC the next day
    [digest] = bot.fake.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params.get("channel") == LEADS and "new member" in text_of(c),
    )
    assert "2 new members" in text_of(digest) and "<@UA>" in text_of(digest) and "<@UB>" in text_of(digest)
    bot.driver.home_opened("UC")
    bot.wait_dm("UC", "Welcome to the crew")
    bot.clock.advance(days=1)
    bot.fake.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params.get("channel") == LEADS and "1 new member" in text_of(c),
    )
    bot.clock.advance(days=1)  # nobody new: nothing posted
    settle()
    assert len([c for c in leads_posts(bot) if "new member" in text_of(c)]) == 2


# ---- the catalogue -------------------------------------------------------------------------------


def test_catalogue_add_list_remove_and_typos_refused_with_suggestions(bot: BotHarness) -> None:
    lead_with(bot, "ULEAD")
    bot.fake.add_user("U1")
    listed = bot.command("U1", "/crew", "skills")
    assert "`legal` · Legal" in listed and "skills add" not in listed.all_text.split("Apply with")[0]
    assert (
        "Only leads and admins can change the skill catalogue"
        in bot.command("U1", "/crew", "skills add tax Tax").text
    )
    added = bot.command("ULEAD", "/crew", 'skills add tax-law "Tax &amp; &lt;b&gt;law&lt;/b&gt;"')
    assert "`tax-law`" in added.text and "Tax &amp; &lt;b&gt;law&lt;/b&gt;" in added.text
    again = bot.command("ULEAD", "/crew", "skills add tax-law").text
    assert "already in the catalogue" in again and "(Tax &amp; &lt;b&gt;law&lt;/b&gt;)" in again
    assert "`tax-law` · Tax &amp; &lt;b&gt;law&lt;/b&gt;" in bot.command("U1", "/crew", "skills")

    # Setting, requiring (tasks and shifts) or applying for a typo is refused with the closest names.
    refused = bot.command("ULEAD", "/crew", "skill <@U1> legl")
    assert "`legl` is not a skill in the catalogue. Did you mean `legal`?" in refused.text
    assert "none yet" in bot.command("U1", "/crew", "me")
    task = bot.command("ULEAD", "/tasks", "new Review rate=50 hours=1 skill=medicne channel=<#C0TASKS>")
    assert "Did you mean `medicine`?" in task.text
    shift = bot.command(
        "ULEAD",
        "/shifts",
        "new Night start=2026-01-10T22:00 end=2026-01-11T02:00 skill=pythn channel=<#C0SHIFTS>",
    )
    assert "Did you mean `python`?" in shift.text
    assert "Did you mean `tax-law`?" in bot.command("U1", "/crew", "apply tax-lw").text
    assert not [
        c for c in bot.fake.calls_to("chat.postMessage") if c.params.get("channel") in ("C0TASKS", "C0SHIFTS")
    ]

    # Removing: members keep it, but it can no longer be set.
    assert "skills are now `tax-law`" in bot.command("ULEAD", "/crew", "skill <@U1> tax-law").text
    removed = bot.command("ULEAD", "/crew", "skills remove tax-law")
    assert "Removed `tax-law`" in removed.text and "1 member keep it" in removed.text
    assert "`tax-law`" in bot.command("U1", "/crew", "me")
    assert "not a skill in the catalogue" in bot.command("ULEAD", "/crew", "skill <@U1> tax-law").text
    with bot.services.db.write() as session:
        actions = [
            e.action for e in session.exec(select(AuditEntry).where(col(AuditEntry.entity) == "skill"))
        ]
    assert actions == ["skill.added", "skill.removed"]


def test_catalogue_pages(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    lead_with(bot, "ULEAD")
    for n in range(20):
        bot.command("ULEAD", "/crew", f"skills add skill-{n:02d}")
    first = bot.command("ULEAD", "/crew", "skills")
    assert "page 1" in first and "vetting_skills_more" in first.all_text and "skill-14" in first
    second = bot.click("ULEAD", "vetting_skills_more", "20")
    assert "page 2" in second and "skill-19" in second and "vetting_skills_more" not in second.all_text
    assert "skill-19" in bot.command("ULEAD", "/crew", "skills 2")


# ---- applications --------------------------------------------------------------------------------


def card_of(bot: BotHarness, application_id: int) -> dict:
    with bot.services.db.write() as session:
        application = session.get(SkillApplication, application_id)
        assert application is not None and application.card_ts
        message = bot.fake.find_message(LEADS, application.card_ts)
    assert message is not None
    return message


def test_an_application_from_apply_to_decline_cooldown_and_approval(vbot: BotHarness) -> None:
    bot = vbot
    lead_with(bot, "ULEAD", "legal")
    lead_with(bot, "UMED", "medicine")
    bot.fake.add_user("U1", tz="Europe/Lisbon")

    applied = bot.command(
        "U1", "/crew", "apply legal <https://bar.example/ana|my bar admission> &lt;!channel&gt;"
    )
    assert "Applied for `legal` (AP-1)" in applied.text
    card = bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: c.params.get("channel") == LEADS and "AP-1" in text_of(c)
    )[0]
    shown = text_of(card)
    assert "https://bar.example/ana" in shown and "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    assert "vetting_approve" in shown and "vetting_decline_open" in shown
    assert "already applied" in bot.command("U1", "/crew", "apply legal again").text

    # Only leads who hold the skill (or admins) decide; never the applicant.
    assert "Only leads who hold `legal`" in bot.click("UMED", "vetting_approve", "1", channel_id=LEADS).text
    assert "Only leads and admins" in bot.click("U1", "vetting_approve", "1", channel_id=LEADS).text
    bot.command("ULEAD", "/crew", "apply medicine")
    assert (
        "can't decide your own application"
        in bot.click("ULEAD", "vetting_approve", "2", channel_id=LEADS).text
    )

    # Decline: the reason is required, the member is DMed, the card shows the decision in place.
    assert bot.driver is not None
    bot.driver.click("ULEAD", "vetting_decline_open", "1", channel_id=LEADS)
    view = bot.fake.wait_for("views.open")[0].response["view"]
    empty = bot.submit(
        "ULEAD", "vetting_decline", {"reason": {"value": " "}}, view["private_metadata"], view=view
    )
    assert empty.json()["response_action"] == "errors" and "reason" in empty.json()["errors"]
    done = bot.submit(
        "ULEAD",
        "vetting_decline",
        {"reason": {"value": "Admission <i>not</i> verifiable"}},
        view["private_metadata"],
        view=view,
    )
    assert done.status == 200 and not done.body.strip()  # closed at once; the rest follows the ack
    dm = bot.wait_dm("U1", "declined your application")
    assert "Admission &lt;i&gt;not&lt;/i&gt; verifiable" in dm.params["text"]
    assert "You may apply again from Wed 04 Feb 2026" in dm.params["text"]
    bot.fake.wait_for(
        "chat.update", predicate=lambda c: c.params.get("channel") == LEADS and "Declined" in text_of(c)
    )
    message = json.dumps(card_of(bot, 1))
    assert "Declined" in message and "vetting_approve" not in message
    assert "Admission &lt;i&gt;not&lt;/i&gt; verifiable" in message and "<i>" not in message

    # A stale card: clicking again says what happened.
    assert "already declined" in bot.click("ULEAD", "vetting_approve", "1", channel_id=LEADS).text

    # The cooldown, then a second application approved by a button.
    cooling = bot.command("U1", "/crew", "apply legal https://bar.example/ana2")
    assert "you may apply again from 2026-02-04" in cooling.text
    bot.clock.advance(days=30)
    assert (
        "Applied for `legal` (AP-3)"
        in bot.command("U1", "/crew", "apply legal https://bar.example/ana2").text
    )
    card = bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: c.params.get("channel") == LEADS and "AP-3" in text_of(c)
    )[0]
    assert "declined 1 time before" in text_of(card)
    approved = bot.click("ULEAD", "vetting_approve", "3", channel_id=LEADS)
    assert "Approved <@U1>'s application for `legal`" in approved.text
    bot.wait_dm("U1", "you are now vetted for `legal`")
    assert "`legal`" in bot.command("U1", "/crew", "me")
    assert (
        "already approved" in bot.click("ULEAD", "vetting_approve", "3", channel_id=LEADS).text
    )  # a double click
    bot.fake.wait_for(
        "chat.update",
        predicate=lambda c: "Approved" in text_of(c) and c.params.get("ts") == card.response["ts"],
    )
    assert "already vetted" in bot.command("U1", "/crew", "apply legal").text

    with bot.services.db.write() as session:
        trail = [
            (e.entity, e.action, e.actor_id)
            for e in session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.entity).in_(("application", "member")))
                .order_by(col(AuditEntry.id))
            )
            if e.action.startswith(("application.", "skills.vetted"))
        ]
    assert trail == [
        ("application", "application.created", "U1"),
        ("application", "application.created", "ULEAD"),
        ("application", "application.declined", "ULEAD"),
        ("application", "application.created", "U1"),
        ("member", "skills.vetted", "ULEAD"),
        ("application", "application.approved", "ULEAD"),
    ]

    # An admin decides for any skill, held or not: the lead's own application for medicine.
    assert "Approved <@ULEAD>'s application for `medicine`" in (
        bot.click("UADMIN", "vetting_approve", "2", channel_id=LEADS).text
    )
    bot.wait_dm("ULEAD", "you are now vetted for `medicine`")


def test_applying_from_the_form_and_leads_list_oldest_first(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    lead_with(bot, "ULEAD", "legal")
    assert bot.driver is not None
    for n in range(12):
        bot.fake.add_user(f"U{n:02d}")
        bot.command(f"U{n:02d}", "/crew", f"apply legal https://cv.example/{n}")
        bot.clock.advance(minutes=1)
    bot.fake.add_user("UFORM")
    bot.driver.command("UFORM", "/crew", "apply")
    view = bot.fake.wait_for("views.open")[0].response["view"]
    assert view["callback_id"] == "vetting_apply"
    missing = bot.submit(
        "UFORM",
        "vetting_apply",
        {"skill": {"value": static_select(None)}},
        view["private_metadata"],
        view=view,
    )
    assert "skill" in missing.json()["errors"]
    ok = bot.submit(
        "UFORM",
        "vetting_apply",
        {"skill": {"value": static_select("medicine")}, "evidence": {"value": "10 years of ER work"}},
        view["private_metadata"],
        view=view,
    )
    assert ok.status == 200
    again = bot.submit(
        "UFORM",
        "vetting_apply",
        {"skill": {"value": static_select("medicine")}},
        view["private_metadata"],
        view=view,
    )
    assert "already applied" in again.json()["errors"]["skill"]

    refused = bot.command("U00", "/crew", "applications")
    assert "Only leads and admins can see skill applications" in refused.text
    page = bot.command("ULEAD", "/crew", "applications")
    text = page.all_text
    assert "1–10 of 13" in text and text.index("AP-1*") < text.index("AP-2*") and "AP-11*" not in text
    more = bot.click("ULEAD", "vetting_applications_more", "10")
    assert "11–13 of 13" in more and "AP-13" in more and "10 years of ER work" in more


def test_home_tab_shows_my_applications_and_leads_what_waits(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    lead_with(bot, "ULEAD", "legal")
    lead_with(bot, "UMED", "medicine")
    bot.fake.add_user("U1")
    bot.command("U1", "/crew", "apply legal https://cv.example/1")
    assert bot.driver is not None
    bot.driver.home_opened("U1")
    mine = bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "U1")[0]
    text = json.dumps(mine.params, ensure_ascii=False)
    assert (
        "Skills and vetting" in text
        and "`legal` · waiting for a lead" in text
        and "vetting_apply_open" in text
    )
    bot.driver.home_opened("ULEAD")
    lead = bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "ULEAD")[0]
    assert "Applications waiting" in json.dumps(lead.params)
    # A lead without the skill can't even open the Decline form.
    refused = bot.click("UMED", "vetting_decline_open", "1", channel_id=LEADS)
    assert "Only leads who hold `legal`" in refused.text
    assert not bot.fake.calls_to("views.open")
