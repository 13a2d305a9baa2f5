"""Hours rendering: the week's summary (in the member's zone), clock-in/out replies, the report CSV."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import IO
from zoneinfo import ZoneInfo

from core.money import csv_dollars, dollars
from core.text import csv_cell, escape
from domain.hours import SECOND, Entry, ReportRow, Week, as_hours
from views.blocks import Block, context, local_time, section
from views.files import csv_file


def task_label(task_id: int | None, title: str | None) -> str:
    return f"T-{task_id} {escape(title or '')}" if task_id else "no task"


def week_blocks(w: Week, tz: str, now: datetime, compact: bool = False) -> list[Block]:
    zone = ZoneInfo(tz)
    last_day = w.end - timedelta(seconds=1)
    span = f"{w.start.astimezone(zone):%a %d %b} – {last_day.astimezone(zone):%a %d %b}"
    lines = []
    for line in w.lines:
        if line.counted:
            pay = (
                f" × {dollars(line.rate_cents, always_cents=True)}/h"
                f" = *{dollars(line.earnings_cents, always_cents=True)}*"
                if line.rate_cents
                else " (no rate)"
            )
            label = task_label(line.task_id, line.title) if line.task_id else "No task"
            lines.append(f"• {label}: {line.hours} h{pay}")
    body = "\n".join(lines) or "_No tracked time yet this week._"
    blocks: list[Block] = [
        section(f"*This week* ({span})\n{body}"),
        section(f"*Total: {w.hours} h · {dollars(w.earnings_cents, always_cents=True)}*"),
    ]
    notes = []
    if w.flagged_hours:
        notes.append(
            f":triangular_flag_on_post: {w.flagged_hours} h flagged for review: not counted until a lead approves."
        )
    if w.over_limit:
        notes.append(":warning: Over 40 hours this week.")
    if w.open is not None:
        running = as_hours((now - w.open.started_at) // SECOND)
        on = f" on {task_label(w.open.task_id, w.open.task_title)}" if w.open.task_id else ""
        notes.append(
            f":stopwatch: Clocked in{on} since {local_time(w.open.started_at, tz)} ({running} h so far)."
        )
    if notes:
        blocks.append(context(*notes))
    if not compact:
        blocks.append(
            context("Weeks run Monday 00:00 to Sunday 24:00 in your timezone. Only tracked time is paid.")
        )
    return blocks


def clocked_in(e: Entry, tz: str) -> str:
    on = f" on {task_label(e.task_id, e.task_title)}" if e.task_id else ""
    return (
        f":stopwatch: Clocked in{on} at {local_time(e.started_at, tz)}. `/hours out` when you stop. "
        "I'll remind you after 10 hours and close it at 12."
    )


def clocked_out(e: Entry, tz: str) -> str:
    pay = (
        f", {dollars(e.earnings_cents, always_cents=True)} at {dollars(e.rate_cents, always_cents=True)}/h"
        if e.rate_cents
        else ""
    )
    on = f" on {task_label(e.task_id, e.task_title)}" if e.task_id else ""
    if e.flagged:
        return (
            f":triangular_flag_on_post: Your clock-in from {local_time(e.started_at, tz)} was open for 12 hours, so it "
            f"was closed at {local_time(e.ended_at or e.started_at, tz)} ({as_hours(e.seconds)} h{on}) and flagged "
            f"({e.ref}) for a lead to review. It counts once approved."
        )
    return f":white_check_mark: Clocked out at {local_time(e.ended_at or e.started_at, tz)}: {as_hours(e.seconds)} h{on}{pay}."


REPORT_COLUMNS = [
    "member_id",
    "member_name",
    "task",
    "task_title",
    "hours",
    "flagged_hours",
    "rate_usd_per_hour",
    "earnings_usd",
    "member_week_hours",
    "over_40h",
]


def report_csv(rows: Iterable[ReportRow]) -> IO[bytes]:
    """The report as a CSV file, written row by row (the caller uploads and closes it)."""
    return csv_file(REPORT_COLUMNS, (_report_cells(r) for r in rows))


def _report_cells(r: ReportRow) -> list[str]:
    # Text from people goes through csv_cell; the rest is ours and formula-safe as written (ids
    # `U…`/`T-n`, amounts and hours that are never negative), which saves a third of the report's
    # formatting at 38,000 lines.
    line = r.line
    return [
        csv_cell(r.user_id),
        csv_cell(r.name),
        f"T-{line.task_id}" if line.task_id else "",
        csv_cell(line.title) if line.task_id else "",
        f"{line.hours}",
        f"{line.flagged_hours}",
        csv_dollars(line.rate_cents) if line.rate_cents else "",
        csv_dollars(line.earnings_cents),
        f"{r.week_hours}",
        "yes" if r.over_limit else "no",
    ]
