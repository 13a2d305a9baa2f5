"""/refer and /referrals through the HTTP door: referring and every refusal, the lifecycle with its
DMs, the automatic link on team_join and eligibility, the race for the same address, the leads'
tools (list, export, digest) and the leaderboard opt-in.

The hours come from TimeEntry rows written directly and `hours.recorded` emitted through the event
bus, as the /hours feature will do after closing an entry (wired at merge)."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from core.events import HOURS_RECORDED
from db.models import AuditEntry, Referral, TimeEntry
from domain import members
from sandbox.fake_slack import FakeSlack, dm_channel_id
from sandbox.harness import BotHarness

LEAD = "ULEAD"


def make_lead(bot: BotHarness) -> None:
    bot.fake.add_user(LEAD, name="lena", tz="UTC")
    assert "is now a lead" in bot.command("UADMIN", "/crew", f"lead <@{LEAD}>").text


def referrals_in_db(bot: BotHarness) -> list[Referral]:
    with bot.services.db.write() as session:
        return list(session.exec(select(Referral).order_by(Referral.id)))


def audit_of(bot: BotHarness, referral_id: int) -> list[AuditEntry]:
    with bot.services.db.write() as session:
        return list(
            session.exec(
                select(AuditEntry)
                .where(AuditEntry.entity == "referral", AuditEntry.entity_id == str(referral_id))
                .order_by(AuditEntry.id)
            )
        )


def track(bot: BotHarness, user_id: str, hours: float, flagged: bool = False, open_: bool = False) -> None:
    """A closed (or open) time entry of `hours` on no task, ending now, that a lead approved (so it
    counts toward the bonus, domain.referrals.bonus_hours)."""
    now = bot.clock.now()
    with bot.services.db.write() as session:
        members.ensure(session, user_id, now)
        session.add(
            TimeEntry(
                user_id=user_id,
                started_at=now - timedelta(hours=hours),
                ended_at=None if open_ else now,
                flagged=flagged,
                approved_by=None if flagged else "ULEAD",
            )
        )


def dm_texts(bot: BotHarness, user_id: str) -> list[str]:
    return [c.params.get("text", "") for c in bot.dms_to(user_id)]


def join(bot: BotHarness, user_id: str, email: str, referrer: str = "U1") -> None:
    """The referee joins the workspace; returns once the referrer was told (events are handled
    after the ack)."""
    user = bot.fake.add_user(user_id, name=user_id.lower(), email=email)
    assert bot.driver is not None
    assert bot.driver.team_join(user).status == 200
    bot.wait_dm(referrer, f"just joined the workspace as <@{user_id}>")


# ---- referring -----------------------------------------------------------------------------------


def test_refer_records_a_normalized_address_and_says_what_happens_next(bot: BotHarness) -> None:
    bot.fake.add_user("U1", name="ana")
    reply = bot.command(
        "U1", "/refer", "<mailto:Bruno.Costa@Law.Example|Bruno.Costa@Law.Example> Bruno Costa skill=Legal"
    )
    assert "Referral *R-1* recorded for Bruno Costa (bruno.costa@law.example)" in reply.text
    assert "What happens next" in reply.text and "10 hours" in reply.text and "$250" in reply.text
    [row] = referrals_in_db(bot)
    assert (row.email, row.name, row.skill, row.status, row.referrer_id) == (
        "bruno.costa@law.example",
        "Bruno Costa",
        "legal",
        "referred",
        "U1",
    )
    assert row.bonus_cents == 25_000
    [created] = audit_of(bot, row.id or 0)
    assert (created.action, created.actor_id, created.source) == ("referral.created", "U1", "/refer")
    # Spaces around the address and upper case don't make it a new one.
    again = bot.command("U1", "/refer", "  BRUNO.COSTA@law.example  ")
    assert "You already referred bruno.costa@law.example (R-1" in again.text
    assert len(referrals_in_db(bot)) == 1


def test_each_refusal_is_specific_and_records_nothing(bot: BotHarness) -> None:
    bot.fake.add_user("U1", name="ana")  # ana@example.com
    bot.fake.add_user("U2", name="bo")
    bot.fake.add_user("U3", name="carla", email="Carla@Clinic.Example")

    malformed = bot.command("U1", "/refer", "bruno@@law")
    assert "`bruno@@law` is not a valid email address" in malformed.text
    assert "Usage: `/refer [email] [name…] [skill=S]`" in malformed.text

    own = bot.command("U1", "/refer", "ANA@example.com")
    assert "is your own address (from your Slack profile): you can't refer yourself" in own.text

    member = bot.command("U1", "/refer", "carla@clinic.example Carla")
    assert "carla@clinic.example already belongs to a member of this workspace" in member.text

    bot.fake.fail_next("users.lookupByEmail", "internal_error")
    unchecked = bot.command("U1", "/refer", "dora@firm.example")
    assert "couldn't check right now" in unchecked.text and "nothing was recorded" in unchecked.text

    assert referrals_in_db(bot) == []

    assert "R-1" in bot.command("U1", "/refer", "dora@firm.example Dora").text
    taken = bot.command("U2", "/refer", "Dora@Firm.Example")
    assert "dora@firm.example is already in the referral program" in taken.text
    # Who referred it first is not revealed.
    assert "U1" not in taken.all_text and "ana" not in taken.all_text.lower()
    assert [r.referrer_id for r in referrals_in_db(bot)] == ["U1"]

    bad_skill = bot.command("U2", "/refer", "eve@firm.example Eve skill=Law!")
    assert "`Law!` is not a skill name" in bad_skill.text
    assert len(referrals_in_db(bot)) == 1


def test_two_members_referring_the_same_address_at_once_yield_one_referral(bot: BotHarness) -> None:
    bot.fake.add_user("U1", name="ana")
    bot.fake.add_user("U2", name="bo")
    for round_ in range(3):
        email = f"expert{round_}@race.example"
        barrier = threading.Barrier(2)
        replies: dict[str, str] = {}

        def refer(user_id: str, email: str, barrier: threading.Barrier, replies: dict[str, str]) -> None:
            barrier.wait()
            replies[user_id] = bot.command(user_id, "/refer", email).text

        threads = [threading.Thread(target=refer, args=(u, email, barrier, replies)) for u in ("U1", "U2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [u for u, text in replies.items() if "Referral *R-" in text]
        lost = [u for u, text in replies.items() if "already in the referral program" in text]
        assert len(won) == 1 and len(lost) == 1, replies
        rows = [r for r in referrals_in_db(bot) if r.email == email]
        assert [r.referrer_id for r in rows] == won
    assert len(referrals_in_db(bot)) == 3


def test_a_field_error_shows_the_address_as_typed(sqlite_bot: BotHarness) -> None:
    """Slack shows a field error as plain text: the refusal's escaped `&` is read back to `&`."""
    bot = sqlite_bot
    bot.fake.add_user("URD", name="rd", email="r&d@firm.example")
    assert bot.driver is not None
    bot.driver.command("URD", "/refer", channel_id="C0GENERAL")
    form = bot.fake.wait_for("views.open")[0].response["view"]
    own = bot.submit("URD", "referral_new", {"email": {"value": "R&D@firm.example"}}, view=form)
    said = own.json()["errors"]["email"]
    assert said.startswith("r&d@firm.example is your own address") and "&amp;" not in said, said
    assert referrals_in_db(bot) == []


