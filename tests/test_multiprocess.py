"""Three real bot processes (`bot.py`, each on its own port) on one PostgreSQL database and one fake
Slack, as behind a load balancer: claims stay exact when the clicks are spread across them, and
when the process running the scheduled jobs is SIGKILLed in the middle of a reminder window and
then of an announcement fan-out, another takes over within 30 s and every reminder and every DM
goes out exactly once."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from core.authz import Actor
from core.clock import FakeClock
from db.engine import Database
from db.models import AnnouncementDelivery, Assignment, Member, ShiftReminder, Task
from domain import shifts
from domain.shifts import NewShift
from jobs.leadership import LEADER_QUERY, LOCK_KEY, conninfo
from jobs.scheduler import Scheduler
from jobs.shifts import REMINDER_EVENT
from sandbox.cluster import Cluster
from sandbox.driver import SlackDriver
from sandbox.fake_slack import FakeSlack
from sandbox.harness import reply_to
from tests.announce_helpers import deliveries, wait_status, wait_until
from tests.tasks_support import TASKS, all_at_once, claim_click

TAKEOVER_BOUND_S = 30.0


def ask(fake: FakeSlack, driver: SlackDriver, user: str, command: str, text: str) -> str:
    """A slash command through one process's door, and its answer's text."""
    url = fake.new_response_url()
    return reply_to(fake, driver.command(user, command, text, response_url=url), url, timeout=20).text


def post_card(fake: FakeSlack, cluster: Cluster, slots: int) -> tuple[int, str, dict[str, Any] | None]:
    """An admin makes ULEAD a lead, who posts a task in #tasks: its id, its card's ts and the card."""
    assert "is now a lead" in ask(fake, cluster.driver(0), "UADMIN", "/crew", "lead <@ULEAD>")
    posted = ask(
        fake,
        cluster.driver(1),
        "ULEAD",
        "/tasks",
        f"new Review contracts slots={slots} rate=120 hours=6 channel=<#{TASKS}|tasks>",
    )
    task_id = int(re.search(r"T-(\d+)", posted).group(1))  # type: ignore[union-attr]
    card_call = next(c for c in reversed(fake.calls_to("chat.postMessage")) if c.params["channel"] == TASKS)
    ts = str(card_call.response["ts"])
    return task_id, ts, fake.find_message(TASKS, ts)


def test_a_claim_storm_spread_over_three_processes_has_exactly_as_many_winners_as_slots(
    templates,  # type: ignore[no-untyped-def]
    fake: FakeSlack,
) -> None:
    url = templates.postgresql()
    users = [u["id"] for u in fake.add_users(60)]
    fake.add_user("ULEAD", tz="UTC")
    with Cluster(fake, url, processes=3) as cluster:
        task_id, ts, card = post_card(fake, cluster, slots=3)
        urls = [fake.new_response_url() for _ in users]

        clicks = [claim_click(cluster.driver(i), u, task_id, ts, card, urls[i]) for i, u in enumerate(users)]
        assert all_at_once(clicks) == [200] * len(users)
        wanted = set(urls)
        replies = fake.wait_for(
            "response_url", count=len(users), timeout=60, predicate=lambda c: c.params["_url"] in wanted
        )
    answers = {c.params["_url"]: str(c.params["text"]) for c in replies}
    winners = {users[i] for i, u in enumerate(urls) if "is yours" in answers[u]}
    assert len(winners) == 3
    assert all(f"T-{task_id} is full" in answers[u] for i, u in enumerate(urls) if users[i] not in winners)
    db = Database(url)
    try:
        with db.read() as session:
            task = session.get(Task, task_id)
            assert task is not None and (task.claimed, task.state) == (3, "full")
            held = set(
                session.exec(
                    select(Assignment.user_id).where(
                        col(Assignment.task_id) == task_id, col(Assignment.state) == "claimed"
                    )
                )
            )
        assert held == winners
    finally:
        db.dispose()


def test_a_storm_on_three_processes_keeps_each_within_its_connection_budget(
    templates,  # type: ignore[no-untyped-def]
    fake: FakeSlack,
) -> None:
    """PostgreSQL refuses connections past its max_connections (100 by default), which three
    processes with uncapped pools went past in a 300-click storm: members got "Something went
    wrong" after their answer. Each process keeps within DATABASE_MAX_CONNECTIONS and waits for a
    pooled connection instead."""
    url = templates.postgresql()
    budget = 8
    users = [u["id"] for u in fake.add_users(150)]
    fake.add_user("ULEAD", tz="UTC")
    peak = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        with psycopg.connect(conninfo(make_url(url)), autocommit=True) as watcher:
            while not sampling.is_set():
                row = watcher.execute(
                    "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()"
                ).fetchone()
                peak = max(peak, int(row[0]) if row else 0)
                time.sleep(0.005)

    with Cluster(fake, url, processes=3, env={"DATABASE_MAX_CONNECTIONS": str(budget)}) as cluster:
        task_id, ts, card = post_card(fake, cluster, slots=5)
        urls = [fake.new_response_url() for _ in users]
        watcher = threading.Thread(target=sample)
        watcher.start()
        try:
            clicks = [
                claim_click(cluster.driver(i % 3), u, task_id, ts, card, urls[i]) for i, u in enumerate(users)
            ]
            assert all_at_once(clicks) == [200] * len(users)
            wanted = set(urls)
            fake.wait_for(
                "response_url", count=len(users), timeout=60, predicate=lambda c: c.params["_url"] in wanted
            )
            time.sleep(1.0)  # a second answer to a click would come now
        finally:
            sampling.set()
            watcher.join()
        replies = [c for c in fake.calls_to("response_url") if c.params["_url"] in wanted]
        logs = "\n".join(bot.output() for bot in cluster.bots)
    assert 0 < peak <= 3 * budget
    assert Counter(c.params["_url"] for c in replies) == Counter(urls)  # one answer per click
    assert sum("is yours" in str(c.params["text"]) for c in replies) == 5
    assert "too many clients" not in logs and "handler failed" not in logs


