"""The announcement sender: the one worker per bot process that turns outbox rows into Slack
messages, and the scheduled jobs around it (send at a time, debounced acknowledgement counts).

How a message goes out, and what "exactly once" rests on:

* The dispatcher thread queues pending rows round-robin across running announcements; a few sender
  threads take them, each waiting for its send slot: slots are spaced evenly at
  ANNOUNCE_RATE_PER_MIN (no bursts: Slack counts in sliding windows). Each send also takes a bulk
  slot of the workspace's shared budget (`jobs/pacing.py`): reminders and cards waiting for a slot
  go first, and at most one message a second goes into any one channel. Several threads, so a
  slow answer from Slack does not stall the pace.
* A worker claims its row (pending → sending, a conditional UPDATE, committed) right before
  chat.postMessage and records the outcome right after the answer. The only in-doubt window is
  between Slack storing the message and our commit of `sent`: one answer and one commit.
* The sender's own Web API client retries nothing: repeating a POST that may have landed is how
  people get DMed twice. Instead each failure is judged here (`outcome`):
    - ratelimited (429): not sent; the whole sender pauses for Retry-After; the row goes back.
    - a permanent error (user_not_found, account_inactive, cannot_dm_bot, channel_not_found…):
      recorded as failed with that reason; the others carry on.
    - no answer, a 5xx, internal_error, fatal_error: in doubt. Every message carries metadata
      (`crewcall_announcement`: announcement id and recipient); the DM's or channel's history is
      read and the message is re-sent only if it is not there.
    - anything else: not sent; retried with exponential backoff, up to MAX_ATTEMPTS.
* At start, rows a previous process left `sending` are in doubt and checked the same way, after
  ANNOUNCE_INDOUBT_WAIT seconds (a request sent just before a crash may still be in Slack's hands).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from core.events import ANNOUNCEMENT_QUEUED
from core.people import Profile
from core.slack import PERMANENT_USER_ERRORS, SlackFailure, SlackGateway, profile_from_user
from db.models import Announcement
from domain import announcements as outbox
from jobs import runtime
from jobs.pacing import pacer_for
from jobs.redraw import Redraws
from views.announcements import fallback_text, message_blocks, status_blocks, status_text

if TYPE_CHECKING:
    from jobs.runtime import Services

log = logging.getLogger("crewcall.announce")

EVENT_TYPE = "crewcall_announcement"
SENDER_THREADS = 8
BATCH = 25  # rows taken from each running announcement per round
IDLE_WAIT = 0.5  # seconds between looks while rows wait (backing off, in doubt, under way)
QUIET_WAIT = 5.0  # seconds between looks when nothing is going out (a new announcement wakes it)
PROGRESS_EVERY = 3.0  # seconds between status card updates while sending
DUE_SCAN_EVERY = 30.0  # seconds; a safety net for a scheduled announcement whose job was lost
CALL_TIMEOUT = 10  # seconds the sender waits for one Web API answer
BACKOFF_BASE, BACKOFF_MAX = 0.5, 60.0
MAX_VERIFY_TRIES = 8
HISTORY_PAGE, HISTORY_PAGES = 200, 5  # an in-doubt message is looked for among the latest 1,000
USERS_PAGE = 1000
ACK_DEBOUNCE = timedelta(seconds=5)

# Errors that will not pass by retrying: record them and go on.
PERMANENT_ERRORS = PERMANENT_USER_ERRORS | frozenset(
    {
        "user_disabled",
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "restricted_action",
        "team_access_not_granted",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
    }
)
# Slack's own words for these: "it's possible some aspect of the operation succeeded".
IN_DOUBT_ERRORS = frozenset({"internal_error", "fatal_error"})
RATELIMITED, PERMANENT, IN_DOUBT, RETRY = "ratelimited", "permanent", "in doubt", "retry"


def outcome(error: str) -> str:
    """What a failed call means for its message: RATELIMITED, PERMANENT, IN_DOUBT or RETRY."""
    if error == "ratelimited":
        return RATELIMITED
    if error in PERMANENT_ERRORS:
        return PERMANENT
    if error in IN_DOUBT_ERRORS or error.startswith("transport:") or (error.isdigit() and int(error) >= 500):
        return IN_DOUBT
    return RETRY


def backoff(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempt - 1))


def metadata(announcement_id: int, recipient: str) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"announcement_id": announcement_id, "recipient": recipient},
    }


# ---- scheduled jobs and what handlers call -------------------------------------------------------


def send_job_id(announcement_id: int) -> str:
    return f"announce:send:{outbox.label(announcement_id)}"


def ack_job_id(announcement_id: int) -> str:
    return f"announce:acks:{outbox.label(announcement_id)}"


def start(services: Services) -> None:
    """One sender, in the process that leads the scheduler (of several on one PostgreSQL database,
    only one sends: the pace is the workspace's, and a new leader's sender checks the rows a dead
    one left `sending`). Woken when an announcement falls due, stopped with the leadership."""
    current: list[Sender] = []

    def lead(took_over: bool) -> None:
        sender = Sender(services)
        current[:] = [sender]
        sender.start()

    def step_down() -> None:
        if current:
            current.pop().stop()

    def wake(announcement_id: int) -> None:
        if current:
            current[0].wake()

    services.events.on(ANNOUNCEMENT_QUEUED, wake)
    services.scheduler.while_leading(lead, step_down)


def launch(services: Services, announcement: Announcement) -> None:
    """After an announcement is committed: for a later time, the lead's status card and a job (kept
    in the job store, run however late: a time passed while the bot was down sends on start); for
    now, the sender is woken (it draws the card once the outbox is written)."""
    announcement_id = announcement.id or 0
    if announcement.send_at > services.clock.now():
        publish_status(services, announcement_id)
        services.scheduler.at(
            send_job_id(announcement_id),
            send_due,
            announcement.send_at,
            args=(announcement_id,),
            misfire_grace=None,
        )
    elif services.scheduler.is_leader:
        services.events.emit(ANNOUNCEMENT_QUEUED, announcement_id=announcement_id)
    else:  # the sender runs in the leading process: a job there wakes it
        services.scheduler.at(
            send_job_id(announcement_id),
            send_due,
            services.clock.now(),
            args=(announcement_id,),
            misfire_grace=None,
        )


def send_due(announcement_id: int) -> None:
    """Scheduled job: the announcement's time has come; the sender takes it from here."""
    runtime.services().events.emit(ANNOUNCEMENT_QUEUED, announcement_id=announcement_id)


