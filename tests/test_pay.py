"""Pay through the HTTP door on the injected clock: weekly caps (refusal, stop at the cap with its
DM, the 90% notice once, a lead's override), the Monday statement in three timezones sent once
(also after a restart and a replayed job) and equal to the payroll CSV, and the share model as the
referrer sees it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest
from sqlmodel import col, select

from core.slack import SlackFailure
from db.models import AuditEntry, PayStatement, TimeEntry, WeeklyCap
from domain import pay as pay_rules
from jobs import pay as pay_jobs
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness
from tests.shift_helpers import LEAD, add_member, add_task, at, eventually, make_lead, settle


def dm_texts(bot: BotHarness, user_id: str, contains: str) -> list[str]:
    return [c.params["text"] for c in bot.dms_to(user_id) if contains in c.params.get("text", "")]


# ---- caps ----------------------------------------------------------------------------------------


def test_cap_override_notice_once_stop_at_cap_and_refusal(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    review = add_task(bot, "Review", 10_000, holder="U1")
    assert "Only leads and admins can set weekly caps" in bot.command("U1", "/crew", "cap <@U1> 80").text
    assert "Hours must be more than 0" in bot.command(LEAD, "/crew", "cap <@U1> 0").text
    reply = bot.command(LEAD, "/crew", "cap <@U1> 10")
    assert "<@U1>'s weekly cap is now 10 h (was 40 h)" in reply.text
    bot.wait_dm("U1", "set your weekly hours cap to 10 h")
    with bot.services.db.write() as session:
        audited = session.exec(select(AuditEntry).where(AuditEntry.action == "hours.cap_set")).one()
        assert (audited.actor_id, audited.entity_id) == (LEAD, "U1")

    assert "10.00 h left of your 10 h weekly cap" in bot.command("U1", "/hours", f"in T-{review}").text
    bot.clock.advance(hours=8, minutes=59)
    settle()
    assert not dm_texts(bot, "U1", "90%")
    bot.clock.advance(minutes=1)
    assert "9.00 h this week, 90% of your 10 h weekly cap" in bot.wait_dm("U1", "90%").params["text"]
    bot.clock.advance(hours=1)
    stopped = bot.wait_dm("U1", "reached your weekly cap")
    assert "clocked you out at Mon 05 Jan, 19:00 UTC" in stopped.params["text"]
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert entry.ended_at == at("2026-01-05T19:00:00") and entry.stop_reason == "stopped at cap"
        assert not entry.flagged
    assert bot.services.scheduler.jobs("hours:") == [] and bot.services.scheduler.jobs("pay:E-") == []

    refused = bot.command("U1", "/hours", "in").text
    assert "You've reached your weekly cap of 10 h (10.00 h clocked this week)" in refused
    assert "Only a lead (<@ULEAD>) can raise it" in refused

    # The lead raises it: clocking in works again, and the 90% notice isn't repeated this week.
    bot.command(LEAD, "/crew", "cap <@U1> 12")
    bot.wait_dm("U1", "set your weekly hours cap to 12 h (was 10 h)")
    assert "Clocked in" in bot.command("U1", "/hours", "in").text
    bot.clock.advance(hours=2)
    bot.wait_dm("U1", "reached your weekly cap of 12 h")
    settle()
    assert len(dm_texts(bot, "U1", "90%")) == 1
    # Lowering a running clock's cap stops it at once; `default` goes back to WEEKLY_HOURS_CAP.
    assert "is now 40 h (the default)" in bot.command(LEAD, "/crew", "cap <@U1> default").text
    assert "already that" in bot.command(LEAD, "/crew", "cap <@U1> default").text
    assert "Clocked in" in bot.command("U1", "/hours", "in").text
    bot.clock.advance(minutes=30)
    bot.command(LEAD, "/crew", "cap <@U1> 12")  # below the 12.5 h clocked: stops now, keeps the 30 min
    eventually(lambda: len(dm_texts(bot, "U1", "reached your weekly cap")) == 3)
    with bot.services.db.write() as session:
        last = session.exec(select(TimeEntry).order_by(col(TimeEntry.id).desc())).first()
        assert last is not None and last.ended_at == last.started_at + timedelta(minutes=30)
        assert last.stop_reason == "stopped at cap"


def test_cap_stop_after_downtime_is_at_the_cap_instant(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "America/New_York")
    bot.command(LEAD, "/crew", "cap <@U1> 3")
    bot.command("U1", "/hours", "in")
    bot.stop()
    bot.clock.advance(hours=5)  # the notice and the cap fell due while down
    bot.start()
    bot.wait_dm("U1", "reached your weekly cap of 3 h")
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert entry.ended_at == at("2026-01-05T12:00:00") and entry.stop_reason == "stopped at cap"
    assert "3.00 h" in bot.command("U1", "/hours").all_text


def test_a_clock_out_after_the_cap_instant_closes_at_the_cap(bot: BotHarness) -> None:
    """`/hours out` five hours in, against a 3 h cap whose job hasn't run (the bot was down): the
    entry is closed at the cap's instant, marked stopped at cap, and the reply says so."""
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    bot.command(LEAD, "/crew", "cap <@U1> 3")
    assert "Clocked in" in bot.command("U1", "/hours", "in").text
    bot.services.scheduler.shutdown(wait=True)  # neither the 90% notice nor the stop at the cap runs
    bot.clock.advance(hours=5)
    out = bot.command("U1", "/hours", "out").text
    assert "reached your weekly cap of 3 h, so I clocked you out at Mon 05 Jan, 12:00 UTC (E-1" in out
    with bot.services.db.write() as session:
        entry = session.exec(select(TimeEntry)).one()
        assert entry.ended_at == at("2026-01-05T12:00:00") and entry.stop_reason == "stopped at cap"
        audited = session.exec(select(AuditEntry).where(AuditEntry.action == "hours.stopped")).one()
        assert audited.entity_id == "1"
    assert "3.00 h" in bot.command("U1", "/hours").all_text


