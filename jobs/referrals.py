"""Referral jobs: the weekly digest for leads and the hourly eligibility safety net."""

from __future__ import annotations

import logging

from domain import referrals as rules
from handlers.referrals import notify_joined, promote_and_notify
from jobs import runtime
from jobs.scheduler import Scheduler
from views import referrals as views

log = logging.getLogger("crewcall.jobs")

SWEEP_SOURCE = "job referrals:eligibility"


def weekly_digest() -> None:
    """Post to LEADS_CHANNEL the referrals waiting on a lead; nothing when none are waiting."""
    services = runtime.services()
    channel = services.config.leads_channel
    if not channel:
        log.info("LEADS_CHANNEL is not set: the weekly referrals digest has nowhere to go")
        return
    with services.db.session() as session:
        waiting = rules.waiting_on_lead(session)
    if not waiting.total:
        return
    text, blocks = views.digest(waiting)
    services.slack.post(channel, text, blocks, what="weekly referrals digest")


def eligibility_sweep() -> None:
    """What the team_join and hours events do, for everyone, in case an event was lost."""
    services = runtime.services()
    with services.db.session() as session:
        linked = rules.link_known_members(session, services.clock.now(), SWEEP_SOURCE)
    notify_joined(services, linked)
    promote_and_notify(services, SWEEP_SOURCE)


def refresh_home(user_id: str) -> None:
    """Redraw a member's Home tab (after they referred someone from it)."""
    services = runtime.services()
    services.home.publish(services, user_id)


def schedule(scheduler: Scheduler) -> None:
    scheduler.cron(
        "referrals:weekly-digest",
        "jobs.referrals:weekly_digest",
        tz="UTC",
        day_of_week="mon",
        hour=9,
        # A bot that was down at 09:00 still sends that week's digest when it is back (once: coalesced).
        misfire_grace_time=None,
    )
    # Hourly, on the hour: the safety net for a team_join or hours event that never arrived.
    scheduler.cron(
        "referrals:eligibility",
        "jobs.referrals:eligibility_sweep",
        tz="UTC",
        minute=0,
        misfire_grace_time=None,
    )
