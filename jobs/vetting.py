"""The Slack side of joining and vetting: the welcome DM (exactly once), the leads' daily digest of
new members, application cards and outcome DMs, and the handbook rules as cited.

**The welcome, exactly once.** The ledger row (`domain.vetting.welcome_due`, one per member) is
committed before anything is sent, so a replayed `team_join`, a second `app_home_opened` or another
process finds it and sends nothing. The row is claimed (pending → sending, a conditional UPDATE)
just before chat.postMessage and marked sent just after, so the only window in which the DM can
exist unrecorded is one API answer plus one commit. The DM carries message metadata
(`crewcall_welcome`); a row left `sending` for IN_DOUBT (its sender died, or Slack did not answer)
is looked up in the DM's history and re-sent only if it is not there. A transient failure is
retried by the sweep (every SWEEP_EVERY, and at start-up); a permanent one (`user_not_found`,
`cannot_dm_bot`…) is recorded and not retried.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.slack import SlackFailure
from domain import skills as catalogue
from domain import vetting as rules
from jobs import runtime
from jobs.redraw import InPlace, Redraws
from jobs.runtime import Services
from jobs.shifts import find_dm
from views import vetting as views
from views.policy import Source, section_url

log = logging.getLogger("crewcall.vetting")

EVENT_TYPE = "crewcall_welcome"
IN_DOUBT = timedelta(minutes=2)
SWEEP_EVERY = timedelta(minutes=5)
MAX_ATTEMPTS = 5
PERMANENT = frozenset(
    {
        "user_not_found",
        "cannot_dm_bot",
        "account_inactive",
        "user_disabled",
        "channel_not_found",
        "not_allowed",
    }
)

_cards = Redraws()


def start(services: Services) -> None:
    services.scheduler.cron(
        "vetting:new-members-digest",
        new_members_digest,
        tz="UTC",
        hour=9,
        minute=0,
        # A bot that was down at 09:00 still posts that day's digest when it is back (once: coalesced).
        misfire_grace_time=None,
    )
    services.scheduler.every("vetting:welcome-sweep", welcome_sweep, SWEEP_EVERY)


# ---- the handbook's rules ------------------------------------------------------------------------


def cited_rules(
    services: Services, keys: tuple[str, ...] = ("time", "ai", "confidentiality")
) -> list[views.CitedRule]:
    """The rules read from the handbook files now, with their citation (a link when POLICY_BASE_URL is set)."""
    base = services.config.policy_base_url
    return [
        views.CitedRule(
            quote=rule.quote,
            source=Source(
                heading=rule.section.heading,
                file=rule.section.file,
                url=section_url(base, rule.section.file, rule.section.anchor),
            ),
        )
        for rule in rules.handbook_rules(services.config.policy_dir, keys)
    ]


def ai_rule(services: Services) -> views.CitedRule | None:
    found = cited_rules(services, ("ai",))
    return found[0] if found else None


# ---- the welcome ---------------------------------------------------------------------------------


def welcome(services: Services, user_id: str, trigger: str) -> None:
    """Welcome this member unless they ever were (the ledger decides, before anything is sent)."""
    with services.db.write() as session:
        due = rules.welcome_due(session, user_id, trigger, services.clock.now())
    if due:
        deliver(services, user_id)


def deliver(services: Services, user_id: str, in_doubt: bool = False) -> None:
    with services.db.write() as session:
        claimed = rules.claim_welcome(session, user_id, services.clock.now(), IN_DOUBT if in_doubt else None)
    if not claimed:
        return
    if in_doubt:
        try:
            found = find_dm(services, user_id, EVENT_TYPE, {"user": user_id})
        except SlackFailure as e:
            log.warning("could not check whether %s got the welcome: %s", user_id, e.error)
            _not_sent(services, user_id, f"unverified ({e.error})", retry=True)
            return
        if found is not None:
            with services.db.write() as session:
                rules.welcome_sent(session, user_id, found.channel, found.ts, services.clock.now())
            return
    with services.db.read() as session:
        skills = len(catalogue.slugs(session))
    text, blocks = views.welcome_dm(cited_rules(services), skills)
    try:
        channel = services.slack.open_dm(user_id)
        posted = services.slack.call(
            "chat.postMessage",
            channel=channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"user": user_id}},
        )
    except SlackFailure as e:
        log.warning("welcome DM to %s failed: %s", user_id, e.error)
        _not_sent(services, user_id, e.error, retry=e.error not in PERMANENT)
        return
    with services.db.write() as session:
        rules.welcome_sent(
            session, user_id, posted.get("channel", channel), posted["ts"], services.clock.now()
        )


def _not_sent(services: Services, user_id: str, error: str, retry: bool) -> None:
    with services.db.write() as session:
        retry = retry and rules.welcome_attempts(session, user_id) < MAX_ATTEMPTS
        rules.welcome_not_sent(session, user_id, error, retry)


def welcome_sweep() -> None:
    """Send the welcomes still pending (a transient failure, a crash before the claim) and settle
    those left in doubt."""
    services = runtime.services()
    with services.db.read() as session:
        pending, doubtful = rules.welcomes_to_retry(session, services.clock.now(), IN_DOUBT)
    for user_id in pending:
        deliver(services, user_id)
    for user_id in doubtful:
        deliver(services, user_id, in_doubt=True)


def new_members_digest() -> None:
    """Post the members welcomed since the last digest to LEADS_CHANNEL; nothing when there are none."""
    services = runtime.services()
    channel = services.config.leads_channel
    if not channel:
        log.info("LEADS_CHANNEL is not set: the new members digest has nowhere to go")
        return
    with services.db.read() as session:
        welcomes, total = rules.new_members(session, limit=10_000)
        _, waiting = rules.open_applications(session, 0, 0)
    if not total:
        return
    text, blocks = views.digest(welcomes, total, waiting)
    if services.slack.post(channel, text, blocks, what="new members digest") is None:
        return  # tomorrow's digest lists them
    with services.db.write() as session:
        rules.digested(session, [w.user_id for w in welcomes], services.clock.now())


# ---- applications --------------------------------------------------------------------------------


def post_card(services: Services, application_id: int) -> bool:
    """Post the application's card to LEADS_CHANNEL and remember where; False when there is none."""
    channel = services.config.leads_channel
    if not channel:
        return False
    with services.db.read() as session:
        application = rules.get(session, application_id)
        declines = rules.declines_before(session, application)
    text, blocks = views.card(application, declines)
    posted = services.slack.post(channel, text, blocks, what=f"card of {rules.ref(application_id)}")
    if posted is None:
        return False
    with services.db.write() as session:
        rules.set_card(session, application_id, posted.channel, posted.ts)
    return True


def refresh_card(services: Services, application_id: int) -> None:
    """Make the application's card true again (chat.update in place), coalescing concurrent redraws."""
    _cards.update((id(services), application_id), services.slack, lambda: _card(services, application_id))


def _card(services: Services, application_id: int) -> InPlace | None:
    with services.db.read() as session:
        application = rules.get(session, application_id)
        declines = rules.declines_before(session, application)
    if not (application.card_channel and application.card_ts):
        return None
    text, blocks = views.card(application, declines)
    return InPlace(
        application.card_channel, application.card_ts, text, blocks, f"card of {rules.ref(application_id)}"
    )


def tell_outcome(services: Services, application_id: int) -> None:
    """DM the member the decision, and redraw the card."""
    with services.db.read() as session:
        application = rules.get(session, application_id)
    if application.state == rules.APPROVED:
        services.slack.dm(application.user_id, views.approved_dm(application), what="application approved")
    elif application.state == rules.DECLINED and application.decided_at is not None:
        again = application.decided_at + timedelta(days=services.config.reapply_cooldown_days)
        tz = services.directory.tz_of(application.user_id)
        services.slack.dm(
            application.user_id, views.declined_dm(application, again, tz), what="application declined"
        )
    refresh_card(services, application_id)
