"""/policy, DMs and @mentions: handbook answers with their source, escalation to the leads, the
lead's answer (which becomes a FAQ entry), feedback, FAQ upkeep and handbook reloads.

The live index belongs to a `PolicyDesk` made in `register(app)`. It is immutable and swapped whole
(readers never see a half-built one). Each question first compares the database's revision counters
with the ones the index was built from (one primary-key read), so a FAQ saved or a handbook reloaded
in another bot process is picked up here too.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from core.authz import Actor, Role
from core.errors import UserError
from core.grammar import Kind, integer
from core.slack import SlackFailure
from domain.policy import HandbookError, PolicyIndex, load_handbook
from domain.policy import service as rules
from domain.policy.service import ANSWERED, ESCALATED, RESOLVED, VIA_COMMAND, VIA_DM, VIA_MENTION, Asked
from handlers.kit.commands import Args, Param, SlashCommand
from handlers.kit.context import Ctx, ViewValues
from handlers.kit.interactions import FieldErrors, button, event, modal
from views import policy as views
from views.blocks import Block, section

if TYPE_CHECKING:
    from db.models import PolicyQuestion
    from handlers.kit.app import CrewApp
    from jobs.runtime import Services

log = logging.getLogger("crewcall.policy")

FAQ_PAGE_SIZE = 10
QUESTION = Kind("question", lambda token: token.strip())
_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s,:]*")


@dataclass(frozen=True)
class Live:
    """One built index and what it was built from."""

    index: PolicyIndex
    revisions: rules.Revisions
    problems: tuple[HandbookError, ...]


class PolicyDesk:
    """The live index, and the Slack side of asking, escalating and answering."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()  # one rebuild at a time; readers never wait for it
        self._bot_user_id: str | None = None
        self.live = self._load()

    # ---------------------------------------------------------------------------- the live index
    def _load(self) -> Live:
        """Handbook from disk plus the FAQ rows. The revisions are read before the rows, so a FAQ
        saved meanwhile makes the index look older than it is (rebuilt again), never newer."""
        with self.services.db.session() as session:
            revisions = rules.revisions(session)
            faqs = rules.active_faqs(session)
        sections, problems = load_handbook(self.services.config.policy_dir)
        for problem in problems:
            log.warning("handbook problem: %s", problem)
        index = PolicyIndex.build(sections, faqs)
        return Live(index, revisions, tuple(problems))

    def index(self) -> PolicyIndex:
        """The index to answer with, rebuilt first if another process changed FAQs or the handbook."""
        with self.services.db.session() as session:
            latest = rules.revisions(session)
        live = self.live
        if latest == live.revisions or not self._lock.acquire(blocking=False):
            return live.index  # fresh, or another thread is rebuilding it right now
        try:
            live = self.live
            if latest.handbook != live.revisions.handbook:
                self.live = self._reloaded(live)
            elif latest.faqs != live.revisions.faqs:
                self.live = self._with_current_faqs(live)
        finally:
            self._lock.release()
        return self.live.index

    def _reloaded(self, live: Live) -> Live:
        """Another process reloaded the handbook: re-read ours (every process reads its own
        POLICY_DIR). Like `/policy reload`, a directory with no usable section keeps the old index."""
        loaded = self._load()
        if not loaded.index.sections and live.index.sections:
            log.error("the handbook directory has no usable section; still serving the previous one")
            return replace(live, index=live.index.with_faqs(loaded.index.faqs), revisions=loaded.revisions)
        return loaded

    def refresh_faqs(self) -> None:
        """After this process changed a FAQ: serve it at once (cheap: sections are not re-analysed)."""
        with self._lock:
            self.live = self._with_current_faqs(self.live)

    def _with_current_faqs(self, live: Live) -> Live:
        with self.services.db.session() as session:
            revisions = rules.revisions(session)
            faqs = rules.active_faqs(session)
        # Keep the handbook revision the sections came from: if it moved too, the next question reloads.
        return replace(
            live,
            index=live.index.with_faqs(faqs),
            revisions=rules.Revisions(live.revisions.handbook, revisions.faqs),
        )

    def reload(self, ctx: Ctx) -> str:
        """`/policy reload`: re-read the handbook; broken files are reported, the rest is served."""
        with self._lock:
            sections, problems = load_handbook(self.services.config.policy_dir)
            listed = [str(p) for p in problems]
            if not sections and self.live.index.sections:
                log.error("handbook reload found no sections, kept the previous one: %s", listed)
                return views.reload_text(sections=0, files=0, faqs=0, problems=listed, kept_previous=True)
            with ctx.session() as session:
                revisions = rules.handbook_reloaded(
                    session, ctx.actor.user_id, ctx.now, ctx.source, sections=len(sections), problems=listed
                )
                faqs = rules.active_faqs(session)
            files = len({s.file for s in sections})
            self.live = Live(PolicyIndex.build(sections, faqs), revisions, tuple(problems))
        return views.reload_text(
            sections=len(sections), files=files, faqs=len(faqs), problems=listed, kept_previous=False
        )

    def report_startup_problems(self) -> None:
        problems = self.live.problems
        channel = self.services.config.leads_channel
        if problems and channel:
            text = views.problems_text([str(p) for p in problems], at_startup=True)
            self.services.slack.post(channel, text, [section(text)], what="handbook problems")

    # ----------------------------------------------------------------------------- citing
    def source(self, section_id: str | None) -> views.Source | None:
        if not section_id:
            return None
        found = self.live.index.section(section_id)
        stem, _, anchor = section_id.partition("#")
        file = found.file if found else f"{stem}.md"
        heading = found.heading if found else section_id
        base = self.services.config.policy_base_url
        url = f"{base}{quote(file)}#{quote(anchor)}" if base else None
        return views.Source(heading=heading, file=file, url=url)

    def candidates(self, question: PolicyQuestion) -> list[views.CandidateView]:
        return [
            views.CandidateView(
                title=c.title,
                confidence=c.confidence,
                source=self.source(c.section_id),
                from_faq=c.faq_id is not None,
            )
            for c in rules.candidates_of(question)
        ]

    def answer_view(
        self, q: PolicyQuestion, feedback: str, tally: tuple[int, int] | None = None
    ) -> list[Block]:
        assert q.id is not None
        return views.answer_blocks(
            q.id,
            q.quote,
            cited=q.cited,
            source=self.source(q.section_id),
            from_faq=q.faq_id is not None,
            feedback=feedback,
            tally=tally,
        )

    # ----------------------------------------------------------------------------- asking
    def ask(self, ctx: Ctx, asked: Asked, send: Callable[[str, list[Block]], Any]) -> None:
        """Answer from the handbook, or escalate; `send` gives the asker their message (first: the
        leads' card can wait a moment, the asker shouldn't)."""
        if rules.is_small_talk(asked.text):
            text = views.small_talk_text()
            send(text, [section(text)])
            return
        answer = self.index().answer(asked.text)
        with ctx.session() as session:
            question = rules.record_question(session, asked, answer, ctx.now, ctx.source)
        if question.state == ESCALATED:
            text = views.escalated_text(question.off_topic, asked.via)
            send(text, [section(text)])
            self.post_leads_card(question)
            return
        send(views.answer_text(question.quote, question.cited), self.answer_view(question, views.ASK))

    def post_leads_card(self, q: PolicyQuestion) -> None:
        """Post the escalation to LEADS_CHANNEL. Without the channel (or if Slack refuses), the
        question still waits on every lead's Home tab, with its Answer button."""
        assert q.id is not None
        channel = self.services.config.leads_channel
        if not channel:
            log.warning(
                "question #%s escalated, but LEADS_CHANNEL is not set: only the Home tab shows it", q.id
            )
            return
        blocks = views.leads_card(
            question_id=q.id,
            asker_id=q.asker_id,
            text=q.text,
            via=q.via,
            channel_id=q.channel_id,
            asked_at=q.escalated_at or q.asked_at,
            off_topic=q.off_topic,
            candidates=self.candidates(q),
            escalated_by=q.escalated_by,
            answered_with=q.cited if q.state == ESCALATED and q.quote else "",
        )
        posted = self.services.slack.post(
            channel, f"Question #{q.id} from <@{q.asker_id}> needs a lead", blocks, what="escalation"
        )
        if posted is None:
            return
        with self.services.db.session() as session:
            rules.set_leads_card(session, q.id, posted.channel, posted.ts)

    def bot_user_id(self) -> str | None:
        if self._bot_user_id is None:
            try:
                self._bot_user_id = str(self.services.slack.call("auth.test").get("user_id") or "") or None
            except SlackFailure as e:
                log.warning("auth.test failed (%s); stripping the leading mention only", e.error)
        return self._bot_user_id

    def mention_text(self, text: str) -> str:
        """The question in an @mention, without the bot's own mention."""
        bot = self.bot_user_id()
        if bot:
            text = re.sub(rf"<@{re.escape(bot)}(?:\|[^>]*)?>[\s,:]*", " ", text)
        return _LEADING_MENTION.sub("", text).strip()

    # ----------------------------------------------------------------------------- the lead's answer
    def deliver(self, ctx: Ctx, resolution: rules.Resolution) -> str:
        """After a lead answered: DM the asker, answer in the thread it was asked in, close the
        card. Returns what to tell the lead."""
        q, faq = resolution.question, resolution.faq
        assert q.id is not None and q.lead_id is not None
        slack = self.services.slack
        saved = faq is not None
        text = f"A lead answered your question: {q.lead_answer[:300]}"
        blocks = views.lead_answer_blocks(q.text, q.lead_id, q.lead_answer, saved_as_faq=saved)
        in_thread = q.via == VIA_MENTION and q.channel_id and q.thread_ts
        if q.via == VIA_DM and q.channel_id and q.thread_ts:
            dm = slack.post(q.channel_id, text, blocks, thread_ts=q.thread_ts, what="lead answer")
        else:
            dm = slack.dm(q.asker_id, text, blocks, what="lead answer")
        thread = None
        if in_thread:
            thread_blocks = views.lead_answer_blocks(
                q.text, q.lead_id, q.lead_answer, saved_as_faq=saved, mention_asker=q.asker_id
            )
            thread = slack.post(
                q.channel_id or "", text, thread_blocks, thread_ts=q.thread_ts, what="lead answer"
            )
        if q.leads_channel and q.leads_ts:
            card = views.answered_card(
                question_id=q.id,
                asker_id=q.asker_id,
                text=q.text,
                via=q.via,
                channel_id=q.channel_id,
                lead_id=q.lead_id,
                answer=q.lead_answer,
                faq_id=faq.id if faq else None,
                answered_at=q.resolved_at or ctx.now,
            )
            slack.update(q.leads_channel, q.leads_ts, f"Question #{q.id}: answered by <@{q.lead_id}>", card)
        sent = [f"DMed it to <@{q.asker_id}>" if dm else f":warning: I couldn't DM <@{q.asker_id}>"]
        if in_thread:
            sent.append("posted it in the thread" if thread else ":warning: couldn't post it in the thread")
        learned = f"saved it as FAQ #{faq.id}" if faq else "didn't save it as a FAQ"
        return f":white_check_mark: Answer to question #{q.id} sent: I {', '.join(sent)}, and {learned}."


