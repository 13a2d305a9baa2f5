"""/policy, DMs and @mentions: handbook answers with their source, escalation to the leads, the
lead's answer (which becomes a FAQ entry), feedback, FAQ upkeep and handbook reloads.

Every listener parses, is authorized by the role it declares, calls `domain.policy.service` or this
app's policy desk (`jobs.policy.desk_for`: the live index and the messages around a question), then
renders its reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.authz import Actor, Role
from core.grammar import Kind, integer
from core.text import from_slack
from domain.policy import service as rules
from domain.policy.service import ANSWERED, ESCALATED, RESOLVED, VIA_COMMAND, VIA_DM, VIA_MENTION, Asked
from handlers.kit.commands import Args, Param, SlashCommand
from handlers.kit.context import Ctx, ViewValues
from handlers.kit.interactions import ButtonReader, FieldErrors, Then, button, event, modal
from jobs.policy import Send, desk_for
from views import policy as views
from views.blocks import Block, section

if TYPE_CHECKING:
    from sqlmodel import Session

    from db.models import PolicyQuestion
    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

FAQ_PAGE_SIZE = 10
QUESTION = Kind("question", lambda token: from_slack(token).strip())
ANSWER_QUESTIONS = "answer escalated questions"
MANAGE_FAQ = "manage FAQ entries"

policy = SlashCommand(
    "/policy",
    "Ask the contractor handbook",
    "Ask in your own words: I quote the handbook and cite the section. When I'm not sure, I ask a "
    "lead instead of guessing, and their answer comes to you in a DM. You can also DM me, or "
    "@mention me in a channel (I answer in a thread).",
)


# ---- asking: /policy, DMs and @mentions ----------------------------------------------------------


@policy.sub(
    "",
    "Ask a question, e.g. `/policy when is payday?`",
    params=[Param("question", QUESTION, required=False, rest=True)],
)
def ask_command(ctx: Ctx, args: Args) -> None:
    question = args.get("question")
    if not question:
        ctx.reply(policy.help_text(), policy.help_blocks())
        return
    asked = Asked(ctx.actor.user_id, question, VIA_COMMAND, channel_id=ctx.request.channel_id)
    desk_for(ctx.services).ask(asked, ctx.source, send=ctx.reply)


def direct_message(ctx: Ctx, message: dict[str, Any]) -> None:
    # Bolt's "message" listener sees every message event: keep people's own new DMs only.
    if message.get("channel_type") != "im" or message.get("subtype") or message.get("bot_id"):
        return
    desk = desk_for(ctx.services)
    user, channel = message.get("user"), message.get("channel")
    if not user or not channel or user == desk.bot_user_id():
        return
    thread = message.get("thread_ts")
    asked = Asked(
        user, from_slack(message.get("text") or "").strip(), VIA_DM, channel_id=channel, thread_ts=thread
    )
    desk.ask(asked, ctx.source, send=_answer_in(ctx.services, channel, thread))


def mentioned(ctx: Ctx, mention: dict[str, Any]) -> None:
    if mention.get("bot_id") or mention.get("subtype") or not mention.get("user"):
        return
    desk = desk_for(ctx.services)
    channel = mention.get("channel") or ""
    thread = mention.get("thread_ts") or mention.get("ts")
    asked = Asked(
        mention["user"],
        from_slack(desk.mention_text(mention.get("text") or "")),
        VIA_MENTION,
        channel,
        thread,
    )
    desk.ask(asked, ctx.source, send=_answer_in(ctx.services, channel, thread))


def _answer_in(services: Services, channel: str, thread: str | None) -> Send:
    def send(text: str, blocks: list[Block]) -> None:
        services.slack.post(channel, text, blocks, thread_ts=thread, what="policy answer")

    return send


# ---- feedback and escalation by the asker ----------------------------------------------------------


def helpful_clicked(ctx: Ctx, value: str) -> None:
    _feedback(ctx, QUESTION_BUTTON.one(value, QUESTION_ID), helpful=True)


def not_helpful_clicked(ctx: Ctx, value: str) -> None:
    _feedback(ctx, QUESTION_BUTTON.one(value, QUESTION_ID), helpful=False)


def _feedback(ctx: Ctx, question_id: int, helpful: bool) -> None:
    desk = desk_for(ctx.services)
    with ctx.write() as session:
        vote = rules.vote(session, question_id, ctx.actor.user_id, helpful, ctx.now)
    q = vote.question
    if q.via == VIA_MENTION:
        # A shared thread: others may vote too, so the buttons stay and show the tally;
        # the voter is thanked privately.
        if ctx.request.channel_id and ctx.request.message_ts:
            blocks = desk.answer_view(q, views.ASK, tally=(vote.up, vote.down))
            ctx.services.slack.update(ctx.request.channel_id, ctx.request.message_ts, q.quote[:300], blocks)
        if helpful or q.state != ANSWERED:
            ctx.reply(":+1: Thanks for the feedback." if helpful else ":-1: Thanks for the feedback.")
        else:
            ctx.reply("Thanks for the feedback.", views.ask_lead_blocks(q.id or 0))
        return
    # Only the asker sees this answer: the buttons give way to a thank-you.
    state = views.THANKS_UP
    if not helpful:
        state = views.THANKS_DOWN if q.state == ANSWERED else views.WITH_LEADS
    _replace_clicked(ctx, q, views.answer_text(q.quote, q.cited), desk.answer_view(q, state))


def ask_lead_clicked(ctx: Ctx, value: str) -> None:
    question_id = QUESTION_BUTTON.one(value, QUESTION_ID)
    desk = desk_for(ctx.services)
    with ctx.write() as session:
        q, escalated = rules.escalate(session, question_id, ctx.actor.user_id, ctx.now, ctx.source)
        if escalated:
            desk.queue_leads_card(session, q)
    comes = "be posted in the thread" if q.via == VIA_MENTION else "come to you in a DM"
    if escalated:
        desk.wake_poster()
        note = f":raising_hand: I've asked the leads. Their answer will {comes}."
    elif q.state == ESCALATED:
        note = f":raising_hand: This question is already with the leads; their answer will {comes}."
    else:
        note = f":white_check_mark: <@{q.lead_id}> already answered this question:\n{views.quoted(views.escape(q.lead_answer))}"
    if q.via == VIA_MENTION:  # the button was on the voter's private thank-you
        url = ctx.request.response_url
        if not (url and ctx.services.slack.respond(url, note, [section(note)], replace_original=True)):
            ctx.reply(note)
        return
    _replace_clicked(ctx, q, note, desk.answer_view(q, "") + [section(note)])


def _replace_clicked(ctx: Ctx, q: PolicyQuestion, text: str, blocks: list[Block]) -> None:
    """Replace the asker's own copy of the answer: a DM message is updated in place, an
    ephemeral /policy answer through the click's response_url."""
    req, slack = ctx.request, ctx.services.slack
    if q.via == VIA_DM and req.channel_id and req.message_ts:
        if slack.update(req.channel_id, req.message_ts, text, blocks, what="policy answer"):
            return
    elif req.response_url and slack.respond(req.response_url, text, blocks, replace_original=True):
        return
    ctx.reply(text, blocks)


