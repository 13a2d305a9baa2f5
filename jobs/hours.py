"""Hours jobs: the DM after 10 hours clocked in and the automatic close at 12, plus what follows
a closed entry (the hours.recorded event, the 40-hour alert to leads).

    hours:E-7:remind    at clock-in + 10 h; runs however late, skips itself once the entry is closed
    hours:E-7:close     at clock-in + 12 h; runs however late (closes at the 12-hour mark, flagged)
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from core import events
from core.slack import SlackFailure
from domain import hours
from domain.hours import Closed, Entry
from jobs import runtime
from jobs.pacing import pacer_for
from jobs.shifts import notify
from views.blocks import local_time

if TYPE_CHECKING:
    from jobs.runtime import Services
    from jobs.scheduler import Scheduler

log = logging.getLogger("crewcall.hours")


def remind_job_id(entry_id: int) -> str:
    return f"hours:{hours.entry_ref(entry_id)}:remind"


def close_job_id(entry_id: int) -> str:
    return f"hours:{hours.entry_ref(entry_id)}:close"


def register(scheduler: Scheduler, entry_id: int, started_at: datetime) -> None:
    scheduler.at(
        remind_job_id(entry_id),
        remind_open,
        started_at + hours.REMIND_AFTER,
        args=(entry_id,),
        misfire_grace=None,
    )
    scheduler.at(
        close_job_id(entry_id),
        close_open,
        started_at + hours.AUTO_CLOSE_AFTER,
        args=(entry_id,),
        misfire_grace=None,
    )


def unregister(scheduler: Scheduler, entry_id: int) -> None:
    scheduler.remove(remind_job_id(entry_id))
    scheduler.remove(close_job_id(entry_id))


def start(services: Services) -> None:
    """At start-up: the jobs of every open clock-in (idempotent)."""
    with services.db.read() as session:
        entries = hours.open_entries(session)
    for entry_id, started_at in entries:
        register(services.scheduler, entry_id, started_at)


def tell_leads(services: Services, text: str, what: str) -> None:
    """Leads hear about hours in LEADS_CHANNEL when it is set, else each admin by DM."""
    channel = services.config.leads_channel
    if channel:
        try:
            with pacer_for(services).slot(channel):
                services.slack.call("chat.postMessage", channel=channel, text=text)
            return
        except SlackFailure as e:
            log.error("could not post %s to the leads channel %s: %s; telling admins", what, channel, e.error)
    for admin in sorted(services.config.admin_user_ids):
        notify(services, admin, text, what)


def after_closed(services: Services, closed: Closed) -> None:
    """Once a closed (or approved) entry is committed: tell subscribers, alert leads on 40 h."""
    entry = closed.entry
    services.events.emit(events.HOURS_RECORDED, user_id=entry.user_id)
    for alert in closed.alerts:
        tz = services.directory.tz_of(alert.user_id)
        tell_leads(
            services,
            f":warning: <@{alert.user_id}> has {alert.counted} tracked hours in the week starting "
            f"{alert.week_start.astimezone(ZoneInfo(tz)):%a %d %b} ({tz}): over 40.",
            "40-hour alert",
        )


def remind_open(entry_id: int) -> None:
    services = runtime.services()
    with services.db.read() as session:
        entry = hours.still_open(session, entry_id, services.clock.now())
    if entry is None:
        return
    tz = services.directory.tz_of(entry.user_id)
    close_at = local_time(entry.started_at + hours.AUTO_CLOSE_AFTER, tz)
    notify(
        services,
        entry.user_id,
        f":stopwatch: You've been clocked in for 10 hours (since {local_time(entry.started_at, tz)}). "
        f"`/hours out` if you've stopped; otherwise it closes at {close_at} and a lead reviews it.",
        "10-hour reminder",
    )


def close_open(entry_id: int) -> None:
    services = runtime.services()
    with services.db.write() as session:
        closed = hours.auto_close(session, entry_id, services.clock.now())
    if closed is None:
        return
    entry = closed.entry
    tz = services.directory.tz_of(entry.user_id)
    notify(
        services,
        entry.user_id,
        f":triangular_flag_on_post: Your clock-in from {local_time(entry.started_at, tz)} was open for 12 hours, "
        f"so I closed it at {local_time(entry.ended_at or entry.started_at, tz)} and flagged it ({entry.ref}) for "
        "a lead to review. It counts once approved.",
        "auto clock-out",
    )
    tell_leads_closed_at_12h(services, entry)
    unregister(services.scheduler, entry.id)
    after_closed(services, closed)


def tell_leads_closed_at_12h(services: Services, entry: Entry) -> None:
    tell_leads(
        services,
        f":triangular_flag_on_post: <@{entry.user_id}>'s clock-in {entry.ref} was open for 12 hours and was closed "
        f"automatically. Review it, then `/hours approve {entry.ref}` if the time was worked.",
        "auto clock-out",
    )
