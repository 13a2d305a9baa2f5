"""The workspace pacer (jobs/pacing.py): Slack's sliding-window budget and per-channel spacing, one
budget for everything the bot posts, time-sensitive posts before bulk ones. Real threads, real time
compressed by `scale` (a 60 s window becomes a fraction of a second)."""

from __future__ import annotations

import threading
import time

from jobs.pacing import Pacer

SCALE = 300  # window 0.2 s, channel gap 1/300 s
WINDOW = 60 / SCALE


def post(pacer: Pacer, channel: str, stamps: list[tuple[str, float]], name: str, **kwargs: object) -> None:
    with pacer.slot(channel, **kwargs):  # type: ignore[arg-type]
        stamps.append((name, time.monotonic()))


def test_the_budget_holds_in_every_window_and_the_next_post_waits_for_a_free_slot() -> None:
    pacer = Pacer(per_minute=3, scale=SCALE)
    stamps: list[tuple[str, float]] = []
    started = time.monotonic()
    for i in range(7):
        post(pacer, f"D{i}", stamps, str(i))
    times = [t for _, t in stamps]
    assert times[2] - started < WINDOW / 2  # the first three at once
    assert times[3] - times[0] >= WINDOW * 0.95  # the fourth when the first leaves the window
    assert times[6] - times[3] >= WINDOW * 0.95
    for t in times:
        assert sum(1 for u in times if t <= u < t + WINDOW * 0.95) <= 3


def test_one_channel_gets_a_post_a_second_at_most() -> None:
    pacer = Pacer(per_minute=100, per_channel_per_sec=1, scale=20)  # a post every 50 ms per channel
    stamps: list[tuple[str, float]] = []
    for i in range(3):
        post(pacer, "C1", stamps, str(i))
    post(pacer, "C2", stamps, "other")
    times = [t for _, t in stamps]
    assert times[1] - times[0] >= 0.045 and times[2] - times[1] >= 0.045
    assert times[3] - times[2] < 0.03  # another channel is not held up


def test_waiting_time_sensitive_posts_go_before_bulk_ones_whatever_came_first() -> None:
    pacer = Pacer(per_minute=1, scale=SCALE)
    stamps: list[tuple[str, float]] = []
    post(pacer, "D0", stamps, "first")  # the window is full for WINDOW seconds
    bulk = threading.Thread(target=post, args=(pacer, "D1", stamps, "bulk"), kwargs={"bulk": True})
    bulk.start()
    time.sleep(WINDOW / 4)  # the bulk post is waiting first
    urgent = threading.Thread(target=post, args=(pacer, "D2", stamps, "reminder"))
    urgent.start()
    urgent.join(5)
    bulk.join(5)
    assert [name for name, _ in stamps] == ["first", "reminder", "bulk"]
    first, reminder, bulk_at = (t for _, t in stamps)
    assert reminder - first >= WINDOW * 0.95
    assert bulk_at - reminder >= WINDOW * 0.95  # it took the slot after the reminder's, not before


def test_bulk_posts_use_the_whole_budget_when_nothing_else_waits() -> None:
    pacer = Pacer(per_minute=4, scale=SCALE)
    stamps: list[tuple[str, float]] = []
    started = time.monotonic()
    for i in range(4):
        post(pacer, f"D{i}", stamps, str(i), bulk=True)
    assert stamps[-1][1] - started < WINDOW / 2


def test_a_stopping_bulk_sender_stops_waiting() -> None:
    pacer = Pacer(per_minute=1, scale=1)  # a full window would last a minute
    stamps: list[tuple[str, float]] = []
    post(pacer, "D0", stamps, "first")
    stop = threading.Event()
    bulk = threading.Thread(
        target=post, args=(pacer, "D1", stamps, "bulk"), kwargs={"bulk": True, "stop": stop}
    )
    bulk.start()
    time.sleep(0.1)
    assert len(stamps) == 1
    stop.set()
    bulk.join(2)
    assert [name for name, _ in stamps] == ["first", "bulk"]


def test_pacing_off_never_waits() -> None:
    pacer = Pacer(per_minute=0)
    stamps: list[tuple[str, float]] = []
    started = time.monotonic()
    for i in range(50):
        post(pacer, "C1", stamps, str(i))
    assert stamps[-1][1] - started < 0.05