REMINDED = 90  # members whose reminders fall due within a few seconds
SHIFTS = 9  # ... on this many shifts, one starting a second after the other
# The reminders are written before the processes start (each registers them at start-up), so they
# must fall due after the slowest start of three processes on a loaded machine: otherwise the
# leader sends them all in one burst before the test looks, and the window it kills in is gone.
REMINDERS_DUE_IN = timedelta(seconds=40)
RECIPIENTS = 90  # workspace members the announcement goes to (besides the reminded ones and UADMIN)


def _seed_reminders(url: str, fake: FakeSlack, due_in: timedelta) -> list[str]:
    """REMINDED members on SHIFTS shifts, whose reminders fall due one shift a second from `due_in`
    from now on (real clock): a window of several seconds. Written before the processes start: each
    registers the outstanding reminders at start-up."""
    now = datetime.now(UTC)
    members = [u["id"] for u in fake.add_users(REMINDED, prefix="UR")]
    remind = timedelta(minutes=10)
    per_shift = REMINDED // SHIFTS
    db = Database(url)
    try:
        with db.write() as session:
            for user in members:
                session.add(Member(user_id=user, name=user.lower(), tz="UTC", created_at=now))
        for s in range(SHIFTS):
            begins = (now + due_in + remind + timedelta(seconds=s)).replace(tzinfo=None)
            spec = NewShift(
                f"Night desk {s}",
                begins,
                begins + timedelta(hours=2),
                "UTC",
                per_shift,
                None,
                "none",
                remind,
                "C0SHIFTS",
            )
            with db.write() as session:
                created, _ = shifts.create(session, Actor("ULEAD", tz="UTC"), spec, now, "test")
            for user in members[s * per_shift : (s + 1) * per_shift]:
                with db.write() as session:
                    shifts.join(session, Actor(user), created.id or 0, now, "test")
    finally:
        db.dispose()
    return members


def _reminders_sent(fake: FakeSlack) -> Counter[int]:
    counts: Counter[int] = Counter()
    for call in fake.calls_to("chat.postMessage"):
        meta = call.params.get("metadata")
        if call.ok and isinstance(meta, dict) and meta.get("event_type") == REMINDER_EVENT:
            counts[int(meta["event_payload"]["reminder_id"])] += 1
    return counts


class Ledgers:
    """The test's own look at the database: one small pool for the whole test. The PostgreSQL
    server is shared (max_connections), so a look refused for a moment counts as "not yet"."""

    def __init__(self, url: str) -> None:
        self.db = Database(url, pool_size=1)

    def states(self, model: type[ShiftReminder] | type[AnnouncementDelivery]) -> dict[str, int]:
        with self.db.read() as session:
            rows = session.exec(select(model.state, func.count()).group_by(col(model.state))).all()  # type: ignore[arg-type]
            return {str(state): int(n) for state, n in rows}

    def under_way(self, model: type[ShiftReminder] | type[AnnouncementDelivery]) -> bool:
        try:
            return bool(self.states(model).get("sending"))
        except OperationalError:
            return False

    def in_flight(self, model: type[ShiftReminder] | type[AnnouncementDelivery], before: datetime) -> int:
        """Rows claimed ("sending") before `before` and not settled since."""
        with self.db.read() as session:
            return int(
                session.exec(
                    select(func.count()).where(col(model.state) == "sending", col(model.claimed_at) < before)
                ).one()
            )

    def settled(
        self, model: type[ShiftReminder] | type[AnnouncementDelivery], expected: dict[str, int]
    ) -> bool:
        try:
            return self.states(model) == expected
        except OperationalError:
            return False


