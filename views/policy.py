"""Block Kit for policy answers: the answer with its citation and feedback buttons, the leads'
escalation card, the lead's answer modal, the FAQ pages and the edit modal, the Home section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from core.text import escape
from domain.policy.service import MAX_ANSWER_CHARS, MAX_FAQ_QUESTION_CHARS, VIA_DM, VIA_MENTION
from views.blocks import (
    Block,
    actions,
    button,
    clip,
    confirm_dialog,
    context,
    fit_message,
    modal,
    option,
    plain,
    section,
    slack_date,
    text_input,
)

# Action ids of the buttons and callback ids of the modals: built here, listened for in handlers/policy.py.
HELPFUL_BUTTON = "policy_up"
NOT_HELPFUL_BUTTON = "policy_down"
ASK_LEAD_BUTTON = "policy_ask_lead"
ANSWER_BUTTON = "policy_answer"
ANSWER_CALLBACK = "policy_answer"
FAQ_PAGE_BUTTON = "policy_faq_page"
FAQ_EDIT_BUTTON = "policy_faq_edit"
FAQ_EDIT_CALLBACK = "policy_faq_edit"
FAQ_DELETE_BUTTON = "policy_faq_delete"

FEEDBACK_BLOCK = "policy_feedback"
#: How the feedback part of an answer looks: buttons, a thank-you (with "Ask a lead" after a 👎),
#: or a note that the leads were asked.
ASK, THANKS_UP, THANKS_DOWN, WITH_LEADS = "ask", "up", "down", "with_leads"

#: Candidates after the best one are listed for the lead only from this confidence up.
NOISE_MATCH = 0.1

HOW_TO_ASK = (
    "Ask me anything about the contractor handbook: `/policy your question`, a DM to me, "
    "or @crewcall in a channel. I quote the handbook and cite the section; when I'm not sure, "
    "I ask a lead instead of guessing."
)


def section_url(base_url: str | None, file: str, anchor: str) -> str | None:
    """Where a handbook section can be read, when POLICY_BASE_URL is set."""
    return f"{base_url}{quote(file)}#{quote(anchor)}" if base_url else None


@dataclass(frozen=True)
class Source:
    """A handbook section to cite: its heading, its file, and a link when POLICY_BASE_URL is set."""

    heading: str
    file: str
    url: str | None = None

    def cite(self) -> str:
        name = f"<{self.url}|{escape(self.heading)}>" if self.url else f"*{escape(self.heading)}*"
        return f"{name} · `{self.file}`"


@dataclass(frozen=True)
class CandidateView:
    title: str
    confidence: float
    source: Source | None
    from_faq: bool = False


def quoted(text: str) -> str:
    return "\n".join(f">{line}" if line.strip() else ">" for line in text.strip().splitlines())


def _where(via: str, channel_id: str | None) -> str:
    if via == VIA_MENTION and channel_id:
        return f"in <#{channel_id}>"
    if via == VIA_DM:
        return "by DM"
    return "with `/policy`"


# ------------------------------------------------------------------------------------------ answers
def answer_blocks(
    question_id: int,
    quote: str,
    *,
    cited: str,
    source: Source | None,
    from_faq: bool,
    feedback: str = ASK,
    tally: tuple[int, int] | None = None,
) -> list[Block]:
    """The bot's answer: the quoted passage, where it comes from, and the feedback part."""
    if from_faq:
        origin = f"A lead's answer to “{escape(clip(cited, 200))}”"
        origin += f" · see {source.cite()}" if source else ""
    else:
        origin = f"From the handbook: {source.cite()}" if source else f"From the handbook: *{escape(cited)}*"
    blocks = [section(quoted(escape(quote))), context(origin)]
    qid = str(question_id)
    if feedback == ASK:
        blocks.append(
            actions(
                button(":+1: Helpful", HELPFUL_BUTTON, qid),
                button(":-1: Not helpful", NOT_HELPFUL_BUTTON, qid),
                block_id=FEEDBACK_BLOCK,
            )
        )
        if tally and any(tally):
            blocks.append(context(f":+1: {tally[0]}   :-1: {tally[1]}"))
    elif feedback == THANKS_UP:
        blocks.append(context(":+1: Thanks for the feedback."))
    elif feedback == THANKS_DOWN:
        blocks += ask_lead_blocks(question_id)
    elif feedback == WITH_LEADS:
        blocks.append(context(":raising_hand: I've asked the leads. Their answer will come to you in a DM."))
    return blocks


