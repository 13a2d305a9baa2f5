"""The sandbox workspace: `make run` without Slack credentials (or `python -m sandbox`).

Starts the local Slack (:class:`~sandbox.fake_slack.FakeSlack`, serving the page from
``sandbox/web``) on loopback and the real, unmodified bot (``bot.py`` in HTTP mode, pointed at it
with ``SLACK_API_URL``) on SQLite in ``./data/sandbox.db``, then prints one line with the URL.

The first run seeds a realistic week through the bot's own doors (slash commands, clicks, DMs, as
Slack would send them) and, for hours already worked, the domain's own clock-in/out at past times.
The workspace's messages are kept beside the database (``./data/sandbox-slack.json``), so a
restart shows the same channels. ``RESET=1`` (or the page's "Start over" button) starts over.

Settings (environment): ``SANDBOX_PORT`` (default 3100; 0 picks a free one), ``SANDBOX_DATA``
(default ``./data``), ``SANDBOX_RATE_LIMITS`` (see :func:`rate_limits`), ``RESET=1``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core import stopping
from sandbox.bot_process import SIGNING_SECRET, BotProcess
from sandbox.fake_slack import FakeSlack, dm_channel_id
from sandbox.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
#: How long the bot may take to finish acknowledged work on SIGTERM before it is killed.
STOP_TIMEOUT = 20.0

ADMIN = "UADMIN"
#: (id, name, real name, timezone, role, skills)
PEOPLE: list[tuple[str, str, str, str, str, str]] = [
    (ADMIN, "alex", "Alex Admin", "Europe/London", "admin", ""),
    ("ULEAD1", "lena", "Lena Okafor", "America/New_York", "lead", "legal,medicine"),
    ("ULEAD2", "omar", "Omar Haddad", "Asia/Kolkata", "lead", "engineering,editing"),
    ("UCON1", "ada", "Ada Lindqvist", "Europe/Lisbon", "contractor", "legal"),
    ("UCON2", "ben", "Ben Carter", "America/Chicago", "contractor", "medicine"),
    ("UCON3", "chen", "Chen Wei", "Asia/Singapore", "contractor", "engineering"),
    ("UCON4", "dana", "Dana Moreau", "Australia/Sydney", "contractor", "editing"),
    ("UCON5", "eli", "Eli Navarro", "America/Los_Angeles", "contractor", "legal,medicine"),
    ("UCON6", "fatima", "Fatima Diallo", "Africa/Lagos", "contractor", "engineering,editing"),
]

#: The skill catalogue the week starts with: (slug, name).
CATALOGUE = [
    ("legal", "Legal review"),
    ("medicine", "Clinical medicine"),
    ("engineering", "Software engineering"),
    ("editing", "Editing and writing"),
]

#: The policy question the seed leaves waiting in #leads (Fatima asked it).
SEEDED_ESCALATION = "can I bring my dog to the office?"

TRY_THIS = [
    "You are Ada (contractor). In #tasks press Claim on a legal task.",
    "Type `/shifts all` and Join a shift.",
    "Ask `/policy when is payday?`, or DM the bot (crewcall · Messages) a question of your own.",
    "Ask something the handbook doesn't know (`/policy is there a team offsite this year?`), then "
    "switch to Lena (lead): #leads has your question, after Fatima's, each with an Answer button.",
    "`/refer sam@example.com Sam Rivera skill=legal`, then `/referrals`.",
    "Open the Home tab: your tasks, shifts and hours.",
    "As Lena: `/tasks new` opens the form; post a task and watch it appear in #tasks.",
]


#: Slack's rate limits as the local Slack applies them: each method's tier, and chat.postMessage's
#: one message a second per channel.
SLACK_RATE_LIMITS: dict[str, Any] = {"tiers": True, "per_channel_per_sec": 1}


def rate_limits(setting: str) -> dict[str, Any] | None:
    """``SANDBOX_RATE_LIMITS``: ``slack`` (the default) for Slack's limits, ``off`` for none, or a
    number that multiplies the rates Slack allows (``0.1``: a tenth as many calls get through, to
    watch the bot back off). Raises ValueError for anything else."""
    setting = setting.strip().lower() or "slack"
    if setting == "off":
        return None
    scale = 1.0 if setting == "slack" else float(setting)
    if not 0 < scale < math.inf:
        raise ValueError(setting)
    return {**SLACK_RATE_LIMITS, "scale": scale}


def _people_labels() -> dict[str, str]:
    labels = {}
    for uid, _name, real, tz, role, skills in PEOPLE:
        labels[uid] = (
            f"{real} · {role}" + (f" · {skills}" if skills and role == "contractor" else "") + f" · {tz}"
        )
    return labels


class Sandbox:
    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        reset: bool = False,
        limits: dict[str, Any] | None = SLACK_RATE_LIMITS,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.db_path = data_dir / "sandbox.db"
        self.slack_path = data_dir / "sandbox-slack.json"
        data_dir.mkdir(parents=True, exist_ok=True)
        if reset:
            self._wipe()
        self.fake = FakeSlack(rate_limits=limits)
        self.bot: BotProcess | None = None
        self.workspace: Workspace | None = None
        self._stop = threading.Event()
        # A reset runs on its own thread (the page's button); stop() must not tear the bot and the
        # fake down under a reset still starting the bot or seeding through them.
        self._lifecycle = threading.Lock()

    @property
    def url(self) -> str:
        return self.fake.url

    def _wipe(self) -> None:
        for path in (self.db_path, self.slack_path, *self.data_dir.glob("sandbox.db-*")):
            path.unlink(missing_ok=True)

    def start(self) -> Sandbox:
        fresh = not self.db_path.exists()
        self.fake.start(port=self.port)
        for uid, name, real, tz, _role, _skills in PEOPLE:
            self.fake.add_user(uid, name=name, real_name=real, tz=tz)
        self.bot = BotProcess(
            self.fake,
            f"sqlite:///{self.db_path}",
            env={"TASKS_CHANNEL": "C0TASKS", "LEADS_CHANNEL": "C0LEADS", "LOG_LEVEL": "WARNING"},
            admins=(ADMIN,),
        )
        self.workspace = Workspace(
            self.fake, "http://127.0.0.1:1", SIGNING_SECRET, people=_people_labels(), try_this=TRY_THIS
        )
        for channel in self.fake.channel_names:
            members = self.fake.channel_members.setdefault(channel, [])
            members.extend(uid for uid, *_ in PEOPLE if uid not in members)
        if not fresh:
            self.fake.load(self.slack_path)
        self.bot.start()
        self.workspace.driver = self.bot.driver
        self.workspace.on_reset = self.reset
        if fresh:
            Seeder(self.bot, self.db_path, self._stop).run()
        threading.Thread(target=self._keep, name="sandbox-save", daemon=True).start()
        return self

    def _keep(self) -> None:
        """Save the workspace's messages whenever they change (debounced), for the next run."""
        revision = -1
        while not self._stop.is_set():
            revision = self.fake.wait_change(revision, 2.0)
            self.fake.save(self.slack_path)
            self._stop.wait(1.0)

    def reset(self) -> None:
        """The page's "Start over": a new database and an empty workspace, seeded again."""
        assert self.bot is not None and self.workspace is not None
        with self._lifecycle:
            if self._stop.is_set():
                return
            self.bot.stop()
            self._wipe()
            self.fake.reset()
            self.bot.start()  # on a new port
            self.workspace.driver = self.bot.driver
            try:
                Seeder(self.bot, self.db_path, self._stop).run()
            except SeedingStopped:
                return
            self.fake.changed()

    def stop(self) -> None:
        """Stop a reset in progress at its next step, then the bot, then the local Slack."""
        self._stop.set()
        with self._lifecycle:
            if self.bot is not None:
                self.bot.stop(timeout=STOP_TIMEOUT)
            self.fake.save(self.slack_path)
            self.fake.stop()


