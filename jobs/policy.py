"""The Slack side of policy answers: the live handbook index, and the messages around a question
(the asker's answer, the leads' escalation card, the lead's answer reaching the asker and the
thread, the handbook problems found at start).

Each app has one `PolicyDesk` (`desk_for(services)`), built by `start(services)`. Its index is
immutable and swapped whole (readers never see a half-built one). Each question first compares the
database's revision counters with the ones the index was built from (one primary-key read), so a FAQ
saved or a handbook reloaded in another bot process is picked up here too.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.events import APP_STOPPING
from core.slack import SlackFailure
from domain.policy import HandbookError, PolicyIndex, load_handbook
from domain.policy import service as rules
from domain.policy.semantic import Embedder
from domain.policy.service import ESCALATED, VIA_COMMAND, VIA_DM, VIA_MENTION, Asked
from jobs.fairness import limits_for
from jobs.pacing import pacer_for
from views import policy as views
from views.blocks import Block, section, slow_down

if TYPE_CHECKING:
    from db.models import PolicyQuestion
    from jobs.runtime import Services

log = logging.getLogger("crewcall.policy")

_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s,:]*")

#: How an answer reaches the asker: (text, blocks) to their reply, DM or thread.
Send = Callable[[str, list[Block]], Any]


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
        # texts already embedded (by content hash) are read from the cache, never embedded again
        self.embedder = Embedder(services.config.policy_cache_dir)
        self.live = self._load()
        self._cards: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._poster = threading.Thread(target=self._post_cards, name="leads-cards", daemon=True)
        self._poster.start()

    # ---------------------------------------------------------------------------- the live index
    def _load(self) -> Live:
        """Handbook from disk plus the FAQ rows. The revisions are read before the rows, so a FAQ
        saved meanwhile makes the index look older than it is (rebuilt again), never newer."""
        with self.services.db.read() as session:
            revisions = rules.revisions(session)
            faqs = rules.active_faqs(session)
        sections, problems = load_handbook(self.services.config.policy_dir)
        for problem in problems:
            log.warning("handbook problem: %s", problem)
        index = PolicyIndex.build(sections, faqs, embedder=self.embedder)
        return Live(index, revisions, tuple(problems))

    def index(self) -> PolicyIndex:
        """The index to answer with, rebuilt first if another process changed FAQs or the handbook."""
        with self.services.db.read() as session:
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
        with self.services.db.read() as session:
            revisions = rules.revisions(session)
            faqs = rules.active_faqs(session)
        # Keep the handbook revision the sections came from: if it moved too, the next question reloads.
        return replace(
            live,
            index=live.index.with_faqs(faqs),
            revisions=rules.Revisions(live.revisions.handbook, revisions.faqs),
        )

    def reload(self, actor_id: str, source: str) -> str:
        """`/policy reload`: re-read the handbook; broken files are reported, the rest is served."""
        with self._lock:
            sections, problems = load_handbook(self.services.config.policy_dir)
            listed = [str(p) for p in problems]
            if not sections and self.live.index.sections:
                log.error("handbook reload found no sections, kept the previous one: %s", listed)
                return views.reload_text(sections=0, files=0, faqs=0, problems=listed, kept_previous=True)
            with self.services.db.write() as session:
                revisions = rules.handbook_reloaded(
                    session,
                    actor_id,
                    self.services.clock.now(),
                    source,
                    sections=len(sections),
                    problems=listed,
                )
                faqs = rules.active_faqs(session)
            files = len({s.file for s in sections})
            self.live = Live(
                PolicyIndex.build(sections, faqs, embedder=self.embedder), revisions, tuple(problems)
            )
        return views.reload_text(
            sections=len(sections), files=files, faqs=len(faqs), problems=listed, kept_previous=False
        )

    def has_section(self, section_id: str) -> bool:
        return self.live.index.section(section_id) is not None

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
        url = views.section_url(self.services.config.policy_base_url, file, anchor)
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

    def section_options(self, question: PolicyQuestion) -> list[tuple[str, str]]:
        """The handbook sections a lead may link their answer to: (section id, label)."""
        options: list[tuple[str, str]] = []
        for c in rules.candidates_of(question):
            section_id, src = c.section_id, self.source(c.section_id)
            # Slack caps an option's value at 150 characters: a longer id can't be offered.
            if section_id and len(section_id) <= 150 and src and section_id not in {v for v, _ in options}:
                options.append((section_id, f"{src.heading} ({src.file})"))
        return options

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
    def ask(self, asked: Asked, source: str, send: Send) -> None:
        """Answer from the handbook, or escalate; `send` gives the asker their message (first: the
        leads' card can wait a moment, the asker shouldn't)."""
        refusal = limits_for(self.services).questions.take(asked.asker_id)
        if refusal is not None:
            # A command's reply goes through its response_url; a DM or thread post only once a streak.
            if refusal.first or asked.via == VIA_COMMAND:
                text = slow_down("questions", refusal.retry_at)
                send(text, [section(text)])
            return
        if rules.is_small_talk(asked.text):
            text = views.small_talk_text()
            send(text, [section(text)])
            return
        answer = self.index().answer(asked.text)
        with self.services.db.write() as session:
            repeated = rules.repeated_escalation(session, asked, answer)
            if repeated is None:
                question = rules.record_question(session, asked, answer, self.services.clock.now(), source)
        if repeated is not None:
            text = views.repeated_text(repeated.id or 0, repeated.via)
            send(text, [section(text)])
            return
        if question.state == ESCALATED:
            text = views.escalated_text(question.off_topic, asked.via)
            send(text, [section(text)])
            self.post_leads_card(question)
            return
        send(views.answer_text(question.quote, question.cited), self.answer_view(question, views.ASK))

    def post_leads_card(self, q: PolicyQuestion) -> None:
        """Queue the escalation for LEADS_CHANNEL: the desk's poster sends the cards one at a time
        through the workspace pacer, so a flood of questions waits in the queue rather than on the
        threads that answer people. Without the channel (or if Slack refuses), the question still
        waits on every lead's Home tab, with its Answer button."""
        assert q.id is not None
        if not self.services.config.leads_channel:
            log.warning(
                "question #%s escalated, but LEADS_CHANNEL is not set: only the Home tab shows it", q.id
            )
            return
        self._cards.put(q.id)

    def _post_cards(self) -> None:
        while (question_id := self._cards.get()) is not None:
            try:
                with self.services.db.read() as session:
                    q = rules.get_question(session, question_id)
                if q.state == ESCALATED and not q.leads_ts:
                    self._post_card(q)
            except Exception:
                log.exception("could not post the leads' card of question #%s", question_id)

    def stop(self) -> None:
        """Post what is queued, then stop the poster."""
        self._cards.put(None)
        self._poster.join(timeout=30)

    def _post_card(self, q: PolicyQuestion) -> None:
        assert q.id is not None
        channel = self.services.config.leads_channel or ""
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
        try:
            with pacer_for(self.services).slot(channel):
                posted = self.services.slack.post_once(
                    channel, f"Question #{q.id} from <@{q.asker_id}> needs a lead", blocks
                )
        except SlackFailure as e:
            log.error("could not post the escalation of question #%s to %s: %s", q.id, channel, e.error)
            return
        with self.services.db.write() as session:
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
    def deliver(self, resolution: rules.Resolution) -> str:
        """After a lead answered: DM the asker, answer in the thread it was asked in, close the
        card. Returns what to tell the lead."""
        q, faq = resolution.question, resolution.faq
        assert q.id is not None and q.lead_id is not None
        slack = self.services.slack
        saved = faq is not None
        text = f"A lead answered your question: {views.escape(q.lead_answer[:300])}"
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
                answered_at=q.resolved_at or self.services.clock.now(),
            )
            slack.update(q.leads_channel, q.leads_ts, f"Question #{q.id}: answered by <@{q.lead_id}>", card)
        sent = [f"DMed it to <@{q.asker_id}>" if dm else f":warning: I couldn't DM <@{q.asker_id}>"]
        if in_thread:
            sent.append("posted it in the thread" if thread else ":warning: couldn't post it in the thread")
        learned = f"saved it as FAQ #{faq.id}" if faq else "didn't save it as a FAQ"
        return f":white_check_mark: Answer to question #{q.id} sent: I {', '.join(sent)}, and {learned}."


# Services compare by value (a dataclass), so each app's desk is found by the identity of its
# services; the desk holds them, so that identity is not reused while the entry lives.
_desks: dict[int, PolicyDesk] = {}
_desks_lock = threading.Lock()


def desk_for(services: Services) -> PolicyDesk:
    """This app's policy desk, built (handbook read, index built) on first use and forgotten when
    the app stops, so an app started again in the same process reads the handbook afresh."""
    with _desks_lock:
        desk = _desks.get(id(services))
        if desk is None:
            desk = PolicyDesk(services)
            _desks[id(services)] = desk
            services.events.on(APP_STOPPING, lambda: _forget(services))
        return desk


def _forget(services: Services) -> None:
    with _desks_lock:
        desk = _desks.pop(id(services), None)
    if desk is not None:
        desk.stop()


def start(services: Services) -> None:
    """Build the desk before the first question, and tell the leads which handbook files (or
    sections) it could not serve."""
    desk_for(services).report_startup_problems()