# ---- the lead's answer -----------------------------------------------------------------------------


def answer_clicked(ctx: Ctx, value: str) -> None:
    question_id = QUESTION_BUTTON.one(value, QUESTION_ID)
    with ctx.read() as session:
        q = rules.get_question(session, question_id)
    if q.state == RESOLVED:
        ctx.reply(
            f":white_check_mark: <@{q.lead_id}> already answered question #{question_id}:\n"
            + views.quoted(views.escape(q.lead_answer))
        )
        return
    if q.state != ESCALATED:
        ctx.reply(f"Question #{question_id} was answered from the handbook; nobody asked for a lead.")
        return
    desk = desk_for(ctx.services)
    view = views.answer_modal(
        question_id=question_id,
        asker_id=q.asker_id,
        text=q.text,
        candidates=desk.candidates(q),
        section_options=desk.section_options(q),
        off_topic=q.off_topic,
        private_metadata=ctx.origin_metadata(question_id=question_id),
    )
    ctx.open_modal(view)


def answer_submitted(ctx: Ctx, values: ViewValues) -> Then:
    question_id = QUESTION_BUTTON.one(str(ctx.request.metadata.get("question_id")), QUESTION_ID)
    desk = desk_for(ctx.services)
    answer = values.text("answer")
    problem = rules.answer_problem(answer)
    if problem:
        raise FieldErrors({"answer": problem})
    section_id = values.selected("section")
    if section_id and not desk.has_section(section_id):
        raise FieldErrors({"section": "That section is no longer in the handbook (it was reloaded)."})
    save = "faq" in values.selected_many("save")
    return Then(lambda: _answer(ctx, question_id, answer, section_id, save))


