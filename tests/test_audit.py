"""The audit log keeps one convention (domain/audit.py): every audited change the bot makes, driven
through the HTTP door, is recorded with the numeric id of what changed (a member by their Slack user
id) and an actor that is a Slack user id or the bot; the log is written only through domain/audit.py,
which refuses any other form."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from db.engine import Database
from db.models import AuditEntry, TimeEntry
from domain import audit
from sandbox.driver import checkboxes
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness
from tests.shift_helpers import eventually, new_shift
from tests.tasks_support import click_claim, make_lead, post

ROOT = Path(__file__).resolve().parents[1]
LEADS = "C0LEADS"
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]+")
EVERY_ACTION = {
    "lead.granted",
    "lead.revoked",
    "skills.set",
    "task.created",
    "task.withdrawn",
    "task.claimed",
    "task.assigned",
    "task.released",
    "task.submitted",
    "task.approved",
    "task.rejected",
    "task.cancelled",
    "task.claim_expired",
    "shift.created",
    "shift.joined",
    "shift.left",
    "shift.cancelled",
    "shift.started",
    "shift.no_show",
    "hours.clock_in",
    "hours.clock_out",
    "hours.auto_closed",
    "hours.approved",
    "referral.created",
    "referral.status",
    "referral.linked",
    "referral.leaderboard_on",
    "referral.leaderboard_off",
    "announcement.created",
    "announcement.cancelled",
    "policy.escalated",
    "policy.answered",
    "policy.faq.created",
    "policy.faq.edited",
    "policy.faq.deleted",
    "policy.handbook.reloaded",
}
BOT_ACTIONS = {
    "task.claim_expired",
    "shift.started",
    "shift.no_show",
    "hours.auto_closed",
    "referral.linked",
    "referral.status",
}


def at(hour: int, minute: int = 0, day: int = 5) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def entries(bot: BotHarness) -> list[AuditEntry]:
    with bot.services.db.write() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def recorded(bot: BotHarness, action: str) -> bool:
    return any(e.action == action for e in entries(bot))


def button_value(blocks: list[dict[str, Any]], action_id: str) -> str:
    for block in blocks:
        for element in [*(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button")


def opened_modal(bot: BotHarness, user: str, action_id: str, value: str, **where: Any) -> dict[str, Any]:
    assert bot.driver is not None
    before = len(bot.fake.calls_to("views.open"))
    bot.driver.click(user, action_id, value, **where)
    return bot.fake.wait_for("views.open", count=before + 1)[-1].response["view"]


# ---- the features, each driven through every audited change it has -----------------------------


def members(bot: BotHarness) -> None:
    for user in ("U1", "U2", "U3", "ULEAD2"):
        bot.fake.add_user(user, tz="UTC")
    make_lead(bot, "ULEAD", tz="UTC")
    make_lead(bot, "ULEAD2", tz="UTC")
    assert "no longer a lead" in bot.command("UADMIN", "/crew", "unlead <@ULEAD2>").text
    assert "skills are now" in bot.command("ULEAD", "/crew", "skill <@U1> legal").text


def tasks(bot: BotHarness) -> None:
    """Task 1 is due today: U1's claim, never submitted, expires at midnight."""
    task, ts = post(bot, "Review contracts slots=3 rate=120 hours=6 due=2026-01-05")
    assert "is yours" in click_claim(bot, "U1", task, ts)
    assert "Assigned" in bot.command("ULEAD", "/tasks", f"assign T-{task} <@U2>").text
    bot.command("U2", "/tasks", f"done T-{task} confirm https://docs.example.com/2")
    assert "Approved" in bot.command("ULEAD", "/tasks", f"approve T-{task} <@U2>").text
    bot.command("U3", "/tasks", f"claim T-{task}")
    bot.command("U3", "/tasks", f"done T-{task} confirm")
    bot.command("ULEAD", "/tasks", f"reject T-{task} <@U3> Misses the indemnity clauses")
    other, _ = post(bot, "Label images rate=45 hours=2")
    bot.command("U3", "/tasks", f"claim T-{other}")
    assert "You released" in bot.command("U3", "/tasks", f"release T-{other}").text
    bot.command("ULEAD", "/tasks", f"cancel T-{other}")
    bot.fake.missing_channels.add("C0GONE")
    assert (
        "couldn't post the card"
        in bot.command("ULEAD", "/tasks", "new Lost rate=50 hours=1 channel=<#C0GONE>").text
    )


