"""Separation of duties on pay (issue 12, item 6) and referral integrity (item 7), through the HTTP
door on SQLite and PostgreSQL: nobody approves their own pay, every pay approval records who gave
it; referrals compare mailboxes, never link to their own referrer, and count only approved hours."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlmodel import col, select

from core.grammar import email_key
from db.models import Assignment, AuditEntry, Referral, TimeEntry
from domain import referrals as referral_rules
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness
from tests.shift_helpers import eventually, settle
from tests.tasks_support import post

LEAD, OTHER_LEAD = "ULEAD", "ULEAD2"


@pytest.fixture
def bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(database_url, fake=fake)
    harness.start()
    for lead in (LEAD, OTHER_LEAD):
        fake.add_user(lead, tz="UTC")
        assert "is now a lead" in harness.command("UADMIN", "/crew", f"lead <@{lead}>").text
    fake.add_user("U1", name="ana", email="Ana.Silva@gmail.com", tz="UTC")
    harness.command("U1", "/crew", "me")
    yield harness
    harness.close()


def _audit(bot: BotHarness, action: str) -> list[AuditEntry]:
    with bot.services.db.write() as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)))


# ---- item 6: nobody approves their own pay --------------------------------------------------------


def test_a_lead_cannot_approve_or_reject_their_own_work_another_lead_can(bot: BotHarness) -> None:
    post(bot, lead=OTHER_LEAD)
    assert "is yours" in bot.command(LEAD, "/tasks", "claim T-1").text
    assert "Submitted" in bot.command(LEAD, "/tasks", "done T-1 confirm all done").text
    for attempt in (f"approve T-1 <@{LEAD}>", f"reject T-1 <@{LEAD}> meh"):
        refused = bot.command(LEAD, "/tasks", attempt).text
        assert "Nobody approves their own pay" in refused and "another lead or an admin" in refused
    # The Home tab's Approve button is the same door.
    refused = bot.click(LEAD, "task_approve", f"1:{LEAD}").text
    assert "Nobody approves their own pay" in refused
    with bot.services.db.write() as session:
        assignment = session.exec(select(Assignment)).one()
        assert (assignment.state, assignment.reviewer_id) == ("submitted", None)
    assert not _audit(bot, "task.approved")
    assert "Approved" in bot.command(OTHER_LEAD, "/tasks", f"approve T-1 <@{LEAD}>").text
    with bot.services.db.write() as session:
        assignment = session.exec(select(Assignment)).one()
        assert (assignment.state, assignment.reviewer_id) == ("approved", OTHER_LEAD)
    assert [e.actor_id for e in _audit(bot, "task.approved")] == [OTHER_LEAD]


def test_an_admin_cannot_approve_their_own_work_either(bot: BotHarness) -> None:
    post(bot)
    bot.command("UADMIN", "/tasks", "claim T-1")
    bot.command("UADMIN", "/tasks", "done T-1 confirm")
    assert "Nobody approves their own pay" in bot.command("UADMIN", "/tasks", "approve T-1 <@UADMIN>").text
    assert "Approved" in bot.command(LEAD, "/tasks", "approve T-1 <@UADMIN>").text


def test_a_lead_cannot_approve_their_own_flagged_time_another_lead_can(bot: BotHarness) -> None:
    assert "Clocked in" in bot.command(LEAD, "/hours", "in").text
    bot.clock.advance(hours=12)
    bot.wait_dm(LEAD, "open for 12 hours")
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert entry.flagged
    refused = bot.command(LEAD, "/hours", f"approve E-{entry.id}").text
    assert "Nobody approves their own pay" in refused and f"/hours approve E-{entry.id}" in refused
    with bot.services.db.write() as session:
        assert session.exec(select(TimeEntry)).one().flagged
    assert "Approved" in bot.command(OTHER_LEAD, "/hours", f"approve E-{entry.id}").text
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert not entry.flagged and entry.approved_by == OTHER_LEAD and entry.approved_at is not None
    assert [e.actor_id for e in _audit(bot, "hours.approved")] == [OTHER_LEAD]


def test_a_lead_cannot_hire_or_pay_their_own_referral(bot: BotHarness) -> None:
    assert "recorded" in bot.command(LEAD, "/refer", "nia@firm.example Nia").text
    for status in ("applied", "interviewing"):
        assert status in bot.command(LEAD, "/referrals", f"set R-1 {status}").text
    refused = bot.command(LEAD, "/referrals", "set R-1 hired").text
    assert "Nobody approves their own pay" in refused and "another lead or an admin" in refused
    assert "hired" in bot.command(OTHER_LEAD, "/referrals", "set R-1 hired").text
    with bot.services.db.write() as session:
        referral = session.exec(select(Referral)).one()
        assert (referral.status, referral.hired_by) == ("hired", OTHER_LEAD)


def test_a_lead_cannot_pay_their_own_referral_and_who_paid_it_is_recorded(bot: BotHarness) -> None:
    _lead_referred(bot)
    _referee_works(bot, 10)
    entry_id = _entries(bot)[0]
    assert "Approved" in bot.command(OTHER_LEAD, "/hours", f"approve E-{entry_id}").text
    eventually(lambda: _status(bot) == "eligible")
    refused = bot.command(LEAD, "/referrals", "set R-1 paid").text
    assert "Nobody approves their own pay" in refused and "another lead or an admin" in refused
    assert _status(bot) == "eligible"
    assert "paid" in bot.command(OTHER_LEAD, "/referrals", "set R-1 paid").text
    with bot.services.db.write() as session:
        referral = session.exec(select(Referral)).one()
    assert (referral.status, referral.paid_by) == ("paid", OTHER_LEAD) and referral.paid_at is not None
    steps = [(e.actor_id, json.loads(e.detail)["after"]) for e in _audit(bot, "referral.status")]
    assert steps[-1] == (OTHER_LEAD, "paid")


# ---- nor the pay of someone they referred --------------------------------------------------------

REFERRED = "Nobody approves the pay of someone they referred"


def _lead_referred(bot: BotHarness) -> None:
    """LEAD referred UREF, who joined (the referral is linked) and was hired by another lead."""
    assert bot.driver is not None
    assert "R-1" in bot.command(LEAD, "/refer", "ref@firm.example Ref").text
    referee = bot.fake.add_user("UREF", name="ref", email="ref@firm.example", tz="UTC")
    bot.driver.team_join(referee)
    bot.wait_dm(LEAD, "just joined")
    for status in ("applied", "interviewing", "hired"):
        assert status in bot.command(OTHER_LEAD, "/referrals", f"set R-1 {status}").text


def _referee_works(bot: BotHarness, hours: int, task: str = "") -> None:
    assert "Clocked in" in bot.command("UREF", "/hours", f"in {task}".strip()).text
    bot.clock.advance(hours=hours)
    assert "Clocked out" in bot.command("UREF", "/hours", "out").text


def _entries(bot: BotHarness) -> list[int]:
    with bot.services.db.write() as session:
        return [i for i in session.exec(select(TimeEntry.id).where(col(TimeEntry.user_id) == "UREF")) if i]


def _refused_for_the_referee(text: str) -> None:
    assert REFERRED in text and "<@UREF>, whom you referred (R-1)" in text, text
    assert "another lead or an admin" in text and "Nothing changed." in text


@pytest.fixture
def share_bot(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    harness = BotHarness(database_url, fake=fake, env={"REFERRAL_MODEL": "share"})
    harness.start()
    for lead in (LEAD, OTHER_LEAD):
        fake.add_user(lead, tz="UTC")
        assert "is now a lead" in harness.command("UADMIN", "/crew", f"lead <@{lead}>").text
    yield harness
    harness.close()


def test_a_lead_cannot_approve_or_reject_the_work_of_someone_they_referred(share_bot: BotHarness) -> None:
    """Under the share model, approving the referee's work would earn the lead their share."""
    bot = share_bot
    _lead_referred(bot)
    post(bot, "Review 40 contract summaries rate=100 hours=6", lead=OTHER_LEAD)
    assert "is yours" in bot.command("UREF", "/tasks", "claim T-1").text
    _referee_works(bot, 6, "T-1")
    assert "Submitted" in bot.command("UREF", "/tasks", "done T-1 confirm all done").text
    for attempt in ("approve T-1 <@UREF>", "reject T-1 <@UREF> not usable"):
        _refused_for_the_referee(bot.command(LEAD, "/tasks", attempt).text)
    _refused_for_the_referee(bot.click(LEAD, "task_approve", "1:UREF").text)
    with bot.services.db.write() as session:
        assignment = session.exec(select(Assignment)).one()
        assert (assignment.state, assignment.reviewer_id) == ("submitted", None)
    assert not _audit(bot, "task.approved") and not _audit(bot, "task.rejected")
    assert "Approved" in bot.command(OTHER_LEAD, "/tasks", "approve T-1 <@UREF>").text
    with bot.services.db.write() as session:
        assert session.exec(select(Assignment.reviewer_id)).one() == OTHER_LEAD


