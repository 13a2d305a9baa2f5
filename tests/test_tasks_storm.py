"""Claims under a storm, through the HTTP endpoint with real threads, on SQLite and PostgreSQL:
a slot is never given twice, and a member clicking several cards at once never passes the cap."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from sqlmodel import col, func, select

from db.models import Assignment, Task
from sandbox.harness import BotHarness
from tests.tasks_support import TASKS, make_lead, post, wait_card


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


def test_two_hundred_contractors_click_claim_on_a_five_slot_task(bot: BotHarness) -> None:
    make_lead(bot)
    users = [u["id"] for u in bot.fake.add_users(200)]
    task_id, ts = post(bot, "Review 40 contract summaries slots=5 rate=120 hours=6")
    card = bot.fake.find_message(TASKS, ts)
    assert bot.driver is not None
    driver = bot.driver
    urls = [bot.fake.new_response_url() for _ in users]

    def clicker(i: int) -> Callable[[], object]:
        return lambda: (
            driver.click(
                users[i],
                "task_claim",
                str(task_id),
                channel_id=TASKS,
                message_ts=ts,
                message=card,
                response_url=urls[i],
            ).status
        )

    statuses = all_at_once([clicker(i) for i in range(len(users))])
    assert statuses == [200] * len(users)
    wanted = set(urls)
    replies = bot.fake.wait_for(
        "response_url", count=len(users), timeout=120, predicate=lambda c: c.params["_url"] in wanted
    )
    by_url = {c.params["_url"]: c.params["text"] for c in replies}
    winners = [users[i] for i, url in enumerate(urls) if "is yours" in by_url[url]]
    losers = [url for url in urls if "is yours" not in by_url[url]]
    assert len(winners) == 5
    assert all(f"T-{task_id} is full" in by_url[url] for url in losers)

    with bot.services.db.write() as session:
        task = session.get(Task, task_id)
        assert task is not None
        assert (task.claimed, task.state) == (5, "full")
        held = session.exec(
            select(Assignment.user_id).where(
                col(Assignment.task_id) == task_id, col(Assignment.state) == "claimed"
            )
        ).all()
    assert sorted(held) == sorted(winners)
    for user in winners:
        bot.wait_dm(user, "You claimed")
    card_now = wait_card(bot, ts, "Full", absent="task_claim")
    assert "0 of 5 slots left" in card_now
    assert not any(
        "claimed" in json.dumps(c.params) for u in users if u not in winners for c in bot.dms_to(u)
    )


def test_one_member_clicking_many_cards_at_once_stays_within_the_cap(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    posted = [post(bot, f"Task {i} slots=2 rate=50 hours=1") for i in range(8)]

    def clicker(task_id: int, ts: str) -> Callable[[], object]:
        return lambda: bot.click("U1", "task_claim", str(task_id), message_ts=ts, channel_id=TASKS).text

    replies = all_at_once([clicker(*p) for p in posted])
    assert sum("is yours" in str(r) for r in replies) == 3
    assert sum("You already hold 3 claimed tasks" in str(r) for r in replies) == 5
    with bot.services.db.write() as session:
        count = session.exec(
            select(func.count()).select_from(Assignment).where(col(Assignment.user_id) == "U1")
        ).one()
        claimed = session.exec(select(func.sum(Task.claimed))).one()
    assert (count, claimed) == (3, 3)


def test_double_click_gives_one_slot(bot: BotHarness) -> None:
    make_lead(bot)
    bot.fake.add_user("U1")
    task_id, ts = post(bot, "Task slots=3 rate=50 hours=1")
    replies = all_at_once(
        [lambda: bot.click("U1", "task_claim", str(task_id), message_ts=ts, channel_id=TASKS).text] * 6
    )
    assert sum("is yours" in str(r) for r in replies) == 1
    assert sum("already yours" in str(r) for r in replies) == 5
    with bot.services.db.write() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.claimed == 1