def schedule_ack_refresh(services: Services, announcement_id: int, at: datetime) -> None:
    services.scheduler.at(
        ack_job_id(announcement_id),
        refresh_acks,
        at,
        args=(announcement_id,),
        misfire_grace=None,
    )


def refresh_acks(announcement_id: int) -> None:
    """Scheduled job (debounced): redraw "N acknowledged" on the channel posts and the lead's card."""
    services = runtime.services()
    with services.db.write() as session:
        outbox.take_ack_refresh(session, announcement_id)
        announcement = session.get(Announcement, announcement_id)
        count = outbox.ack_count(session, announcement_id)
        posts = outbox.channel_posts(session, announcement_id)
    if announcement is None:
        return
    text = fallback_text(announcement)
    blocks = message_blocks(announcement, in_channel=True, acknowledged=count)
    for channel, ts in posts:
        services.slack.update(channel, ts, text, blocks, what=f"announcement {outbox.label(announcement_id)}")
    publish_status(services, announcement_id)


# One status card per announcement: the sender's threads and the jobs draw it one at a time, so two
# of them never both find it missing and post it twice.
_status_cards = Redraws()


def publish_status(services: Services, announcement_id: int) -> None:
    """Draw the lead's status card: updated in place, or posted (DM) when there is none yet."""
    _status_cards.request(
        (id(services), announcement_id),
        lambda: _status(services, announcement_id),
        lambda status: _draw_status(services, status),
        recheck=False,  # its progress moves with every message: redrawn every PROGRESS_EVERY instead
    )


@dataclass(frozen=True)
class _Status:
    text: str
    blocks: list[dict[str, Any]]
    announcement: Announcement = field(compare=False)  # where it is shown: not what it shows