def shifts(bot: BotHarness) -> None:
    """S-1 runs this evening; U1 joins and never clocks in (a no-show)."""
    new_shift(bot, "Evening start=2026-01-05T20:00 end=2026-01-05T22:00 slots=3")
    for user in ("U1", "U3"):
        bot.command(user, "/shifts", "join S-1")
    bot.command("U3", "/shifts", "leave S-1")
    new_shift(bot, "Spare start=2026-01-06T20:00 end=2026-01-06T22:00")
    bot.command("ULEAD", "/shifts", "cancel S-2")


def referrals(bot: BotHarness) -> None:
    """U1 refers Gus, who is hired and joins the workspace; he clocks in now (see the timeline)."""
    assert "R-1" in bot.command("U1", "/refer", "gus@firm.example Gus Ortega").text
    for status in ("applied", "interviewing", "hired"):
        bot.command("ULEAD", "/referrals", f"set R-1 {status}")
    assert bot.driver is not None
    bot.driver.team_join(bot.fake.add_user("UGUS", name="gus", email="gus@firm.example", tz="UTC"))
    bot.wait_dm("U1", "just joined the workspace as <@UGUS>")
    bot.command("U1", "/referrals", "leaderboard on")
    bot.command("U1", "/referrals", "leaderboard off")


def announcements(bot: BotHarness) -> None:
    bot.command("ULEAD", "/announce", "skill=legal at=2026-01-05T11:00 Never mind")
    assert "is cancelled" in bot.command("ULEAD", "/announce", "cancel A-1").text


def policy(bot: BotHarness) -> None:
    # A question the handbook can't answer goes to the leads; the answer is kept as a FAQ.
    bot.command("U1", "/policy", "can I bring my dog to the team call?")
    card = bot.fake.wait_for(
        "chat.postMessage",
        predicate=lambda c: (
            c.params.get("channel") == LEADS and "policy_answer" in str(c.params.get("blocks"))
        ),
    )[0]
    view = opened_modal(
        bot,
        "ULEAD",
        "policy_answer",
        button_value(card.params["blocks"], "policy_answer"),
        channel_id=LEADS,
        message_ts=card.response["ts"],
    )
    answer = {"answer": {"value": "Yes, if it stays quiet."}, "save": {"value": checkboxes(["faq"])}}
    bot.submit("ULEAD", "policy_answer", answer, private_metadata=view["private_metadata"])
    bot.wait_dm("U1", "Yes, if it stays quiet.")
    listing = bot.command("ULEAD", "/policy", "faq")
    view = opened_modal(bot, "ULEAD", "policy_faq_edit", button_value(listing.blocks, "policy_faq_edit"))
    edited = {
        "question": {"value": "can I bring my dog to the team call?"},
        "answer": {"value": "Only on internal calls."},
        "section": {"value": "community#code-of-conduct"},
    }
    bot.submit("ULEAD", "policy_faq_edit", edited, private_metadata=view["private_metadata"])
    eventually(lambda: recorded(bot, "policy.faq.edited"))
    listing = bot.command("ULEAD", "/policy", "faq")
    assert (
        "Deleted FAQ"
        in bot.click("ULEAD", "policy_faq_delete", button_value(listing.blocks, "policy_faq_delete")).all_text
    )
    assert "Reloaded the handbook" in bot.command("ULEAD", "/policy", "reload").text
    # A handbook answer that didn't help goes to the leads too.
    down = bot.click(
        "U2", "policy_down", button_value(bot.command("U2", "/policy", "when is payday?").blocks, "policy_up")
    )
    bot.click("U2", "policy_ask_lead", button_value(down.blocks, "policy_ask_lead"))


def posted(bot: BotHarness, channel: str, words: str) -> None:
    bot.fake.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params.get("channel") == channel and words in c.params.get("text", ""),
    )


def time_entry_of(bot: BotHarness, user_id: str) -> int:
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry).where(col(TimeEntry.user_id) == user_id)).one()
        assert entry.id is not None
        return entry.id