def _id(value: str, what: str = "question") -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"That button is out of date (no {what} in it). Nothing changed.") from None


def _faq_ref(value: str) -> tuple[int, int]:
    try:
        data = json.loads(value)
        return int(data["faq"]), int(data.get("page") or 1)
    except (TypeError, ValueError, KeyError):
        raise UserError("That button is out of date. Run `/policy faq` again.") from None


def register(app: CrewApp) -> None:
    services = app.services
    desk = PolicyDesk(services)
    desk.report_startup_problems()

    policy = SlashCommand(
        "/policy",
        "Ask the contractor handbook",
        "Ask in your own words: I quote the handbook and cite the section. When I'm not sure, I ask a "
        "lead instead of guessing, and their answer comes to you in a DM. You can also DM me, or "
        "@mention me in a channel (I answer in a thread).",
    )

    @policy.sub(
        "",
        "Ask a question, e.g. `/policy when is payday?`",
        params=[Param("question", QUESTION, required=False, rest=True)],
    )
    def ask(ctx: Ctx, args: Args) -> None:
        question = args.get("question")
        if not question:
            ctx.reply(policy.help_text(), policy.help_blocks())
            return
        asked = Asked(ctx.actor.user_id, question, VIA_COMMAND, channel_id=ctx.request.channel_id)
        desk.ask(ctx, asked, send=ctx.reply)

    @policy.sub(
        "faq",
        "List the FAQ entries leads saved, to edit or delete them",
        params=[Param("page", integer(1, 10_000, "page"), required=False)],
        role=Role.LEAD,
        action="manage FAQ entries",
    )
    def faq(ctx: Ctx, args: Args) -> None:
        text, blocks = faq_page(args.get("page", 1))
        ctx.reply(text, blocks)

    @policy.sub("reload", "Re-read the handbook files", role=Role.LEAD, action="reload the handbook")
    def reload(ctx: Ctx, args: Args) -> None:
        text = desk.reload(ctx)
        ctx.reply(text, [section(text)])

    app.commands.add(policy).register(app, services)

    # ---- DMs and @mentions -------------------------------------------------------------------
    @event(app, "message")
    def direct_message(ctx: Ctx, message: dict[str, Any]) -> None:
        # Bolt's "message" listener sees every message event: keep people's own new DMs only.
        if message.get("channel_type") != "im" or message.get("subtype") or message.get("bot_id"):
            return
        user, channel = message.get("user"), message.get("channel")
        if not user or not channel or user == desk.bot_user_id():
            return
        thread = message.get("thread_ts")
        asked = Asked(user, (message.get("text") or "").strip(), VIA_DM, channel_id=channel, thread_ts=thread)
        desk.ask(ctx, asked, send=answer_in(channel, thread))

    @event(app, "app_mention")
    def mentioned(ctx: Ctx, mention: dict[str, Any]) -> None:
        if mention.get("bot_id") or mention.get("subtype") or not mention.get("user"):
            return
        channel = mention.get("channel") or ""
        thread = mention.get("thread_ts") or mention.get("ts")
        asked = Asked(
            mention["user"], desk.mention_text(mention.get("text") or ""), VIA_MENTION, channel, thread
        )
        desk.ask(ctx, asked, send=answer_in(channel, thread))

    def answer_in(channel: str, thread: str | None) -> Callable[[str, list[Block]], Any]:
        def send(text: str, blocks: list[Block]) -> None:
            services.slack.post(channel, text, blocks, thread_ts=thread, what="policy answer")

        return send

    # ---- feedback and escalation by the asker ------------------------------------------------
    def replace_clicked(ctx: Ctx, q: PolicyQuestion, text: str, blocks: list[Block]) -> None:
        """Replace the asker's own copy of the answer: a DM message is updated in place, an
        ephemeral /policy answer through the click's response_url."""
        req = ctx.request
        if q.via == VIA_DM and req.channel_id and req.message_ts:
            if services.slack.update(req.channel_id, req.message_ts, text, blocks, what="policy answer"):
                return
        elif req.response_url and services.slack.respond(
            req.response_url, text, blocks, replace_original=True
        ):
            return
        ctx.reply(text, blocks)

    def feedback(ctx: Ctx, value: str, helpful: bool) -> None:
        with ctx.session() as session:
            vote = rules.vote(session, _id(value), ctx.actor.user_id, helpful, ctx.now)
        q = vote.question
        if q.via == VIA_MENTION:
            # A shared thread: others may vote too, so the buttons stay and show the tally;
            # the voter is thanked privately.
            if ctx.request.channel_id and ctx.request.message_ts:
                blocks = desk.answer_view(q, views.ASK, tally=(vote.up, vote.down))
                services.slack.update(ctx.request.channel_id, ctx.request.message_ts, q.quote[:300], blocks)
            if helpful or q.state != ANSWERED:
                ctx.reply(":+1: Thanks for the feedback." if helpful else ":-1: Thanks for the feedback.")
            else:
                ctx.reply("Thanks for the feedback.", views.ask_lead_blocks(q.id or 0))
            return
        # Only the asker sees this answer: the buttons give way to a thank-you.
        state = views.THANKS_UP
        if not helpful:
            state = views.THANKS_DOWN if q.state == ANSWERED else views.WITH_LEADS
        replace_clicked(ctx, q, views.answer_text(q.quote, q.cited), desk.answer_view(q, state))

    @button(app, "policy_up")
    def helpful(ctx: Ctx, value: str) -> None:
        feedback(ctx, value, True)

    @button(app, "policy_down")
    def not_helpful(ctx: Ctx, value: str) -> None:
        feedback(ctx, value, False)

    @button(app, "policy_ask_lead")
    def ask_lead(ctx: Ctx, value: str) -> None:
        with ctx.session() as session:
            q, escalated = rules.escalate(session, _id(value), ctx.actor.user_id, ctx.now, ctx.source)
        comes = "be posted in the thread" if q.via == VIA_MENTION else "come to you in a DM"
        if escalated:
            desk.post_leads_card(q)
            note = f":raising_hand: I've asked the leads. Their answer will {comes}."
        elif q.state == ESCALATED:
            note = f":raising_hand: This question is already with the leads; their answer will {comes}."
        else:
            note = f":white_check_mark: <@{q.lead_id}> already answered this question:\n{views.quoted(views.escape(q.lead_answer))}"
        if q.via == VIA_MENTION:  # the button was on the voter's private thank-you
            url = ctx.request.response_url
            if not (url and services.slack.respond(url, note, [section(note)], replace_original=True)):
                ctx.reply(note)
            return
        replace_clicked(ctx, q, note, desk.answer_view(q, "") + [section(note)])

    # ---- the lead's answer -------------------------------------------------------------------
    @button(app, "policy_answer", role=Role.LEAD, action="answer escalated questions")
    def open_answer(ctx: Ctx, value: str) -> None:
        question_id = _id(value)
        with ctx.session() as session:
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
        options = []
        for c in rules.candidates_of(q):
            src = desk.source(c.section_id)
            # Slack caps an option's value at 150 characters: a longer id can't be offered.
            usable = c.section_id and len(c.section_id) <= 150 and c.section_id not in {v for v, _ in options}
            if usable and src:
                options.append((c.section_id, f"{src.heading} ({src.file})"))
        view = views.answer_modal(
            question_id=question_id,
            asker_id=q.asker_id,
            text=q.text,
            candidates=desk.candidates(q),
            section_options=options,
            off_topic=q.off_topic,
            private_metadata=ctx.origin_metadata(question_id=question_id),
        )
        ctx.open_modal(view)

    @modal(app, "policy_answer", role=Role.LEAD, action="answer escalated questions")
    def answer_submitted(ctx: Ctx, values: ViewValues) -> None:
        question_id = _id(str(ctx.request.metadata.get("question_id")))
        answer = values.text("answer")
        problem = rules.answer_problem(answer)
        if problem:
            raise FieldErrors({"answer": problem})
        section_id = values.selected("section")
        if section_id and desk.live.index.section(section_id) is None:
            raise FieldErrors({"section": "That section is no longer in the handbook (it was reloaded)."})
        save = "faq" in values.selected_many("save")
        with ctx.session() as session:
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
        ctx.reply(desk.deliver(ctx, resolution))

    # ---- FAQ upkeep --------------------------------------------------------------------------
    def faq_page(page: int, note: str = "") -> tuple[str, list[Block]]:
        with services.db.session() as session:
            rows, total = rules.list_faqs(session, (page - 1) * FAQ_PAGE_SIZE, FAQ_PAGE_SIZE)
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

    def show_page(ctx: Ctx, page: int, note: str = "") -> None:
        text, blocks = faq_page(page, note)
        url = ctx.request.response_url
        if not (url and services.slack.respond(url, text, blocks, replace_original=True)):
            ctx.reply(text, blocks)

    @button(app, "policy_faq_page", role=Role.LEAD, action="manage FAQ entries")
    def faq_more(ctx: Ctx, value: str) -> None:
        show_page(ctx, max(1, _id(value, "page")))

    @button(app, "policy_faq_edit", role=Role.LEAD, action="manage FAQ entries")
    def faq_edit(ctx: Ctx, value: str) -> None:
        faq_id, page = _faq_ref(value)
        with ctx.session() as session:
            faq = rules.get_faq(session, faq_id)
        meta = ctx.origin_metadata(faq_id=faq_id, page=page, response_url=ctx.request.response_url)
        ctx.open_modal(
            views.faq_edit_modal(
                faq_id=faq_id,
                question=faq.question,
                answer=faq.answer,
                section_id=faq.section_id,
                private_metadata=meta,
            )
        )

    @modal(app, "policy_faq_edit", role=Role.LEAD, action="manage FAQ entries")
    def faq_edited(ctx: Ctx, values: ViewValues) -> None:
        meta = ctx.request.metadata
        faq_id = _id(str(meta.get("faq_id")), "FAQ entry")
        question, answer, section_id = values.text("question"), values.text("answer"), values.text("section")
        errors = {
            block: problem
            for block, problem in (
                ("question", rules.faq_question_problem(question)),
                ("answer", rules.answer_problem(answer)),
                ("section", section_problem(section_id)),
            )
            if problem
        }
        if errors:
            raise FieldErrors(errors)
        with ctx.session() as session:
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
        desk.refresh_faqs()
        show_page(ctx, int(meta.get("page") or 1), f":white_check_mark: Saved FAQ #{faq_id}.")

    def section_problem(section_id: str) -> str | None:
        if section_id and desk.live.index.section(section_id) is None:
            return f"The handbook has no section `{section_id}`. Use an id like `pay-and-hours#payday`, or leave it empty."
        return None

    @button(app, "policy_faq_delete", role=Role.LEAD, action="manage FAQ entries")
    def faq_delete(ctx: Ctx, value: str) -> None:
        faq_id, page = _faq_ref(value)
        with ctx.session() as session:
            rules.delete_faq(session, faq_id, ctx.actor.user_id, ctx.now, ctx.source)
        desk.refresh_faqs()
        show_page(ctx, page, f":wastebasket: Deleted FAQ #{faq_id}: I no longer use it to answer.")

    # ---- Home --------------------------------------------------------------------------------
    @app.home.section("policy", "Handbook", order=60)
    def home(services: Services, actor: Actor) -> list[Block]:
        if not actor.is_lead:
            return views.home_blocks(is_lead=False, open_questions=[], open_count=0, faq_count=0)
        with services.db.session() as session:
            waiting, count = rules.open_escalations(session, limit=5)
            faqs = rules.faq_count(session)
        return views.home_blocks(
            is_lead=True,
            open_questions=[(q.id or 0, q.asker_id, q.text) for q in waiting],
            open_count=count,
            faq_count=faqs,
        )
