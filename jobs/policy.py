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
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from core.events import APP_STOPPING
from core.slack import POST_KEY_EVENT, SlackFailure
from core.turns import stepping_out
from domain.policy import HandbookError, PolicyIndex, load_handbook
from domain.policy import service as rules
from domain.policy.semantic import Embedder
from domain.policy.service import ESCALATED, VIA_COMMAND, VIA_DM, VIA_MENTION, Asked
from domain.policy.shared_encoder import shared_encoder
from jobs.fairness import limits_for
from jobs.pacing import pacer_for
from views import policy as views
from views.blocks import Block, section, slow_down

if TYPE_CHECKING:
    from sqlmodel import Session

    from db.models import PolicyQuestion
    from jobs.runtime import Services

log = logging.getLogger("crewcall.policy")

#: How often a poster looks for cards queued by other processes (its own wake it at once).
CARD_POLL_S = 5.0
#: A claim this old was left by a poster that died (posting takes seconds): another takes it over.
CARD_CLAIM_STALE = timedelta(minutes=2)

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
        config = services.config
        self.embedder = Embedder(
            config.policy_cache_dir,
            partial(shared_encoder, config.policy_cache_dir, config.policy_encoder_idle_exit)
            if config.policy_encoder == "shared"
            else None,
        )
        self.live = self._load()
        self._wake = threading.Event()  # a card was queued here: look now, not at the next poll
        self._stopping = threading.Event()
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
        with stepping_out():  # the encoder's wait holds up no other request
            answer = self.index().answer(asked.text)
        with self.services.db.write() as session:
            repeated = rules.repeated_escalation(session, asked, answer)
            if repeated is None:
                question = rules.record_question(session, asked, answer, self.services.clock.now(), source)
                if question.state == ESCALATED:
                    self.queue_leads_card(session, question)
        if repeated is not None:
            text = views.repeated_text(repeated.id or 0, repeated.via)
            send(text, [section(text)])
            return
        if question.state == ESCALATED:
            text = views.escalated_text(question.off_topic, asked.via)
            send(text, [section(text)])
            self.wake_poster()
            return
        send(views.answer_text(question.quote, question.cited), self.answer_view(question, views.ASK))

    def queue_leads_card(self, session: Session, q: PolicyQuestion) -> None:
        """Queue the escalation's card for LEADS_CHANNEL, in the transaction that escalates it (so a
        process dying after it commits leaves the card queued, not lost); `wake_poster()` once it
        has committed. A poster thread (this process's, or any other's) claims the card and sends
        the cards one at a time through the workspace pacer, so a flood of questions waits in the
        queue rather than on the threads that answer people. Without the channel (or if Slack
        refuses), the question still waits on every lead's Home tab, with its Answer button."""
        assert q.id is not None
        if not self.services.config.leads_channel:
            log.warning(
                "question #%s escalated, but LEADS_CHANNEL is not set: only the Home tab shows it", q.id
            )
            return
        rules.queue_leads_card(session, q.id, self.services.clock.now())

    def wake_poster(self) -> None:
        """A card was queued here: look now rather than at the next poll."""
        self._wake.set()

    def _post_cards(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(CARD_POLL_S)
            self._wake.clear()  # a card queued from here on wakes the next wait
            try:
                while not self._stopping.is_set() and self._post_next_card():
                    pass
            except Exception:
                log.exception("could not post the leads' cards")

    def _post_next_card(self) -> bool:
        """Claim the oldest waiting card and post it; False when none is waiting. The claim is
        taken once the pacer lets this poster send, so it is never older than a post takes."""
        with self.services.db.read() as session:
            if not rules.leads_card_waiting(session):
                return False
        channel = self.services.config.leads_channel or ""
        with pacer_for(self.services).slot(channel):
            now = self.services.clock.now()
            with self.services.db.write() as session:
                claim = rules.claim_leads_card(session, now, stale_before=now - CARD_CLAIM_STALE)
            if claim is None:
                return False
            q = claim.question
            assert q.id is not None
            if q.state != ESCALATED or q.leads_ts or not channel:
                with self.services.db.write() as session:
                    rules.drop_leads_card(session, q.id)
                return True
            self._post_card(q, channel, claim.retried)
        return True

    def stop(self) -> None:
        """Finish the card being posted, then stop the poster; cards still waiting stay queued in
        the database for the next start, or for another process."""
        self._stopping.set()
        self._wake.set()
        self._poster.join(timeout=30)

    def _post_card(self, q: PolicyQuestion, channel: str, retried: bool) -> None:
        assert q.id is not None
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
        # The same key whichever process posts it: one that takes over a dead poster's claim first
        # looks for the card in the channel.
        key = f"policy-question-{q.id}"
        slack = self.services.slack
        try:
            posted = slack.find_post(channel, key) if retried else None
            if posted is None:
                posted = slack.post_once(
                    channel,
                    f"Question #{q.id} from <@{q.asker_id}> needs a lead",
                    blocks,
                    metadata={"event_type": POST_KEY_EVENT, "event_payload": {"key": key}},
                )
        except SlackFailure as e:
            if e.in_doubt:  # it may have been posted: the claim goes stale, then the channel is checked
                log.warning(
                    "the escalation of question #%s may not have reached %s: %s", q.id, channel, e.error
                )
                return
            log.error("could not post the escalation of question #%s to %s: %s", q.id, channel, e.error)
            with self.services.db.write() as session:
                rules.drop_leads_card(session, q.id)
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
