"""Shift jobs: each member's reminder, the start of each occurrence, its end (attendance), and the
Slack side of shifts that both handlers and jobs need (the card, paced posts).

Job ids are deterministic, so registering a plan twice replaces instead of duplicating:

    reminder:S-3:<occurrence>:<user>    at start − remind; misfire grace = remind, so a reminder that
                                        fell due while the bot was down still goes out before the start
    shift:S-3:<occurrence>:start        at the start; runs however late (it moves a repeating shift on)
    shift:S-3:<occurrence>:end          at the end; runs however late (it records no-shows)

Whether a reminder went out is kept in the ledger (`shift_reminder`), not in the job: a job that
runs twice (a restart, a second process) sends once, and one lost in a crash is registered again
from the ledger at start-up (`start`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.slack import PERMANENT_USER_ERRORS, Posted, SlackFailure, on_request_thread
from domain import shifts
from domain.shifts import JobPlan, ReminderToSend, ShiftView
from jobs import runtime
from jobs.pacing import pacer_for
from jobs.redraw import InPlace, Redraws
from views import shifts as shift_views
from views.blocks import local_time

if TYPE_CHECKING:
    from jobs.runtime import Services
    from jobs.scheduler import Scheduler

log = logging.getLogger("crewcall.shifts")

REMINDER_RETRY = timedelta(minutes=1)
REMINDER_EVENT = "crewcall_reminder"  # metadata on each reminder DM: its ledger row
IN_DOUBT_JOB = "shifts:reminders-in-doubt"
HISTORY_LOOKUP = 200  # the latest messages of a member's DM looked through for a DM in doubt
UNREACHABLE = PERMANENT_USER_ERRORS | {"user_disabled", "channel_not_found", "is_archived"}


def reminder_job_id(shift_id: int, occurrence: int, user_id: str) -> str:
    return f"reminder:{shifts.ref(shift_id)}:{occurrence}:{user_id}"


def start_job_id(shift_id: int, occurrence: int) -> str:
    return f"shift:{shifts.ref(shift_id)}:{occurrence}:start"


def end_job_id(shift_id: int, occurrence: int) -> str:
    return f"shift:{shifts.ref(shift_id)}:{occurrence}:end"


# ---- registering --------------------------------------------------------------------------


def register(scheduler: Scheduler, plan: JobPlan) -> None:
    for r in plan.reminders:
        scheduler.at(
            reminder_job_id(r.shift_id, r.occurrence, r.user_id),
            send_reminder,
            r.due_at,
            args=(r.shift_id, r.occurrence, r.user_id),
            # Still sent late (e.g. after downtime) as long as the shift hasn't started.
            misfire_grace=max(r.starts_at - r.due_at, timedelta(seconds=1)),
        )
    for shift_id, n, at in plan.starts:
        scheduler.at(start_job_id(shift_id, n), start_shift, at, args=(shift_id, n), misfire_grace=None)
    for shift_id, n, at in plan.ends:
        scheduler.at(end_job_id(shift_id, n), end_shift, at, args=(shift_id, n), misfire_grace=None)


def unregister_reminders(scheduler: Scheduler, dropped: tuple[tuple[int, int, str], ...]) -> None:
    for shift_id, occurrence, user_id in dropped:
        job_id = reminder_job_id(shift_id, occurrence, user_id)
        for job in scheduler.jobs(job_id):  # the job and any retry of it
            scheduler.remove(job.id)


def unregister_shift(scheduler: Scheduler, shift_id: int) -> None:
    for prefix in (f"reminder:{shifts.ref(shift_id)}:", f"shift:{shifts.ref(shift_id)}:"):
        for job in scheduler.jobs(prefix):
            scheduler.remove(job.id)


def start(services: Services) -> None:
    """At start-up, and in a process that takes over the scheduler from a dead leader: register
    every job the database says is still to run (idempotent)."""
    register_outstanding(services)

    def lead(took_over: bool) -> None:
        if took_over:
            # The jobs the dead leader had taken from the store are registered again; reminders it
            # left "sending" are looked up in Slack once its last requests have landed.
            register_outstanding(services)
            now = services.clock.now()
            services.scheduler.at(
                IN_DOUBT_JOB,
                check_reminders_in_doubt,
                now + timedelta(seconds=services.config.announce_indoubt_wait),
                args=(now,),
                misfire_grace=None,
            )

    services.scheduler.while_leading(lead, lambda: None)


def register_outstanding(services: Services) -> None:
    with services.db.write() as session:
        plan = shifts.outstanding(session, services.clock.now())
    register(services.scheduler, plan)
    if plan.reminders or plan.starts:
        log.info(
            "registered %d reminders, %d shift starts and %d shift ends",
            len(plan.reminders),
            len(plan.starts),
            len(plan.ends),
        )


# ---- Slack side ---------------------------------------------------------------------------

_cards = Redraws()


def refresh_card(services: Services, shift_id: int) -> None:
    """Redraw the shift's card from the database, coalescing concurrent redraws."""
    _cards.update((id(services), shift_id), services.slack, lambda: _card(services, shift_id))


