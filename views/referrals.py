"""Referral messages, modals, the Home section, the leads' digest and the CSV export."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from core.money import csv_dollars, dollars
from core.text import csv_cell, escape
from db.models import Referral
from domain import audit
from domain.pay import Progress
from domain.referrals import (
    APPLIED,
    ELIGIBLE,
    HIRED,
    INTERVIEWING,
    PAID,
    REFERRED,
    REJECTED,
    SHARE,
    Totals,
    Waiting,
    format_hours,
    ref,
)
from views.blocks import (
    Block,
    actions,
    button,
    context,
    fit_message,
    local_time,
    modal,
    section,
    sections,
    slack_date,
    text_input,
)
from views.files import csv_file

REFER_CALLBACK = "referral_new"
REFER_BUTTON = "referrals_refer"
LEADERBOARD_BUTTON = "referrals_leaderboard"
MINE_MORE = "referrals_mine_more"
ALL_MORE = "referrals_all_more"

_EMOJI = {
    REFERRED: ":envelope:",
    APPLIED: ":memo:",
    INTERVIEWING: ":speech_balloon:",
    HIRED: ":handshake:",
    ELIGIBLE: ":moneybag:",
    PAID: ":white_check_mark:",
    REJECTED: ":no_entry_sign:",
}


def who(referral: Referral) -> str:
    """How a referee is named: their name and address, or just the address."""
    email = escape(referral.email)
    return f"{escape(referral.name)} ({email})" if referral.name else email


def share_terms(referral: Referral) -> str:
    percent = (Decimal(referral.share_basis_points) / 100).normalize()
    return (
        f"{percent:f}% of their pay for {referral.share_months} months after the hire, "
        f"up to {dollars(referral.share_cap_cents)}"
    )


def _share(referral: Referral, progress: Progress | None) -> str:
    if referral.status == REJECTED:
        return "no reward"
    if progress is None or referral.status != HIRED:
        return f"share pending: {share_terms(referral)}"
    return (
        f"share: {dollars(progress.earned_cents, always_cents=True)} earned so far, "
        f"{dollars(progress.left_cents, always_cents=True)} left before the {dollars(progress.cap_cents)} cap"
    )


def _bonus(
    referral: Referral,
    hours: Decimal | None,
    threshold: Decimal,
    progress: Mapping[int, Progress] | None = None,
) -> str:
    if referral.reward_model == SHARE:
        return _share(referral, (progress or {}).get(referral.id or 0))
    amount = dollars(referral.bonus_cents)
    if referral.status == PAID:
        return f"{amount} paid"
    if referral.status == ELIGIBLE:
        return f"{amount} earned, to be paid with the next weekly payout"
    if referral.status == REJECTED:
        return "no bonus"
    if referral.status == HIRED:
        done = format_hours(hours or Decimal(0)) if referral.referee_user_id else "0"
        return f"{amount} pending: {done} of {format_hours(threshold)} hours tracked"
    return f"{amount} pending"


def totals_line(totals: Totals) -> str:
    return (
        f"*Bonus:* earned {dollars(totals.earned_cents)} (awaiting payout) · "
        f"pending {dollars(totals.pending_cents)} · paid {dollars(totals.paid_cents)}"
    )


def _mine_line(
    referral: Referral, hours: Decimal | None, threshold: Decimal, progress: Mapping[int, Progress] | None
) -> str:
    return (
        f"{_EMOJI[referral.status]} *{ref(referral.id)}* {who(referral)}: *{referral.status}* "
        f"since {slack_date(referral.updated_at, '{date_short_pretty}')} · "
        f"{_bonus(referral, hours, threshold, progress)}"
    )


def my_referrals(
    items: Sequence[Referral],
    hours: dict[str, Decimal],
    totals: Totals,
    threshold: Decimal,
    more_before: int | None,
    first_page: bool,
    progress: Mapping[int, Progress] | None = None,
) -> tuple[str, list[Block]]:
    if not items:
        text = "You haven't referred anyone yet. Refer an expert with `/refer their@email.com`."
        return text, [section(text)]
    blocks: list[Block] = []
    if first_page:
        blocks.append(section(f"*Your referrals* ({totals.count})\n{totals_line(totals)}"))
    lines = [_mine_line(r, hours.get(r.referee_user_id or ""), threshold, progress) for r in items]
    blocks += sections(lines)
    if more_before is not None:
        blocks.append(actions(button("More", MINE_MORE, value=str(more_before))))
    return f"Your referrals: {totals.count}", fit_message(blocks)


def _lead_line(referral: Referral) -> str:
    referee = f" · joined as <@{referral.referee_user_id}>" if referral.referee_user_id else ""
    changed_by = "automatically" if referral.updated_by == audit.BOT else f"by <@{referral.updated_by}>"
    skill = f" · `{referral.skill}`" if referral.skill else ""
    return (
        f"{_EMOJI[referral.status]} *{ref(referral.id)}* {who(referral)}{skill}: *{referral.status}* "
        f"{slack_date(referral.updated_at, '{date_short_pretty}')} {changed_by} · "
        f"referred by <@{referral.referrer_id}>{referee} · {dollars(referral.bonus_cents)}"
    )


def all_referrals(
    items: Sequence[Referral], status: str | None, more_before: int | None, first_page: bool
) -> tuple[str, list[Block]]:
    scope = f"{status} referrals" if status else "referrals"
    if not items:
        text = f"There are no {scope}." if first_page else f"No more {scope}."
        return text, [section(text)]
    blocks: list[Block] = []
    if first_page:
        blocks.append(section(f"*All {scope}*, newest first"))
    blocks += sections([_lead_line(r) for r in items])
    if more_before is not None:
        blocks.append(actions(button("More", ALL_MORE, value=f"{status or ''}:{more_before}")))
    else:
        blocks.append(context("That's all of them."))
    blocks.append(context("Move one along with `/referrals set R-n <status>`."))
    return f"{len(items)} {scope}", fit_message(blocks)


# ---- referring -----------------------------------------------------------------------------------


def refer_modal(private_metadata: str) -> dict[str, Any]:
    return modal(
        REFER_CALLBACK,
        "Refer someone",
        [
            section(
                "Refer an expert you'd vouch for. Your bonus is earned once they're hired and have tracked "
                "their first hours; I'll message you at every step."
            ),
            _input("email", "Their email address", placeholder="ana@example.com", max_length=254),
            _input("name", "Their name", placeholder="Ana Silva", optional=True, max_length=200),
            _input(
                "skill",
                "Their field",
                placeholder="legal, medicine, python…",
                optional=True,
                max_length=40,
                hint="One short word or slug, like the skills leads vet.",
            ),
        ],
        submit="Refer",
        private_metadata=private_metadata,
    )


def _input(block_id: str, label: str, **kwargs: Any) -> Block:
    """A text input whose action_id is its block_id: action_ids must differ across the view, and
    `text_input` names every one "value"."""
    block = text_input(block_id, label, **kwargs)
    block["element"]["action_id"] = block_id
    return block


def recorded_text(referral: Referral, threshold: Decimal) -> str:
    if referral.reward_model == SHARE:
        return (
            f":white_check_mark: Referral *{ref(referral.id)}* recorded for {who(referral)}. Thank you!\n"
            f"*What happens next:* they apply and a lead takes them through interviews. Once they're hired "
            f"you earn {share_terms(referral)} (hours they work from today on), paid weekly with your own. "
            "I'll DM you at every step; `/referrals` shows what each referral has earned."
        )
    return (
        f":white_check_mark: Referral *{ref(referral.id)}* recorded for {who(referral)}. Thank you!\n"
        f"*What happens next:* they apply and a lead takes them through interviews. Once they're hired "
        f"and have tracked {format_hours(threshold)} hours, you earn {dollars(referral.bonus_cents)}, "
        "paid with the next weekly payout. I'll DM you at every step; `/referrals` shows where each "
        "referral stands."
    )


# ---- DMs to the referrer -------------------------------------------------------------------------


def status_dm(referral: Referral, after: str, by: str, at: datetime, tz: str, threshold: Decimal) -> str:
    """What the referrer reads when a lead moves their referral, in plain words."""
    subject = who(referral)
    when = local_time(at, tz)
    rid = ref(referral.id)
    bonus = dollars(referral.bonus_cents)
    news = {
        APPLIED: f"{subject} has applied. A lead will review the application.",
        INTERVIEWING: f"{subject} is now interviewing with us.",
        HIRED: (
            f"{subject} has been hired! From now on you earn {share_terms(referral)}, paid weekly; "
            "`/referrals` shows what it has earned."
            if referral.reward_model == SHARE
            else f"{subject} has been hired! Once they have tracked {format_hours(threshold)} hours, "
            f"your {bonus} bonus is earned."
        ),
        PAID: f"Your {bonus} referral bonus for {subject} has been paid. Thank you for growing the community!",
        REJECTED: f"{subject} won't be moving forward this time. Thank you for the referral all the same.",
    }[after]
    return f"*Referral {rid}:* {news}\n_Updated by <@{by}> on {when}._"


def eligible_dm(referral: Referral, hours: Decimal, at: datetime, tz: str) -> str:
    return (
        f":moneybag: *Referral {ref(referral.id)}:* {who(referral)} has tracked {format_hours(hours)} hours, "
        f"so your {dollars(referral.bonus_cents)} referral bonus is earned. A lead marks it paid with the "
        f"next weekly payout.\n_{local_time(at, tz)}._"
    )


def joined_dm(referral: Referral) -> str:
    return (
        f":wave: *Referral {ref(referral.id)}:* {who(referral)} just joined the workspace as "
        f"<@{referral.referee_user_id}>. Their tracked hours will count toward your bonus once they're hired."
    )


# ---- leads ---------------------------------------------------------------------------------------


def set_reply(referral: Referral, before: str, after: str, promoted_hours: Decimal | None) -> str:
    text = (
        f":white_check_mark: {ref(referral.id)} ({who(referral)}) moved from {before} to *{after}*. "
        f"I let <@{referral.referrer_id}> know."
    )
    if promoted_hours is not None:
        text += (
            f"\nThey have already tracked {format_hours(promoted_hours)} hours, so it is now *eligible*: "
            f"{dollars(referral.bonus_cents)} to pay. Mark it with `/referrals set {ref(referral.id)} paid` "
            "once paid."
        )
    return text


def digest(waiting: Waiting) -> tuple[str, list[Block]]:
    parts = [f"{n} {status}" for status, n in waiting.counts.items()]
    text = f"Referrals waiting on a lead: {', '.join(parts)}"
    blocks: list[Block] = [
        section(f"*Weekly referrals digest:* {waiting.total} waiting on a lead ({', '.join(parts)})."),
    ]
    if waiting.owed_cents:
        blocks.append(section(f":moneybag: {dollars(waiting.owed_cents)} in earned bonuses to pay."))
    lines = [
        f"{_EMOJI[r.status]} *{ref(r.id)}* {who(r)}: {r.status} since "
        f"{slack_date(r.updated_at, '{date_short_pretty}')} · referred by <@{r.referrer_id}>"
        for r in waiting.oldest
    ]
    blocks += sections(lines)
    shown = len(waiting.oldest)
    more = f"Showing the {shown} that have waited longest. " if shown < waiting.total else ""
    blocks.append(
        context(
            f"{more}`/referrals all status=<status>` lists them; `/referrals set R-n <status>` moves one."
        )
    )
    return text, fit_message(blocks)


EXPORT_COLUMNS = (
    "id",
    "email",
    "name",
    "skill",
    "status",
    "referrer_id",
    "referrer_name",
    "referee_user_id",
    "bonus_usd",
    "created_at",
    "last_change_at",
    "last_change_by",
    "hired_at",
    "eligible_at",
    "paid_at",
)


def export_csv(rows: Iterable[tuple[Referral, str]]) -> IO[bytes]:
    """The export as a CSV file, written as the rows come (referral, referrer's name); the caller
    uploads and closes it."""
    return csv_file(EXPORT_COLUMNS, (_export_cells(r, name) for r, name in rows), lineterminator="\n")


def _export_cells(r: Referral, referrer_name: str) -> list[str]:
    return [
        csv_cell(v)
        for v in (
            ref(r.id),
            r.email,
            r.name,
            r.skill,
            r.status,
            r.referrer_id,
            referrer_name,
            r.referee_user_id,
            csv_dollars(r.bonus_cents),
            r.created_at,
            r.updated_at,
            r.updated_by,
            r.hired_at,
            r.eligible_at,
            r.paid_at,
        )
    ]


# ---- the leaderboard and the Home tab ------------------------------------------------------------


def leaderboard_lines(rows: Sequence[tuple[str, int]]) -> str:
    if not rows:
        return "_No hires from opted-in members yet this month._"
    medals = [":first_place_medal:", ":second_place_medal:", ":third_place_medal:"]
    return "\n".join(
        f"{medals[i] if i < 3 else f'{i + 1}.'} <@{user_id}>: {n} hired"
        for i, (user_id, n) in enumerate(rows)
    )


def leaderboard_text(month: datetime, rows: Sequence[tuple[str, int]], shown: bool) -> str:
    you = (
        "You're on it (`/referrals leaderboard off` to leave)."
        if shown
        else "You're not on it: `/referrals leaderboard on` to join."
    )
    return f"*Referral leaderboard, {month:%B %Y}* (hired referrals, opted-in members only)\n{leaderboard_lines(rows)}\n_{you}_"


def home(
    items: Sequence[Referral],
    hours: dict[str, Decimal],
    totals: Totals,
    threshold: Decimal,
    month: datetime,
    board: Sequence[tuple[str, int]],
    shown: bool,
    more: bool,
    progress: Mapping[int, Progress] | None = None,
) -> list[Block]:
    blocks: list[Block] = [
        section(
            f"Refer an expert you'd vouch for: you earn the bonus once they're hired and have tracked "
            f"{format_hours(threshold)} hours.",
            accessory=button("Refer someone", REFER_BUTTON, style="primary"),
        )
    ]
    if items:
        blocks.append(section(f"*Your referrals* ({totals.count})\n{totals_line(totals)}"))
        blocks += sections(
            [_mine_line(r, hours.get(r.referee_user_id or ""), threshold, progress) for r in items]
        )
        if more:
            blocks.append(context("Older ones: `/referrals`."))
    else:
        blocks.append(context("You haven't referred anyone yet."))
    blocks.append(
        section(
            f"*Leaderboard, {month:%B %Y}* (hired referrals, opted-in members only)\n{leaderboard_lines(board)}",
            accessory=button(
                "Hide me" if shown else "Show me on it", LEADERBOARD_BUTTON, value="off" if shown else "on"
            ),
        )
    )
    return blocks
