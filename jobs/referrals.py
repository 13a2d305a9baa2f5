"""The Slack side of referrals: the referrer's DMs when a referee joins or earns the bonus, the
weekly digest for leads and the hourly eligibility safety net."""

from __future__ import annotations

import logging
from typing import Any

from core.events import HOURS_RECORDED, WORK_APPROVED
from db.models import Referral
from domain import referrals as rules
from jobs import runtime
from jobs.runtime import Services
from views import referrals as views

log = logging.getLogger("crewcall.jobs")

SWEEP_SOURCE = "job referrals:eligibility"


def start(services: Services) -> None:
    services.scheduler.cron(
        "referrals:weekly-digest",
        weekly_digest,
        tz="UTC",
        day_of_week="mon",
        hour=9,
        # A bot that was down at 09:00 still sends that week's digest when it is back (once: coalesced).
        misfire_grace_time=None,
    )
    # Hourly, on the hour: the safety net for a team_join or hours event that never arrived.
    services.scheduler.cron(
        "referrals:eligibility", eligibility_sweep, tz="UTC", minute=0, misfire_grace_time=None
    )

    def on_hours_recorded(user_id: str, **_: Any) -> None:  # also work.approved
        promote_and_notify(services, f"event {HOURS_RECORDED}", referee_user_id=user_id)

    services.events.on(HOURS_RECORDED, on_hours_recorded)
    # Time on a task counts toward the bonus once its work is approved (domain.referrals.bonus_hours).
    services.events.on(WORK_APPROVED, on_hours_recorded)


def promote_and_notify(
    services: Services, source: str, referee_user_id: str | None = None, referral_id: int | None = None
) -> list[rules.Promotion]:
    """Promote hired referrals whose referee reached the hours (exactly once each), then DM each
    referrer. Without a filter, every hired referral is checked."""
    with services.db.write() as session:
        promoted = rules.promote_eligible(
            session,
            threshold_hours=services.config.referral_bonus_hours,
            now=services.clock.now(),
            source=source,
            referee_user_id=referee_user_id,
            referral_id=referral_id,
        )
    for promotion in promoted:
        referral = promotion.referral
        tz = services.directory.tz_of(referral.referrer_id)
        services.slack.dm(
            referral.referrer_id,
            views.eligible_dm(referral, promotion.hours, referral.eligible_at or services.clock.now(), tz),
            what="referral bonus earned",
        )
    return promoted


def notify_joined(services: Services, linked: list[Referral]) -> None:
    for referral in linked:
        if referral.status != rules.REJECTED:
            services.slack.dm(referral.referrer_id, views.joined_dm(referral), what="referee joined")


def weekly_digest() -> None:
    """Post to LEADS_CHANNEL the referrals waiting on a lead; nothing when none are waiting."""
    services = runtime.services()
    channel = services.config.leads_channel
    if not channel:
        log.info("LEADS_CHANNEL is not set: the weekly referrals digest has nowhere to go")
        return
    with services.db.read() as session:
        waiting = rules.waiting_on_lead(session)
    if not waiting.total:
        return
    text, blocks = views.digest(waiting)
    services.slack.post(channel, text, blocks, what="weekly referrals digest")


def eligibility_sweep() -> None:
    """What the team_join and hours events do, for everyone, in case an event was lost."""
    services = runtime.services()
    with services.db.write() as session:
        linked = rules.link_known_members(session, services.clock.now(), SWEEP_SOURCE)
    notify_joined(services, linked)
    promote_and_notify(services, SWEEP_SOURCE)