def test_a_lead_cannot_approve_the_time_of_someone_they_referred(bot: BotHarness) -> None:
    """Under the flat model, approving the referee's hours would make the lead's bonus eligible."""
    _lead_referred(bot)
    _referee_works(bot, 10)
    [entry_id] = _entries(bot)
    _refused_for_the_referee(bot.command(LEAD, "/hours", f"approve E-{entry_id}").text)
    settle()
    with bot.services.db.write() as session:
        assert session.exec(select(TimeEntry.approved_by)).one() is None
    assert _status(bot) == "hired" and not _audit(bot, "hours.approved")
    assert "Approved" in bot.command("UADMIN", "/hours", f"approve E-{entry_id}").text
    eventually(lambda: _status(bot) == "eligible")


def test_a_lead_cannot_hire_or_pay_the_referrals_of_someone_they_referred(bot: BotHarness) -> None:
    _lead_referred(bot)
    assert "R-2" in bot.command("UREF", "/refer", "gus@firm.example Gus").text
    for status in ("applied", "interviewing"):  # no pay in these steps
        assert status in bot.command(LEAD, "/referrals", f"set R-2 {status}").text
    refused = bot.command(LEAD, "/referrals", "set R-2 hired").text
    assert REFERRED in refused and "the bonus of R-2 pays <@UREF>" in refused, refused
    with bot.services.db.write() as session:
        second = session.get(Referral, 2)
        assert second is not None and (second.status, second.hired_by) == ("interviewing", None)
    assert "hired" in bot.command(OTHER_LEAD, "/referrals", "set R-2 hired").text


