"""Joining and vetting in Block Kit: the welcome DM, the leads' daily digest of new members, the
catalogue, the application card and its modals, outcome DMs, the Home section, and the handbook
rule quoted where work is submitted.

Everything a member typed (evidence, reasons, skill names) is escaped with `core.text.escape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.text import escape
from db.models import Skill, SkillApplication, Welcome
from domain import vetting as rules
from views.blocks import (
    Block,
    actions,
    button,
    clip,
    context,
    fields,
    fit_message,
    local_time,
    modal,
    option,
    section,
    sections,
    slack_date,
    text_input,
)
from views.policy import Source, quoted

SKILLS_PAGE = 20
APPLICATIONS_PAGE = 10
DIGEST_LINES = 40

APPLY = "vetting_apply_open"
ASK_HANDBOOK = "vetting_ask_handbook"
APPROVE = "vetting_approve"
DECLINE = "vetting_decline_open"
SKILLS_MORE = "vetting_skills_more"
APPLICATIONS_MORE = "vetting_applications_more"
APPLY_MODAL = "vetting_apply"
DECLINE_MODAL = "vetting_decline"


@dataclass(frozen=True)
class CitedRule:
    """A handbook rule as shown: its quote and where it comes from."""

    quote: str
    source: Source


def cite(rule: CitedRule) -> list[Block]:
    return [section(quoted(escape(rule.quote))), context(f"From the handbook: {rule.source.cite()}")]


# ---- welcome -------------------------------------------------------------------------------------


def welcome_dm(rules_: list[CitedRule], skills: int) -> tuple[str, list[Block]]:
    text = (
        "Welcome to the crew! Here is what crewcall does for you, and three rules worth knowing on day one."
    )
    blocks: list[Block] = [
        section(
            ":wave: *Welcome to the crew!*\n"
            "crewcall is where you find paid tasks and claim them with one tap (`/tasks`), join review "
            "shifts (`/shifts`), clock your hours (`/hours in T-12` … `/hours out`), and ask the contractor "
            "handbook anything (`/policy` or a DM to me)."
        ),
        section("*Three rules that most often cost people their place:*"),
    ]
    for rule in rules_:
        blocks += cite(rule)
    if not rules_:
        blocks.append(
            context("Read the contractor handbook before your first task: `/policy` answers from it.")
        )
    have = f" ({skills} skills in the catalogue: `/crew skills`)" if skills else ""
    blocks.append(
        section(
            "*Getting vetted.* Tasks and shifts are matched to your vetted skills. Apply for a skill"
            f"{have} with a link or note showing your expertise; a lead who holds it reviews your "
            "application and you get a DM with the decision. `/crew apply legal <link>` works too."
        )
    )
    blocks.append(
        actions(
            button("Apply for a skill", APPLY, value="welcome", style="primary"),
            button("Ask the handbook", ASK_HANDBOOK, value="welcome"),
        )
    )
    return text, blocks


def digest(welcomes: list[Welcome], total: int, open_applications: int) -> tuple[str, list[Block]]:
    text = f"{total} new member{'s' if total != 1 else ''} since the last digest"
    lines = [
        f"• <@{w.user_id}> · {'joined' if w.trigger == rules.TEAM_JOIN else 'first opened crewcall'} "
        f"{slack_date(w.created_at)}"
        for w in welcomes[:DIGEST_LINES]
    ]
    blocks: list[Block] = [section(f":seedling: *{text}*")]
    blocks += sections(lines)
    if total > len(lines):
        blocks.append(context(f"…and {total - len(lines)} more."))
    waiting = (
        f"{open_applications} skill application{'s' if open_applications != 1 else ''} waiting: "
        "`/crew applications`."
        if open_applications
        else "No skill applications are waiting."
    )
    blocks.append(context(f"Each got the welcome DM with the handbook's key rules. {waiting}"))
    return text, fit_message(blocks)


# ---- the catalogue -------------------------------------------------------------------------------


def skills_list(rows: list[tuple[Skill, int]], offset: int, has_more: bool, can_edit: bool) -> list[Block]:
    if not rows:
        empty = "The skill catalogue is empty." if not offset else "No more skills."
        how = ' Add one with `/crew skills add legal "Legal review"`.' if can_edit else ""
        return [section(empty + how)]
    lines = [f"`{s.slug}` · {escape(s.name)} · {n} member{'s' if n != 1 else ''}" for s, n in rows]
    blocks: list[Block] = [section(f"*Skill catalogue* (page {offset // SKILLS_PAGE + 1})")]
    blocks += sections(lines)
    hint = "Apply with `/crew apply <skill> <link or note>`."
    if can_edit:
        hint += ' Leads: `/crew skills add <slug> "Name"`, `/crew skills remove <slug>`.'
    blocks.append(context(hint))
    if has_more:
        blocks.append(actions(button("More", SKILLS_MORE, value=str(offset + SKILLS_PAGE))))
    return blocks


# ---- applications --------------------------------------------------------------------------------


def _evidence(application: SkillApplication) -> str:
    return quoted(escape(clip(application.evidence, 1500))) if application.evidence else "_no evidence given_"


def card(application: SkillApplication, declines: int) -> tuple[str, list[Block]]:
    """The application's card in LEADS_CHANNEL: true to its state, buttons only while it is open."""
    who = f"<@{application.user_id}>"
    title = f"*{rules.ref(application.id)} · {who} applies for `{application.skill}`*"
    blocks: list[Block] = [section(title), section(_evidence(application))]
    history = f" · declined {declines} time{'s' if declines != 1 else ''} before" if declines else ""
    blocks.append(context(f"Applied {slack_date(application.created_at)}{history}"))
    if application.state == rules.OPEN:
        value = str(application.id)
        blocks.append(
            actions(
                button("Approve", APPROVE, value=value, style="primary"),
                button("Decline", DECLINE, value=value, style="danger"),
                block_id=f"application_{application.id}",
            )
        )
        blocks.append(context(f"Leads who hold `{application.skill}`, and admins, can decide."))
        state = "open"
    else:
        when = slack_date(application.decided_at) if application.decided_at else ""
        if application.state == rules.APPROVED:
            blocks.append(section(f":white_check_mark: *Approved* by <@{application.decided_by}> {when}"))
        else:
            reason = f"\n{quoted(escape(application.reason))}" if application.reason else ""
            blocks.append(section(f":x: *Declined* by <@{application.decided_by}> {when}{reason}"))
        state = application.state
    return f"{rules.ref(application.id)}: {application.skill} application ({state})", blocks


