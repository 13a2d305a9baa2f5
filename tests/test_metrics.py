"""GET /metrics through the door: requests and their latency by kind, Web API calls and 429s by
method, queue depths read at scrape time, scheduler leadership; the same from several real bot
processes sharing PROMETHEUS_MULTIPROC_DIR; and JSON logs without secrets."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import logs, metrics
from db.models import Shift, ShiftMember, ShiftReminder
from sandbox.bot_process import BOT_TOKEN, SIGNING_SECRET, BotProcess, free_port
from sandbox.driver import SlackDriver, SocketModeDriver
from sandbox.fake_slack import APP_TOKEN, FakeSlack
from sandbox.harness import BotHarness
from server.http import is_click
from server.observe import OpsServer, request_kind
from tests.conftest import Templates
from tests.tasks_support import TASKS, click_claim, make_lead, post, wait_card

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str, token: str | None = None) -> Samples:
    request = urllib.request.Request(f"{base_url}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape_until(base_url: str, done: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    """A scrape once `done` holds: the bot counts a Web API call when it has read Slack's answer,
    a moment after the fake Slack recorded it."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(base_url)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, kind: str) -> float:
    return value(samples, "crewcall_request_seconds_count", kind=kind)


def test_metrics_show_requests_by_kind_slack_calls_by_method_and_queue_depths(bot: BotHarness) -> None:
    before = scrape(bot.url)
    lead = make_lead(bot)  # /crew lead
    task_id, ts = post(bot, lead=lead)  # /tasks new
    bot.fake.add_user("U1", tz="UTC")
    for _ in range(3):
        bot.command("U1", "/tasks")
    # Slack refuses the card's update once (429): it goes out after Retry-After.
    bot.fake.fail_next("chat.update", status=429, retry_after=0)
    assert "is yours" in click_claim(bot, "U1", task_id, ts)
    wait_card(bot, ts, "Full", absent="task_claim")
    assert bot.driver is not None
    assert bot.driver.command("U1", "/tasks", signature="v0=forged").status == 401

    def calls(samples: Samples) -> float:
        return value(samples, "crewcall_slack_api_calls_total", method="chat.update")

    after = scrape_until(bot.url, lambda samples: calls(samples) - calls(before) >= 2)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("crewcall_request_seconds_count", kind="command /crew") == 1
    assert delta("crewcall_request_seconds_count", kind="command /tasks") == 4
    assert delta("crewcall_request_seconds_count", kind="action task_claim") == 1
    assert delta("crewcall_request_seconds_count", kind="refused") == 1
    # The histogram is whole: every request in the +Inf bucket, and its time summed.
    count = value(after, "crewcall_request_seconds_count", kind="command /tasks")
    assert value(after, "crewcall_request_seconds_bucket", kind="command /tasks", le="+Inf") == count
    assert delta("crewcall_request_seconds_sum", kind="command /tasks") > 0

    assert delta("crewcall_slack_api_rate_limited_total", method="chat.update") == 1
    assert delta("crewcall_slack_api_calls_total", method="chat.update") >= 2
    posts = [c for c in bot.fake.calls_to("chat.postMessage") if c.params.get("channel") == TASKS]
    assert delta("crewcall_slack_api_calls_total", method="chat.postMessage") >= len(posts) == 1
    assert delta("crewcall_slack_api_rate_limited_total", method="chat.postMessage") == 0

    for gauge in ("crewcall_outbox_pending", "crewcall_reminders_due", "crewcall_escalations_waiting"):
        assert value(after, gauge) == 0, gauge
        assert (gauge, frozenset()) in after, gauge
    assert value(after, "crewcall_scheduler_leader") == 1


def test_reminders_due_are_counted_from_the_database(bot: BotHarness) -> None:
    now = bot.clock.now()
    with bot.services.db.write() as session:
        starts, ends = now + timedelta(minutes=20), now + timedelta(hours=2)
        shift = Shift(
            name="Night review",
            tz="UTC",
            first_starts_at=starts,
            first_ends_at=ends,
            starts_at=starts,
            ends_at=ends,
            slots=3,
            remind_minutes=30,
            channel_id="C0SHIFTS",
            creator_id="UADMIN",
            created_at=now,
            updated_at=now,
        )
        session.add(shift)
        session.flush()
        assert shift.id is not None
        for n, user in enumerate(("U1", "U2", "U3")):
            session.add(ShiftMember(shift_id=shift.id, user_id=user, joined_at=now))
            due = now - timedelta(minutes=1) if n < 2 else now + timedelta(minutes=5)
            state = "skipped" if n == 1 else "pending"
            session.add(ShiftReminder(shift_id=shift.id, occurrence=0, user_id=user, due_at=due, state=state))
    # Due and pending: U1 only (U2's was skipped, U3's is not due yet).
    assert value(scrape(bot.url), "crewcall_reminders_due") == 1