def test_the_form_from_the_home_tab(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1", name="ana")
    assert bot.driver is not None
    bot.driver.home_opened("U1")
    bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "U1")
    home = bot.fake.home_views["U1"]
    assert "Refer someone" in json.dumps(home)

    bot.driver.click("U1", "referrals_refer", view=home)
    opened = bot.fake.wait_for(
        "views.open", predicate=lambda c: c.params["view"]["callback_id"] == "referral_new"
    )
    form = opened[0].response["view"]

    invalid = bot.submit(
        "U1", "referral_new", {"email": {"value": "nope"}, "skill": {"value": "x y"}}, view=form
    )
    errors = invalid.json()["errors"]
    assert "is not a valid email address" in errors["email"] and "is not a skill name" in errors["skill"]

    own = bot.submit("U1", "referral_new", {"email": {"value": "ana@example.com"}}, view=form)
    assert "your own address" in own.json()["errors"]["email"]

    done = bot.submit(
        "U1",
        "referral_new",
        {
            "email": {"value": " Fia@Firm.Example "},
            "name": {"value": "Fia <!channel>"},
            "skill": {"value": ""},
        },
        view=form,
        private_metadata=form["private_metadata"],
    )
    assert done.status == 200 and not done.body.strip()  # the modal closes; Slack is asked after
    # Opened from the Home tab, the outcome comes as a DM.
    told = bot.wait_dm("U1", "Referral *R-1* recorded")
    assert "&lt;!channel&gt;" in told.params["text"]
    [row] = referrals_in_db(bot)
    assert (row.email, row.name, row.skill) == ("fia@firm.example", "Fia <!channel>", None)
    # The Home tab is redrawn with it.
    bot.fake.wait_for("views.publish", predicate=lambda c: "R-1" in json.dumps(c.params.get("view")))

    # /refer without an address opens the same form; from a channel, a refusal comes as an ephemeral there.
    assert bot.driver.command("U1", "/refer", channel_id="C0GENERAL").status == 200
    again = bot.fake.wait_for(
        "views.open", count=2, predicate=lambda c: c.params["view"]["callback_id"] == "referral_new"
    )[1].response["view"]
    repeat = bot.submit(
        "U1",
        "referral_new",
        {"email": {"value": "fia@firm.example"}},
        view=again,
        private_metadata=again["private_metadata"],
    )
    assert repeat.status == 200 and not repeat.body.strip()
    refused = bot.fake.wait_for("chat.postEphemeral", predicate=lambda c: c.params.get("user") == "U1")[0]
    assert refused.params["channel"] == "C0GENERAL"
    assert "You already referred fia@firm.example (R-1" in refused.params["text"]
    assert len(referrals_in_db(bot)) == 1
    # The address is shown as text in a message now: an `&` in it is escaped.
    meta = again["private_metadata"]
    bot.submit(
        "U1", "referral_new", {"email": {"value": "r&d@firm.example"}}, view=again, private_metadata=meta
    )
    bot.fake.wait_for("chat.postEphemeral", count=2, predicate=lambda c: c.params.get("user") == "U1")
    bot.submit(
        "U1", "referral_new", {"email": {"value": "r&d@firm.example"}}, view=again, private_metadata=meta
    )
    told = bot.fake.wait_for("chat.postEphemeral", count=3, predicate=lambda c: c.params.get("user") == "U1")
    assert "You already referred r&amp;d@firm.example (R-2" in told[-1].params["text"]