def applications_list(applications: list[SkillApplication], offset: int, total: int) -> list[Block]:
    if not applications:
        return [
            section("No skill applications are waiting. :tada:" if not offset else "No more applications.")
        ]
    blocks: list[Block] = [
        section(
            f"*Open skill applications*, oldest first ({offset + 1}–{offset + len(applications)} of {total})"
        )
    ]
    for application in applications:
        blocks.append(
            section(
                f"*{rules.ref(application.id)}* · <@{application.user_id}> · `{application.skill}` · "
                f"{slack_date(application.created_at)}\n{_evidence(application)}"
            )
        )
        value = str(application.id)
        blocks.append(
            actions(
                button("Approve", APPROVE, value=value, style="primary"),
                button("Decline", DECLINE, value=value, style="danger"),
            )
        )
    if offset + len(applications) < total:
        blocks.append(actions(button("More", APPLICATIONS_MORE, value=str(offset + APPLICATIONS_PAGE))))
    return fit_message(blocks)


def apply_modal(skills: list[Skill], metadata: str) -> dict[str, Any]:
    if not skills:
        return modal(
            APPLY_MODAL,
            "Apply for a skill",
            [section("The skill catalogue is empty for now: a lead adds skills first. Try again later.")],
            submit=None,
            close="OK",
        )
    picker: Block = {
        "type": "input",
        "block_id": "skill",
        "label": {"type": "plain_text", "text": "Skill"},
        "element": {
            "type": "static_select",
            "action_id": "value",
            "placeholder": {"type": "plain_text", "text": "Pick a skill"},
            "options": [option(f"{s.name} ({s.slug})", s.slug) for s in skills[:100]],
        },
    }
    return modal(
        APPLY_MODAL,
        "Apply for a skill",
        [
            section("A lead who holds the skill reviews your application; you get a DM with the decision."),
            picker,
            text_input(
                "evidence",
                "Evidence",
                "A link to your bar admission, publications, portfolio… or a short note",
                multiline=True,
                optional=True,
                max_length=rules.EVIDENCE_MAX,
            ),
        ],
        submit="Apply",
        private_metadata=metadata,
    )