# ---- item 7: referral integrity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "mailbox"),
    [
        ("Ana@Example.com", "ana@example.com"),
        (" ana+referrals@example.com ", "ana@example.com"),
        (".ana@example.com.", "ana@example.com"),
        ("a.n.a+x@gmail.com", "ana@gmail.com"),
        ("A.Na@GoogleMail.com", "ana@gmail.com"),
        ("a.na@firm.example", "a.na@firm.example"),  # dots matter outside Gmail
    ],
)
def test_addresses_are_compared_by_mailbox(spelling: str, mailbox: str) -> None:
    assert email_key(spelling) == mailbox


@pytest.mark.parametrize(
    "alias",
    ["ana.silva@gmail.com", "ANA.SILVA@gmail.com", "anasilva+me@gmail.com", "a.n.a.silva@googlemail.com"],
)
def test_referring_yourself_under_an_alias_is_refused(bot: BotHarness, alias: str) -> None:
    reply = bot.command("U1", "/refer", f"{alias} Me")
    assert "is your own address" in reply.text, reply.text
    with bot.services.db.write() as session:
        assert session.exec(select(Referral)).all() == []


def test_an_alias_of_an_address_already_referred_or_of_a_member_is_refused(bot: BotHarness) -> None:
    bot.fake.add_user("U2", email="bo@firm.example", tz="UTC")
    assert "recorded" in bot.command("U2", "/refer", "gus.t@gmail.com Gus").text
    assert "already in the referral program" in bot.command("U1", "/refer", "gust+job@googlemail.com").text
    # A member the bot knows, whose address Slack would not find under this spelling.
    bot.fake.add_user("U3", email="d.ave@gmail.com", tz="UTC")
    bot.command("U3", "/crew", "me")
    assert "already belongs to a member" in bot.command("U1", "/refer", "dave+x@googlemail.com").text
    with bot.services.db.write() as session:
        assert len(session.exec(select(Referral)).all()) == 1


