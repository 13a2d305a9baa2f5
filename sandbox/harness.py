"""The bot, running for real against the fake Slack: used by the tests and the benches.

    with BotHarness(database_url) as bot:
        bot.fake.add_user("U1", tz="Europe/Lisbon")
        reply = bot.command("U1", "/crew", "me")       # what the user saw (ephemeral)
        assert "contractor" in reply.text

The bot is built by the same `create_app` as `bot.py`, served by the same HTTP server on a free
port, and called only through signed requests; its Web API calls land on the fake.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.clock import Clock, FakeClock
from core.config import load_config
from db.models import Skill
from db.statements import insert_ignore
from sandbox.driver import Response, SlackDriver
from sandbox.fake_slack import Call, FakeSlack, dm_channel_id
from server.app import CrewApp, create_app, start_background, stop_background
from server.http import HttpServer

SIGNING_SECRET = "sandbox-signing-secret"
# The skill catalogue a harness starts with, so tests can set and require the skills they use
# (`catalogue=()` starts with an empty one).
CATALOGUE = ("legal", "medicine", "editing", "python", "finance")
BOT_TOKEN = "xoxb-sandbox-token"


@dataclass
class Reply:
    """What a user saw in answer to a request: text and blocks of the ephemeral reply."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    via: str = "ack"

    @property
    def all_text(self) -> str:
        """The text and every text inside the blocks, for assertions."""
        return self.text + "\n" + json.dumps(self.blocks, ensure_ascii=False)

    def __contains__(self, needle: str) -> bool:
        return needle in self.all_text


class BotHarness:
    def __init__(
        self,
        database_url: str,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        fake: FakeSlack | None = None,
        admins: tuple[str, ...] = ("UADMIN",),
        catalogue: tuple[str, ...] = CATALOGUE,
    ) -> None:
        self.database_url = database_url
        self.clock = clock if clock is not None else FakeClock()
        self.fake = fake or FakeSlack()
        self._own_fake = fake is None
        self.admins = admins
        self.catalogue = catalogue
        self.extra_env = env or {}
        self.app: CrewApp | None = None
        self.server: HttpServer | None = None
        self.driver: SlackDriver | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.fake.api_url,
            "DATABASE_URL": self.database_url,
            "ADMIN_USER_IDS": ",".join(self.admins),
            "LOG_LEVEL": "WARNING",
            # Tests and benches act faster than people on a clock that stands still unless moved:
            # the fair-share limits are off unless a test sets them (tests/test_fair_share.py).
            "MEMBER_COMMANDS_PER_MIN": "1000000",
            "MEMBER_QUESTIONS_PER_MIN": "1000000",
            # each test's bot loads the model itself: no encoder process outlives the test
            # (tests/test_policy_shared_encoder.py and the benches ask for the shared one)
            "POLICY_ENCODER": "process",
            **self.extra_env,
        }

    def start(self) -> BotHarness:
        if self._own_fake:
            self.fake.start()  # idempotent
        for admin in self.admins:
            if admin not in self.fake.users:
                self.fake.add_user(admin, name=f"admin-{admin.lower()}", tz="UTC")
        config = load_config(env=self.env(), dotenv_path=None)
        self.app = create_app(config, clock=self.clock)
        self._seed_catalogue()
        start_background(self.app)
        self.server = HttpServer(self.app, port=0, host="127.0.0.1", threads=config.http_threads)
        self.server.start_in_thread()
        self.driver = SlackDriver(self.url, SIGNING_SECRET, fake=self.fake)
        return self

    def _seed_catalogue(self) -> None:
        assert self.app is not None
        with self.app.services.db.write() as session:
            for slug in self.catalogue:
                insert_ignore(
                    session,
                    Skill,
                    {
                        "slug": slug,
                        "name": slug.capitalize(),
                        "created_by": "crewcall",
                        "created_at": self.clock.now(),
                    },
                )

    def stop(self) -> None:
        if self.server:
            self.server.close()
            self.server = None
        if self.app:
            stop_background(self.app)
            self.app = None

    def restart(self) -> BotHarness:
        """Stop the bot and start a new one on the same database and fake Slack."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_fake:
            self.fake.stop()

    def __enter__(self) -> BotHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def services(self) -> Any:
        assert self.app is not None
        return self.app.services

    # ---- acting like a user ------------------------------------------------------------------

    def command(
        self, user_id: str, command: str, text: str = "", channel_id: str = "C0GENERAL", timeout: float = 10.0
    ) -> Reply:
        """Run a slash command and return what the user saw: the ack's ephemeral text, or the
        reply the bot sent through this request's response_url after acking."""
        assert self.driver is not None
        url = self.fake.new_response_url()
        response = self.driver.command(user_id, command, text, channel_id=channel_id, response_url=url)
        return reply_to(self.fake, response, url, timeout)

    def click(
        self, user_id: str, action_id: str, value: str | None = None, timeout: float = 10.0, **kwargs: Any
    ) -> Reply:
        """Press a button; return the ephemeral reply sent through the response_url."""
        assert self.driver is not None
        url = self.fake.new_response_url()
        response = self.driver.click(user_id, action_id, value=value, response_url=url, **kwargs)
        return reply_to(self.fake, response, url, timeout)

    def submit(
        self,
        user_id: str,
        callback_id: str,
        values: dict[str, Any],
        private_metadata: str = "",
        **kwargs: Any,
    ) -> Response:
        assert self.driver is not None
        return self.driver.submit_view(
            user_id, callback_id, values, private_metadata=private_metadata, **kwargs
        )

    def event(self, event: dict[str, Any], **kwargs: Any) -> Response:
        assert self.driver is not None
        return self.driver.event(event, **kwargs)

    # ---- reading what the bot sent -----------------------------------------------------------

    def dms_to(self, user_id: str) -> list[Call]:
        channel = dm_channel_id(user_id)
        return [
            c
            for c in self.fake.calls_to("chat.postMessage")
            if c.ok and c.params.get("channel") in (channel, user_id)
        ]

    def wait_dm(self, user_id: str, contains: str = "", timeout: float = 10.0) -> Call:
        channel = dm_channel_id(user_id)

        def matches(c: Call) -> bool:
            return c.ok and c.params.get("channel") in (channel, user_id) and contains in _text_of(c.params)

        return self.fake.wait_for("chat.postMessage", predicate=matches, timeout=timeout)[0]


def reply_to(fake: FakeSlack, response: Response, url: str, timeout: float = 10.0) -> Reply:
    """What the user saw in answer to a request sent with response_url `url`: the acknowledgement's
    ephemeral answer, or else the first reply the bot sent through `url`."""
    if response.status != 200:
        raise AssertionError(f"the bot answered HTTP {response.status}: {response.body[:300]}")
    if response.body.strip():
        data = response.json()
        if data.get("text") or data.get("blocks"):
            return Reply(data.get("text", ""), data.get("blocks") or [], via="ack")
    calls = fake.wait_for("response_url", predicate=lambda c: c.params.get("_url") == url, timeout=timeout)
    params = calls[0].params
    return Reply(params.get("text", ""), params.get("blocks") or [], via="response_url")


def _text_of(params: dict[str, Any]) -> str:
    return str(params.get("text", "")) + json.dumps(params.get("blocks") or [], ensure_ascii=False)
