"""/announce through the HTTP doors: audiences, acknowledgements, the outbox under failures,
scheduling across downtime, cancel, refusals and malformed input. Each runs on SQLite and PostgreSQL
unless it is about Slack-facing behaviour only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from db.engine import Database
from db.models import Announcement, AnnouncementAck, AnnouncementDelivery, Member
from sandbox.driver import checkboxes, radio_buttons
from sandbox.fake_slack import FakeSlack, dm_channel_id
from sandbox.harness import BotHarness
from tests.announce_helpers import (
    announcement_of,
    attempts_to,
    deliveries,
    status_updates,
    text_of,
    wait_status,
    wait_until,
)

FAST = {"ANNOUNCE_RATE_PER_MIN": "6000", "ANNOUNCE_INDOUBT_WAIT": "0.2"}


@pytest.fixture
def ann(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    """The bot with a quick sender (100 messages a second) on each backend."""
    harness = BotHarness(database_url, fake=fake, env=FAST)
    harness.start()
    yield harness
    harness.close()


@pytest.fixture
def sqlite_ann(sqlite_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(sqlite_url, fake=fake, env=FAST)
    harness.start()
    yield harness
    harness.close()


def make_lead(bot: BotHarness, user: str = "ULEAD") -> None:
    bot.fake.add_user(user, name="lea", real_name="Lea Lead", tz="Europe/Berlin")
    assert "is now a lead" in bot.command("UADMIN", "/crew", f"lead <@{user}>").text
    bot.wait_dm(user, "made you a crewcall lead")


def with_skills(bot: BotHarness, user: str, skills: str) -> None:
    if user not in bot.fake.users:
        bot.fake.add_user(user)
    assert "skills are now" in bot.command("ULEAD", "/crew", f"skill <@{user}> {skills}").text


def rows(bot: BotHarness, announcement_id: int) -> list[AnnouncementDelivery]:
    with bot.services.db.write() as session:
        return list(
            session.exec(
                select(AnnouncementDelivery).where(
                    col(AnnouncementDelivery.announcement_id) == announcement_id
                )
            )
        )


def count_announcements(bot: BotHarness) -> int:
    with bot.services.db.write() as session:
        return len(list(session.exec(select(Announcement.id))))


# ---- audiences -----------------------------------------------------------------------------------


def test_skill_audience_reaches_exactly_the_members_with_the_skill(ann: BotHarness) -> None:
    make_lead(ann)
    with_skills(ann, "U1", "legal")
    with_skills(ann, "U2", "legal,medicine")
    with_skills(ann, "U3", "medicine")
    ann.fake.add_user("U4")
    with_skills(ann, "U5", "legal")  # deactivated since
    with ann.services.db.write() as session:
        member = session.get(Member, "U5")
        assert member is not None
        member.deleted = True
        session.add(member)

    reply = ann.command("ULEAD", "/announce", "skill=legal Office hours *moved* to Thursday 3pm")
    assert "*A-1* is going out now: a DM to 2 members with skill `legal`" in reply.text
    wait_status(ann.fake, 1, "done")
    assert deliveries(ann.fake, 1) == {"U1": 1, "U2": 1}
    dm = ann.wait_dm("U1", "Office hours")
    assert "Lea Lead" in text_of(dm) and "Got it" in text_of(dm)

    ann.command("ULEAD", "/announce", "skill=legal,medicine Second note")
    wait_status(ann.fake, 2, "done")
    assert deliveries(ann.fake, 2) == {"U1": 1, "U2": 1, "U3": 1}
    assert all(r.state == "sent" and r.attempts == 1 for r in rows(ann, 2))


def test_channel_audience_is_one_post_per_channel_with_the_leads_name_and_no_dms(ann: BotHarness) -> None:
    make_lead(ann)
    ann.fake.add_users(3)
    reply = ann.command("ULEAD", "/announce", "<#C0LEGAL|legal> <#C0MED> Policy change: *read it*\nline two")
    assert "a post in <#C0LEGAL>, <#C0MED>" in reply.text
    wait_status(ann.fake, 1, "done")
    assert deliveries(ann.fake, 1) == {"C0LEGAL": 1, "C0MED": 1}
    post = ann.fake.messages["C0LEGAL"][0]
    assert "Lea Lead" in json.dumps(post["blocks"])
    assert post["blocks"][1]["text"]["text"] == "Policy change: *read it*\nline two"
    assert any(
        b["type"] == "actions" and b["elements"][0]["text"]["text"] == "Got it" for b in post["blocks"]
    )
    # Nobody got a DM: the only DM is the lead's own status card.
    dms = [
        c for c in ann.fake.calls_to("chat.postMessage") if str(c.response.get("channel", "")).startswith("D")
    ]
    assert {c.response["channel"] for c in dms} <= {dm_channel_id("ULEAD"), dm_channel_id("UADMIN")}
    assert deliveries(ann.fake, 1).keys() == {"C0LEGAL", "C0MED"}


def test_everyone_means_every_person_in_the_workspace_not_only_those_the_bot_met(
    sqlite_ann: BotHarness,
) -> None:
    bot = sqlite_ann
    make_lead(bot)
    people = [u["id"] for u in bot.fake.add_users(25)]
    bot.fake.add_user("UBOT2", is_bot=True)
    bot.fake.add_user("UGONE", deleted=True)
    bot.fake.add_user("USLACKBOT", name="slackbot")
    bot.command("ULEAD", "/announce", "everyone All hands at 5")
    wait_status(bot.fake, 1, "done")
    assert deliveries(bot.fake, 1) == {u: 1 for u in [*people, "UADMIN", "ULEAD"]}


# ---- acknowledgements ----------------------------------------------------------------------------


def test_acknowledgements_count_once_each_and_the_post_is_redrawn_debounced(ann: BotHarness) -> None:
    make_lead(ann)
    ann.command("ULEAD", "/announce", "<#C0ALL> Please confirm the new rates")
    wait_status(ann.fake, 1, "done")
    post = ann.fake.messages["C0ALL"][0]
    users = [u["id"] for u in ann.fake.add_users(5)]

    def click(user: str) -> None:
        ann.click(user, "announce_ack", "1", channel_id="C0ALL", message_ts=post["ts"])

    # A storm: five people at once, and U-first pressing three times at once.
    threads = [threading.Thread(target=click, args=(u,)) for u in users + [users[0]] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = ann.click(users[0], "announce_ack", "1", channel_id="C0ALL", message_ts=post["ts"])
    assert "already acknowledged A-1" in again.text
    with ann.services.db.write() as session:
        assert len(list(session.exec(select(AnnouncementAck)))) == 5

    def post_updates() -> list[str]:
        return [
            text_of(c)
            for c in ann.fake.calls_to("chat.update")
            if c.params.get("channel") == "C0ALL" and c.params.get("ts") == post["ts"]
        ]

    time.sleep(0.3)
    assert post_updates() == []  # debounced: not once per click
    ann.clock.advance(seconds=6)
    wait_until(lambda: len(post_updates()) == 1)
    assert "5 acknowledged" in post_updates()[0]
    assert "Got it" in post_updates()[0]  # the button stays for the others
    time.sleep(0.3)
    assert len(post_updates()) == 1

    late = ann.fake.add_user("ULATE")["id"]
    assert "noted" in ann.click(late, "announce_ack", "1", channel_id="C0ALL", message_ts=post["ts"]).text
    ann.clock.advance(seconds=6)
    wait_until(lambda: len(post_updates()) == 2)
    assert "6 acknowledged" in post_updates()[1]


def test_a_dm_acknowledgement_replaces_the_button_and_reaches_the_report(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    with_skills(bot, "U1", "legal")
    bot.command("ULEAD", "/announce", "skill=legal New NDA template")
    wait_status(bot.fake, 1, "done")
    dm = bot.wait_dm("U1", "NDA")
    channel, ts = dm.response["channel"], dm.response["ts"]
    reply = bot.click("U1", "announce_ack", "1", channel_id=channel, message_ts=ts)
    assert "noted that you read A-1" in reply.text
    updated = bot.fake.find_message(channel, ts)
    assert updated is not None and "You acknowledged this" in json.dumps(updated["blocks"])
    assert not any(b["type"] == "actions" for b in updated["blocks"])
    bot.clock.advance(seconds=6)
    wait_until(lambda: "acknowledged 1" in text_of(status_updates(bot.fake, 1)[-1]))


# ---- the outbox under Slack's failures -----------------------------------------------------------


def schedule_for_soon(bot: BotHarness, audience: str, text: str) -> None:
    """Schedule an announcement an hour ahead (the lead is in Berlin), so failures can be queued
    for the sender's own calls after the lead's status card is posted."""
    local = (bot.clock.now() + timedelta(hours=1)).astimezone(_berlin())
    reply = bot.command("ULEAD", "/announce", f"{audience} at={local:%Y-%m-%dT%H:%M} {text}")
    assert "is scheduled for" in reply.text, reply.text


def _berlin():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


def test_429_retry_after_is_waited_out_and_nobody_is_dmed_twice(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    for u in ("U1", "U2", "U3"):
        with_skills(bot, u, "legal")
    schedule_for_soon(bot, "skill=legal", "Rates update")
    wait_status(bot.fake, 1, "scheduled")
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    bot.clock.advance(hours=1)
    wait_status(bot.fake, 1, "done")
    assert deliveries(bot.fake, 1) == {"U1": 1, "U2": 1, "U3": 1}
    calls = [
        c for c in bot.fake.calls_to("chat.postMessage") if c.params.get("channel") in ("U1", "U2", "U3")
    ]
    limited = next(c for c in calls if c.status == 429)
    retried = next(c for c in calls if c.ts > limited.ts and c.params["channel"] == limited.params["channel"])
    assert retried.ts - limited.ts >= 1.0
    # Only calls already on their way may follow the 429 before Retry-After has passed.
    assert not [c for c in calls if limited.ts + 0.5 < c.ts < limited.ts + 1.0]


def test_a_real_rate_limit_is_honoured_without_duplicates(sqlite_url: str) -> None:
    # Slack allows far less than the sender is set to: 10 a second (scaled), over a 1 s window.
    with FakeSlack(rate_limits={"workspace_per_min": 10, "scale": 60}) as fake:
        bot = BotHarness(sqlite_url, fake=fake, env=FAST)
        bot.start()
        try:
            make_lead(bot)
            people = [u["id"] for u in fake.add_users(24)]
            bot.command("ULEAD", "/announce", "everyone Limits test")
            wait_status(fake, 1, "done", timeout=30)
            assert fake.rate_limited_count > 0
            assert deliveries(fake, 1) == {u: 1 for u in [*people, "UADMIN", "ULEAD"]}
        finally:
            bot.close()


def test_permanent_failures_are_recorded_and_skipped_and_the_rest_go_out(ann: BotHarness) -> None:
    make_lead(ann)
    people = ["U1", "U2", "U3", "U4", "U5", "U6"]
    for u in people:
        with_skills(ann, u, "legal")
    schedule_for_soon(ann, "skill=legal", "Heads up")
    wait_status(ann.fake, 1, "scheduled")
    for error in ("user_not_found", "account_inactive", "cannot_dm_bot"):
        ann.fake.fail_next("chat.postMessage", error)
    ann.clock.advance(hours=1)
    report = text_of(wait_status(ann.fake, 1, "done"))
    assert "sent 3" in report
    assert "failed 3 (`account_inactive` 1, `cannot_dm_bot` 1, `user_not_found` 1)" in report
    failed = {r.target: r.last_error for r in rows(ann, 1) if r.state == "failed"}
    assert sorted(failed.values()) == ["account_inactive", "cannot_dm_bot", "user_not_found"]
    for person in people:  # a failed recipient was tried once and never again
        assert len(attempts_to(ann.fake, person)) == 1
    assert set(deliveries(ann.fake, 1)) == set(people) - set(failed)
    listed = ann.command("ULEAD", "/announce", "list")
    assert "failed 3 (`account_inactive` 1, `cannot_dm_bot` 1, `user_not_found` 1)" in listed


def test_transient_failures_are_retried_with_backoff(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    with_skills(bot, "U1", "legal")
    schedule_for_soon(bot, "skill=legal", "Retry me")
    wait_status(bot.fake, 1, "scheduled")
    bot.fake.fail_next("chat.postMessage", "service_unavailable", status=503, times=2)
    bot.clock.advance(hours=1)
    wait_status(bot.fake, 1, "done")
    tries = attempts_to(bot.fake, "U1")
    assert [c.ok for c in tries] == [False, False, True]
    assert tries[1].ts - tries[0].ts >= 0.5 and tries[2].ts - tries[1].ts >= 1.0  # backing off
    assert rows(bot, 1)[0].attempts == 3


def test_an_unclear_answer_is_checked_in_the_dm_history_before_resending(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    with_skills(bot, "U1", "legal")
    schedule_for_soon(bot, "skill=legal", "Maybe sent")
    wait_status(bot.fake, 1, "scheduled")
    bot.fake.fail_next("chat.postMessage", "internal_error", status=500)
    bot.clock.advance(hours=1)
    wait_status(bot.fake, 1, "done")
    history = bot.fake.calls_to("conversations.history")
    assert [c.params["channel"] for c in history] == [dm_channel_id("U1")]
    assert history[0].params.get("include_all_metadata") in ("1", "true", "True")
    assert deliveries(bot.fake, 1) == {"U1": 1}


def test_after_a_crash_in_doubt_messages_are_looked_up_not_resent(ann: BotHarness) -> None:
    """The state a crash leaves: two rows claimed by a dead process, one whose DM Slack stored,
    one whose request never arrived. The restarted sender re-sends only the second."""
    make_lead(ann)
    for u in ("U1", "U2", "U3"):
        with_skills(ann, u, "legal")
    ann.command("ULEAD", "/announce", "skill=legal Crash drill")
    wait_status(ann.fake, 1, "done")
    ann.stop()
    lost = ann.fake.messages[dm_channel_id("U2")].pop()  # as if this request never reached Slack
    assert "Crash drill" in lost["text"]
    db = Database(ann.database_url)
    with db.write() as session:
        session.execute(
            update(AnnouncementDelivery)
            .where(col(AnnouncementDelivery.target).in_(["U1", "U2"]))
            .values(state="sending", claimed_by="dead-process", channel_id=None, message_ts=None)
        )
        session.execute(update(Announcement).values(state="sending", finished_at=None))
    db.dispose()
    before = len(ann.fake.calls)
    ann.start()
    wait_status(ann.fake, 1, "done", since=before)
    after = ann.fake.calls[before:]
    resent = [
        c.params["channel"]
        for c in after
        if c.method == "chat.postMessage" and c.ok and "Crash drill" in text_of(c)
    ]
    assert resent == ["U2"]
    looked = sorted(c.params["channel"] for c in after if c.method == "conversations.history")
    assert looked == [dm_channel_id("U1"), dm_channel_id("U2")]
    assert {r.target: r.state for r in rows(ann, 1)} == {"U1": "sent", "U2": "sent", "U3": "sent"}


def test_scheduled_announcement_goes_out_once_after_downtime(ann: BotHarness) -> None:
    make_lead(ann)
    for u in ("U1", "U2"):
        with_skills(ann, u, "legal")
    # The lead is in Berlin: 11:00 there is 10:00 UTC, an hour from the test clock's 09:00 UTC.
    reply = ann.command("ULEAD", "/announce", "skill=legal at=2026-01-05T11:00 Monday reminder")
    assert "scheduled for Mon 05 Jan, 11:00 CET" in reply.text
    job = ann.services.scheduler.get("announce:send:A-1")
    assert job is not None and job.next_run_time == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    ann.stop()
    ann.clock.set(datetime(2026, 1, 5, 13, 0, tzinfo=UTC))  # the bot was down past the time
    ann.start()
    wait_status(ann.fake, 1, "done")
    time.sleep(0.5)  # the job store and the catch-up scan both saw it: still once
    assert deliveries(ann.fake, 1) == {"U1": 1, "U2": 1}
    ann.restart()
    time.sleep(0.3)
    assert deliveries(ann.fake, 1) == {"U1": 1, "U2": 1}


def test_scheduled_announcement_goes_out_at_its_time(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    with_skills(bot, "U1", "legal")
    bot.command("ULEAD", "/announce", "skill=legal at=2026-01-05T11:00 On time")
    time.sleep(0.3)
    assert deliveries(bot.fake, 1) == {}
    bot.clock.advance(minutes=59)
    time.sleep(0.3)
    assert deliveries(bot.fake, 1) == {}
    bot.clock.advance(minutes=1)
    wait_status(bot.fake, 1, "done")
    assert deliveries(bot.fake, 1) == {"U1": 1}


# ---- cancel --------------------------------------------------------------------------------------


def test_cancel_a_scheduled_announcement_before_it_goes_out(ann: BotHarness) -> None:
    make_lead(ann)
    with_skills(ann, "U1", "legal")
    ann.command("ULEAD", "/announce", "skill=legal at=2026-01-05T11:00 Never mind")
    reply = ann.command("ULEAD", "/announce", "cancel A-1")
    assert "A-1 is cancelled: it will not go out" in reply.text
    assert ann.services.scheduler.get("announce:send:A-1") is None
    assert "already cancelled" in ann.command("ULEAD", "/announce", "cancel a1").text
    assert "There is no announcement A-99" in ann.command("ULEAD", "/announce", "cancel A-99").text
    ann.restart()
    ann.clock.advance(hours=2)
    time.sleep(0.5)
    assert deliveries(ann.fake) == {}
    assert "Cancelled by <@ULEAD> before it went out" in text_of(wait_status(ann.fake, 1, "cancelled"))


def test_cancel_a_running_announcement_stops_what_has_not_been_sent(
    database_url: str, fake: FakeSlack
) -> None:
    bot = BotHarness(database_url, fake=fake, env={"ANNOUNCE_RATE_PER_MIN": "300"})  # 5 a second
    bot.start()
    try:
        make_lead(bot)
        people = [u["id"] for u in fake.add_users(40)]
        bot.command("ULEAD", "/announce", "everyone Long one")
        wait_until(lambda: sum(deliveries(fake, 1).values()) >= 3)
        reply = bot.command("UADMIN", "/announce", "cancel A-1")
        assert "A-1 is cancelled" in reply.text and "will not be sent" in reply.text
        report = text_of(wait_status(fake, 1, "cancelled", timeout=10))
        time.sleep(1.0)
        sent = deliveries(fake, 1)
        assert 3 <= sum(sent.values()) < len(people) + 2
        assert all(n == 1 for n in sent.values())
        states = {r.target: r.state for r in rows(bot, 1)}
        assert {t for t, s in states.items() if s == "sent"} == set(sent)
        assert all(s in ("sent", "cancelled") for s in states.values())
        assert f"not sent (cancelled) {list(states.values()).count('cancelled')}" in report
        assert "already cancelled" in bot.command("ULEAD", "/announce", "cancel A-1").text
    finally:
        bot.close()


def test_the_sender_keeps_to_the_workspace_budget_it_shares_with_reminders(
    sqlite_url: str, fake: FakeSlack
) -> None:
    # A budget of 4 posts a minute, time compressed 60x: 4 a second, whatever ANNOUNCE_RATE_PER_MIN says.
    env = {"ANNOUNCE_RATE_PER_MIN": "6000", "SLACK_POSTS_PER_MIN": "4", "SLACK_RATE_SCALE": "60"}
    bot = BotHarness(sqlite_url, fake=fake, env=env)
    bot.start()
    try:
        make_lead(bot)
        people = [u["id"] for u in fake.add_users(8)]
        bot.command("ULEAD", "/announce", "everyone Budget check")
        wait_status(fake, 1, "done", timeout=15)
        assert deliveries(fake, 1) == {u: 1 for u in [*people, "UADMIN", "ULEAD"]}
        sent = sorted(c.ts for c in fake.calls_to("chat.postMessage") if announcement_of(c) and c.ok)
        # 10 messages, 4 per sliding second: never a 5th inside one second, and so at least 2 s.
        assert all(later - earlier >= 0.95 for earlier, later in zip(sent, sent[4:], strict=False))
        assert sent[-1] - sent[0] >= 1.9
    finally:
        bot.close()


# ---- who may, and what they type -----------------------------------------------------------------


def test_non_leads_are_refused_everywhere_and_nothing_changes(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    bot.fake.add_user("U1")
    for text in ("everyone hi", "<#C0ALL> hi", "skill=legal hi", "list", "cancel A-1", ""):
        reply = bot.command("U1", "/announce", text)
        assert "Only leads and admins can" in reply.text, (text, reply.text)
    response = bot.submit("U1", "announce_compose", {"text": {"value": "hi"}})
    assert response.status == 200
    response = bot.submit("U1", "announce_confirm", {}, private_metadata=json.dumps({"announcement_id": 1}))
    assert response.status == 200
    wait_until(lambda: len(bot.fake.calls_to("chat.postEphemeral")) + len(bot.dms_to("U1")) >= 2)
    assert count_announcements(bot) == 0
    assert bot.fake.calls_to("views.open") == []
    assert deliveries(bot.fake) == {}


MALFORMED = {
    "hello world": "Who is it for?",
    "<#C0ALL>": "has no text",
    "<#C0ALL>   ": "has no text",
    "skill=legal": "has no text",
    "everyone": "Missing message",
    "#random hello": "`#random` is not a channel",
    "<#C0ALL> skill=legal hi": "Pick one audience",
    "skill=Legal! hi": "is not a skill name",
    "skill=nobodyhasit hi": "Nobody has the skill `nobodyhasit`",
    "<#C0GONE> hi": "I can't see <#C0GONE>",
    "everyone at=tomorrow hi": "is not a date and time",
    "everyone at=2026-01-05T09:30 hi": "has already passed",
    "everyone at=2025-12-01T09:00 hi": "has already passed",
    "everyone at=2026-06-01T09:00 hi": "at most 90 days ahead",
    "everyone at=2026-03-29T02:30 hi": "does not exist in Europe/Berlin",
    "everyone ack=maybe hi": "`maybe` is not one of: yes, no",
    "everyone " + "x" * 3001: "the limit is 3,000",
    "cancel": "Missing announcement",
    "cancel T-4": "`T-4` is not a announcement ID",
    "cancel A-0": "is not a announcement ID",
    "list extra": "I didn't understand",
}


def test_malformed_input_gets_a_specific_error_and_changes_nothing(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    bot.fake.missing_channels.add("C0GONE")
    posts_before = len(bot.fake.calls_to("chat.postMessage"))
    for text, expected in MALFORMED.items():
        reply = bot.command("ULEAD", "/announce", text)
        assert reply.text.startswith(":warning:"), (text, reply.text)
        assert expected in reply.text, (text, reply.text)
    assert count_announcements(bot) == 0
    assert len(bot.fake.calls_to("chat.postMessage")) == posts_before
    assert bot.services.scheduler.jobs("announce:") == []


# ---- the form, with its preview ------------------------------------------------------------------


def test_the_form_previews_then_sends(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    with_skills(bot, "U1", "legal")
    with_skills(bot, "U2", "legal")
    assert bot.driver is not None
    assert bot.driver.command("ULEAD", "/announce", "").status == 200
    opened = bot.fake.wait_for("views.open")[0].params["view"]
    assert opened["callback_id"] == "announce_compose"
    assert {b["block_id"] for b in opened["blocks"]} >= {
        "text",
        "audience",
        "channels",
        "skills",
        "send_at",
        "options",
    }
    values = {
        "text": {"value": "*Policy* update: see the handbook"},
        "audience": {"value": radio_buttons("skills")},
        "skills": {"value": "legal"},
        "options": {"value": checkboxes(["ack"])},
    }
    response = bot.submit("ULEAD", "announce_compose", values, private_metadata=opened["private_metadata"])
    preview = response.json()
    assert preview["response_action"] == "update"
    view = preview["view"]
    assert view["callback_id"] == "announce_confirm" and view["submit"]["text"] == "Send"
    shown = json.dumps(view)
    assert "A DM to 2 members with skill `legal`" in shown and "*Policy* update" in shown
    assert deliveries(bot.fake) == {}  # a preview sends nothing
    bot.submit("ULEAD", "announce_confirm", {}, private_metadata=view["private_metadata"])
    wait_status(bot.fake, 1, "done")
    assert deliveries(bot.fake, 1) == {"U1": 1, "U2": 1}
    bot.submit("ULEAD", "announce_confirm", {}, private_metadata=view["private_metadata"])  # pressed twice
    wait_until(
        lambda: any("already confirmed" in text_of(c) for c in bot.fake.calls_to("chat.postEphemeral"))
    )
    time.sleep(0.3)
    assert deliveries(bot.fake, 1) == {"U1": 1, "U2": 1}


def test_the_form_keeps_itself_open_with_errors_under_the_fields(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    past = int((bot.clock.now() - timedelta(hours=1)).timestamp())
    values = {
        "text": {"value": "   "},
        "audience": {"value": radio_buttons("channels")},
        "send_at": {"value": {"type": "datetimepicker", "selected_date_time": past}},
    }
    answer = bot.submit("ULEAD", "announce_compose", values).json()
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"text", "channels", "send_at"}
    assert "Pick at least one channel" in answer["errors"]["channels"]
    no_audience = bot.submit("ULEAD", "announce_compose", {"text": {"value": "hi"}}).json()
    assert no_audience["errors"] == {"audience": "Pick who it is for."}
    bad_skill = {
        "text": {"value": "hi"},
        "audience": {"value": radio_buttons("skills")},
        "skills": {"value": "no one"},
    }
    assert "Nobody has" in bot.submit("ULEAD", "announce_compose", bad_skill).json()["errors"]["skills"]
    assert count_announcements(bot) == 0


# ---- progress and the report ---------------------------------------------------------------------


def test_the_leads_status_card_shows_progress_then_the_report(sqlite_url: str, fake: FakeSlack) -> None:
    bot = BotHarness(sqlite_url, fake=fake, env={"ANNOUNCE_RATE_PER_MIN": "600"})  # 10 a second
    bot.start()
    try:
        make_lead(bot)
        people = [u["id"] for u in fake.add_users(45)]
        bot.command("ULEAD", "/announce", "everyone Progress check")
        card = wait_status(fake, 1, "sending")
        assert card.params["channel"] == dm_channel_id("ULEAD")
        wait_until(lambda: any("%" in text_of(c) and "to go" in text_of(c) for c in status_updates(fake, 1)))
        listed = bot.command("ULEAD", "/announce", "list")
        assert "A-1" in listed and "to go" in listed and "%" in listed
        report = text_of(wait_status(fake, 1, "done", timeout=20))
        assert f"sent {len(people) + 2}" in report and "failed 0" in report and "acknowledged 0" in report
        cards = {
            (c.params["channel"], c.params["ts"])
            for c in status_updates(fake, 1)
            if c.method == "chat.update"
        }
        assert len(cards) == 1  # one card, updated in place
        redraws = [
            c for c in status_updates(fake, 1) if c.method == "chat.update" and "sending" in c.params["text"]
        ]
        assert redraws  # in place, every few seconds, not once per message:
        assert all(b.ts - a.ts >= 2.5 for a, b in zip(redraws[1:], redraws[2:], strict=False))
    finally:
        bot.close()


def test_the_list_pages_with_a_more_button(sqlite_ann: BotHarness) -> None:
    bot = sqlite_ann
    make_lead(bot)
    for hour in range(10, 22):
        reply = bot.command("ULEAD", "/announce", f"<#C0ALL> at=2026-01-06T{hour:02d}:00 Note {hour}")
        assert "is scheduled for" in reply.text
    first = bot.command("ULEAD", "/announce", "list")
    assert "Note 10" in first and "Note 19" in first and "Note 20" not in first
    more = next(b for b in first.blocks if b["type"] == "actions")["elements"][0]
    assert more["action_id"] == "announce_list_more"
    second = bot.click("ULEAD", "announce_list_more", more["value"])
    assert "Note 20" in second and "Note 21" in second and "Note 10" not in second
    assert not any(b["type"] == "actions" for b in second.blocks)
    assert "Only leads and admins" in bot.click("UADMIN2", "announce_list_more", more["value"]).text