def _answer(ctx: Ctx, question_id: int, answer: str, section_id: str | None, save: bool) -> None:
    desk = desk_for(ctx.services)
    with ctx.write() as session:
        resolution = rules.resolve(
            session,
            question_id,
            ctx.actor.user_id,
            answer,
            section_id=section_id,
            save_faq=save,
            now=ctx.now,
            source=ctx.source,
        )
    if resolution.faq is not None:
        desk.refresh_faqs()
    ctx.reply(desk.deliver(resolution))


# ---- FAQ upkeep and reloads ------------------------------------------------------------------------


@policy.sub(
    "faq",
    "List the FAQ entries leads saved, to edit or delete them",
    params=[Param("page", integer(1, 10_000, "page"), required=False)],
    role=Role.LEAD,
    action=MANAGE_FAQ,
)
def faq_command(ctx: Ctx, args: Args) -> None:
    text, blocks = _faq_page(ctx.services, args.get("page", 1))
    ctx.reply(text, blocks)


@policy.sub("reload", "Re-read the handbook files", role=Role.LEAD, action="reload the handbook")
def reload_command(ctx: Ctx, args: Args) -> None:
    text = desk_for(ctx.services).reload(ctx.actor.user_id, ctx.source)
    ctx.reply(text, [section(text)])


def faq_page_clicked(ctx: Ctx, value: str) -> None:
    _show_page(ctx, FAQ_BUTTON.one(value, PAGE))


def faq_edit_clicked(ctx: Ctx, value: str) -> None:
    faq_id, page = FAQ_BUTTON.parts(value, FAQ_ID, PAGE)
    with ctx.read() as session:
        faq = rules.get_faq(session, faq_id)
    meta = ctx.origin_metadata(faq_id=faq_id, page=page)
    ctx.open_modal(
        views.faq_edit_modal(
            faq_id=faq_id,
            question=faq.question,
            answer=faq.answer,
            section_id=faq.section_id,
            private_metadata=meta,
        )
    )


def faq_edited(ctx: Ctx, values: ViewValues) -> Then:
    meta = ctx.request.metadata
    faq_id = FAQ_BUTTON.one(str(meta.get("faq_id")), FAQ_ID)
    desk = desk_for(ctx.services)
    question, answer, section_id = values.text("question"), values.text("answer"), values.text("section")
    unknown_section = (
        f"The handbook has no section `{section_id}`. Use an id like `pay-and-hours#payday`, or leave it empty."
        if section_id and not desk.has_section(section_id)
        else None
    )
    errors = {
        block: problem
        for block, problem in (
            ("question", rules.faq_question_problem(question)),
            ("answer", rules.answer_problem(answer)),
            ("section", unknown_section),
        )
        if problem
    }
    if errors:
        raise FieldErrors(errors)
    return Then(lambda: _edit_faq(ctx, faq_id, question, answer, section_id, int(meta.get("page") or 1)))


def _edit_faq(ctx: Ctx, faq_id: int, question: str, answer: str, section_id: str, page: int) -> None:
    with ctx.write() as session:
        rules.edit_faq(
            session,
            faq_id,
            ctx.actor.user_id,
            question=question,
            answer=answer,
            section_id=section_id or None,
            now=ctx.now,
            source=ctx.source,
        )
    desk_for(ctx.services).refresh_faqs()
    _show_page(ctx, page, f":white_check_mark: Saved FAQ #{faq_id}.")