def _status(services: Services, announcement_id: int) -> _Status | None:
    with services.db.read() as session:
        progress = outbox.progress(session, announcement_id)
    if progress is None:
        return None
    return _Status(
        status_text(progress), status_blocks(progress, progress.announcement.author_tz), progress.announcement
    )


def _draw_status(services: Services, status: _Status) -> None:
    announcement, text, blocks = status.announcement, status.text, status.blocks
    if announcement.status_channel and announcement.status_ts:
        services.slack.update(
            announcement.status_channel, announcement.status_ts, text, blocks, what="status"
        )
        return
    posted = services.slack.dm(announcement.author_id, text, blocks, what="announcement status")
    if posted is not None:
        with services.db.write() as session:
            outbox.set_status_message(session, announcement.id or 0, posted.channel, posted.ts)


def workspace_members(slack: SlackGateway, page_size: int = USERS_PAGE) -> list[Profile]:
    """Every account in the workspace, from users.list page by page (the domain decides who of
    them an announcement to everyone reaches)."""
    profiles: list[Profile] = []
    cursor: str | None = None
    while True:
        data = slack.call("users.list", limit=page_size, cursor=cursor)
        profiles += [profile_from_user(u) for u in data.get("members") or []]
        cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return profiles


# ---- pacing --------------------------------------------------------------------------------------