def test_metrics_token_is_asked_for_when_set(fake: FakeSlack, sqlite_url: str) -> None:
    token = "scrape-token-0123456789"
    with BotHarness(sqlite_url, fake=fake, env={"METRICS_TOKEN": token}) as bot:
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(bot.url)
        assert refused.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as wrong:
            scrape(bot.url, token="another-token-0123456789")
        assert wrong.value.code == 401
        assert ("crewcall_scheduler_leader", frozenset()) in scrape(bot.url, token=token)


def test_each_kind_of_request_is_named_from_its_body(fake: FakeSlack) -> None:
    fake.add_user("U1", tz="UTC")
    driver = SlackDriver("http://127.0.0.1:9", "unused", fake=fake)

    def kind(body: str) -> str:
        return request_kind(body, is_click(body))

    assert kind(urlencode(driver.command_fields("U1", "/tasks", "mine"))) == "command /tasks"
    # A card's click: its message carries other buttons' action_ids; the clicked one is named.
    card = {
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "T-1"}, "accessory": other}
            for other in ({"type": "button", "action_id": "shift_join", "value": "3"},) * 3
        ]
    }
    click = driver.block_actions_payload(
        "U1", [driver.button_action("task_claim", "12")], message_ts="1.000001", message=card
    )
    assert kind(urlencode({"payload": json.dumps(click)})) == "action task_claim"
    compact = json.dumps(click, separators=(",", ":"))  # as Slack sends it
    assert kind(urlencode({"payload": compact})) == "action task_claim"
    submission = driver.view_submission_payload("U1", "task_new", {})
    assert kind(urlencode({"payload": json.dumps(submission)})) == "view_submission task_new"
    assert kind(json.dumps(driver.event_callback(driver.home_opened_event("U1")))) == "event app_home_opened"
    assert kind(json.dumps({"type": "url_verification", "challenge": "x"})) == "url_verification"
    assert kind("payload=%7Bnot+json") == "other"


def test_label_values_are_bounded() -> None:
    kinds = metrics._Bounded(re.compile(r"[a-z]+ [a-z0-9]+"))
    named = {kinds(f"command x{n}") for n in range(metrics.MAX_LABELS + 50)}
    assert len(named) == metrics.MAX_LABELS + 1 and metrics.OTHER in named
    assert kinds("command x0") == "command x0"  # one already seen keeps its name
    assert kinds("<script>") == metrics.OTHER


@pytest.fixture
def postgres_url(templates: Templates) -> str:
    return templates.postgresql()


@pytest.fixture
def processes(fake: FakeSlack, postgres_url: str, tmp_path: Path) -> Iterator[list[BotProcess]]:
    shared = tmp_path / "metrics"
    shared.mkdir()
    bots = [
        BotProcess(fake, postgres_url, env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}).start()
        for _ in range(2)
    ]
    yield bots
    for bot in bots:
        bot.stop()


def test_processes_sharing_a_metrics_directory_report_each_others_counts(
    processes: list[BotProcess], fake: FakeSlack
) -> None:
    first, second = processes
    fake.add_user("U1", tz="UTC")
    for _ in range(2):
        assert first.driver.command("U1", "/crew", "me").status == 200
    for _ in range(3):
        assert second.driver.command("U1", "/crew", "me").status == 200
    seen_by_first, seen_by_second = scrape(first.url), scrape(second.url)
    for samples in (seen_by_first, seen_by_second):
        assert requests_of(samples, "command /crew") == 5
        leaders = {
            dict(labels)["pid"]: v
            for (name, labels), v in samples.items()
            if name == "crewcall_scheduler_leader"
        }
        assert leaders == {
            str(first.pid): 1,
            str(second.pid): 0,
        }  # the first started leads, the other stands by
        assert value(samples, "crewcall_reminders_due") == 0

    # A process killed outright leaves its counts in the totals and its live gauge goes.
    second_pid = second.pid
    second.kill()
    samples = scrape(first.url)
    assert requests_of(samples, "command /crew") == 5
    leaders = {
        dict(labels)["pid"] for (name, labels), _ in samples.items() if name == "crewcall_scheduler_leader"
    }
    assert leaders == {str(first.pid)}, f"{second_pid} was killed"


