"""Pay rendering: the weekly statement (DM and `/hours statement`), the payroll CSV, the cap
messages and the leads' Home section of members near their cap."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from zoneinfo import ZoneInfo

from core.money import csv_dollars, dollars
from core.text import csv_cell, escape
from domain import hours, pay
from domain.pay import CapStatus, RewardLine, Statement
from domain.referrals import FLAT, ref
from views.blocks import Block, context, local_time, section, sections

DISPUTE = (
    "Something wrong? Tell a lead within 7 days, with the line and why "
    "(the handbook's *Reviews and disputes*; ask `/policy how do I dispute my pay?`)."
)


def _span(s: Statement) -> str:
    zone = ZoneInfo(s.tz)
    last = s.end - timedelta(seconds=1)
    return f"{s.start.astimezone(zone):%a %d %b} – {last.astimezone(zone):%a %d %b %Y}"


def _money(amount_cents: int) -> str:
    return dollars(amount_cents, always_cents=True)


def _reward(r: RewardLine) -> str:
    who = f"{ref(r.referral_id)} {escape(r.referee)}"
    if r.model == FLAT:
        if r.cents:
            return f"• {who}: referral bonus earned: *{_money(r.cents)}*"
        return f"• {who}: referral bonus {_money(r.left_cents)} pending (once they've tracked the hours)"
    progress = f"{_money(r.earned_cents)} earned so far, {_money(r.left_cents)} left before the cap"
    if r.cents:
        return f"• {who}: share of their pay this week: *{_money(r.cents)}* ({progress})"
    return f"• {who}: share of their pay: nothing this week ({progress})"


def statement_blocks(s: Statement) -> tuple[str, list[Block]]:
    head = f"*Your pay statement* · week of {_span(s)} ({s.tz})"
    work = [
        f"• T-{line.task_id} {escape(line.title)}: {line.hours} h × {_money(line.rate_cents)}/h = *{_money(line.cents)}*"
        for line in s.lines
    ]
    if s.no_task_seconds:
        work.append(f"• No task: {hours.as_hours(s.no_task_seconds)} h (approved, no rate)")
    blocks: list[Block] = [section(head)]
    blocks += sections(["*Approved hours*", *work] if work else ["*Approved hours*\n_None this week._"])
    rewards = [_reward(r) for r in s.rewards]
    if rewards:
        blocks += sections(["*Referral rewards*", *rewards])
    total = f"*Total to be paid: {_money(s.total_cents)}*"
    if s.rewards and s.lines:
        total += f" (work {_money(s.work_cents)} + referrals {_money(s.reward_cents)})"
    blocks.append(section(total))
    notes = []
    if s.waiting_seconds:
        notes.append(
            f":hourglass: {hours.as_hours(s.waiting_seconds)} h waiting for a lead's approval "
            "(flagged, or with no task). Once approved they count in the week they were worked: "
            "`/hours statement week=…` shows it."
        )
    if s.running is not None:
        notes.append(f":stopwatch: {_still_clocked_in(s)}")
    if s.rejected_seconds:
        notes.append(
            f":no_entry_sign: {hours.as_hours(s.rejected_seconds)} h on work that was rejected: not paid."
        )
    if s.pending:
        notes.append("Referrals on their way: " + "; ".join(_reward(r)[2:] for r in s.pending))
    notes.append(DISPUTE)
    blocks += [context(n) for n in notes]
    return f"Your pay statement for the week of {s.monday:%d %b %Y}: {_money(s.total_cents)}", blocks


def _still_clocked_in(s: Statement) -> str:
    assert s.running is not None
    return (
        f"Still clocked in ({s.running.ref}, since {local_time(s.running.started_at, s.tz)}): "
        f"{hours.as_hours(s.running_seconds)} h of it fall in the week of {s.monday:%d %b}, not in this "
        "total. Once you clock out and the time is approved, it is paid with that week "
        f"(`/hours statement week={s.monday:%Y-%m-%d}` shows it)."
    )


PAYROLL_COLUMNS = [
    "week_of",
    "member_id",
    "member_name",
    "timezone",
    "item",
    "description",
    "approved_hours",
    "rate_usd_per_hour",
    "amount_usd",
]


def payroll_csv(statements: list[Statement]) -> bytes:
    """One row per member and task (and per referral reward), a row for a clock-in still running
    (its hours in the week so far, no amount: not approved yet), a total row per member, and the
    grand total; every cell formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out)

    def row(*cells: object) -> None:
        writer.writerow([csv_cell(c) for c in cells])

    row(*PAYROLL_COLUMNS)
    for s in statements:
        head = (f"{s.monday:%Y-%m-%d}", s.user_id, s.name, s.tz)
        for line in s.lines:
            row(
                *head,
                f"T-{line.task_id}",
                line.title,
                line.hours,
                csv_dollars(line.rate_cents),
                csv_dollars(line.cents),
            )
        for r in s.rewards:
            kind = "referral bonus" if r.model == FLAT else "referral share"
            row(*head, ref(r.referral_id), f"{kind}: {r.referee}", "", "", csv_dollars(r.cents))
        if s.running is not None:
            still = (
                f"{hours.as_hours(s.running_seconds)} h still clocked in: not approved yet, not in the total"
            )
            row(*head, s.running.ref, still, "", "", "")
        task_hours = hours.as_hours(sum(line.seconds for line in s.lines))
        row(*head, "member total", "", task_hours, "", csv_dollars(s.total_cents))
    total = sum(s.total_cents for s in statements)
    row("", "", "", "", "TOTAL", f"{len(statements)} member(s)", "", "", csv_dollars(total))
    return out.getvalue().encode("utf-8")


# ---- caps ---------------------------------------------------------------------------------------


def cap_left(status: CapStatus) -> str:
    left = hours.as_hours(status.left // hours.SECOND)
    return f"{left} h left of your {pay.format_hours(status.cap.hours)} h weekly cap"


def stopped_at_cap_dm(entry: hours.Entry, status: CapStatus, tz: str, when: str) -> str:
    return (
        f":octagonal_sign: You reached your weekly cap of {pay.format_hours(status.cap.hours)} h, so I clocked you "
        f"out at {when} ({entry.ref}, marked _stopped at cap_). The time up to then counts. A lead can raise "
        "your cap with `/crew cap`; your week starts again Monday 00:00 "
        f"({tz})."
    )


def near_cap_dm(status: CapStatus) -> str:
    return (
        f":hourglass_flowing_sand: Heads up: you've clocked {status.clocked_hours} h this week, 90% of your "
        f"{pay.format_hours(status.cap.hours)} h weekly cap. At the cap I'll clock you out; a lead can raise it."
    )


def cap_home(near: list[CapStatus]) -> list[Block]:
    if not near:
        return [context("Nobody is near their weekly cap.")]
    lines = [
        f"• <@{s.user_id}>: {s.clocked_hours} h of {pay.format_hours(s.cap.hours)} h"
        + (" · *at cap*" if s.reached else "")
        + (" (own cap)" if s.cap.own else "")
        for s in near
    ]
    return [
        *sections(["*Near or at their weekly cap* (90% or more this week)", *lines]),
        context("Raise one with `/crew cap @person 45`."),
    ]
