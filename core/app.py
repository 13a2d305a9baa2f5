"""Building the app: services, the Bolt App with our middleware, every domain's listeners.

`create_app(config)` is used by `bot.py`, the tests and the benches alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest

from core.clock import Clock
from core.commands import CommandSet
from core.config import Config
from core.directory import Directory
from core.events import APP_STARTED, APP_STOPPING, EventBus
from core.home import HomeTab
from core.interactions import dispatch_event
from core.services import Services
from core.slack import SlackGateway, make_client
from db.engine import Database
from db.migrate import upgrade
from db.models import ProcessedEvent
from db.upsert import insert_ignore
from jobs import maintenance, referrals, runtime
from jobs.scheduler import Scheduler

log = logging.getLogger("crewcall")


class CrewApp(App):
    """Bolt's App, carrying our services, the Home tab and the slash commands it registered."""

    services: Services
    commands: CommandSet
    listener_pool: ThreadPoolExecutor
    event_handlers: dict[str, list[Callable[..., None]]]

    @property
    def home(self) -> HomeTab:
        return self.services.home


def create_app(config: Config, clock: Clock | None = None) -> CrewApp:
    clock = clock or Clock()
    db = Database(config.database_url, pool_size=max(10, config.http_threads))
    upgrade(db.engine)
    client = make_client(config.slack_bot_token, config.slack_api_url)
    slack = SlackGateway(client)
    services = Services(
        config=config,
        db=db,
        slack=slack,
        clock=clock,
        scheduler=Scheduler(db.engine, clock),
        directory=Directory(db, slack, clock, config.admin_user_ids),
        home=HomeTab(),
        events=EventBus(),
    )
    services.events.services = services
    listener_pool = ThreadPoolExecutor(max_workers=config.http_threads * 2, thread_name_prefix="listener")
    app = CrewApp(
        client=client,
        signing_secret=config.slack_signing_secret,
        process_before_response=False,
        listener_executor=listener_pool,
        logger=logging.getLogger("crewcall.bolt"),
    )
    app.listener_pool = listener_pool
    app.services = services
    app.commands = CommandSet()
    app.event_handlers = {}
    app.use(_deduplicate_deliveries(services))
    app.error(_log_unhandled)

    from handlers import register_all

    register_all(app)

    # One Bolt listener for every event type: handlers registered with core.interactions.event,
    # at any time, all get the event, and events nobody handles still get their 200.
    @app.event(re.compile(".*"))
    def events(ack: Callable[[], None], event: dict[str, Any]) -> None:
        ack()
        dispatch_event(app, event)

    return app


def start_background(app: CrewApp) -> None:
    """Start what runs beside the listeners: the scheduler and its jobs."""
    runtime.install(app.services)
    maintenance.schedule(app.services.scheduler)
    referrals.schedule(app.services.scheduler)
    app.services.scheduler.start()
    app.services.events.emit(APP_STARTED)


def stop_background(app: CrewApp) -> None:
    """Let acknowledged work finish (listeners, running jobs), then release the store."""
    app.listener_pool.shutdown(wait=True)
    app.services.events.emit(APP_STOPPING)
    app.services.scheduler.shutdown(wait=True)
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
        with services.db.session() as session:
            first = insert_ignore(
                session, ProcessedEvent, {"event_id": str(event_id)[:64], "received_at": services.clock.now()}
            )
        if not first:
            retry = (req.headers.get("x-slack-retry-num") or ["?"])[0]
            log.info("ignored duplicate delivery of %s (retry %s)", event_id, retry)
            return BoltResponse(status=200, body="")
        return next()

    return middleware


def _log_unhandled(error: Exception, body: dict[str, Any]) -> None:
    log.error("unhandled error for a %s request: %s", body.get("type", "?"), error, exc_info=error)
