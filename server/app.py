"""The composition root: services, the Bolt App with our middleware, every feature's listeners, and
the one start-up path of what runs beside them.

`create_app(config)` is used by `bot.py`, the tests and the benches alike; `start_background` then
starts each feature (`jobs.<feature>.start`: recovery, crons, workers) and the scheduler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.error import BoltError
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackApiError, SlackClientError

from core import metrics
from core.clock import Clock
from core.config import Config
from core.events import APP_STOPPING, EventBus
from core.slack import SlackGateway, make_client
from db.engine import open_database
from db.migrate import upgrade
from db.models import ProcessedEvent
from db.statements import insert_ignore
from handlers import announcements, crew, home, hours, policy, referrals, shifts, tasks, vetting
from handlers.kit.app import LISTENERS_PER_HTTP_THREAD, CrewApp
from handlers.kit.commands import CommandSet
from handlers.kit.interactions import dispatch_event
from jobs import announcements as announcement_jobs
from jobs import hours as hour_jobs
from jobs import maintenance, runtime
from jobs import pay as pay_jobs
from jobs import policy as policy_jobs
from jobs import referrals as referral_jobs
from jobs import shifts as shift_jobs
from jobs import vetting as vetting_jobs
from jobs.directory import Directory
from jobs.home import HomeTab
from jobs.runtime import Services
from jobs.scheduler import Scheduler

log = logging.getLogger("crewcall")

# Every feature's listeners, registered in this order (the Home tab orders its sections itself).
LISTENERS = [home, crew, vetting, tasks, shifts, hours, announcements, policy, referrals]
# Every feature's background side: each exposes `start(services)`, called once the app is built.
FEATURES = [
    maintenance,
    shift_jobs,
    hour_jobs,
    pay_jobs,
    announcement_jobs,
    policy_jobs,
    referral_jobs,
    vetting_jobs,
]


# Bolt (through the logger given to App, which its own loggers copy) and slack_sdk's clients format
# their debug lines, whole request and response bodies among them, whenever their logger's *own*
# level is unset: they test `logger.level <= DEBUG`, not isEnabledFor, and an unset level is 0.
SDK_LOGGERS = ("crewcall.bolt", "slack_sdk.web.base_client")


class BotTokenRefused(Exception):
    """Slack refused the bot token at start-up: a restart won't help."""


class SlackUnreachable(Exception):
    """Slack's Web API did not answer at start-up: worth a retry."""


def create_app(config: Config, clock: Clock | None = None) -> CrewApp:
    clock = clock or Clock()
    db = open_database(
        config.database_url.get_secret_value(),
        pool_size=max(10, config.http_threads),
        # Two of the process's connections are not the pool's: the scheduler's lock, the report worker.
        max_connections=config.database_max_connections - 2,
    )
    upgrade(db.engine)
    client = make_client(config.slack_bot_token.get_secret_value(), config.slack_api_url)
    slack = SlackGateway(client)
    services = Services(
        config=config,
        db=db,
        slack=slack,
        clock=clock,
        scheduler=Scheduler(
            db.engine,
            clock,
            standby_retry=config.scheduler_standby_retry,
            store_poll=config.scheduler_store_poll,
        ),
        directory=Directory(db, slack, clock, config.admin_user_ids),
        home=HomeTab(),
        events=EventBus(),
    )
    listener_pool = ThreadPoolExecutor(
        max_workers=config.http_threads * LISTENERS_PER_HTTP_THREAD, thread_name_prefix="listener"
    )
    _pin_sdk_log_levels()
    try:  # Bolt asks Slack who the bot is (auth.test) here
        app = CrewApp(
            client=client,
            signing_secret=config.slack_signing_secret.get_secret_value(),
            process_before_response=False,
            listener_executor=listener_pool,
            # The HTTP door (server.http) checks every request's signature before Bolt sees it, and
            # Socket Mode needs none: Bolt's own check would compute the same HMAC a second time.
            request_verification_enabled=False,
            attaching_function_token_enabled=False,  # no custom workflow functions here
            logger=logging.getLogger("crewcall.bolt"),
        )
    except BoltError as e:
        refusal = e.__context__
        error = refusal.response.get("error") if isinstance(refusal, SlackApiError) else None
        raise BotTokenRefused(
            f"SLACK_BOT_TOKEN was refused by Slack ({error or 'auth.test failed'}): it needs to be the app's "
            "Bot User OAuth Token (xoxb-…) (the app's OAuth & Permissions page)."
        ) from None
    except (SlackClientError, OSError) as e:
        raise SlackUnreachable(
            f"Slack's Web API can't be reached at {config.slack_api_url} ({type(e).__name__}); "
            "start again once it is reachable."
        ) from None
    app.listener_pool = listener_pool
    app.services = services
    app.commands = CommandSet()
    app.event_handlers = {}
    app.use(_deduplicate_deliveries(services))
    app.error(_log_unhandled)

    for module in LISTENERS:
        module.register(app)

    # One Bolt listener for every event type: handlers registered with handlers.kit.interactions.event,
    # at any time, all get the event, and events nobody handles still get their 200.
    @app.event(re.compile(".*"))
    def events(ack: Callable[[], None], event: dict[str, Any]) -> None:
        ack()
        dispatch_event(app, event)

    return app


def start_background(app: CrewApp) -> None:
    """Start what runs beside the listeners: each feature's recovery, crons and workers, then the
    scheduler that runs their jobs."""
    runtime.install(app.services)
    for feature in FEATURES:
        feature.start(app.services)
    app.services.scheduler.while_leading(
        lambda _took_over: metrics.report_scheduler_leader(True),
        lambda: metrics.report_scheduler_leader(False),
    )
    app.services.scheduler.start()


def stop_background(app: CrewApp) -> None:
    """Let acknowledged work finish (listeners, running jobs), then release the store."""
    app.listener_pool.shutdown(wait=True)
    app.services.events.emit(APP_STOPPING)
    app.services.scheduler.shutdown(wait=True)  # a leader steps down: the gauge goes to 0
    metrics.stopping()
    runtime.uninstall(app.services)
    app.services.db.dispose()


def _deduplicate_deliveries(services: Services) -> Callable[..., Any]:
    """Slack retries an event it thinks we missed (X-Slack-Retry-Num); Bolt does not de-duplicate.
    The event_id is recorded in the database before the event is handled, so a retry (to this
    process or another) is acknowledged and ignored."""

    def middleware(req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        body = req.body or {}
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not event_id:
            return next()
        with services.db.write() as session:
            first = insert_ignore(
                session, ProcessedEvent, {"event_id": str(event_id)[:64], "received_at": services.clock.now()}
            )
        if not first:
            retry = (req.headers.get("x-slack-retry-num") or ["?"])[0]
            log.info("ignored duplicate delivery of %s (retry %s)", event_id, retry)
            return BoltResponse(status=200, body="")
        return next()

    return middleware


def _pin_sdk_log_levels() -> None:
    """Give each SDK logger the level in effect now, so debug lines nobody sees are never built."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logger.getEffectiveLevel())


def _log_unhandled(error: Exception, body: dict[str, Any]) -> None:
    log.error("unhandled error for a %s request: %s", body.get("type", "?"), error, exc_info=error)
