"""Helpers shared by the /tasks tests: a lead, a posted task, its card as Slack shows it."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable

from sqlmodel import col, select

from db.models import Assignment, Task
from sandbox.driver import SlackDriver
from sandbox.fake_slack import Call
from sandbox.harness import BotHarness

TASKS = "C0TASKS"


def make_lead(bot: BotHarness, user: str = "ULEAD", tz: str = "UTC") -> str:
    bot.fake.add_user(user, tz=tz)
    assert "is now a lead" in bot.command("UADMIN", "/crew", f"lead <@{user}>").text
    return user


def post(
    bot: BotHarness, text: str = "Review 40 contract summaries rate=120 hours=6", lead: str = "ULEAD"
) -> tuple[int, str]:
    """Post a task in #tasks; returns its id and its card's ts."""
    reply = bot.command(lead, "/tasks", f"new {text} channel=<#{TASKS}|tasks>")
    assert "Posted" in reply.text, reply.text
    task_id = int(re.search(r"T-(\d+)", reply.text).group(1))  # type: ignore[union-attr]
    card = next(c for c in reversed(bot.fake.calls_to("chat.postMessage")) if c.params["channel"] == TASKS)
    return task_id, card.response["ts"]


def card_blocks(bot: BotHarness, ts: str) -> str:
    message = bot.fake.find_message(TASKS, ts)
    assert message is not None
    return json.dumps(message.get("blocks"), ensure_ascii=False)


def wait_card(bot: BotHarness, ts: str, *needles: str, absent: str = "") -> str:
    """Wait until the card (updated in place) shows every needle and not `absent`."""

    def shows(call: Call) -> bool:
        text = json.dumps(call.params.get("blocks"), ensure_ascii=False)
        return (
            call.params.get("ts") == ts
            and all(n in text for n in needles)
            and not (absent and absent in text)
        )

    bot.fake.wait_for("chat.update", predicate=shows)
    return card_blocks(bot, ts)


def click_claim(bot: BotHarness, user: str, task_id: int, ts: str) -> str:
    return bot.click(user, "task_claim", str(task_id), message_ts=ts, channel_id=TASKS).text


def assignments(bot: BotHarness, task_id: int) -> list[tuple[str, str]]:
    with bot.services.db.write() as session:
        rows = session.exec(
            select(Assignment).where(col(Assignment.task_id) == task_id).order_by(col(Assignment.id))
        )
        return [(a.user_id, a.state) for a in rows]


def task_row(bot: BotHarness, task_id: int) -> Task:
    with bot.services.db.write() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task


def claim_click(
    driver: SlackDriver, user: str, task_id: int, ts: str, card: dict[str, object], response_url: str
) -> Callable[[], object]:
    """`user`'s click on Claim on the task's card, to be sent later (a storm's threads send them
    at once); it returns the HTTP status of the acknowledgement."""
    return lambda: (
        driver.click(
            user,
            "task_claim",
            str(task_id),
            channel_id=TASKS,
            message_ts=ts,
            message=card,
            response_url=response_url,
        ).status
    )


def all_at_once(actions: list[Callable[[], object]]) -> list[object]:
    """Run every action on its own thread, released together; return their results in order."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = actions[i]()
        except BaseException as e:  # surfaced below, with the others
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return results