class EvenPacer:
    """Hands out send slots spaced at `per_second`. A slot handed out late (the thread woke late,
    the database was slow) lets up to CATCH_UP following slots go at once, so such delays do not
    add up to a lower rate; no more than that, so any window of W seconds holds at most
    per_second × W + CATCH_UP + 1 sends (Slack counts in sliding windows). `pause` honours a
    Retry-After for every slot not yet handed out."""

    CATCH_UP = 4

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        """Block until the next slot; False when `stop` was set meanwhile."""
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now - self.CATCH_UP * self.interval, self._paused_until)
            self._next = slot + self.interval
        delay = slot - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def pause(self, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._paused_until = max(self._paused_until, until)
            self._next = max(self._next, until)

    def hold(self, stop: threading.Event) -> None:
        """For a slot handed out before a pause: wait the pause out too."""
        with self._lock:
            delay = self._paused_until - time.monotonic()
        if delay > 0:
            stop.wait(delay)


# ---- the sender ----------------------------------------------------------------------------------


class Sender:
    """Started and stopped with the scheduler's leadership: one per database. Claims are conditional
    anyway, so no row is ever sent twice by two senders; but a sender takes every row left
    `sending` when it starts for a dead sender's (to check in Slack), so a second one beside a live
    sender would check rows still under way."""

    def __init__(self, services: Services) -> None:
        config = services.config
        self.services = services
        self.worker_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        # No retry handlers: see the module docstring.
        client = WebClient(
            token=config.slack_bot_token.get_secret_value(),
            base_url=config.slack_api_url,
            timeout=CALL_TIMEOUT,
            retry_handlers=[],
        )
        self.slack = SlackGateway(client)
        self.pacer = EvenPacer(config.announce_rate_per_min / 60.0)
        self.indoubt_wait = config.announce_indoubt_wait
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Work for the sender threads: (delivery id, paced?, what to do). Short, so a cancel or a
        # newer announcement is not stuck behind a long queue.
        self._tasks: queue.Queue[tuple[int, bool, Callable[[], None]]] = queue.Queue(SENDER_THREADS * 2)
        self._lock = threading.Lock()
        self._busy: set[int] = set()  # delivery ids handed to a worker
        self._not_before: dict[int, float] = {}  # backoff of released rows (monotonic)
        self._doubts: dict[int, tuple[float, int]] = {}  # in-doubt row -> (check at, checks failed)
        self._cursors: dict[int, int] = {}
        self._announcements: dict[int, Announcement] = {}
        self._shown: dict[int, tuple[object, ...]] = {}  # what each status card shows now
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        loops = [("announce-dispatch", self._dispatch_loop), ("announce-progress", self._progress_loop)]
        loops += [(f"announce-send-{i}", self._work_loop) for i in range(SENDER_THREADS)]
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking rows; messages under way finish and are recorded."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT + 5)

    def wake(self) -> None:
        self._wake.set()

    # ---- dispatching -----------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        next_due_scan = 0.0
        recovered = False
        while not self._stop.is_set():
            try:
                if not recovered:
                    self._recover()
                    recovered = True
                if self._wake.is_set() or time.monotonic() >= next_due_scan:
                    self._wake.clear()
                    self._start_due()
                    next_due_scan = time.monotonic() + DUE_SCAN_EVERY
                self._check_doubts()
                batch, running = self._next_batch()
                if not batch:
                    # Nothing to hand out: any announcement whose last message settled gets its
                    # report now rather than at the next progress tick.
                    self._report(only_finished=True)
                    self._wake.wait(IDLE_WAIT if running or self._doubts else QUIET_WAIT)
                    continue
                for delivery_id in batch:
                    if not self._submit(delivery_id, partial(self._deliver, delivery_id), paced=True):
                        return
            except Exception:
                # The database or Slack may be briefly away: nothing is lost (rows stay pending).
                log.exception("announcement sender: dispatch failed; trying again shortly")
                self._stop.wait(2.0)

    def _submit(self, delivery_id: int, work: Callable[[], None], paced: bool) -> bool:
        """Queue `work` for the sender threads (waiting while the queue is full); False when stopping."""
        with self._lock:
            self._busy.add(delivery_id)
        while not self._stop.is_set():
            try:
                self._tasks.put((delivery_id, paced, work), timeout=IDLE_WAIT)
                return True
            except queue.Full:
                continue
        with self._lock:
            self._busy.discard(delivery_id)
        return False

    def _work_loop(self) -> None:
        """A sender thread. Each waits for its own send slot, so one thread waking late (the GIL,
        a busy machine) delays only its own message, not the ones after it."""
        while not self._stop.is_set():
            try:
                delivery_id, paced, work = self._tasks.get(timeout=IDLE_WAIT)
            except queue.Empty:
                continue
            try:
                if not paced or self.pacer.wait(self._stop):
                    work()
            except Exception:
                log.exception("announcement sender: delivery %s failed unexpectedly", delivery_id)
            finally:
                with self._lock:
                    self._busy.discard(delivery_id)

    def _next_batch(self) -> tuple[list[int], bool]:
        """Pending rows, a few from each running announcement in turn, so a long broadcast does not
        hold up a short one; rows under way or backing off are skipped. And whether any
        announcement is running at all."""
        now = time.monotonic()
        queues: list[list[int]] = []
        with self.services.db.read() as session:
            running = outbox.running(session)
            for announcement_id in running:
                after = self._cursors.get(announcement_id, 0)
                ids = outbox.pending_after(session, announcement_id, after, BATCH)
                if not ids and after:
                    ids = outbox.pending_after(session, announcement_id, 0, BATCH)
                self._cursors[announcement_id] = ids[-1] if ids else 0
                queues.append(ids)
        with self._lock:
            for delivery_id, at in list(self._not_before.items()):
                if at <= now:
                    del self._not_before[delivery_id]
            skip = self._busy | set(self._not_before)
        batch: list[int] = []
        for i in range(max((len(q) for q in queues), default=0)):
            batch += [q[i] for q in queues if i < len(q) and q[i] not in skip]
        return batch, bool(running)

    def _start_due(self) -> None:
        """Start every announcement whose time has come: resolve its audience and write its outbox."""
        now = self.services.clock.now()
        with self.services.db.read() as session:
            due = [(a.id or 0, a.audience_kind) for a in outbox.due(session, now)]
        for announcement_id, kind in due:
            workspace = None
            if kind == outbox.EVERYONE:
                try:
                    workspace = workspace_members(self.services.slack)
                except SlackFailure as e:
                    log.error(
                        "could not list the workspace for %s (%s); trying again in %ss",
                        outbox.label(announcement_id),
                        e.error,
                        DUE_SCAN_EVERY,
                    )
                    continue
            with self.services.db.write() as session:
                started = outbox.materialize(session, announcement_id, now, workspace)
            if started:
                log.info("%s is going out", outbox.label(announcement_id))
                publish_status(self.services, announcement_id)

    # ---- one message -----------------------------------------------------------------------------

    def _announcement(self, announcement_id: int) -> Announcement:
        with self._lock:
            cached = self._announcements.get(announcement_id)
        if cached is not None:
            return cached
        with self.services.db.read() as session:
            announcement = session.get(Announcement, announcement_id)
        assert announcement is not None
        with self._lock:
            self._announcements[announcement_id] = announcement
        return announcement

    def _deliver(self, delivery_id: int) -> None:
        self.pacer.hold(self._stop)
        with self.services.db.write() as session:
            claim = outbox.claim(session, delivery_id, self.worker_id, self.services.clock.now())
            acknowledged = (
                outbox.ack_count(session, claim.announcement_id) if claim and claim.kind == outbox.POST else 0
            )
        if claim is None:
            return
        announcement = self._announcement(claim.announcement_id)
        in_channel = claim.kind == outbox.POST
        try:
            # The workspace's budget is shared with reminders and cards, which go first; it also
            # keeps posts into one channel a second apart.
            with pacer_for(self.services).slot(claim.target, bulk=True, stop=self._stop):
                # A user ID as the channel posts into the bot's DM with them: no conversations.open
                # (Tier 3) per recipient.
                data = self.slack.call(
                    "chat.postMessage",
                    channel=claim.target,
                    text=fallback_text(announcement),
                    blocks=message_blocks(announcement, in_channel=in_channel, acknowledged=acknowledged),
                    metadata=metadata(claim.announcement_id, claim.target),
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except SlackFailure as failure:
            self._failed(claim, failure)
            return
        self._record_sent(delivery_id, str(data.get("channel") or claim.target), str(data.get("ts")))

    def _record_sent(self, delivery_id: int, channel: str, ts: str) -> None:
        try:
            with self.services.db.write() as session:
                outbox.mark_sent(session, delivery_id, channel, ts, self.services.clock.now())
        except Exception:
            log.exception("could not record delivery %s as sent; it will be checked in Slack", delivery_id)
            self._doubt(delivery_id, time.monotonic() + self.indoubt_wait)

    def _failed(self, claim: outbox.Claim, failure: SlackFailure) -> None:
        verdict = outcome(failure.error)
        delivery_id = claim.delivery_id
        if verdict == RATELIMITED:
            wait = failure.retry_after or 1.0
            log.warning("Slack rate-limited the announcement sender: pausing %.1fs", wait)
            self.pacer.pause(wait)
            with self.services.db.write() as session:
                outbox.release(session, delivery_id, failure.error, refund_attempt=True)
        elif verdict == PERMANENT:
            with self.services.db.write() as session:
                outbox.mark_failed(session, delivery_id, failure.error)
        elif verdict == IN_DOUBT:
            log.warning(
                "no clear answer for %s to %s (%s): checking Slack before any re-send",
                outbox.label(claim.announcement_id),
                claim.target,
                failure.error,
            )
            with self.services.db.write() as session:
                outbox.note_error(session, delivery_id, failure.error)
            self._doubt(delivery_id, time.monotonic() + self.indoubt_wait)
        elif claim.attempts >= outbox.MAX_ATTEMPTS:
            with self.services.db.write() as session:
                outbox.mark_failed(session, delivery_id, failure.error)
        else:
            with self.services.db.write() as session:
                outbox.release(session, delivery_id, failure.error)
            with self._lock:
                self._not_before[delivery_id] = time.monotonic() + backoff(claim.attempts)

    # ---- in-doubt rows ---------------------------------------------------------------------------

    def _recover(self) -> None:
        with self.services.db.read() as session:
            ids = outbox.in_doubt(session, outbox.running(session), self.worker_id)
        if ids:
            log.warning(
                "%d announcement message(s) were under way when the last process stopped: "
                "checking Slack for them in %ss before any re-send",
                len(ids),
                self.indoubt_wait,
            )
        for delivery_id in ids:
            self._doubt(delivery_id, time.monotonic() + self.indoubt_wait)

    def _doubt(self, delivery_id: int, check_at: float, failed_checks: int = 0) -> None:
        with self._lock:
            self._doubts[delivery_id] = (check_at, failed_checks)

    def _check_doubts(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [(i, tries) for i, (at, tries) in self._doubts.items() if at <= now]
            for delivery_id, _ in due:
                del self._doubts[delivery_id]
        for delivery_id, tries in due:
            if not self._submit(delivery_id, partial(self._verify, delivery_id, tries), paced=False):
                return

    def _verify(self, delivery_id: int, failed_checks: int) -> None:
        """Did this in-doubt message reach Slack? Found: recorded as sent. Not found: back to
        pending, to be sent (again, as far as we know, for the first time)."""
        with self.services.db.read() as session:
            row = outbox.delivery(session, delivery_id)
        if row is None or row.state != outbox.CLAIMED:
            return
        try:
            channel = row.target if row.kind == outbox.POST else self.slack.open_dm(row.target)
            ts = self._find(channel, row.announcement_id, row.target)
        except SlackFailure as failure:
            verdict = outcome(failure.error)
            with self.services.db.write() as session:
                if verdict == PERMANENT:
                    outbox.mark_failed(session, delivery_id, failure.error)
                    return
                if failed_checks + 1 >= MAX_VERIFY_TRIES:
                    # Never re-send unverified, never drop silently: it shows in the report.
                    log.error(
                        "could not check delivery %s in Slack (%s): marked failed", delivery_id, failure.error
                    )
                    outbox.mark_failed(session, delivery_id, f"unverified ({failure.error})")
                    return
            delay = (
                failure.retry_after
                if verdict == RATELIMITED and failure.retry_after
                else backoff(failed_checks + 1)
            )
            self._doubt(delivery_id, time.monotonic() + delay, failed_checks + 1)
            return
        with self.services.db.write() as session:
            if ts:
                log.info("delivery %s was in doubt and is in Slack: recorded as sent", delivery_id)
                outbox.mark_sent(session, delivery_id, channel, ts, self.services.clock.now())
            elif row.attempts >= outbox.MAX_ATTEMPTS:
                outbox.mark_failed(session, delivery_id, row.last_error or "no answer from Slack")
            else:
                outbox.release(session, delivery_id, row.last_error or "in doubt, not in Slack")

    def _find(self, channel: str, announcement_id: int, recipient: str) -> str | None:
        """The ts of this announcement's message to this recipient in the channel's recent history."""
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            data = self.slack.call(
                "conversations.history",
                channel=channel,
                limit=HISTORY_PAGE,
                include_all_metadata=True,
                cursor=cursor,
            )
            for message in data.get("messages") or []:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (
                    meta.get("event_type") == EVENT_TYPE
                    and str(payload.get("announcement_id")) == str(announcement_id)
                    and payload.get("recipient") == recipient
                ):
                    return str(message.get("ts"))
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    # ---- progress --------------------------------------------------------------------------------

    def _progress_loop(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY):
            try:
                self._report()
            except Exception:
                log.exception("announcement sender: progress update failed")

    def _report(self, only_finished: bool = False) -> None:
        """Close announcements whose outbox is settled and draw their report; unless
        `only_finished`, redraw the cards of the others whose counts moved."""
        with self.services.db.read() as session:
            running = outbox.running(session)
        for announcement_id in running:
            with self.services.db.write() as session:
                finished = outbox.finish_if_complete(session, announcement_id, self.services.clock.now())
                progress = None if only_finished else outbox.progress(session, announcement_id)
            if finished:
                log.info("%s finished", outbox.label(announcement_id))
                publish_status(self.services, announcement_id)
                with self._lock:
                    self._announcements.pop(announcement_id, None)
                    self._shown.pop(announcement_id, None)
                self._cursors.pop(announcement_id, None)
            elif progress is not None and self._shown.get(announcement_id) != progress.key:
                publish_status(self.services, announcement_id)
                with self._lock:
                    self._shown[announcement_id] = progress.key
