"""Pay jobs: the stop at the weekly cap and the 90% notice of a running clock-in, and the Monday
statements.

    pay:E-7:notice      when the running clock-in reaches 90% of the week's cap; runs however late,
                        sends once per member and week (the `cap_notice` row is the "once")
    pay:E-7:cap         when it reaches the cap; runs however late and closes the entry at the
                        cap's instant (not later), or re-plans itself if a lead raised the cap
    pay:statements      every 15 minutes: the statements due (Monday 09:00 in each member's zone),
                        each claimed in the `pay_statement` ledger before it is sent, so a second
                        run, a restart or a replayed job sends nothing twice; one whose sender was
                        cut off (or got no answer from Slack) is looked for in the member's DM, by
                        its metadata, before it is sent again

Both cap jobs are re-planned from the database at start-up and whenever a lead changes a cap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from core.slack import SlackFailure
from domain import hours, pay
from jobs import hours as hour_jobs
from jobs import runtime
from jobs.shifts import UNREACHABLE, find_dm, notify, paced_dm
from views import pay as pay_views
from views.blocks import local_time

if TYPE_CHECKING:
    from jobs.runtime import Services

log = logging.getLogger("crewcall.pay")

STATEMENT_EVENT = "crewcall_statement"  # metadata on each statement DM: its ledger row


def notice_job_id(entry_id: int) -> str:
    return f"pay:{hours.entry_ref(entry_id)}:notice"


def cap_job_id(entry_id: int) -> str:
    return f"pay:{hours.entry_ref(entry_id)}:cap"


def start(services: Services) -> None:
    """At start-up: the cap jobs of every open clock-in, and the statements' sweep."""
    with services.db.read() as session:
        entries = hours.open_entries(session)
    for entry_id, _ in entries:
        plan_cap(services, entry_id)
    # Overlapping sweeps are harmless (the ledger decides who sends), and one still running must not
    # make the next tick be skipped.
    services.scheduler.cron(
        "pay:statements", send_statements, tz="UTC", minute="*/15", misfire_grace_time=None, max_instances=3
    )


def plan_cap(services: Services, entry_id: int) -> None:
    """(Re)schedule a running clock-in's 90% notice and stop at the cap."""
    with services.db.read() as session:
        times = pay.cap_times(session, entry_id, services.config.weekly_hours_cap)
    scheduler = services.scheduler
    if times is None or times.notice_at is None:
        scheduler.remove(notice_job_id(entry_id))
    else:
        scheduler.at(
            notice_job_id(entry_id), cap_notice, times.notice_at, args=(entry_id,), misfire_grace=None
        )
    if times is None or times.stop_at is None:
        scheduler.remove(cap_job_id(entry_id))
    else:
        scheduler.at(cap_job_id(entry_id), stop_at_cap, times.stop_at, args=(entry_id,), misfire_grace=None)


def unplan_cap(services: Services, entry_id: int) -> None:
    services.scheduler.remove(notice_job_id(entry_id))
    services.scheduler.remove(cap_job_id(entry_id))


def cap_changed(services: Services, user_id: str) -> None:
    """A lead changed the member's cap: re-plan their running clock-in, if any."""
    with services.db.read() as session:
        current = hours.open_entry(session, user_id)
    if current is not None:
        plan_cap(services, current.id)


def cap_notice(entry_id: int) -> None:
    services = runtime.services()
    now = services.clock.now()
    with services.db.write() as session:
        current = hours.still_open(session, entry_id, now)
        if current is None:
            return
        status = pay.cap_status(session, current.user_id, now, services.config.weekly_hours_cap)
        if not status.near or status.reached or not pay.claim_cap_notice(session, current.user_id, now):
            return
    notify(services, current.user_id, pay_views.near_cap_dm(status), "90% cap notice")


def stop_at_cap(entry_id: int) -> None:
    services = runtime.services()
    with services.db.write() as session:
        closed = pay.stop_at_cap(session, entry_id, services.clock.now(), services.config.weekly_hours_cap)
    if closed is None:
        plan_cap(services, entry_id)  # not at the cap (raised meanwhile) or already closed
        return
    entry = closed.entry
    hour_jobs.unregister(services.scheduler, entry.id)
    notify(services, entry.user_id, stopped_at_cap_text(services, entry), "stopped at cap")
    hour_jobs.after_closed(services, closed)
    services.home.publish(services, entry.user_id)


def stopped_at_cap_text(services: Services, entry: hours.Entry) -> str:
    """What the member is told of a clock-in closed at the cap, by its job or by their `/hours out`."""
    ended = entry.ended_at or services.clock.now()
    with services.db.read() as session:
        status = pay.cap_status(session, entry.user_id, ended, services.config.weekly_hours_cap)
    tz = services.directory.tz_of(entry.user_id)
    return pay_views.stopped_at_cap_dm(entry, status, tz, local_time(ended, tz))


def send_statements() -> None:
    """Send every statement due now (Monday 09:00 in each member's zone, or later after downtime)."""
    services = runtime.services()
    more = True
    while more:
        with services.db.write() as session:
            todo, more = pay.claim_due_statements(session, services.clock.now())
        _send(services, todo)


def statement_metadata(ledger_id: int) -> dict[str, Any]:
    return {"event_type": STATEMENT_EVENT, "event_payload": {"statement_id": ledger_id}}


def _send(services: Services, todo: list[pay.ToSend]) -> None:
    for item in todo:
        user_id = item.statement.user_id
        with services.db.write() as session:
            if not pay.statement_posting(session, item, services.clock.now()):
                continue  # another sender took it over
        if item.in_doubt:
            try:
                found = find_dm(services, user_id, STATEMENT_EVENT, {"statement_id": item.ledger_id})
            except SlackFailure as e:
                # Can't tell: left "sending", looked for again at a sweep once it counts as cut off.
                log.warning(
                    "could not check whether %s got statement %s: %s", user_id, item.ledger_id, e.error
                )
                with services.db.write() as session:
                    pay.statement_unchecked(session, item)
                continue
            if found is not None:
                log.info(
                    "statement %s was in %s's DM already; recorded, not sent again", item.ledger_id, user_id
                )
                with services.db.write() as session:
                    pay.statement_sent(session, item.ledger_id, services.clock.now(), found.ts)
                continue
        if item.attempts > pay.MAX_ATTEMPTS:
            log.error(
                "statement %s for %s given up after %d attempts", item.ledger_id, user_id, pay.MAX_ATTEMPTS
            )
            with services.db.write() as session:
                pay.statement_given_up(session, item)
            continue
        text, blocks = pay_views.statement_blocks(item.statement)
        try:
            data = paced_dm(services, user_id, text, blocks, statement_metadata(item.ledger_id))
        except SlackFailure as e:
            if e.in_doubt:
                # It may have reached the DM: left "sending", so a later sweep looks for it first.
                log.warning(
                    "statement %s for %s may not have been sent (%s)", item.ledger_id, user_id, e.error
                )
                continue
            retry = e.error not in UNREACHABLE
            log.error(
                "statement for %s could not be sent (%s)%s",
                user_id,
                e.error,
                "; trying again at the next sweep" if retry else "",
            )
            with services.db.write() as session:
                pay.statement_failed(session, item.ledger_id, retry)
            continue
        with services.db.write() as session:
            pay.statement_sent(
                session, item.ledger_id, services.clock.now(), data.get("ts", ""), item.statement.total_cents
            )