# ---- the lifecycle -------------------------------------------------------------------------------


def test_whole_lifecycle_with_dms_and_automatic_eligibility(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", name="ana", tz="Europe/Lisbon")
    assert "R-1" in bot.command("U1", "/refer", "gus@firm.example Gus Ortega").text

    for status, words in [
        ("applied", "Gus Ortega (gus@firm.example) has applied"),
        ("interviewing", "is now interviewing"),
        ("hired", "has been hired! Once they have tracked 10 hours, your $250 bonus is earned"),
    ]:
        reply = bot.command(LEAD, "/referrals", f"set R-1 {status}")
        assert "moved from" in reply.text and f"*{status}*" in reply.text and "I let <@U1> know" in reply.text
        dm = bot.wait_dm("U1", words)
        assert f"Updated by <@{LEAD}>" in dm.params["text"] and "WET" in dm.params["text"]  # Lisbon time

    # The referee joins the workspace: linked by email, case-insensitively, and the referrer told.
    join(bot, "UGUS", "Gus@Firm.EXAMPLE")
    assert referrals_in_db(bot)[0].referee_user_id == "UGUS"

    track(bot, "UGUS", 9.5)
    track(bot, "UGUS", 5, flagged=True)  # flagged time doesn't count
    track(bot, "UGUS", 3, open_=True)  # neither does a shift still open
    bot.services.events.emit(HOURS_RECORDED, user_id="UGUS")
    assert referrals_in_db(bot)[0].status == "hired"
    mine = bot.command("U1", "/referrals")
    assert "$250 pending: 9.5 of 10 hours tracked" in mine

    track(bot, "UGUS", 0.5)
    bot.services.events.emit(HOURS_RECORDED, user_id="UGUS")
    assert referrals_in_db(bot)[0].status == "eligible"
    bot.wait_dm("U1", "has tracked 10 hours, so your $250 referral bonus is earned")

    paid = bot.command(LEAD, "/referrals", "set R-1 paid")
    assert "*paid*" in paid.text
    bot.wait_dm("U1", "Your $250 referral bonus for Gus Ortega (gus@firm.example) has been paid")

    # Every change recorded: who, when, from where.
    trail = [(a.action, a.actor_id, json.loads(a.detail).get("after")) for a in audit_of(bot, 1)]
    assert trail == [
        ("referral.created", "U1", None),
        ("referral.status", LEAD, "applied"),
        ("referral.status", LEAD, "interviewing"),
        ("referral.status", LEAD, "hired"),
        ("referral.linked", "crewcall", None),
        ("referral.status", "crewcall", "eligible"),
        ("referral.status", LEAD, "paid"),
    ]
    assert all(a.at == bot.clock.now() for a in audit_of(bot, 1))
    mine = bot.command("U1", "/referrals")
    assert "*paid*" in mine and "paid $250" in mine.text + json.dumps(mine.blocks)


def test_eligibility_crosses_the_threshold_exactly_once(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    bot.command("U1", "/refer", "hal@firm.example Hal")
    for status in ("applied", "interviewing", "hired"):
        bot.command(LEAD, "/referrals", f"set R-1 {status}")
    join(bot, "UHAL", "hal@firm.example")
    track(bot, "UHAL", 10)

    # Many hours events at once (two /hours out in parallel, a retry…): one promotion, one DM.
    barrier = threading.Barrier(4)

    def emit() -> None:
        barrier.wait()
        bot.services.events.emit(HOURS_RECORDED, user_id="UHAL")

    threads = [threading.Thread(target=emit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.services.events.emit(HOURS_RECORDED, user_id="UHAL")
    bot.clock.advance(hours=1, minutes=1)  # the hourly sweep runs too
    bot.fake.wait_for(
        "chat.postMessage", predicate=lambda c: "referral bonus is earned" in c.params.get("text", "")
    )
    assert referrals_in_db(bot)[0].status == "eligible"
    earned = [t for t in dm_texts(bot, "U1") if "referral bonus is earned" in t]
    assert len(earned) == 1
    promotions = [a for a in audit_of(bot, 1) if json.loads(a.detail).get("after") == "eligible"]
    assert len(promotions) == 1


def test_hired_with_hours_already_tracked_is_eligible_at_once(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    bot.command("U1", "/refer", "ivo@firm.example")
    join(bot, "UIVO", "ivo@firm.example")
    # Slack retrying the delivery, or a second team_join for the same person, links nothing twice.
    assert bot.driver is not None
    bot.driver.team_join(bot.fake.users["UIVO"])
    track(bot, "UIVO", 12)
    bot.command(LEAD, "/referrals", "set R-1 applied")
    bot.command(LEAD, "/referrals", "set R-1 interviewing")
    reply = bot.command(LEAD, "/referrals", "set R-1 hired")
    assert "already tracked 12 hours, so it is now *eligible*" in reply.text
    assert referrals_in_db(bot)[0].status == "eligible"
    bot.wait_dm("U1", "has tracked 12 hours")
    assert len([t for t in dm_texts(bot, "U1") if "just joined" in t]) == 1


def test_hourly_sweep_links_and_promotes_when_events_were_lost(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    bot.command("U1", "/refer", "jo@firm.example Jo")
    for status in ("applied", "interviewing", "hired"):
        bot.command(LEAD, "/referrals", f"set R-1 {status}")
    # Jo joined but the team_join never reached us; the bot met them when they used a command.
    bot.fake.add_user("UJO", name="jo", email="jo@firm.example")
    bot.command("UJO", "/crew", "me")
    track(bot, "UJO", 11)  # and no hours event either
    bot.clock.advance(hours=1, minutes=1)
    bot.wait_dm("U1", "just joined the workspace as <@UJO>")
    bot.wait_dm("U1", "has tracked 11 hours, so your $250 referral bonus is earned")
    row = referrals_in_db(bot)[0]
    assert (row.referee_user_id, row.status) == ("UJO", "eligible")


def test_invalid_transitions_are_refused_with_the_allowed_next_steps(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    bot.command("U1", "/refer", "kim@firm.example")
    paid = bot.command(LEAD, "/referrals", "set R-1 paid")
    assert (
        "R-1 is referred, so it can't be marked paid. Next step from referred: applied or rejected."
        in paid.text
    )
    assert referrals_in_db(bot)[0].status == "referred"

    bot.command(LEAD, "/referrals", "set R-1 applied")
    again = bot.command(LEAD, "/referrals", "set R-1 applied")
    assert "R-1 is already applied. Nothing changed." in again.text
    bot.command(LEAD, "/referrals", "set R-1 interviewing")
    bot.command(LEAD, "/referrals", "set R-1 hired")

    early = bot.command(LEAD, "/referrals", "set R-1 paid")
    assert "R-1 is hired, so it can't be marked paid. Next step: eligible." in early.text
    assert "once the referee has joined the workspace and tracked 10 hours" in early.text
    join(bot, "UKIM", "kim@firm.example")
    track(bot, "UKIM", 3.5)
    progress = bot.command(LEAD, "/referrals", "set R-1 paid")
    assert "once <@UKIM> has tracked 10 hours (3.5 so far); then a lead marks it paid" in progress.text
    by_hand = bot.command(LEAD, "/referrals", "set R-1 eligible")
    assert "R-1 is hired: it becomes eligible by itself once <@UKIM> has tracked 10 hours" in by_hand.text
    late_reject = bot.command(LEAD, "/referrals", "set R-1 rejected")
    assert "can't be marked rejected" in late_reject.text
    assert referrals_in_db(bot)[0].status == "hired"

    assert "There is no referral R-9" in bot.command(LEAD, "/referrals", "set R-9 applied").text
    assert "`done` is not one of" in bot.command(LEAD, "/referrals", "set R-1 done").text
    assert "is not a referral ID" in bot.command(LEAD, "/referrals", "set X-1 applied").text
    # Only the creation, the three valid steps and the link were recorded; refusals changed nothing.
    assert [a.action for a in audit_of(bot, 1)] == ["referral.created"] + ["referral.status"] * 3 + [
        "referral.linked"
    ]
    assert len([t for t in dm_texts(bot, "U1") if "*Referral R-1:*" in t]) == 4  # 3 steps + joined

    bot.command("U1", "/refer", "lu@firm.example")
    bot.command(LEAD, "/referrals", "set R-2 rejected")
    bot.wait_dm("U1", "won't be moving forward this time")
    closed = bot.command(LEAD, "/referrals", "set R-2 applied")
    assert "R-2 is rejected, so it can't be marked applied. A rejected referral is closed." in closed.text


def test_non_leads_are_refused_lead_commands(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1", name="ana")
    bot.command("U1", "/refer", "mo@firm.example")
    for text, what in [
        ("all", "list everyone's referrals"),
        ("all status=referred", "list everyone's referrals"),
        ("set R-1 applied", "change referrals"),
        ("export", "export referrals"),
    ]:
        reply = bot.command("U1", "/referrals", text)
        assert f"Only leads and admins can {what}. You are a contractor." in reply.text
    more = bot.click("U1", "referrals_all_more", value=":5")
    assert "Only leads and admins can list everyone's referrals" in more.text
    assert referrals_in_db(bot)[0].status == "referred"
    assert bot.fake.uploaded_files == {}


# ---- following referrals -------------------------------------------------------------------------


def test_my_referrals_show_status_last_change_and_bonus_totals(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    assert "You haven't referred anyone yet" in bot.command("U1", "/referrals").text
    for email in ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]:
        bot.command("U1", "/refer", email)
        bot.clock.advance(days=1)
    bot.command(LEAD, "/referrals", "set R-2 rejected")
    for status in ("applied", "interviewing", "hired"):
        bot.command(LEAD, "/referrals", f"set R-3 {status}")
        bot.command(LEAD, "/referrals", f"set R-4 {status}")
    join(bot, "UD", "d@x.example")
    track(bot, "UD", 10)
    bot.services.events.emit(HOURS_RECORDED, user_id="UD")
    reply = bot.command("U1", "/referrals")
    text = reply.all_text
    assert "*Your referrals* (4)" in text
    assert "earned $250 (awaiting payout) · pending $500 · paid $0" in text
    assert "*R-1* a@x.example: *referred*" in text and "*R-2* b@x.example: *rejected*" in text
    assert "$250 pending: 0 of 10 hours tracked" in text  # R-3, hired, referee not joined
    assert "$250 earned, to be paid with the next weekly payout" in text
    # The date of the last change, in each reader's own timezone.
    r2_changed = int(datetime(2026, 1, 9, 9, 0, tzinfo=UTC).timestamp())
    assert f"<!date^{r2_changed}^" in text
    # Someone else's referrals are not mine.
    bot.fake.add_user("U2", name="bo")
    assert "You haven't referred anyone yet" in bot.command("U2", "/referrals").text


def test_lead_lists_all_referrals_paginated_and_filtered(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    for i in range(1, 26):
        bot.command("U1", "/refer", f"p{i}@x.example")
    bot.command(LEAD, "/referrals", "set R-3 applied")
    first = bot.command(LEAD, "/referrals", "all")
    assert "*R-25*" in first.all_text and "*R-6*" in first.all_text and "*R-5*" not in first.all_text
    more = next(
        e
        for b in first.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "referrals_all_more"
    )
    second = bot.click(LEAD, "referrals_all_more", value=more["value"])
    assert "*R-5*" in second.all_text and "*R-1*" in second.all_text and "*R-6*" not in second.all_text
    assert "That's all of them." in second.all_text
    applied = bot.command(LEAD, "/referrals", "all status=applied")
    assert "*R-3*" in applied.all_text and "*R-4*" not in applied.all_text
    assert "There are no paid referrals." in bot.command(LEAD, "/referrals", "all status=paid").text
    assert "`status=done`" not in bot.command(LEAD, "/referrals", "all status=done").text
    assert "is not one of" in bot.command(LEAD, "/referrals", "all status=done").text
    # The referrer's own list pages too.
    mine = bot.command("U1", "/referrals")
    assert any(
        e["action_id"] == "referrals_mine_more"
        for b in mine.blocks
        if b["type"] == "actions"
        for e in b["elements"]
    )
    rest = bot.click("U1", "referrals_mine_more", value="6")
    assert "*R-5*" in rest.all_text and "*R-6*" not in rest.all_text


def test_export_sends_a_csv_file_to_the_lead(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", name="ana", real_name="Ana Silva")
    bot.command("U1", "/refer", "nia@firm.example =HYPERLINK(x) skill=legal")
    bot.command("U1", "/refer", "oz@firm.example Oz")
    bot.command(LEAD, "/referrals", "set R-2 applied")
    reply = bot.command(LEAD, "/referrals", "export")
    assert "Sent you `referrals-2026-01-05.csv` in a DM: 2 referrals" in reply.text
    [upload] = bot.fake.uploaded_files.values()
    assert upload["channel_id"] == dm_channel_id(LEAD)
    assert upload["filename"] == "referrals-2026-01-05.csv"
    rows = list(csv.DictReader(io.StringIO(upload["content"].decode())))
    assert [(r["id"], r["email"], r["status"], r["referrer_name"]) for r in rows] == [
        ("R-1", "nia@firm.example", "referred", "Ana Silva"),
        ("R-2", "oz@firm.example", "applied", "Ana Silva"),
    ]
    assert rows[0]["name"] == "'=HYPERLINK(x)"  # a spreadsheet won't run it
    assert rows[1]["last_change_by"] == LEAD and rows[1]["bonus_usd"] == "250.00"
    assert rows[0]["created_at"] == "2026-01-05T09:00:00+00:00"


def test_export_upload_failure_is_said(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.fail_next("files.getUploadURLExternal", "internal_error")
    reply = bot.command(LEAD, "/referrals", "export")
    assert "couldn't send you the export file" in reply.text


def test_leaderboard_shows_only_members_who_opted_in(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    bot.fake.add_user("U2", name="bo")
    bot.command("U1", "/refer", "q1@x.example")
    bot.command("U1", "/refer", "q2@x.example")
    bot.command("U2", "/refer", "q3@x.example")
    bot.command("U2", "/refer", "q4@x.example")
    for rid in (1, 2, 3, 4):
        for status in ("applied", "interviewing", "hired"):
            bot.command(LEAD, "/referrals", f"set R-{rid} {status}")

    assert "No hires from opted-in members yet" in bot.command("U1", "/referrals", "leaderboard").text
    on = bot.command("U1", "/referrals", "leaderboard on")
    assert "You're on the referral leaderboard now" in on.text
    assert "already on" in bot.command("U1", "/referrals", "leaderboard on").text
    board = bot.command("U2", "/referrals", "leaderboard").text
    assert "January 2026" in board and "<@U1>: 2 hired" in board and "<@U2>" not in board
    assert "You're not on it" in board

    bot.command("U2", "/referrals", "leaderboard on")
    board = bot.command("U2", "/referrals", "leaderboard").text
    assert "<@U1>: 2 hired" in board and "<@U2>: 2 hired" in board

    assert "You're off the referral leaderboard" in bot.command("U1", "/referrals", "leaderboard off").text
    board = bot.command("U2", "/referrals", "leaderboard").text
    assert "<@U1>" not in board and "<@U2>: 2 hired" in board

    # A new month starts a new board.
    bot.clock.set(datetime(2026, 2, 1, 0, 0, tzinfo=UTC))
    assert "February 2026" in bot.command("U2", "/referrals", "leaderboard").text
    assert "No hires from opted-in members yet" in bot.command("U2", "/referrals", "leaderboard").text
    assert "`maybe` is not one of: on, off" in bot.command("U1", "/referrals", "leaderboard maybe").text


def test_home_tab_shows_my_referrals_totals_and_the_leaderboard_toggle(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot)
    bot.fake.add_user("U1", name="ana")
    bot.command("U1", "/refer", "rui@firm.example Rui")
    for status in ("applied", "interviewing", "hired"):
        bot.command(LEAD, "/referrals", f"set R-1 {status}")
    assert bot.driver is not None
    bot.driver.home_opened("U1")
    bot.fake.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == "U1")
    home = json.dumps(bot.fake.home_views["U1"], ensure_ascii=False)
    assert "*R-1* Rui (rui@firm.example): *hired*" in home
    assert "earned $0 (awaiting payout) · pending $250 · paid $0" in home
    assert "Show me on it" in home and "<@U1>: 1 hired" not in home

    before = len(bot.fake.calls_to("views.publish"))
    bot.driver.click("U1", "referrals_leaderboard", value="on", view=bot.fake.home_views["U1"])
    bot.fake.wait_for("views.publish", count=before + 1)
    home = json.dumps(bot.fake.home_views["U1"], ensure_ascii=False)
    assert "<@U1>: 1 hired" in home and "Hide me" in home


def test_weekly_digest_to_leads_lists_referrals_waiting_on_a_lead(database_url: str, fake: FakeSlack) -> None:
    with BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": "C0LEADS"}) as bot:
        job = bot.services.scheduler.get("referrals:weekly-digest")
        assert job is not None and job.func_ref == "jobs.referrals:weekly_digest"
        make_lead(bot)
        bot.fake.add_user("U1", name="ana")
        bot.command("U1", "/refer", "sam@firm.example Sam")
        bot.command("U1", "/refer", "tia@firm.example")
        bot.command("U1", "/refer", "uma@firm.example")
        bot.command(LEAD, "/referrals", "set R-2 rejected")
        for status in ("applied", "interviewing", "hired"):
            bot.command(LEAD, "/referrals", f"set R-3 {status}")
        assert "C0LEADS" not in bot.fake.messages  # the start-up run found nothing waiting

        bot.clock.advance(days=7)  # next Monday, 09:00 UTC
        [post] = bot.fake.wait_for(
            "chat.postMessage", predicate=lambda c: c.params.get("channel") == "C0LEADS"
        )
        text = post.params["text"] + json.dumps(post.params["blocks"])
        assert "1 waiting on a lead (1 referred)" in text
        assert "*R-1* Sam (sam@firm.example): referred since" in text
        assert "R-2" not in text and "R-3" not in text  # rejected: closed; hired: waiting on hours

        # The job is registered once however often the bot starts.
        bot.restart()
        assert len(bot.services.scheduler.jobs("referrals:weekly-digest")) == 1


def test_help_lists_every_subcommand(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    refer_help = bot.command("U1", "/refer", "help").all_text
    assert "/refer [email] [name…] [skill=S]" in refer_help
    help_text = bot.command("U1", "/referrals", "help").all_text
    for usage in (
        "/referrals leaderboard [on|off]",
        "/referrals all [status=",
        "/referrals set <R-n>",
        "/referrals export",
    ):
        assert usage in help_text
