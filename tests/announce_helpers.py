"""Helpers shared by the announcement tests and the broadcast bench."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from sandbox.fake_slack import Call, FakeSlack

EVENT_TYPE = "crewcall_announcement"


def announcement_of(call: Call) -> tuple[int, str] | None:
    """(announcement id, recipient) of a message the sender posted, from its metadata."""
    meta = call.params.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return None
    payload = meta.get("event_payload") or {}
    return int(payload["announcement_id"]), str(payload["recipient"])


def deliveries(fake: FakeSlack, announcement_id: int | None = None) -> Counter[str]:
    """How many times each recipient got an announcement message that Slack accepted."""
    counts: Counter[str] = Counter()
    for call in fake.calls_to("chat.postMessage"):
        found = announcement_of(call)
        if call.ok and found and (announcement_id is None or found[0] == announcement_id):
            counts[found[1]] += 1
    return counts


def attempts_to(fake: FakeSlack, recipient: str) -> list[Call]:
    """Every chat.postMessage the sender made for this recipient, accepted or not."""
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if (found := announcement_of(c)) and found[1] == recipient
    ]


def status_updates(fake: FakeSlack, announcement_id: int, since: int = 0) -> list[Call]:
    """The lead's status card for this announcement, as posted and redrawn, oldest first."""
    prefix = f"Announcement A-{announcement_id}:"
    return [
        c
        for c in fake.calls[since:]
        if c.method in ("chat.update", "chat.postMessage")
        and c.ok
        and str(c.params.get("text", "")).startswith(prefix)
    ]


def wait_status(
    fake: FakeSlack, announcement_id: int, state: str, timeout: float = 20.0, since: int = 0
) -> Call:
    """The latest drawing of the lead's status card in `state` (scheduled, sending, done, cancelled)."""
    prefix = f"Announcement A-{announcement_id}: {state}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            c for c in status_updates(fake, announcement_id, since) if c.params["text"].startswith(prefix)
        ]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no status card for A-{announcement_id} in state {state!r} within {timeout}s")


def text_of(call: Call) -> str:
    return str(call.params.get("text", "")) + json.dumps(call.params.get("blocks") or [], ensure_ascii=False)


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