def decline_modal(application: SkillApplication, metadata: str) -> dict[str, Any]:
    return modal(
        DECLINE_MODAL,
        f"Decline {rules.ref(application.id)}",
        [
            section(f"<@{application.user_id}> applied for `{application.skill}`.\n{_evidence(application)}"),
            text_input(
                "reason",
                "Why is it declined?",
                "They are told this, and may apply again after the cooldown.",
                multiline=True,
                max_length=rules.REASON_MAX,
            ),
        ],
        submit="Decline",
        private_metadata=metadata,
    )


def applied_text(application: SkillApplication, card_posted: bool) -> str:
    where = "The leads have it" if card_posted else "It is waiting in the leads' list"
    return (
        f":inbox_tray: Applied for `{application.skill}` ({rules.ref(application.id)}). {where}; "
        "you'll get a DM with the decision."
    )


def approved_dm(application: SkillApplication) -> str:
    return (
        f":tada: <@{application.decided_by}> approved your application: you are now vetted for "
        f"`{application.skill}`. Tasks and shifts that need it are open to you: `/tasks`."
    )


def declined_dm(application: SkillApplication, again: datetime, tz: str) -> str:
    return (
        f"<@{application.decided_by}> declined your application for `{application.skill}`.\n"
        f"{quoted(escape(application.reason))}\n"
        f"You may apply again from {local_time(again, tz, '%a %d %b %Y')}, with `/crew apply {application.skill}`."
    )


# ---- Home ----------------------------------------------------------------------------------------


def home(applications: list[SkillApplication], open_total: int | None) -> list[Block]:
    blocks: list[Block] = []
    if applications:
        lines = []
        for a in applications:
            state = {rules.OPEN: "waiting for a lead", rules.APPROVED: "approved", rules.DECLINED: "declined"}
            lines.append(f"`{a.skill}` · {state.get(a.state, a.state)} · {slack_date(a.created_at)}")
        blocks += [section("*Your skill applications*"), *sections(lines)]
    else:
        blocks.append(section("Get vetted for a skill to see the tasks and shifts that need it."))
    blocks.append(actions(button("Apply for a skill", APPLY, value="home", style="primary")))
    if open_total is not None:
        blocks.append(
            fields(("Applications waiting", str(open_total)))
            if open_total
            else context("No skill applications are waiting.")
        )
        if open_total:
            blocks.append(context("`/crew applications` lists them, oldest first."))
    return blocks


# ---- the attestation -----------------------------------------------------------------------------


def attestation_refusal(task_ref: str, rule: CitedRule | None, command_hint: str) -> tuple[str, list[Block]]:
    text = (
        f":warning: {task_ref} is not submitted yet: the handbook forbids AI tools on this task, so I need "
        f"you to confirm “{rules.ATTESTATION}”."
    )
    blocks: list[Block] = [section(text)]
    if rule:
        blocks += cite(rule)
    blocks.append(context(command_hint))
    return text, blocks


def attestation_input() -> Block:
    return {
        "type": "input",
        "block_id": "attest",
        "label": {"type": "plain_text", "text": "AI tools"},
        "element": {
            "type": "checkboxes",
            "action_id": "value",
            "options": [option(rules.ATTESTATION, "yes")],
        },
    }