def answer_text(quote: str, cited: str) -> str:
    return f"{clip(quote, 300)} (from {cited})"


def ask_lead_blocks(question_id: int) -> list[Block]:
    return [
        section(
            ":-1: Thanks for the feedback. Sorry that didn't help: a lead can answer it for you.",
            accessory=button("Ask a lead", ASK_LEAD_BUTTON, str(question_id), style="primary"),
        )
    ]


def escalated_text(off_topic: bool, via: str) -> str:
    why = (
        "That doesn't look like something the contractor handbook covers, so I won't guess."
        if off_topic
        else "I'm not sure the handbook answers that, so I won't guess."
    )
    where = (
        "I'll post their answer here and DM it to you."
        if via == VIA_MENTION
        else "Their answer will come to you in a DM."
    )
    return f":raising_hand: {why} I've asked the leads. {where}"


def repeated_text(question_id: int, via: str) -> str:
    where = "be posted in the thread" if via == VIA_MENTION else "come to you in a DM"
    return (
        f":raising_hand: You asked this already (question #{question_id}) and it is with the leads; "
        f"their answer will {where}."
    )


def small_talk_text() -> str:
    return f":wave: {HOW_TO_ASK} For example: _when is payday?_"


# ----------------------------------------------------------------------------------- leads' card
def leads_card(
    *,
    question_id: int,
    asker_id: str,
    text: str,
    via: str,
    channel_id: str | None,
    asked_at: datetime,
    off_topic: bool,
    candidates: Sequence[CandidateView],
    escalated_by: str | None,
    answered_with: str,
) -> list[Block]:
    """The escalation card in LEADS_CHANNEL, with the Answer button."""
    blocks = [
        section(f":raising_hand: *Question #{question_id}* from <@{asker_id}> {_where(via, channel_id)}"),
        section(quoted(escape(clip(text, 2000)))),
    ]
    if answered_with:
        who = "they" if escalated_by == asker_id else f"<@{escalated_by}>"
        blocks.append(
            context(f"I answered with “{escape(clip(answered_with, 200))}”, and {who} said it didn't help.")
        )
    blocks.append(section(candidates_text(candidates, off_topic)))
    blocks.append(actions(button("Answer", ANSWER_BUTTON, str(question_id), style="primary")))
    blocks.append(
        context(f"Asked {slack_date(asked_at)}. Your answer goes to them and can be saved as a FAQ.")
    )
    return blocks


def candidates_text(candidates: Sequence[CandidateView], off_topic: bool) -> str:
    if off_topic or not candidates:
        return "_Nothing in the handbook matches: this looks off-topic._"
    lines = ["*Closest in the handbook* (I wasn't confident enough to answer):"]
    # The best one always; the others only if they are more than noise.
    for c in [c for i, c in enumerate(candidates) if i == 0 or c.confidence >= NOISE_MATCH]:
        where = c.source.cite() if c.source else f"*{escape(c.title)}*"
        label = (
            f"FAQ “{escape(clip(c.title, 120))}”" + (f" · {where}" if c.source else "")
            if c.from_faq
            else where
        )
        lines.append(f"• {label} — {c.confidence:.0%} match")
    return "\n".join(lines)


