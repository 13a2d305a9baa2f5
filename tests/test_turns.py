"""Requests taking turns at the interpreter on SQLite (core.turns): one holds the turn at a time, a
request waiting on Slack or the policy encoder has given it up, and a long holder delays the others
by `WAIT` at most. Real threads; the order of events is read from what each thread recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from core import turns
from core.slack import SlackGateway, make_client
from core.turns import Turns, give_up, stepping_out
from db.engine import Database
from sandbox.fake_slack import FakeSlack


def _in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _leave_once_waited_for(other_waiting: threading.Event, events: list[str], label: str) -> None:
    """Stay in the turn until another thread is at it (and a moment more), then record leaving."""
    other_waiting.wait(10)
    time.sleep(0.05)
    events.append(label)


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters wait for their turn as long as it takes (the default lets them in after 50 ms)."""
    monkeypatch.setattr(turns, "WAIT", 30.0)


def test_one_request_runs_in_its_turn_at_a_time(patient: None) -> None:
    shared = Turns(enabled=True)
    events: list[str] = []
    a_in, b_waiting = threading.Event(), threading.Event()

    def a() -> None:
        with shared.taken():
            events.append("a in")
            a_in.set()
            _leave_once_waited_for(b_waiting, events, "a out")

    def b() -> None:
        a_in.wait(10)
        b_waiting.set()
        with shared.taken():
            events.append("b in")

    threads = [_in_thread(a), _in_thread(b)]
    for t in threads:
        t.join(10)
    assert events == ["a in", "a out", "b in"]


def test_a_request_about_to_wait_on_slack_gives_its_turn_up(patient: None, fake: FakeSlack) -> None:
    """core.slack gives the turn up before every Web API call: a slow Slack holds no one else up."""
    shared = Turns(enabled=True)
    gateway = SlackGateway(make_client("xoxb-test", fake.api_url))
    fake.latency = 0.5
    events: list[str] = []
    a_in = threading.Event()

    def a() -> None:
        with shared.taken():
            a_in.set()
            gateway.call("auth.test")
            events.append("a heard from Slack")

    def b() -> None:
        a_in.wait(10)
        with shared.taken():
            events.append("b in")

    threads = [_in_thread(a), _in_thread(b)]
    for t in threads:
        t.join(10)
    assert events == ["b in", "a heard from Slack"]


def test_stepping_out_lets_others_in_and_takes_the_turn_back(patient: None) -> None:
    shared = Turns(enabled=True)
    events: list[str] = []
    stepped_out, b_in, a_back, c_waiting = (threading.Event() for _ in range(4))

    def a() -> None:
        with shared.taken():
            with stepping_out():
                stepped_out.set()
                b_in.wait(10)  # b runs while a is out
            events.append("a back")
            a_back.set()
            _leave_once_waited_for(c_waiting, events, "a out")

    def b() -> None:
        stepped_out.wait(10)
        with shared.taken():
            events.append("b in")
        b_in.set()

    def c() -> None:
        a_back.wait(10)
        c_waiting.set()
        with shared.taken():
            events.append("c in")

    threads = [_in_thread(a), _in_thread(b), _in_thread(c)]
    for t in threads:
        t.join(10)
    assert events == ["b in", "a back", "a out", "c in"]


def test_a_long_request_delays_the_next_by_the_wait_at_most() -> None:
    shared = Turns(enabled=True)
    a_in, b_done = threading.Event(), threading.Event()
    waited: list[float] = []

    def a() -> None:
        with shared.taken():
            a_in.set()
            b_done.wait(10)  # holds its turn until b has run

    def b() -> None:
        a_in.wait(10)
        started = time.monotonic()
        with shared.taken():
            waited.append(time.monotonic() - started)
        b_done.set()

    threads = [_in_thread(a), _in_thread(b)]
    for t in threads:
        t.join(10)
    assert b_done.is_set() and turns.WAIT <= waited[0] < 5


def test_giving_up_twice_or_without_a_turn_is_harmless(patient: None) -> None:
    shared = Turns(enabled=True)
    give_up()
    with shared.taken():
        give_up()
        give_up()
    entered = threading.Event()

    def other() -> None:
        with shared.taken():
            entered.set()

    with shared.taken():  # the turn is free again, once: a second release would let two in
        t = _in_thread(other)
        assert not entered.wait(0.2)
    t.join(10)
    assert entered.is_set()


def test_turns_are_taken_on_sqlite_only(patient: None, database_url: str) -> None:
    """On PostgreSQL a statement waits on the network: requests run side by side there."""
    db = Database(database_url)
    try:
        both_in = threading.Barrier(2, timeout=1)
        together: list[bool] = []

        def request() -> None:
            with db.turns.taken():
                try:
                    both_in.wait()
                    together.append(True)
                except threading.BrokenBarrierError:
                    together.append(False)

        assert db.turns.enabled == (db.dialect == "sqlite")
        threads = [_in_thread(request), _in_thread(request)]
        for t in threads:
            t.join(10)
        assert together == ([False, False] if db.dialect == "sqlite" else [True, True])
    finally:
        db.dispose()


def test_a_report_waits_for_its_worker_without_the_turn(
    patient: None, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report is built in a worker process (jobs/reports.py) for a second or more: its request
    gives up its turn first, as before a Web API call, and another request runs meanwhile."""
    from concurrent.futures import Future

    from jobs import reports

    shared = Turns(enabled=True)
    other_ran = threading.Event()

    class Worker:
        def submit(self, *_args: object) -> Future[str]:
            _in_thread(lambda: _run_in_turn(shared, other_ran.set))
            assert other_ran.wait(10), "another request waited for the report"
            done: Future[str] = Future()
            done.set_result("built")
            return done

    class Services:
        db = Database(sqlite_url)  # a file: reports go to the worker

    monkeypatch.setattr(reports, "_worker", Worker)
    with shared.taken():
        assert reports._build(Services(), str) == "built"  # type: ignore[arg-type]
        assert getattr(turns._thread, "turn", None) is None
    Services.db.dispose()


def _run_in_turn(shared: Turns, work: Callable[[], None]) -> None:
    with shared.taken():
        work()