def _card(services: Services, shift_id: int) -> InPlace | None:
    with services.db.read() as session:
        shift = shifts.get(session, shift_id)
        current = shifts.view(session, shift)
    if not current.message_ts:
        return None
    text, blocks = shift_views.card(current)
    return InPlace(current.channel_id, current.message_ts, text, blocks, f"{current.ref} card")


def post_card(services: Services, v: ShiftView) -> str | None:
    """Post a new shift's card; returns Slack's error when it could not."""
    text, blocks = shift_views.card(v)
    try:
        with pacer_for(services).slot(v.channel_id):
            posted = services.slack.post_once(v.channel_id, text, blocks)
    except SlackFailure as e:
        if e.rate_limited and on_request_thread():  # from the retry thread, once Slack allows
            services.slack.later(e.retry_after or 1.0, lambda: _post_card_later(services, v))
            return None
        log.error("could not post the card of %s to %s: %s", v.ref, v.channel_id, e.error)
        return e.error
    with services.db.write() as session:
        shifts.set_card(session, v.id, posted.channel, posted.ts)
    return None


def _post_card_later(services: Services, v: ShiftView) -> None:
    error = post_card(services, v)
    if error:
        notify(
            services,
            v.creator_id,
            f"I couldn't post the card of {v.ref} in <#{v.channel_id}> (`{error}`).",
            "card",
        )