def answered_card(
    *,
    question_id: int,
    asker_id: str,
    text: str,
    via: str,
    channel_id: str | None,
    lead_id: str,
    answer: str,
    faq_id: int | None,
    answered_at: datetime,
) -> list[Block]:
    """The escalation card once a lead answered: no button left."""
    saved = f"Saved as FAQ #{faq_id}." if faq_id else "Not saved as a FAQ."
    return [
        section(
            f":white_check_mark: *Question #{question_id}* from <@{asker_id}> {_where(via, channel_id)}: "
            f"answered by <@{lead_id}>"
        ),
        section(quoted(escape(clip(text, 1200)))),
        section(f"*Answer:*\n{quoted(escape(clip(answer, 2500)))}"),
        context(f"Answered {slack_date(answered_at)}. {saved}"),
    ]


def lead_answer_blocks(
    text: str, lead_id: str, answer: str, *, saved_as_faq: bool, mention_asker: str | None = None
) -> list[Block]:
    """A lead's answer as the asker (or the thread) gets it."""
    asked = f"<@{mention_asker}> asked" if mention_asker else "You asked"
    blocks = [
        section(f"*{asked}:*\n{quoted(escape(clip(text, 1200)))}"),
        section(f"*<@{lead_id}> (a lead) answered:*\n{quoted(escape(answer))}"),
    ]
    if saved_as_faq:
        blocks.append(context("I've learned this answer: next time I'll answer this question myself."))
    return blocks


# ------------------------------------------------------------------------------- answer modal
def answer_modal(
    *,
    question_id: int,
    asker_id: str,
    text: str,
    candidates: Sequence[CandidateView],
    section_options: Sequence[tuple[str, str]],
    off_topic: bool,
    private_metadata: str,
) -> dict[str, Any]:
    blocks: list[Block] = [
        section(f"*<@{asker_id}> asked:*\n{quoted(escape(clip(text, 2000)))}"),
        context(candidates_text(candidates, off_topic)),
        text_input(
            "answer",
            "Your answer",
            placeholder="What they should know. It is DMed to them as you write it.",
            multiline=True,
            max_length=MAX_ANSWER_CHARS,
        ),
    ]
    if section_options:
        blocks.append(
            {
                "type": "input",
                "block_id": "section",
                "optional": True,
                "label": plain("Handbook section it relates to"),
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "placeholder": plain("None"),
                    "options": [option(label, value) for value, label in section_options[:100]],
                },
            }
        )
    blocks.append(faq_checkbox())
    return modal(
        ANSWER_CALLBACK,
        f"Answer question #{question_id}",
        blocks,
        submit="Send",
        private_metadata=private_metadata,
    )


def faq_checkbox() -> Block:
    save = option("Save as a FAQ entry, so I answer this (and paraphrases) myself next time", "faq")
    return {
        "type": "input",
        "block_id": "save",
        "optional": True,
        "label": plain("FAQ"),
        "element": {"type": "checkboxes", "action_id": "value", "options": [save], "initial_options": [save]},
    }


# -------------------------------------------------------------------------------------------- FAQs
@dataclass(frozen=True)
class FaqRow:
    id: int
    question: str
    answer: str
    source: Source | None
    author_id: str
    updated_at: datetime


def faq_page(rows: Sequence[FaqRow], total: int, page: int, pages: int, note: str = "") -> list[Block]:
    blocks: list[Block] = []
    if note:
        blocks.append(section(note))
    if not rows:
        blocks.append(
            section(
                "*No FAQ entries yet.* When you answer an escalated question, your answer is saved here "
                "and I use it for that question and its paraphrases."
                if total == 0
                else f"*FAQ entries*: page {page} is past the end (there are {pages})."
            )
        )
        return blocks
    blocks.append(section(f"*FAQ entries* ({total}) · page {page} of {pages}, newest first"))
    for row in rows:
        where = f" · {row.source.cite()}" if row.source else ""
        blocks.append(
            section(
                f"*#{row.id}* {escape(clip(row.question, 300))}\n{quoted(escape(clip(row.answer, 400)))}",
            )
        )
        blocks.append(context(f"By <@{row.author_id}>, updated {slack_date(row.updated_at)}{where}"))
        ref = f"{row.id}:{page}"
        blocks.append(
            actions(
                button("Edit", FAQ_EDIT_BUTTON, ref),
                button(
                    "Delete",
                    FAQ_DELETE_BUTTON,
                    ref,
                    style="danger",
                    confirm=confirm_dialog(
                        f"Delete FAQ #{row.id}?",
                        f"I'll stop using it to answer “{escape(clip(row.question, 150))}”.",
                        yes="Delete",
                    ),
                ),
            )
        )
    nav = []
    if page > 1:
        nav.append(button("Previous", FAQ_PAGE_BUTTON, str(page - 1)))
    if page < pages:
        nav.append(button("More", FAQ_PAGE_BUTTON, str(page + 1)))
    if nav:
        blocks.append(actions(*nav))
    return fit_message(blocks)