def test_the_scheduling_leader_killed_mid_reminders_and_mid_fanout_is_replaced_and_nothing_is_sent_twice(
    templates,  # type: ignore[no-untyped-def]
    fake: FakeSlack,
) -> None:
    url = templates.postgresql()
    reminded = _seed_reminders(url, fake, due_in=REMINDERS_DUE_IN)
    ledgers = Ledgers(url)
    others = [u["id"] for u in fake.add_users(RECIPIENTS, prefix="UA")]
    # Each Web API call spends a moment in "Slack": at a kill, requests under way still land,
    # unrecorded (the in-doubt case the new leader must check rather than re-send).
    fake.latency = 0.3
    env = {"SLACK_POSTS_PER_MIN": "600", "ANNOUNCE_RATE_PER_MIN": "480", "ANNOUNCE_INDOUBT_WAIT": "1"}
    with Cluster(fake, url, processes=3, env=env) as cluster:
        # 1. The reminder window: killed once a third has gone out, while more are under way.
        leader, _ = cluster.wait_leader()
        assert len(_reminders_sent(fake)) < REMINDED // 3, "the cluster started after the window"
        wait_until(
            lambda: len(_reminders_sent(fake)) >= REMINDED // 3 and ledgers.under_way(ShiftReminder),
            timeout=60,
        )
        leader.kill()
        killed_at = datetime.now(UTC)
        sent_at_kill = len(_reminders_sent(fake))
        assert sent_at_kill < REMINDED, "the window closed before the kill: nothing was tested"
        # Claimed by the dead leader and not recorded: sent or not, only Slack knows.
        in_doubt = ledgers.in_flight(ShiftReminder, killed_at)
        assert in_doubt > 0, "nothing was under way at the kill: the in-doubt case was not tested"
        second, takeover_s = cluster.wait_leader(exclude=leader)
        assert takeover_s < TAKEOVER_BOUND_S
        # Every reminder in Slack, and the ledger settled: the new leader checked the dead one's.
        wait_until(lambda: len(_reminders_sent(fake)) == REMINDED, timeout=40)
        wait_until(lambda: ledgers.settled(ShiftReminder, {"sent": REMINDED}), timeout=40)
        assert f"checked {in_doubt} reminder(s) a dead leader left under way" in second.output()

        # 2. The fan-out, asked of a process that does not lead: killed the same way.
        standby = next(b for b in cluster.alive() if b is not second)
        assert standby.driver.command("UADMIN", "/announce", "everyone Exactly once, please").status == 200
        wait_until(
            lambda: (
                sum(deliveries(fake, 1).values()) >= RECIPIENTS // 3
                and ledgers.under_way(AnnouncementDelivery)
            ),
            timeout=40,
        )
        second.kill()
        killed_at = datetime.now(UTC)
        delivered_at_kill = sum(deliveries(fake, 1).values())
        assert delivered_at_kill < len(reminded) + RECIPIENTS + 1, "the fan-out finished before the kill"
        in_doubt = ledgers.in_flight(AnnouncementDelivery, killed_at)
        third, second_takeover_s = cluster.wait_leader(exclude=second)
        assert third is standby and second_takeover_s < TAKEOVER_BOUND_S
        wait_status(fake, 1, "done", timeout=60)
        if in_doubt:  # the new leader's sender checked them in Slack before any re-send
            assert f"{in_doubt} announcement message(s) were under way" in third.output()
        logs = "\n".join(b.output()[-2000:] for b in cluster.bots)

    assert _reminders_sent(fake) == {i: 1 for i in _reminders_sent(fake)}, logs
    assert len(_reminders_sent(fake)) == REMINDED
    assert ledgers.states(ShiftReminder) == {"sent": REMINDED}
    assert deliveries(fake, 1) == {
        u: 1 for u in [*reminded, *others, "UADMIN", "ULEAD"] if u in fake.users
    }, logs
    assert ledgers.states(AnnouncementDelivery) == {"sent": len(deliveries(fake, 1))}
    ledgers.db.dispose()


_probe_runs: list[bool] = []  # per run of the probe job: did the standby lead by then?
_standby: list[Scheduler] = []


def probe() -> None:
    """A job: records whether it runs after the standby took over (not in a deposed leader)."""
    _probe_runs.append(_standby[0].is_leader)


def test_a_leader_whose_lock_session_breaks_hands_out_no_more_jobs_and_a_standby_takes_over(
    templates,  # type: ignore[no-untyped-def]
) -> None:
    url = templates.postgresql()
    first_db, second_db = Database(url), Database(url)
    clock = FakeClock()
    first = Scheduler(first_db.engine, clock, standby_retry=10)  # after stepping down: not soon
    second = Scheduler(second_db.engine, clock, standby_retry=0.5)
    _probe_runs.clear()
    _standby[:] = [second]
    try:
        first.start()
        second.start()
        assert first.is_leader and not second.is_leader
        # What a PostgreSQL restart or an administrator does to the leader's session: the lock is
        # free at once, while the leader still believes it leads.
        with psycopg.connect(conninfo(make_url(url)), autocommit=True) as conn:
            row = conn.execute(LEADER_QUERY.replace("a.application_name", "a.pid"), (LOCK_KEY,)).fetchone()  # type: ignore[arg-type]
            assert row is not None
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        second.at("probe", probe, clock.now())  # added to the shared store by the standby
        first.wakeup()  # the deposed leader looks at once: it must not hand the job out
        wait_until(lambda: _probe_runs, timeout=15)
        wait_until(lambda: not first.is_leader, timeout=5)
        assert _probe_runs == [True]  # run once, by the new leader
        assert second.is_leader
    finally:
        for scheduler in (first, second):
            scheduler.shutdown()
        for db in (first_db, second_db):
            db.dispose()