def faq_delete_clicked(ctx: Ctx, value: str) -> None:
    faq_id, page = FAQ_BUTTON.parts(value, FAQ_ID, PAGE)
    with ctx.write() as session:
        rules.delete_faq(session, faq_id, ctx.actor.user_id, ctx.now, ctx.source)
    desk_for(ctx.services).refresh_faqs()
    _show_page(ctx, page, f":wastebasket: Deleted FAQ #{faq_id}: I no longer use it to answer.")


def _faq_page(services: Services, page: int, note: str = "") -> tuple[str, list[Block]]:
    with services.db.read() as session:
        rows, total = rules.list_faqs(session, (page - 1) * FAQ_PAGE_SIZE, FAQ_PAGE_SIZE)
    desk = desk_for(services)
    pages = max(1, -(-total // FAQ_PAGE_SIZE))
    shown = [
        views.FaqRow(
            id=r.id or 0,
            question=r.question,
            answer=r.answer,
            source=desk.source(r.section_id),
            author_id=r.editor_id or r.author_id,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    return f"FAQ entries: {total}", views.faq_page(shown, total, page, pages, note)


def _show_page(ctx: Ctx, page: int, note: str = "") -> None:
    """A FAQ page in place of the message the click came from (or as a new reply)."""
    text, blocks = _faq_page(ctx.services, page, note)
    url = ctx.request.response_url
    if not (url and ctx.services.slack.respond(url, text, blocks, replace_original=True)):
        ctx.reply(text, blocks)


# ---- Home ------------------------------------------------------------------------------------------


def policy_home(services: Services, actor: Actor, session: Session) -> list[Block]:
    if not actor.is_lead:
        return views.home_blocks(is_lead=False, open_questions=[], open_count=0, faq_count=0)
    waiting, count = rules.open_escalations(session, limit=5)
    faqs = rules.faq_count(session)
    return views.home_blocks(
        is_lead=True,
        open_questions=[(q.id or 0, q.asker_id, q.text) for q in waiting],
        open_count=count,
        faq_count=faqs,
    )


# ---- button values --------------------------------------------------------------------------------

QUESTION_BUTTON = ButtonReader("Nothing changed.")
FAQ_BUTTON = ButtonReader("Run `/policy faq` again.")
QUESTION_ID = integer(1, 2**31 - 1, "question")
FAQ_ID = integer(1, 2**31 - 1, "FAQ entry")
PAGE = integer(1, 1_000_000, "page")


def register(app: CrewApp) -> None:
    app.commands.add(policy).register(app, app.services)
    event(app, "message")(direct_message)
    event(app, "app_mention")(mentioned)
    button(app, views.HELPFUL_BUTTON)(helpful_clicked)
    button(app, views.NOT_HELPFUL_BUTTON)(not_helpful_clicked)
    button(app, views.ASK_LEAD_BUTTON)(ask_lead_clicked)
    button(app, views.ANSWER_BUTTON, role=Role.LEAD, action=ANSWER_QUESTIONS)(answer_clicked)
    modal(app, views.ANSWER_CALLBACK, role=Role.LEAD, action=ANSWER_QUESTIONS)(answer_submitted)
    button(app, views.FAQ_PAGE_BUTTON, role=Role.LEAD, action=MANAGE_FAQ)(faq_page_clicked)
    button(app, views.FAQ_EDIT_BUTTON, role=Role.LEAD, action=MANAGE_FAQ)(faq_edit_clicked)
    modal(app, views.FAQ_EDIT_CALLBACK, role=Role.LEAD, action=MANAGE_FAQ)(faq_edited)
    button(app, views.FAQ_DELETE_BUTTON, role=Role.LEAD, action=MANAGE_FAQ)(faq_delete_clicked)
    app.home.section("policy", "Handbook", order=60)(policy_home)