@pytest.fixture
def crew(database_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    """The bot with a leads channel (policy escalations and auto-closed hours go there)."""
    harness = BotHarness(database_url, fake=fake, env={"LEADS_CHANNEL": LEADS})
    harness.start()
    yield harness
    harness.close()


def test_every_audited_change_uses_the_convention(crew: BotHarness) -> None:
    bot = crew
    assert bot.clock.now() == at(9)
    members(bot)
    tasks(bot)
    shifts(bot)
    referrals(bot)
    announcements(bot)
    policy(bot)
    assert "Clocked in" in bot.command("UGUS", "/hours", "in").text
    assert "Clocked in" in bot.command("U2", "/hours", "in").text  # and forgets to clock out

    bot.clock.set(at(19))
    bot.command("UGUS", "/hours", "out")  # ten hours on no task…
    # …that count toward Gus's referral bonus once a lead approved them: the bonus is earned.
    assert "Approved" in bot.command("ULEAD", "/hours", f"approve E-{time_entry_of(bot, 'UGUS')}").text
    bot.wait_dm("U1", "referral bonus is earned")
    # Each of the bot's own changes is waited for to its last effect: a job still running when the
    # bot stops would be cut short.
    bot.clock.set(at(20))
    posted(bot, "C0SHIFTS", "is starting now")
    bot.clock.set(at(21))  # U2's clock-in closes itself at 12 hours, flagged
    posted(bot, LEADS, "closed automatically")
    assert "Approved" in bot.command("ULEAD", "/hours", f"approve E-{time_entry_of(bot, 'U2')}").text
    bot.clock.set(at(22))
    bot.wait_dm("U1", "recorded as a no-show")
    eventually(lambda: "ended" in str(bot.fake.messages["C0SHIFTS"][0]["blocks"]))
    bot.clock.set(at(0, 1, day=6))  # task 1 was due yesterday: U1's claim expires
    bot.wait_dm("U1", "expired")

    rows = entries(bot)
    assert {e.action for e in rows} == EVERY_ACTION
    for e in rows:
        assert e.actor_id == audit.BOT or SLACK_USER_ID.fullmatch(e.actor_id), (e.action, e.actor_id)
        if e.entity == audit.MEMBER:
            assert SLACK_USER_ID.fullmatch(e.entity_id), (e.action, e.entity_id)
        else:
            assert e.entity_id.isdigit() and int(e.entity_id) > 0, (e.action, e.entity, e.entity_id)
    by_bot = {e.action for e in rows if e.actor_id == audit.BOT}
    assert by_bot == BOT_ACTIONS
    task_expiry = next(e for e in rows if e.action == "task.claim_expired")
    assert (
        "crewcall · *task.claim_expired*"
        in bot.command("ULEAD", "/tasks", f"history T-{task_expiry.entity_id}").all_text
    )


# ---- the API refuses any other form ------------------------------------------------------------


def test_the_record_functions_refuse_refs_words_and_made_up_actors(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    now = at(9)
    try:
        with Session(db.engine) as session:
            not_ids: list[Any] = ["S-3", "3", "handbook", 0, None, True]
            for entity_id in not_ids:
                with pytest.raises(ValueError, match="numeric id"):
                    audit.record(
                        session, at=now, actor_id="U1", action="x", entity="shift", entity_id=entity_id
                    )
            for actor_id in ("system", "", "u1", "<@U1>"):
                with pytest.raises(ValueError, match="Slack user id or audit.BOT"):
                    audit.record(session, at=now, actor_id=actor_id, action="x", entity="shift", entity_id=3)
            with pytest.raises(ValueError, match="record_member"):
                audit.record(session, at=now, actor_id="U1", action="x", entity=audit.MEMBER, entity_id=3)
            with pytest.raises(ValueError, match="Slack user id"):
                audit.record_member(session, at=now, actor_id="U1", action="x", member_id="3")
            kept = [
                audit.record(session, at=now, actor_id=audit.BOT, action="x", entity="shift", entity_id=3),
                audit.record_member(session, at=now, actor_id="ULEAD", action="x", member_id="U1"),
            ]
            assert [(e.actor_id, e.entity, e.entity_id) for e in kept] == [
                ("crewcall", "shift", "3"),
                ("ULEAD", "member", "U1"),
            ]
    finally:
        db.dispose()


# ---- the only writer ----------------------------------------------------------------------------


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for package in ("domain", "jobs", "handlers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != ROOT / "domain" / "audit.py":
                yield path, ast.parse(path.read_text(), str(path))


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def test_audit_rows_are_written_only_through_domain_audit() -> None:
    writes = []
    for path, tree in _modules():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = _names(node.func)
                # AuditEntry(...) built by hand, or insert/update/delete(AuditEntry) in bulk
                if "AuditEntry" in func or (
                    func & {"insert", "update", "delete", "insert_ignore"}
                    and any("AuditEntry" in _names(arg) for arg in node.args)
                ):
                    writes.append(f"{where}:{node.lineno}")
                # actor and entity spelled out by the caller, not by the API
                if func & {"record", "record_member"} and "audit" in func:
                    for keyword in node.keywords:
                        if keyword.arg in ("actor_id", "entity_id", "member_id") and isinstance(
                            keyword.value, ast.Constant | ast.JoinedStr
                        ):
                            writes.append(f"{where}:{node.lineno} {keyword.arg} is a literal")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "audit_entry" in node.value:
                writes.append(f"{where}:{node.lineno} raw SQL on audit_entry")
            if isinstance(node, ast.ImportFrom) and node.module == "domain.audit":
                writes.append(
                    f"{where}:{node.lineno} imports from domain.audit (use `from domain import audit`)"
                )
    assert writes == []