def _home(bot: BotHarness, user_id: str) -> str:
    return str(bot.services.home.render(bot.services, bot.services.directory.actor(user_id))["blocks"])


def test_leads_see_who_is_near_and_who_is_at_their_cap_on_home(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    bot.command(LEAD, "/crew", "cap <@U1> 2")
    bot.command("U1", "/hours", "in")
    bot.clock.advance(hours=1, minutes=50)
    text = _home(bot, LEAD)
    assert "Near or at their weekly cap" in text and "<@U1>: 1.83 h of 2 h (own cap)" in text
    assert "at cap" not in text
    mine = _home(bot, "U1")
    assert "0.17 h left of your 2 h weekly cap" in mine and "Near or at" not in mine
    bot.clock.advance(minutes=10)
    bot.wait_dm("U1", "reached your weekly cap of 2 h")
    assert "<@U1>: 2.00 h of 2 h · *at cap* (own cap)" in _home(bot, LEAD)
    assert "0.00 h left of your 2 h weekly cap" in _home(bot, "U1")


def test_a_cap_or_a_week_out_of_range_is_refused_and_changes_nothing(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    for hours in ("-5", "1000"):
        refused = bot.command(LEAD, "/crew", f"cap <@U1> {hours}").text
        assert f"Hours must be more than 0 and at most 168 (got {hours})." in refused
    for who, sub in (("U1", "statement"), (LEAD, "payroll")):
        refused = bot.command(who, "/hours", f"{sub} week=9999-12-31").text
        assert "`9999-12-31` is too far away: dates go from 2000-01-01 to 2099-12-31." in refused
    settle()
    with bot.services.db.write() as session:
        assert session.exec(select(WeeklyCap)).all() == []
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "hours.cap_set")).all() == []
    assert not dm_texts(bot, "U1", "weekly hours cap") and not bot.fake.uploaded_files
    assert "40.00 h left of your 40 h weekly cap" in bot.command("U1", "/hours", "in").text


# ---- the Monday statement ------------------------------------------------------------------------

ZONES = {"UNY": "America/New_York", "ULIS": "Europe/Lisbon", "UKOL": "Asia/Kolkata"}