def test_a_referee_joining_under_a_gmail_variant_is_linked_but_never_the_referrer(bot: BotHarness) -> None:
    assert bot.driver is not None
    assert "R-1" in bot.command("U1", "/refer", "zed.x@gmail.com Zed").text
    # The referrer takes on the referred address and "joins" with it: never linked to themselves.
    me = bot.fake.add_user("U1", name="ana", email="ZedX@googlemail.com", tz="UTC")
    assert bot.driver.team_join(me).status == 200
    bot.command("U1", "/crew", "me")
    with bot.services.db.write() as session:
        linked = referral_rules.link_known_members(session, bot.clock.now(), "test sweep")
    assert linked == []
    settle()
    with bot.services.db.write() as session:
        assert session.exec(select(Referral.referee_user_id)).one() is None
    # The real referee joins with another spelling of the mailbox: linked.
    zed = bot.fake.add_user("UZED", name="zed", email="z.e.d.x+slack@gmail.com", tz="UTC")
    assert bot.driver.team_join(zed).status == 200
    bot.wait_dm("U1", "just joined the workspace as <@UZED>")
    with bot.services.db.write() as session:
        assert session.exec(select(Referral.referee_user_id)).one() == "UZED"


def _hired_referee(bot: BotHarness) -> None:
    assert bot.driver is not None
    bot.command("U1", "/refer", "ref@firm.example Ref")
    referee = bot.fake.add_user("UREF", name="ref", email="ref@firm.example", tz="UTC")
    bot.driver.team_join(referee)
    bot.wait_dm("U1", "just joined")
    for status in ("applied", "interviewing", "hired"):
        bot.command(LEAD, "/referrals", f"set R-1 {status}")


def _status(bot: BotHarness) -> str:
    with bot.services.db.write() as session:
        return session.exec(select(Referral.status)).one()


def _work(bot: BotHarness, hours: int, task: str = "") -> None:
    assert "Clocked in" in bot.command("UREF", "/hours", f"in {task}".strip()).text
    bot.clock.advance(hours=hours)
    assert "Clocked out" in bot.command("UREF", "/hours", "out").text


def test_only_approved_hours_make_a_referral_bonus_eligible(bot: BotHarness) -> None:
    _hired_referee(bot)
    # 11 h on no task, never reviewed; 11 h on a task whose work was rejected: neither counts.
    _work(bot, 11)
    post(bot, "Rejected work rate=100 hours=10")
    bot.command("UREF", "/tasks", "claim T-1")
    _work(bot, 11, "T-1")
    bot.command("UREF", "/tasks", "done T-1 confirm")
    assert "Rejected" in bot.command(LEAD, "/tasks", "reject T-1 <@UREF> not usable").text
    settle()
    assert _status(bot) == "hired"
    with bot.services.db.write() as session:
        assert referral_rules.bonus_hours(session, ["UREF"]) == {}
    # 10 h on a task whose work a lead approves: eligible, when the work is approved.
    post(bot, "Approved work rate=100 hours=10")
    bot.command("UREF", "/tasks", "claim T-2")
    _work(bot, 10, "T-2")
    bot.command("UREF", "/tasks", "done T-2 confirm")
    settle()
    assert _status(bot) == "hired"
    assert "Approved" in bot.command(LEAD, "/tasks", "approve T-2 <@UREF>").text
    bot.wait_dm("U1", "referral bonus is earned")
    assert _status(bot) == "eligible"
    with bot.services.db.write() as session:
        assert referral_rules.bonus_hours(session, ["UREF"]) == {"UREF": 10}


def test_time_on_no_task_counts_once_a_lead_approved_it(bot: BotHarness) -> None:
    _hired_referee(bot)
    _work(bot, 10)
    settle()
    assert _status(bot) == "hired"
    with bot.services.db.write() as session:
        entry_id = session.exec(select(TimeEntry.id).where(col(TimeEntry.user_id) == "UREF")).one()
    assert "Approved" in bot.command(LEAD, "/hours", f"approve E-{entry_id}").text
    bot.wait_dm("U1", "referral bonus is earned")
    eventually(lambda: _status(bot) == "eligible")
