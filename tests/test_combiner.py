"""core.combiner with real threads: requests for a key that arrive while one of its batches is being
decided wait and are decided together next, in arrival order; each thread gets its own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence

from core.combiner import Combiner


class Recorder:
    """A decide() that records its batches; the first batch of key "slow" waits until released."""

    def __init__(self) -> None:
        self.batches: list[tuple[Hashable, list[int]]] = []
        self.deciding = threading.Event()
        self.release = threading.Event()

    def __call__(self, key: Hashable, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append((key, list(items)))
        if key == "slow" and len(self.batches) == 1:
            self.deciding.set()
            self.release.wait(10)
        if -1 in items:
            raise RuntimeError("the store is down")
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


def submit_on_thread(
    combiner: Combiner[int, int], key: str, item: int, out: dict[int, object]
) -> threading.Thread:
    def run() -> None:
        try:
            out[item] = combiner.submit(key, item)
        except BaseException as e:
            out[item] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)


def test_a_lone_request_is_decided_by_itself() -> None:
    recorder = Recorder()
    assert Combiner(recorder).submit("k", 4) == 40
    assert recorder.batches == [("k", [4])]


def test_requests_arriving_during_a_decision_are_decided_together_next() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder)
    out: dict[int, object] = {}
    first = submit_on_thread(combiner, "slow", 0, out)
    assert recorder.deciding.wait(10)
    waiting = [submit_on_thread(combiner, "slow", i, out) for i in (2, 3, 4)]
    other_key = submit_on_thread(combiner, "other", 6, out)  # another key waits for nobody
    other_key.join(10)
    assert out[6] == 60
    wait_until(lambda: len(combiner._lines.get("slow", [])) == 3)
    recorder.release.set()
    for t in [first, *waiting]:
        t.join(10)
    assert [b for b in recorder.batches if b[0] == "slow"] == [("slow", [0]), ("slow", [2, 3, 4])]
    assert (out[0], out[2], out[4]) == (0, 20, 40)
    assert isinstance(out[3], ValueError) and str(out[3]) == "odd 3"  # raised to its own thread only
    assert combiner._lines == {}


def test_a_failed_decision_is_every_requests_exception_and_the_key_stays_usable() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder)
    out: dict[int, object] = {}
    first = submit_on_thread(combiner, "slow", -1, out)
    assert recorder.deciding.wait(10)
    second = submit_on_thread(combiner, "slow", 8, out)
    wait_until(lambda: len(combiner._lines.get("slow", [])) == 1)
    recorder.release.set()
    first.join(10)
    second.join(10)
    assert isinstance(out[-1], RuntimeError)
    assert out[8] == 80  # in the next batch, decided by its own thread
    assert combiner.submit("slow", 2) == 20


def test_many_threads_at_once_each_get_their_own_outcome() -> None:
    recorder = Recorder()
    combiner: Combiner[int, int] = Combiner(recorder)
    out: dict[int, object] = {}
    barrier = threading.Barrier(64)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = combiner.submit("k", i)
        except ValueError as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i * 2,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {i * 2: i * 20 for i in range(64)}
    assert sorted(i for _, batch in recorder.batches for i in batch) == [i * 2 for i in range(64)]
    assert combiner._lines == {}