class SeedingStopped(Exception):
    """The sandbox is stopping: seeding ends where it is."""


class Seeder:
    """A realistic week, through the bot's doors as Slack would send them."""

    def __init__(self, bot: BotProcess, db_path: Path, stopping: threading.Event) -> None:
        self.bot = bot
        self.driver = bot.driver
        self.fake = bot.fake
        self.db_path = db_path
        self.stopping = stopping

    def command(
        self, user: str, command: str, text: str, channel: str = "C0GENERAL", card_in: str | None = None
    ) -> str:
        """Run a slash command; with `card_in`, wait for the card it posts there (so cards come in
        order, as a person typing them would see)."""

        if self.stopping.is_set():
            raise SeedingStopped
        posted = 0
        if card_in is not None:
            self._space(card_in)
            posted = self._posts_in(card_in)
        response = self.driver.command(user, command, text, channel_id=channel)
        if response.status != 200:
            raise RuntimeError(
                f"seeding {command} {text} failed: HTTP {response.status} {response.body[:200]}"
            )
        if card_in is not None:
            self._await_posts(card_in, posted + 1)
        return response.body

    def _space(self, channel: str) -> None:
        """Until the local Slack's per-channel rate limit lets the bot post in `channel` again: a week
        seeded in seconds should not have Slack refuse the bot's posts (a real week is slower)."""
        wait = self.fake.channel_post_wait(channel)
        if wait and self.stopping.wait(wait):
            raise SeedingStopped

    def _posts_in(self, channel: str) -> int:
        return len(
            [c for c in self.fake.calls_to("chat.postMessage") if c.ok and c.params.get("channel") == channel]
        )

    def _await_posts(self, channel: str, count: int, timeout: float = 30.0) -> None:
        """Until `count` messages were posted in `channel`, in short waits so a stop ends it."""
        deadline = time.monotonic() + timeout
        while self._posts_in(channel) < count:
            if self.stopping.is_set():
                raise SeedingStopped
            if time.monotonic() > deadline:
                refused = [
                    f"{c.status} {c.error}"
                    for c in self.fake.calls_to("chat.postMessage")
                    if not c.ok and c.params.get("channel") == channel
                ]
                raise RuntimeError(
                    f"seeding: the bot posted no message in {channel} within {timeout:.0f} s "
                    f"(posts refused there: {refused or 'none'}); the bot's log ends:\n{self.bot.output()[-3000:]}"
                )
            self.fake.wait_change(self.fake.revision, 0.2)

    def run(self) -> None:
        def at(days: int, hour: int) -> str:
            day = datetime.now(UTC).date() + timedelta(days=days)
            return f"{day.isoformat()}T{hour:02d}:00"

        def mention(uid: str) -> str:
            return f"<@{uid}|{self.fake.users[uid]['name']}>"

        for uid, _n, _r, _tz, role, _skills in PEOPLE:
            if role == "lead":
                self.command(ADMIN, "/crew", f"lead {mention(uid)}")
        for slug, name in CATALOGUE:
            self.command(ADMIN, "/crew", f'skills add {slug} "{name}"')
        for uid, _n, _r, _tz, _role, skills in PEOPLE:
            if skills:
                self._space(dm_channel_id(uid))  # leads were just DMed their new role
                self.command(ADMIN, "/crew", f"skill {mention(uid)} {skills}")
        due = (datetime.now(UTC).date() + timedelta(days=6)).isoformat()
        tasks = [
            ("ULEAD1", "Review NDA clauses for a model eval", "rate=150 hours=4 slots=2 skill=legal"),
            ("ULEAD1", "Grade clinical triage answers", "rate=180 hours=6 slots=3 skill=medicine"),
            ("ULEAD2", "Red-team a code assistant", "rate=120 hours=5 slots=2 skill=engineering"),
            ("ULEAD2", "Edit long-form reasoning traces", "rate=90 hours=3 slots=1 skill=editing"),
            ("ULEAD1", "Contract law Q&A pairs", "rate=140 hours=8 slots=2 skill=legal"),
        ]
        for lead, title, options in tasks:
            text = f"new {title} {options} due={due} channel=<#C0TASKS|tasks>"
            self.command(lead, "/tasks", text, card_in="C0TASKS")
        self.command("UCON2", "/tasks", "claim T-2")
        self.command("UCON3", "/tasks", "claim T-3")
        self.command("UCON5", "/tasks", "claim T-5")
        self.command("UCON3", "/tasks", "done T-3 confirm https://example.com/redteam-notes")
        shifts = [
            ("ULEAD1", "Legal review desk", at(1, 14), at(1, 18), "slots=3 skill=legal"),
            ("ULEAD2", "Night code review", at(2, 22), at(3, 2), "slots=2 skill=engineering repeat=weekly"),
            ("ULEAD1", "Open office hours", at(3, 16), at(3, 17), "slots=10"),
        ]
        for lead, name, start, end, options in shifts:
            self.command(
                lead,
                "/shifts",
                f"new {name} start={start} end={end} {options} tz=UTC channel=<#C0GENERAL|general>",
                card_in="C0GENERAL",
            )
        self.command("UCON5", "/shifts", "join S-1")
        self.command("UCON6", "/shifts", "join S-2")
        referrals = [
            ("UCON1", "maria.santos@example.com Maria Santos skill=legal", None),
            ("UCON2", "kofi.mensah@example.com Kofi Mensah skill=medicine", "applied"),
            ("UCON3", "yuki.tanaka@example.com Yuki Tanaka skill=engineering", "interviewing"),
            ("UCON5", "priya.rao@example.com Priya Rao skill=legal", "hired"),
            ("UCON6", "tom.berg@example.com Tom Berg skill=editing", "rejected"),
        ]
        for n, (uid, text, status) in enumerate(referrals, start=1):
            self.command(uid, "/refer", text)
            if status:
                self.command("ULEAD1", "/referrals", f"set R-{n} {status}")
        self._hours()
        self.driver.message_im("UCON4", "how do I get paid?")
        self.command("UCON6", "/policy", SEEDED_ESCALATION)
        self._await_posts("C0LEADS", 1)
        self.settle()

    def settle(self, quiet: float = 0.7, timeout: float = 30.0) -> None:
        """Until the bot has stopped posting (the work it does after acknowledging)."""
        deadline = time.monotonic() + timeout
        revision = self.fake.revision
        while time.monotonic() < deadline and not self.stopping.is_set():
            now = self.fake.wait_change(revision, quiet)
            if now == revision:
                return
            revision = now

    def _hours(self) -> None:
        """Hours already worked this week, clocked in and out at past times by the domain itself."""
        from core.authz import Actor
        from db.engine import Database
        from domain import hours

        db = Database(f"sqlite:///{self.db_path}")
        now = datetime.now(UTC)
        worked = [
            ("UCON2", 2, "T-2", 3.5),
            ("UCON3", 2, "T-3", 5),
            ("UCON5", 1, "T-5", 2.25),
            ("UCON2", 1, None, 1),
        ]
        try:
            for uid, days_ago, task, length in worked:
                tz = self.fake.users[uid]["tz"]
                actor = Actor(uid, tz=tz)
                start = (now - timedelta(days=days_ago)).replace(minute=0, second=0, microsecond=0)
                with db.write() as session:
                    hours.clock_in(session, actor, int(task[2:]) if task else None, start, "seed")
                with db.write() as session:
                    hours.clock_out(session, actor, start + timedelta(hours=length), "seed")
        finally:
            db.dispose()


def main() -> int:
    data = Path(os.environ.get("SANDBOX_DATA", ROOT / "data"))
    port = int(os.environ.get("SANDBOX_PORT", "3100"))
    reset = os.environ.get("RESET", "") not in ("", "0")
    try:
        limits = rate_limits(os.environ.get("SANDBOX_RATE_LIMITS", ""))
    except ValueError:
        print("crewcall sandbox: SANDBOX_RATE_LIMITS is slack, off or a number above 0", file=sys.stderr)
        return 2
    sandbox = Sandbox(data, port=port, reset=reset, limits=limits)
    done = threading.Event()
    stop = stopping.setter(done)
    signal.signal(signal.SIGTERM, lambda *_: stop())
    try:
        sandbox.start()
    except Exception as e:
        print(f"crewcall sandbox: could not start: {e}", file=sys.stderr)
        sandbox.stop()
        return 1
    print(f"crewcall sandbox (no Slack needed) is running: open {sandbox.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stopping.wait_until_set(done)
    # A stop that hangs should say where: every thread's stack goes to stderr.
    faulthandler.dump_traceback_later(STOP_TIMEOUT + 15)
    sandbox.stop()
    faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    sys.exit(main())
