"""The sandbox workspace without a browser: what a person does on the page reaches the bot as Slack
would send it, and what the bot answers lands where that person sees it; `python -m sandbox` (what
`make run` starts without credentials) prints the URL, seeds a week once and keeps it between runs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.fake_slack import FakeSlack, dm_channel_id
from sandbox.harness import SIGNING_SECRET, BotHarness
from sandbox.run import SEEDED_ESCALATION, SLACK_RATE_LIMITS, Sandbox, rate_limits
from sandbox.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def page(sqlite_url: str, fake: FakeSlack) -> Iterator[Workspace]:
    with BotHarness(sqlite_url, fake=fake, env={"TASKS_CHANNEL": "C0TASKS"}) as bot:
        fake.add_user("ULEAD", name="lena", tz="America/New_York")
        fake.add_user("UADA", name="ada", tz="Europe/Lisbon")
        fake.add_user("UBEN", name="ben", tz="America/Chicago")
        page = Workspace(fake, bot.url, SIGNING_SECRET)
        page.send("UADMIN", "C0GENERAL", "/crew lead @lena")
        assert "is now a lead" in _wait(lambda: page.state("UADMIN")["ephemerals"])[0]["text"]
        page.send("ULEAD", "C0GENERAL", "/crew skill @ada legal")
        _wait(lambda: page.state("ULEAD")["ephemerals"])
        yield page


def _wait(condition: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def _text(message: dict[str, Any]) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks") or [], ensure_ascii=False)


def test_a_slash_command_answers_only_the_person_who_typed_it(page: Workspace) -> None:
    page.send("UADA", "C0GENERAL", "/crew me")
    mine = _wait(lambda: page.state("UADA")["ephemerals"])
    assert mine[0]["channel"] == "C0GENERAL" and "legal" in _text(mine[0])
    assert page.state("UBEN")["ephemerals"] == []
    page.send("UADA", "C0GENERAL", "/nonsense")
    assert "not a valid command" in page.state("UADA")["ephemerals"][-1]["text"]
    assert {c["command"] for c in page.state("UADA")["commands"]} >= {"/tasks", "/policy", "/crew"}


def test_a_lead_posts_through_the_modal_and_a_contractor_claims_on_the_card(page: Workspace) -> None:
    page.send("ULEAD", "C0TASKS", "/tasks new")
    modal = _wait(lambda: page.state("ULEAD")["modal"])
    assert modal["callback_id"] == "task_new" and page.state("UADA")["modal"] is None

    def values(rate: str) -> dict[str, Any]:
        return {
            "title": {"value": {"type": "plain_text_input", "value": "Label risk clauses"}},
            "skill": {"value": {"type": "plain_text_input", "value": "legal"}},
            "rate": {"value": {"type": "plain_text_input", "value": rate}},
            "hours": {"value": {"type": "plain_text_input", "value": "2"}},
            "slots": {"value": {"type": "plain_text_input", "value": "1"}},
            "due": {"value": {"type": "datepicker", "selected_date": None}},
            "channel": {"value": {"type": "conversations_select", "selected_conversation": "C0TASKS"}},
        }

    refused = page.submit("ULEAD", modal["id"], values("lots"))
    assert "not an amount" in refused["errors"]["rate"]
    assert page.state("ULEAD")["modal"] is not None  # still open, the error under its field
    assert page.submit("ULEAD", modal["id"], values("130")) == {"ok": True}
    assert page.state("ULEAD")["modal"] is None
    card = _wait(lambda: page.state("UADA")["messages"]["C0TASKS"])[0]
    assert "1 of 1 slot left" in _text(card)

    claim = next(b["accessory"] for b in card["blocks"] if b.get("accessory", {}).get("type") == "button")
    page.action("UADA", {"where": "message", "channel": "C0TASKS", "message": card, "action": claim})
    confirmation = _wait(lambda: page.state("UADA")["ephemerals"])[-1]
    assert "is yours" in _text(confirmation)
    updated = _wait(
        lambda: "Full" in _text(page.fake.messages["C0TASKS"][0]) and page.fake.messages["C0TASKS"][0]
    )
    assert updated["edited"] and "Claim" not in _text(updated)
    assert page.state("ULEAD")["messages"]["C0TASKS"][0]["ts"] == card["ts"]  # changed in place
    _wait(lambda: page.fake.messages.get(dm_channel_id("UADA")))  # the DM with what to do next


def test_a_dm_and_a_mention_reach_the_bot(page: Workspace) -> None:
    page.send("UADA", dm_channel_id("UADA"), "when is payday?")
    dm = page.state("UADA")["messages"][dm_channel_id("UADA")]
    asked = next(m for m in dm if m["user"] == "UADA")
    assert asked["text"] == "when is payday?"
    _wait(
        lambda: [m for m in page.fake.messages[dm_channel_id("UADA")] if float(m["ts"]) > float(asked["ts"])]
    )
    page.send("UADA", "C0GENERAL", "@crewcall when is payday?")
    mention = page.fake.messages["C0GENERAL"][0]
    assert mention["text"].startswith("<@U0BOT>")
    reply = _wait(lambda: [m for m in page.fake.messages["C0GENERAL"] if m.get("thread_ts") == mention["ts"]])
    assert reply[0]["user"] == "U0BOT"  # answered in the thread


def test_the_home_tab_and_the_page_itself(page: Workspace) -> None:
    assert page.handle("home", {"user": "UADA"}) == {"ok": True}
    _wait(lambda: page.state("UADA")["home"])
    html = urllib.request.urlopen(page.fake.url, timeout=5).read().decode()
    assert "/static/app.js" in html
    for name in ("app.js", "app.css"):
        assert urllib.request.urlopen(f"{page.fake.url}static/{name}", timeout=5).status == 200
    with urllib.request.urlopen(f"{page.fake.url}sandbox/state?user=UADA", timeout=5) as resp:
        assert json.loads(resp.read())["home"]["type"] == "home"
    with urllib.request.urlopen(f"{page.fake.url}sandbox/events", timeout=5) as events:
        assert events.headers["Content-Type"] == "text/event-stream"
        first = events.readline().decode()
        assert first.startswith("data: ")
        page.send("UADA", "C0RANDOM", "hello")  # a change pushes a new revision
        events.readline()
        assert int(events.readline().decode()[6:]) > int(first[6:])


def _strings(tree: ast.AST) -> Iterator[str]:
    """Every string literal in a module (f-strings' literal parts too), docstrings left out: they
    hold Sphinx roles such as :class:, no emoji."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_the_page_draws_every_emoji_the_bot_uses() -> None:
    script = (ROOT / "sandbox" / "web" / "app.js").read_text()
    table = re.search(r"const EMOJI = \{(.*?)\};", script, re.S)
    assert table is not None
    drawn = {key.strip('"') for key in re.findall(r'([\w+-]+|"[^"]+"):\s*"', table.group(1))}
    used: dict[str, str] = {}
    for layer in ("views", "jobs", "handlers", "domain"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for text in _strings(ast.parse(path.read_text())):
                for name in re.findall(r"(?<![\w:]):([a-z0-9_+-]+):(?![\w:])", text):
                    used.setdefault(name, str(path.relative_to(ROOT)))
    used.pop("memory", None)  # SQLite's ":memory:" database, not an emoji
    assert len(used) > 20  # the scan finds the bot's emoji at all
    missing = {name: path for name, path in used.items() if name not in drawn}
    assert not missing, f"emoji the page would show as :shortcode: (add them to EMOJI in app.js): {missing}"


def test_reset_wipes_the_database_and_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "sandbox.db").write_text("x")
    (tmp_path / "sandbox-slack.json").write_text("{}")
    Sandbox(tmp_path, reset=True)
    assert not (tmp_path / "sandbox.db").exists() and not (tmp_path / "sandbox-slack.json").exists()


def test_the_sandbox_keeps_slacks_rate_limits_unless_told_otherwise(tmp_path: Path) -> None:
    assert Sandbox(tmp_path).fake.rate_limits == {"tiers": True, "per_channel_per_sec": 1}
    slack = {**SLACK_RATE_LIMITS, "scale": 1.0}
    assert rate_limits("") == rate_limits("slack") == rate_limits(" Slack ") == slack
    assert rate_limits("off") is None
    assert rate_limits("0.1") == {**SLACK_RATE_LIMITS, "scale": 0.1}
    for wrong in ("tiers", "0", "-2", "nan", "inf"):
        with pytest.raises(ValueError):
            rate_limits(wrong)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SANDBOX_RATE_LIMITS": "fast"}
    refused = subprocess.run(
        [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert refused.stderr == "crewcall sandbox: SANDBOX_RATE_LIMITS is slack, off or a number above 0\n"


def _state(url: str) -> dict[str, Any]:
    return dict(json.loads(urllib.request.urlopen(f"{url}sandbox/state?user=UCON1", timeout=10).read()))


def _post(url: str, verb: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{url}sandbox/{verb}", data=json.dumps(body).encode(), method="POST")
    assert json.loads(urllib.request.urlopen(request, timeout=30).read())["ok"]


def _reseeded(url: str, cards: list[str]) -> bool:
    try:
        return [m["text"] for m in _state(url)["messages"]["C0TASKS"]] == cards
    except OSError:
        return False


def _run(data: Path) -> tuple[subprocess.Popen[str], str, float]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SANDBOX_DATA": str(data), "SANDBOX_PORT": "0"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line, time.monotonic() - started


def test_python_m_sandbox_prints_the_url_seeds_once_and_keeps_the_week(tmp_path: Path) -> None:
    proc, line, _ = _run(tmp_path)
    try:
        assert line.startswith("crewcall sandbox") and "open http://127.0.0.1:" in line
        url = line.split("open ")[1].strip()
        state = json.loads(urllib.request.urlopen(f"{url}sandbox/state?user=UCON1", timeout=10).read())
        assert len(state["users"]) == 9 and state["violations"] == []
        cards = [m["text"] for m in state["messages"]["C0TASKS"]]
        assert len(cards) == 5 and cards[0].startswith("T-1")
        assert SEEDED_ESCALATION in _text(state["messages"]["C0LEADS"][0])  # waiting for a lead
        assert SEEDED_ESCALATION not in " ".join(state["try_this"])  # step 4 asks another question
        assert len(state["messages"]["C0GENERAL"]) == 3  # shift cards
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    proc, line, _ = _run(tmp_path)  # kept between runs, not seeded again
    try:
        url = line.split("open ")[1].strip()
        assert [m["text"] for m in _state(url)["messages"]["C0TASKS"]] == cards
        _post(
            url, "send", {"user": "ULEAD1", "channel": "C0TASKS", "text": "/tasks new Extra rate=90 hours=1"}
        )
        _wait(lambda: len(_state(url)["messages"]["C0TASKS"]) == 6, 30)
        _post(url, "reset", {"user": "ULEAD1"})  # the page's "Start over": a new database, seeded again
        assert _state(url)["resetting"]  # the page says "Starting over…" until it is done
        _wait(lambda: _reseeded(url, cards) and not _state(url)["resetting"], 90)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
