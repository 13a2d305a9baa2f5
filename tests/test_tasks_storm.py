"""Claims under a storm, through the HTTP endpoint with real threads, on SQLite and PostgreSQL:
a slot is never given twice, and a member clicking several cards at once never passes the cap."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlmodel import col, func, select

from db.models import Assignment, Task
from sandbox.harness import BotHarness
from tests.tasks_support import TASKS, all_at_once, claim_click, make_lead, post, wait_card


def test_two_hundred_contractors_click_claim_on_a_five_slot_task(bot: BotHarness) -> None:
    make_lead(bot)
    users = [u["id"] for u in bot.fake.add_users(200)]
    task_id, ts = post(bot, "Review 40 contract summaries slots=5 rate=120 hours=6")
    card = bot.fake.find_message(TASKS, ts)
    assert bot.driver is not None
    driver = bot.driver
    urls = [bot.fake.new_response_url() for _ in users]

    statuses = all_at_once([claim_click(driver, u, task_id, ts, card, urls[i]) for i, u in enumerate(users)])
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


def test_a_storm_over_two_cards_while_one_is_cancelled_stays_exact(bot: BotHarness) -> None:
    """Clicks on two cards at once are decided in batches per task; some clickers already hold the
    first task, and the lead cancels the second mid-storm. Every clicker is told what happened to
    their click, and the store agrees with what they were told."""
    make_lead(bot)
    users = [u["id"] for u in bot.fake.add_users(60)]
    first, first_ts = post(bot, "First slots=6 rate=50 hours=1")
    second, second_ts = post(bot, "Second slots=4 rate=50 hours=1")
    holders = users[:3]
    for user in holders:
        assert (
            "is yours"
            in bot.click(user, "task_claim", str(first), message_ts=first_ts, channel_id=TASKS).text
        )
    assert bot.driver is not None
    driver = bot.driver
    clicks = [(u, first, first_ts) for u in users] + [(u, second, second_ts) for u in users[::2]]
    urls = [bot.fake.new_response_url() for _ in clicks]

    def clicker(i: int) -> Callable[[], object]:
        user, task_id, ts = clicks[i]
        return lambda: (
            driver.click(
                user, "task_claim", str(task_id), channel_id=TASKS, message_ts=ts, response_url=urls[i]
            ).status
        )

    cancel = lambda: bot.command("ULEAD", "/tasks", f"cancel T-{second}").text  # noqa: E731
    outcomes = all_at_once([clicker(i) for i in range(len(clicks))] + [cancel])
    assert outcomes[:-1] == [200] * len(clicks)
    assert "Cancelled" in str(outcomes[-1])
    wanted = set(urls)
    replies = bot.fake.wait_for(
        "response_url", count=len(urls), timeout=120, predicate=lambda c: c.params["_url"] in wanted
    )
    said = {c.params["_url"]: c.params["text"] for c in replies}
    told = [said[url] for url in urls]

    on_first = told[: len(users)]
    assert all("already yours" in t for t in on_first[:3])
    first_winners = [users[i] for i, t in enumerate(on_first) if "is yours" in t]
    assert len(first_winners) == 3
    assert all("is yours" in t or f"T-{first} is full" in t for t in on_first[3:])

    on_second = told[len(users) :]
    assert all("is yours" in t or "is full" in t or "was cancelled" in t for t in on_second)
    second_winners = [clicks[len(users) + i][0] for i, t in enumerate(on_second) if "is yours" in t]
    assert len(second_winners) <= 4
    with bot.services.db.write() as session:
        tasks = {t.id: t for t in session.exec(select(Task)).all()}
        active = session.exec(
            select(Assignment.task_id, Assignment.user_id).where(col(Assignment.state) == "claimed")
        ).all()
        released = session.exec(
            select(Assignment.user_id).where(
                col(Assignment.task_id) == second, col(Assignment.state) == "released"
            )
        ).all()
    assert (tasks[first].claimed, tasks[first].state) == (6, "full")
    assert (tasks[second].claimed, tasks[second].state) == (0, "cancelled")
    assert sorted(u for t, u in active if t == first) == sorted(holders + first_winners)
    assert not [u for t, u in active if t == second]
    assert sorted(released) == sorted(second_winners)  # whoever won it before the cancel lost it then