def _work(bot: BotHarness, user: str, start: str, duration: timedelta, task: int | None = None) -> None:
    bot.clock.set(at(start))
    assert "Clocked in" in bot.command(user, "/hours", f"in T-{task}" if task else "in").text
    bot.clock.advance(duration)
    assert "Clocked out" in bot.command(user, "/hours", "out").text


def _ledger(bot: BotHarness, user_id: str, week: date = date(2026, 1, 5)) -> PayStatement | None:
    """The member's row of the statement ledger for the week."""
    with bot.services.db.write() as session:
        return session.exec(
            select(PayStatement).where(PayStatement.user_id == user_id, PayStatement.week_start == week)
        ).first()


def _in_state(bot: BotHarness, user_id: str, state: str, week: date = date(2026, 1, 5)) -> bool:
    row = _ledger(bot, user_id, week)
    return row is not None and row.state == state


def _sent(bot: BotHarness, user_id: str, week: date = date(2026, 1, 5)) -> None:
    """Wait until the sweep recorded the member's statement as sent (and has finished): a sweep still
    running when the clock jumps skips that run, as APScheduler runs one instance at a time."""
    eventually(lambda: _in_state(bot, user_id, "sent", week))
    settle()


def _statement_total(text: str) -> str:
    found = re.search(r"Total to be paid: \$([\d,]+\.\d\d)", text)
    assert found, text
    return found.group(1).replace(",", "")