def faq_edit_modal(
    *, faq_id: int, question: str, answer: str, section_id: str | None, private_metadata: str
) -> dict[str, Any]:
    blocks = [
        text_input(
            "question", "Question", initial=question, max_length=MAX_FAQ_QUESTION_CHARS, multiline=True
        ),
        text_input("answer", "Answer", initial=answer, max_length=MAX_ANSWER_CHARS, multiline=True),
        text_input(
            "section",
            "Handbook section id (optional)",
            placeholder="pay-and-hours#payday",
            initial=section_id,
            optional=True,
            hint="The file name without .md, then # and the heading's anchor. Leave empty for none.",
        ),
    ]
    return modal(
        FAQ_EDIT_CALLBACK, f"Edit FAQ #{faq_id}", blocks, submit="Save", private_metadata=private_metadata
    )


# -------------------------------------------------------------------------------------- handbook
def problems_text(problems: Sequence[str], *, at_startup: bool) -> str:
    head = (
        ":warning: I started with problems in the handbook. These files (or sections) are not served:"
        if at_startup
        else ":warning: These handbook files (or sections) have problems and are not served:"
    )
    lines = [head] + [f"• `{clip(p, 300)}`" for p in problems[:20]]
    if len(problems) > 20:
        lines.append(f"…and {len(problems) - 20} more (see the bot's log).")
    lines.append("Everything else in the handbook is still served. Fix the files, then run `/policy reload`.")
    return "\n".join(lines)


def reload_text(*, sections: int, files: int, faqs: int, problems: Sequence[str], kept_previous: bool) -> str:
    if kept_previous:
        return (
            ":warning: I found no usable section in the handbook directory, so I kept serving the "
            "version I had.\n" + "\n".join(f"• `{clip(p, 300)}`" for p in problems[:20])
        )
    done = (
        f":white_check_mark: Reloaded the handbook: {sections} sections from {files} "
        f"file{'s' if files != 1 else ''}, plus {faqs} FAQ entr{'ies' if faqs != 1 else 'y'}."
    )
    return done + ("\n" + problems_text(problems, at_startup=False) if problems else "")


# ------------------------------------------------------------------------------------------- Home
def home_blocks(
    *, is_lead: bool, open_questions: Sequence[tuple[int, str, str]], open_count: int, faq_count: int
) -> list[Block]:
    blocks = [section(HOW_TO_ASK)]
    if not is_lead:
        return blocks
    if open_count == 0:
        blocks.append(
            context(
                f"No escalated questions are waiting for a lead. FAQ entries: {faq_count} (`/policy faq`)."
            )
        )
        return blocks
    blocks.append(
        section(
            f"*{open_count} escalated question{'s' if open_count != 1 else ''}* waiting for a lead"
            + (", oldest first:" if open_questions else ".")
        )
    )
    for question_id, asker_id, text in open_questions:
        blocks.append(
            section(
                f"*#{question_id}* <@{asker_id}>: {escape(clip(text, 200))}",
                accessory=button("Answer", ANSWER_BUTTON, str(question_id)),
            )
        )
    blocks.append(context(f"FAQ entries: {faq_count} (`/policy faq` to edit them)."))
    return blocks