def paced_dm(
    services: Services,
    user_id: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A DM through the pacer; raises SlackFailure. Posting to the user id lands in their DM without
    a conversations.open first (one call instead of two per reminder in a burst); the user id
    stands for that DM channel in the pacer."""
    with pacer_for(services).slot(user_id):
        return services.slack.call(
            "chat.postMessage",
            channel=user_id,
            text=text,
            blocks=blocks,
            metadata=metadata,
            unfurl_links=False,
        )


def find_dm(services: Services, user_id: str, event_type: str, match: dict[str, Any]) -> Posted | None:
    """The DM to `user_id` whose metadata is `event_type` with `match` in its payload, if it is among
    the latest HISTORY_LOOKUP of their DM: how a DM in doubt (its sender died between the post and
    recording it, or Slack didn't answer) is told sent or not before it is sent again. Every DM
    that is sent exactly once (reminders, the welcome, statements) is looked for here. Raises
    SlackFailure when it can't be told."""
    channel = services.slack.open_dm(user_id)
    return services.slack.find_by_metadata(channel, match, event_type, limit=HISTORY_LOOKUP)


def notify(services: Services, user_id: str, text: str, what: str) -> None:
    """A paced DM whose failure is logged, never raised."""
    try:
        paced_dm(services, user_id, text)
    except SlackFailure as e:
        log.error("could not DM %s to %s: %s", what, user_id, e.error)


# ---- jobs ---------------------------------------------------------------------------------


def send_reminder(shift_id: int, occurrence: int, user_id: str) -> None:
    services = runtime.services()
    with services.db.write() as session:
        todo = shifts.claim_reminder(session, shift_id, occurrence, user_id, services.clock.now())
    if todo is not None:
        deliver_reminder(services, todo)


def deliver_reminder(services: Services, todo: ReminderToSend) -> None:
    now = services.clock.now()
    text, blocks = shift_views.reminder(todo.shift, todo.tz, now)
    try:
        data = paced_dm(services, todo.user_id, text, blocks, reminder_metadata(todo.reminder_id))
    except SlackFailure as e:
        _retry_or_give_up(services, todo, e.error)
        return
    with services.db.write() as session:
        shifts.reminder_sent(
            session, todo.reminder_id, services.clock.now(), data.get("channel", ""), data["ts"]
        )


def reminder_metadata(reminder_id: int) -> dict[str, Any]:
    return {"event_type": REMINDER_EVENT, "event_payload": {"reminder_id": reminder_id}}


def check_reminders_in_doubt(took_over_at: datetime) -> None:
    """Scheduled after a takeover: each reminder the dead leader left "sending" (claimed before
    `took_over_at`; later claims are this process's own, maybe under way) is looked for in
    the member's DM. Found: recorded as sent. Not found: pending again, and sent now. (A
    leader that steps down alive stops handing out jobs first, and this waits
    ANNOUNCE_INDOUBT_WAIT for its requests under way.)"""
    services = runtime.services()
    with services.db.read() as session:
        in_doubt = shifts.reminders_sending(session, claimed_before=took_over_at)
    for reminder_id, user_id in in_doubt:
        try:
            found = find_dm(services, user_id, REMINDER_EVENT, {"reminder_id": reminder_id})
        except SlackFailure as e:
            # Can't tell: left "sending", so it is retried only once it counts as cut off.
            log.error("could not check reminder %s in %s's DM (%s)", reminder_id, user_id, e.error)
            continue
        with services.db.write() as session:
            if found is not None:
                shifts.reminder_sent(session, reminder_id, services.clock.now(), found.channel, found.ts)
            else:
                shifts.reminder_failed(session, reminder_id, retry=True)
    if in_doubt:
        log.info("checked %d reminder(s) a dead leader left under way", len(in_doubt))
        register_outstanding(services)


def _retry_or_give_up(services: Services, todo: ReminderToSend, error: str) -> None:
    retry_at = services.clock.now() + REMINDER_RETRY
    retry = error not in UNREACHABLE and retry_at < todo.shift.starts_at
    with services.db.write() as session:
        shifts.reminder_failed(session, todo.reminder_id, retry=retry)
    v = todo.shift
    if not retry:
        log.error("reminder of %s for %s could not be sent (%s); giving up", v.ref, todo.user_id, error)
        return
    log.warning("reminder of %s for %s failed (%s); trying again at %s", v.ref, todo.user_id, error, retry_at)
    with services.db.read() as session:
        attempts = shifts.reminder_attempts(session, todo.reminder_id)
    # A new id per attempt: the scheduler is still removing the job that is running now.
    services.scheduler.at(
        f"{reminder_job_id(v.id, v.occurrence, todo.user_id)}:retry{attempts}",
        send_reminder,
        retry_at,
        args=(v.id, v.occurrence, todo.user_id),
        misfire_grace=max(v.starts_at - retry_at, timedelta(seconds=1)),
    )


def start_shift(shift_id: int, occurrence: int) -> None:
    services = runtime.services()
    with services.db.write() as session:
        result = shifts.start_occurrence(session, shift_id, occurrence, services.clock.now())
    if result is None:
        return
    register(services.scheduler, result.plan)
    if result.announce:
        text, blocks = shift_views.started(result.shift, result.on_now, result.starts_at, result.ends_at)
        try:
            with pacer_for(services).slot(result.shift.channel_id):
                services.slack.call(
                    "chat.postMessage", channel=result.shift.channel_id, text=text, blocks=blocks
                )
        except SlackFailure as e:
            log.error(
                "could not announce the start of %s in %s: %s",
                result.shift.ref,
                result.shift.channel_id,
                e.error,
            )
    if result.shift.repeat != "none":
        refresh_card(services, shift_id)  # it now shows the next occurrence


def end_shift(shift_id: int, occurrence: int) -> None:
    services = runtime.services()
    with services.db.write() as session:
        result = shifts.end_occurrence(session, shift_id, occurrence, services.clock.now())
    if result is None:
        return
    v = result.shift
    for no_show in result.no_shows:
        when = local_time(result.starts_at, services.directory.tz_of(no_show.user_id))
        notify(
            services,
            no_show.user_id,
            f"You were on {v.ref} {shift_views.name(v)} ({when}) but didn't clock in, so it was recorded as a no-show. "
            f"If that's wrong, tell <@{v.creator_id}>.",
            "no-show notice",
        )
        if no_show.recent >= 2:
            lead_when = local_time(result.starts_at, services.directory.tz_of(v.creator_id))
            notify(
                services,
                v.creator_id,
                f":warning: <@{no_show.user_id}> didn't show up for {v.ref} {shift_views.name(v)} ({lead_when}): "
                f"that's {no_show.recent} no-shows in the last 30 days.",
                "repeated no-show alert",
            )
    if v.state == "ended":
        refresh_card(services, shift_id)