def test_monday_statement_once_per_member_in_three_timezones_equal_to_payroll(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    for user, tz in ZONES.items():
        add_member(bot, user, tz)
    review = add_task(bot, "=SUM(1) review", 8750, holder="UNY")  # $87.50/h; a formula for a title
    triage = add_task(bot, "Triage", 12_000, holder="UKOL")
    lisbon = add_task(bot, "Lisbon work", 9999, holder="ULIS")
    for day in (6, 7, 8):  # three 20-minute entries: $29.17 each (rounded per entry)
        _work(bot, "UNY", f"2026-01-0{day}T15:00:00", timedelta(minutes=20), review)
    _work(bot, "UNY", "2026-01-09T15:00:00", timedelta(hours=1, minutes=15), review)  # $109.38
    _work(bot, "UKOL", "2026-01-06T05:00:00", timedelta(hours=3, minutes=7), triage)  # $374.00
    _work(bot, "UKOL", "2026-01-07T05:00:00", timedelta(minutes=45))  # no task: waits for a lead
    _work(bot, "ULIS", "2026-01-07T09:00:00", timedelta(hours=2, minutes=1), lisbon)  # $201.65

    bot.clock.set(at("2026-01-12T03:29:00"))  # Kolkata: Monday 08:59
    settle()
    assert not dm_texts(bot, "UKOL", "pay statement")
    bot.clock.set(at("2026-01-12T03:30:00"))  # Kolkata: Monday 09:00
    kol = bot.wait_dm("UKOL", "pay statement")
    _sent(bot, "UKOL")
    assert not dm_texts(bot, "ULIS", "pay statement") and not dm_texts(bot, "UNY", "pay statement")
    bot.clock.set(at("2026-01-12T09:00:00"))  # Lisbon: Monday 09:00 (WET)
    lis = bot.wait_dm("ULIS", "pay statement")
    _sent(bot, "ULIS")
    bot.clock.set(at("2026-01-12T14:00:00"))  # New York: Monday 09:00 (EST)
    ny = bot.wait_dm("UNY", "pay statement")
    _sent(bot, "UNY")

    texts = {
        u: str(c.params["text"]) + str(c.params.get("blocks"))
        for u, c in (("UKOL", kol), ("ULIS", lis), ("UNY", ny))
    }
    assert "T-1 =SUM(1) review: 2.25 h × $87.50/h = *$196.89*" in texts["UNY"]
    assert "0.75 h waiting for a lead's approval" in texts["UKOL"]
    assert "Tell a lead within 7 days" in texts["UNY"]
    totals = {u: _statement_total(t) for u, t in texts.items()}
    assert totals == {"UNY": "196.89", "UKOL": "374.00", "ULIS": "201.65"}

    # Replayed job, another sweep, a restart and a later sweep: nobody gets a second statement.
    pay_jobs.send_statements()
    bot.restart()
    bot.clock.advance(hours=20)
    pay_jobs.send_statements()
    settle()
    for user in ZONES:
        assert len(dm_texts(bot, user, "pay statement")) == 1, user
    with bot.services.db.write() as session:
        sent = session.exec(select(PayStatement).where(col(PayStatement.state) == "sent")).all()
        assert sorted((s.user_id, s.week_start.isoformat(), s.total_cents) for s in sent) == [
            ("UKOL", "2026-01-05", 37_400),
            ("ULIS", "2026-01-05", 20_165),
            ("UNY", "2026-01-05", 19_689),
        ]

    # The payroll CSV carries the same figures, per member and task, with totals; formula-safe.
    assert "Only leads and admins can download the payroll" in bot.command("UNY", "/hours", "payroll").text
    reply = bot.command(LEAD, "/hours", "payroll week=2026-01-07")
    assert "Sent `payroll-week-of-2026-01-05.csv` to your DMs: 3 member(s), $772.54 to be paid" in reply.text
    upload = next(u for u in bot.fake.uploaded_files.values() if u["filename"].startswith("payroll"))
    rows = list(csv.DictReader(io.StringIO(upload["content"].decode())))
    member_totals = {r["member_id"]: r["amount_usd"] for r in rows if r["item"] == "member total"}
    assert member_totals == totals
    assert [
        (r["member_id"], r["item"], r["description"], r["approved_hours"], r["amount_usd"])
        for r in rows
        if r["item"].startswith("T-")
    ] == [
        ("UKOL", "T-2", "Triage", "3.12", "374.00"),
        ("ULIS", "T-3", "Lisbon work", "2.02", "201.65"),
        ("UNY", "T-1", "'=SUM(1) review", "2.25", "196.89"),
    ]
    assert rows[-1]["item"] == "TOTAL" and rows[-1]["amount_usd"] == "772.54"
    # On demand, any past week: the same statement.
    again = bot.command("UNY", "/hours", "statement week=2026-01-05")
    assert _statement_total(again.all_text) == "196.89"
    assert "hasn't started yet" in bot.command("UNY", "/hours", "statement week=2026-02-01").text
    assert _statement_total(bot.command("UNY", "/hours", "statement").all_text) == "196.89"  # last week
    assert "None this week" in bot.command("UNY", "/hours", "statement week=2025-12-31").all_text


def _dm(bot: BotHarness, user_id: str, contains: str) -> str:
    """The DM's text and blocks, once it arrives."""
    call = bot.wait_dm(user_id, contains)
    return str(call.params["text"]) + str(call.params.get("blocks"))


def _move(bot: BotHarness, user_id: str, tz: str) -> None:
    """The member changes timezone in Slack, and the bot reads their profile again."""
    bot.fake.add_user(user_id, tz=tz)
    assert bot.services.directory.refresh(user_id) is not None


def _payroll_rows(bot: BotHarness, week: str) -> list[dict[str, str]]:
    """The rows of `/hours payroll week=…`."""
    before = set(bot.fake.uploaded_files)
    assert "Sent `payroll-week-of" in bot.command(LEAD, "/hours", f"payroll week={week}").text
    (new,) = set(bot.fake.uploaded_files) - before
    return list(csv.DictReader(io.StringIO(bot.fake.uploaded_files[new]["content"].decode())))


def _payroll(bot: BotHarness, week: str) -> dict[str, str]:
    """The member totals of `/hours payroll week=…`, by member."""
    return {r["member_id"]: r["amount_usd"] for r in _payroll_rows(bot, week) if r["item"] == "member total"}


def test_a_change_of_timezone_pays_each_hour_once(bot: BotHarness) -> None:
    """Los Angeles → Kolkata (the new zone's week begins earlier: it would overlap the week already
    paid) and Kolkata → Los Angeles (it begins later: hours would fall between the weeks). Each week
    keeps the bounds its statement was drawn with, and the next starts where it ended: the DMs, the
    statements drawn again later and the payroll agree, every hour in exactly one week."""
    make_lead(bot, tz="UTC")
    add_member(bot, "ULA", "America/Los_Angeles")
    add_member(bot, "UKOL", "Asia/Kolkata")
    la_work = add_task(bot, "LA work", 10_000, holder="ULA")  # $100/h
    kol_work = add_task(bot, "Kolkata work", 10_000, holder="UKOL")
    _work(bot, "ULA", "2026-01-07T18:00:00", timedelta(hours=1), la_work)
    _work(bot, "UKOL", "2026-01-11T16:30:00", timedelta(hours=2), kol_work)  # Sun 22:00-24:00 IST
    _work(bot, "UKOL", "2026-01-12T00:30:00", timedelta(hours=2), kol_work)  # Mon 06:00-08:00 IST
    bot.clock.set(at("2026-01-12T03:30:00"))  # Monday 09:00 in Kolkata
    assert _statement_total(_dm(bot, "UKOL", "pay statement")) == "200.00"
    _sent(bot, "UKOL")
    _move(bot, "UKOL", "America/Los_Angeles")
    _work(bot, "ULA", "2026-01-12T06:00:00", timedelta(hours=2), la_work)  # Sun 22:00-24:00 PST
    bot.clock.set(at("2026-01-12T17:00:00"))  # Monday 09:00 in Los Angeles
    assert _statement_total(_dm(bot, "ULA", "pay statement")) == "300.00"
    _sent(bot, "ULA")
    _move(bot, "ULA", "Asia/Kolkata")
    _work(bot, "ULA", "2026-01-13T05:00:00", timedelta(hours=1), la_work)
    _work(bot, "UKOL", "2026-01-13T18:00:00", timedelta(hours=1), kol_work)

    second = date(2026, 1, 12)
    bot.clock.set(at("2026-01-19T03:30:00"))  # Monday 09:00 in Kolkata, ULA's zone now
    la_second = _dm(bot, "ULA", "week of 12 Jan 2026")
    _sent(bot, "ULA", second)
    bot.clock.set(at("2026-01-19T17:00:00"))  # Monday 09:00 in Los Angeles, UKOL's zone now
    kol_second = _dm(bot, "UKOL", "week of 12 Jan 2026")
    _sent(bot, "UKOL", second)
    # ULA's Sunday night was paid in the first week, not again; UKOL's Monday morning in Kolkata,
    # before the move, is in the second (it was after the first week Kolkata's way).
    assert (_statement_total(la_second), _statement_total(kol_second)) == ("100.00", "300.00")
    # The first week drawn again, now in the other zone: the same as its DM.
    again = bot.command("ULA", "/hours", "statement week=2026-01-05").all_text
    assert _statement_total(again) == "300.00" and "(America/Los_Angeles)" in again
    assert _statement_total(bot.command("UKOL", "/hours", "statement week=2026-01-05").all_text) == "200.00"
    assert _payroll(bot, "2026-01-05") == {"ULA": "300.00", "UKOL": "200.00"}
    assert _payroll(bot, "2026-01-12") == {"ULA": "100.00", "UKOL": "300.00"}
    for user in ("ULA", "UKOL"):
        assert len(dm_texts(bot, user, "pay statement")) == 2


def test_a_clock_in_still_running_at_monday_9_is_on_the_statement(bot: BotHarness) -> None:
    """Clocked in since Sunday 22:00 when the statement goes out: its two hours of that week are
    shown as still clocked in (not approved yet, so not in the total), the same in the payroll read
    at that moment; once clocked out they are paid in that week, and the week says so."""
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    review = add_task(bot, "Review", 10_000, holder="U1")  # $100/h
    _work(bot, "U1", "2026-01-07T10:00:00", timedelta(hours=1), review)
    bot.clock.set(at("2026-01-11T22:00:00"))
    assert "Clocked in" in bot.command("U1", "/hours", f"in T-{review}").text
    bot.clock.set(at("2026-01-12T09:00:00"))  # Monday 09:00, still clocked in
    dm = _dm(bot, "U1", "pay statement")
    _sent(bot, "U1")
    assert _statement_total(dm) == "100.00"
    assert (
        "Still clocked in (E-2, since Sun 11 Jan, 22:00 UTC): 2.00 h of it fall in the week of 05 Jan, not in this total"
        in dm
    )
    assert "`/hours statement week=2026-01-05` shows it" in dm
    rows = _payroll_rows(bot, "2026-01-05")
    assert [(r["item"], r["description"], r["amount_usd"]) for r in rows if r["member_id"] == "U1"] == [
        ("T-1", "Review", "100.00"),
        ("E-2", "2.00 h still clocked in: not approved yet, not in the total", ""),
        ("member total", "", "100.00"),
    ]
    assert "Still clocked in (E-2" in bot.command("U1", "/hours", "statement").all_text

    bot.clock.set(at("2026-01-12T09:30:00"))
    assert "Clocked out" in bot.command("U1", "/hours", "out").text
    again = bot.command("U1", "/hours", "statement").all_text
    assert _statement_total(again) == "300.00" and "Still clocked in" not in again
    assert _payroll(bot, "2026-01-05") == {"U1": "300.00"}
    assert len(dm_texts(bot, "U1", "pay statement")) == 1


def _crashed(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the process died here")


def test_a_statement_cut_off_after_its_post_is_found_in_the_dm_not_sent_again(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender posted the statement and died before recording it: the row is left "sending".
    The sweep after it counts as cut off finds the DM by its metadata and records it, sending nothing."""
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    _work(bot, "U1", "2026-01-07T10:00:00", timedelta(hours=1), add_task(bot, "Review", 10_000, holder="U1"))
    monkeypatch.setattr(pay_rules, "statement_sent", _crashed)
    bot.clock.set(at("2026-01-12T09:00:00"))
    posted = bot.wait_dm("U1", "pay statement")
    settle()
    assert _in_state(bot, "U1", "sending")
    monkeypatch.undo()
    bot.clock.advance(minutes=15)  # the next sweep: that "sending" is stale now
    _sent(bot, "U1")
    row = _ledger(bot, "U1")
    assert row is not None and (row.message_ts, row.total_cents) == (posted.response["ts"], 10_000)
    bot.clock.advance(minutes=15)
    settle()
    assert len(dm_texts(bot, "U1", "pay statement")) == 1


def test_a_statement_cut_off_before_its_post_is_sent_once(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender died before its post reached Slack: the sweep after looks in the DM, doesn't find
    it there, and sends it, once."""
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    _work(bot, "U1", "2026-01-07T10:00:00", timedelta(hours=1), add_task(bot, "Review", 10_000, holder="U1"))
    monkeypatch.setattr(pay_jobs, "paced_dm", _crashed)
    bot.clock.set(at("2026-01-12T09:00:00"))
    eventually(lambda: _in_state(bot, "U1", "sending"))
    settle()
    assert not dm_texts(bot, "U1", "pay statement")
    monkeypatch.undo()
    looked = len(bot.fake.calls_to("conversations.history"))
    bot.clock.advance(minutes=15)
    _sent(bot, "U1")
    assert len(bot.fake.calls_to("conversations.history")) == looked + 1
    bot.clock.advance(minutes=15)
    settle()
    assert len(dm_texts(bot, "U1", "pay statement")) == 1


def _fails(error: str, method: str = "chat.postMessage") -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise SlackFailure(method, error)

    return fail


def test_a_statement_in_doubt_whose_dm_cant_be_searched_is_looked_for_again_not_given_up(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its post timed out (it may be in the DM), then the DM can't be searched for many sweeps:
    each look-up that couldn't be made costs no attempt, so once Slack answers it is looked for
    and, not there, sent once."""
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    _work(bot, "U1", "2026-01-07T10:00:00", timedelta(hours=1), add_task(bot, "Review", 10_000, holder="U1"))
    monkeypatch.setattr(pay_jobs, "paced_dm", _fails("request_timeout"))
    monkeypatch.setattr(pay_jobs, "find_dm", _fails("ratelimited", "conversations.history"))
    bot.clock.set(at("2026-01-12T09:00:00"))
    eventually(lambda: _in_state(bot, "U1", "sending"))
    for _ in range(pay_rules.MAX_ATTEMPTS + 2):
        bot.clock.advance(minutes=15)
        settle()
        row = _ledger(bot, "U1")
        assert row is not None and (row.state, row.attempts) == ("sending", 1)
    monkeypatch.undo()
    bot.clock.advance(minutes=15)
    _sent(bot, "U1")
    bot.clock.advance(minutes=15)
    settle()
    assert len(dm_texts(bot, "U1", "pay statement")) == 1


def test_a_statement_that_keeps_failing_is_given_up_once_and_logged(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack refuses the post at every sweep: after MAX_ATTEMPTS posts the row is "failed" and the
    log says so once; no sweep after that tries again."""
    make_lead(bot, tz="UTC")
    add_member(bot, "U1", "UTC")
    _work(bot, "U1", "2026-01-07T10:00:00", timedelta(hours=1), add_task(bot, "Review", 10_000, holder="U1"))
    posts: list[object] = []

    def refused(*args: object, **kwargs: object) -> None:
        posts.append(args)
        raise SlackFailure("chat.postMessage", "ratelimited")

    monkeypatch.setattr(pay_jobs, "paced_dm", refused)
    bot.clock.set(at("2026-01-12T09:00:00"))
    for _ in range(pay_rules.MAX_ATTEMPTS + 3):
        settle()
        bot.clock.advance(minutes=15)
    eventually(lambda: _in_state(bot, "U1", "failed"))
    settle()
    assert len(posts) == pay_rules.MAX_ATTEMPTS
    assert sum("given up" in r.getMessage() for r in caplog.records) == 1


def test_the_monday_statement_follows_new_york_across_both_dst_changes(sqlite_bot: BotHarness) -> None:
    """A night across Sunday midnight on the weekend clocks change: split at local midnight, and the
    statement goes out at 09:00 local on Monday, 13:00 UTC in March (EDT), 14:00 UTC in November (EST)."""
    bot = sqlite_bot
    make_lead(bot, tz="UTC")
    add_member(bot, "UNY", "America/New_York")
    review = add_task(bot, "Review", 10_000, holder="UNY")  # $100/h
    for sunday_night, nearly, due, week in (
        (
            "2026-03-09T03:00:00",
            "2026-03-09T12:45:00",
            "2026-03-09T13:00:00",
            "02 Mar 2026",
        ),  # DST began Sun 8 Mar
        (
            "2026-11-02T04:00:00",
            "2026-11-02T13:45:00",
            "2026-11-02T14:00:00",
            "26 Oct 2026",
        ),  # DST ended Sun 1 Nov
    ):
        _work(bot, "UNY", sunday_night, timedelta(hours=2), review)  # Sunday 23:00 – Monday 01:00 local
        bot.clock.set(at(nearly))  # 08:45 in New York
        settle()
        assert not dm_texts(bot, "UNY", f"week of {week}")
        bot.clock.set(at(due))
        statement = _dm(bot, "UNY", f"week of {week}")
        assert "T-1 Review: 1.00 h × $100.00/h = *$100.00*" in statement  # the hour before midnight
        assert _statement_total(statement) == "100.00"
    assert (
        "Mon 02 Mar – Sun 08 Mar 2026" in bot.command("UNY", "/hours", "statement week=2026-03-02").all_text
    )
    assert (
        "Mon 26 Oct – Sun 01 Nov 2026" in bot.command("UNY", "/hours", "statement week=2026-10-26").all_text
    )


def test_the_statement_shows_flat_referral_bonuses_earned_and_pending(bot: BotHarness) -> None:
    make_lead(bot, tz="UTC")
    bot.fake.add_user("U1", name="ana", tz="UTC")
    assert "R-1" in bot.command("U1", "/refer", "gus@x.example Gus").text
    assert "R-2" in bot.command("U1", "/refer", "hal@x.example Hal").text
    for referral in ("R-1", "R-2"):
        for status in ("applied", "interviewing", "hired"):
            bot.command(LEAD, "/referrals", f"set {referral} {status}")
    assert bot.driver is not None
    for user_id, email in (("UGUS", "gus@x.example"), ("UHAL", "hal@x.example")):
        assert bot.driver.team_join(bot.fake.add_user(user_id, email=email, tz="UTC")).status == 200
        bot.wait_dm("U1", f"just joined the workspace as <@{user_id}>")
    _work(bot, "UGUS", "2026-01-06T08:00:00", timedelta(hours=10))  # no task: counts once approved
    assert "Approved E-1" in bot.command(LEAD, "/hours", "approve E-1").text
    bot.wait_dm("U1", "your $250 referral bonus is earned")
    bot.clock.set(at("2026-01-12T09:00:00"))
    statement = _dm(bot, "U1", "pay statement")
    assert "• R-1 Gus: referral bonus earned: *$250.00*" in statement
    assert (
        "Referrals on their way: R-2 Hal: referral bonus $250.00 pending (once they've tracked the hours)"
        in statement
    )
    assert _statement_total(statement) == "250.00"


# ---- the share model, as the referrer sees it ----------------------------------------------------


@pytest.fixture
def share_bot(sqlite_url: str, fake: FakeSlack) -> Iterator[BotHarness]:
    env = {
        "REFERRAL_MODEL": "share",
        "REFERRAL_SHARE_PERCENT": "10",
        "REFERRAL_SHARE_MONTHS": "12",
        "REFERRAL_SHARE_CAP": "150",
    }
    harness = BotHarness(sqlite_url, env=env, fake=fake)
    harness.start()
    yield harness
    harness.close()


def test_share_referral_shows_earned_and_left_and_is_in_the_statement(share_bot: BotHarness) -> None:
    bot = share_bot
    make_lead(bot, tz="UTC")
    bot.fake.add_user("U1", name="ana", email="ana@example.com")
    assert "R-1" in bot.command("U1", "/refer", "bo@x.example Bo").text
    joined = bot.fake.add_user("U9", name="bo", email="bo@x.example")
    assert bot.driver is not None and bot.driver.team_join(joined).status == 200
    bot.wait_dm("U1", "just joined")
    for status in ("applied", "interviewing", "hired"):
        bot.command(LEAD, "/referrals", f"set R-1 {status}")
    bot.wait_dm("U1", "From now on you earn 10% of their pay for 12 months after the hire, up to $150")
    assert "never eligible" in bot.command(LEAD, "/referrals", "set R-1 eligible").text
    assert (
        "share: $0.00 earned so far, $150.00 left before the $150 cap"
        in bot.command("U1", "/referrals").all_text
    )
    work = add_task(bot, "Review", 10_000, holder="U9")
    _work(bot, "U9", "2026-01-06T10:00:00", timedelta(hours=10), work)  # $1,000 → $100
    _work(bot, "U9", "2026-01-13T10:00:00", timedelta(hours=10), work)  # $1,000 → $50 (the cap)
    mine = bot.command("U1", "/referrals").all_text
    assert "share: $150.00 earned so far, $0.00 left before the $150 cap" in mine
    week1 = bot.command("U1", "/hours", "statement week=2026-01-05").all_text
    assert (
        "share of their pay this week: *$100.00* ($100.00 earned so far, $50.00 left before the cap)" in week1
    )
    assert _statement_total(week1) == "100.00"
    settle()
    bot.clock.set(at("2026-01-19T14:00:00"))  # Monday 09:00 in New York, the referrer's zone
    week2 = bot.wait_dm("U1", "pay statement for the week of 12 Jan 2026")  # the referrer had a reward
    assert week2.params["text"].endswith("$50.00")
    # Switching the model applies to new referrals only: R-1 keeps its share, R-2 is flat.
    bot.extra_env["REFERRAL_MODEL"] = "flat"
    bot.restart()
    assert "you earn $250" in bot.command("U1", "/refer", "cy@x.example Cy").text
    mine = bot.command("U1", "/referrals").all_text
    assert "R-2* Cy (cy@x.example): *referred*" in mine and "$250 pending" in mine
    assert "share: $150.00 earned so far, $0.00 left before the $150 cap" in mine