def test_with_a_metrics_port_the_slack_port_no_longer_shows_metrics(fake: FakeSlack, sqlite_url: str) -> None:
    # The harness serves PORT only; the metrics port is opened here as bot.py opens it.
    with BotHarness(sqlite_url, fake=fake, env={"METRICS_PORT": str(free_port())}) as bot:
        assert bot.app is not None
        ops = OpsServer(bot.app, 0, host="127.0.0.1").start()
        try:
            with pytest.raises(urllib.error.HTTPError) as hidden:
                scrape(bot.url)
            assert hidden.value.code == 404
            fake.add_user("U1", tz="UTC")
            before = requests_of(scrape(f"http://127.0.0.1:{ops.port}"), "command /crew")
            bot.command("U1", "/crew", "me")
            assert requests_of(scrape(f"http://127.0.0.1:{ops.port}"), "command /crew") == before + 1
        finally:
            ops.close()


def test_socket_mode_serves_metrics_and_health_on_the_metrics_port(fake: FakeSlack, sqlite_url: str) -> None:
    ops_port = free_port()
    bot = BotProcess(
        fake, sqlite_url, env={"SLACK_APP_TOKEN": APP_TOKEN, "METRICS_PORT": str(ops_port)}
    ).start()
    try:
        ops = f"http://127.0.0.1:{ops_port}"
        slack = SocketModeDriver(fake)
        fake.add_user("U1", tz="UTC")
        before = requests_of(scrape(ops), "command /crew")
        slack.wait_ack(slack.command("U1", "/crew", "me"))
        # Counted once the acknowledgement has gone out, a moment after the fake received it.
        after = scrape_until(ops, lambda samples: requests_of(samples, "command /crew") > before)
        assert requests_of(after, "command /crew") == before + 1
        with urllib.request.urlopen(f"{ops}/healthz", timeout=5) as resp:
            assert json.loads(resp.read())["ok"] is True
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            urllib.request.urlopen(f"{ops}/slack/events", timeout=5)
        assert elsewhere.value.code == 404
    finally:
        bot.kill()  # a graceful stop waits out slack_sdk's socket timeout (tests/test_socket_mode.py)


def test_json_logs_are_one_object_per_line_without_secrets(fake: FakeSlack, sqlite_url: str) -> None:
    fake.add_user("U1", tz="UTC")
    bot = BotProcess(fake, sqlite_url, env={"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}).start()
    try:
        assert bot.driver.command("U1", "/crew", "me").status == 200
        assert bot.driver.command("U1", "/crew", "me", signature="v0=forged").status == 401
    finally:
        bot.stop()
    lines = [line for line in bot.output().splitlines() if line.strip()]
    assert any("listening on port" in json.loads(line)["message"] for line in lines)
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "message"} <= set(record), line
    assert BOT_TOKEN not in bot.output() and SIGNING_SECRET not in bot.output()


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """logs.configure changes the process's logging: put it back for the tests that follow."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, threading.excepthook, sys.excepthook)
    yield
    root.handlers[:], root.level, threading.excepthook, sys.excepthook = saved
    logging.captureWarnings(False)


def test_a_secret_in_an_exception_never_reaches_a_json_line(
    capsys: pytest.CaptureFixture[str], logging_restored: None
) -> None:
    secret = "db-password-never-logged"
    logs.configure("INFO", [secret], "json")
    try:
        raise RuntimeError(f"could not connect to postgresql://crewcall:{secret}@db/crewcall")
    except RuntimeError:
        logging.getLogger("crewcall.test").exception("start-up failed with %s", secret)
    logging.getLogger("crewcall.test").warning("token %s", "xoxb-1234-abcdef-shaped-like-a-token")

    def fails() -> None:
        raise ValueError(f"uncaught, carrying {secret}")

    thread = threading.Thread(target=fails, name="worker-1")
    thread.start()
    thread.join()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    failed, token, uncaught = (json.loads(line) for line in lines)
    assert failed["level"] == "ERROR" and failed["logger"] == "crewcall.test"
    assert failed["message"] == f"start-up failed with {logs.REDACTED}"
    assert "RuntimeError: could not connect" in failed["exc"] and "Traceback" in failed["exc"]
    assert secret not in "\n".join(lines)
    assert token["message"] == f"token {logs.REDACTED}"
    assert uncaught["message"] == "uncaught exception in thread worker-1"
    assert f"ValueError: uncaught, carrying {logs.REDACTED}" in uncaught["exc"]


def test_a_library_that_sets_its_own_logger_to_debug_prints_nothing_below_the_level(
    capsys: pytest.CaptureFixture[str], logging_restored: None
) -> None:
    logs.configure("INFO", [])
    chatty = logging.getLogger("crewcall.test.chatty")
    chatty.setLevel(logging.DEBUG)  # what bm25s does to its logger when it is imported
    chatty.debug("building the index")
    chatty.info("built")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO crewcall.test.chatty: built")


def test_text_logs_stay_the_default(capsys: pytest.CaptureFixture[str], logging_restored: None) -> None:
    logs.configure("INFO", [])
    logging.getLogger("crewcall.test").info("hello")
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO crewcall.test: hello")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
