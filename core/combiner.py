"""Requests for one thing decided together: while a decision about a key is being made, the requests
for that key that arrive wait in line, and one thread then decides all of them in one go (one
transaction instead of one each). A lone request is decided at once, by its own thread.

    claims = Combiner(decide)          # decide(key, items) -> one outcome per item, in order
    outcome = claims.submit(task_id, item)

The thread that decides a batch is one of the batch's own: when it is done, it wakes the others
with their outcomes, and if more requests queued meanwhile it hands the next batch to the first of
them, so nobody decides more than the batch they are in (their own answer waits for no one else's).
An exception raised by `decide` is every item's outcome; one returned for an item is raised to it
alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class _Waiting(Generic[Item, Outcome]):
    def __init__(self, item: Item) -> None:
        self.item = item
        # Held from the start, released once to wake the waiter (to lead a batch, or with its
        # outcome): a bare lock, since an Event's condition cost more than the wait under load.
        self._asleep = threading.Lock()
        self._asleep.acquire()
        self.leads = False
        self.outcome: Outcome | BaseException | None = None

    def wait(self) -> None:
        self._asleep.acquire()

    def wake(self) -> None:
        self._asleep.release()

    def result(self) -> Outcome:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome  # type: ignore[return-value]


class Combiner(Generic[Item, Outcome]):
    def __init__(
        self, decide: Callable[[Hashable, Sequence[Item]], Sequence[Outcome | BaseException]]
    ) -> None:
        self._decide = decide
        self._lock = threading.Lock()
        # key -> the requests waiting for the next decision; a key is here while it is being decided
        self._lines: dict[Hashable, list[_Waiting[Item, Outcome]]] = {}

    def submit(self, key: Hashable, item: Item) -> Outcome:
        """Decide `item` with whatever else is waiting on `key`; its outcome, or its exception raised."""
        me: _Waiting[Item, Outcome] = _Waiting(item)
        with self._lock:
            line = self._lines.get(key)
            if line is None:
                self._lines[key] = []
                me.leads = True
            else:
                line.append(me)
        if not me.leads:
            me.wait()
            if not me.leads:
                return me.result()
            with self._lock:
                batch = self._lines[key]
                self._lines[key] = []
        else:
            batch = [me]
        self._run(key, batch)
        return me.result()

    def _run(self, key: Hashable, batch: list[_Waiting[Item, Outcome]]) -> None:
        try:
            outcomes: Sequence[Outcome | BaseException] = self._decide(key, [w.item for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
        except BaseException as e:  # every request of the batch is told, none is left waiting
            outcomes = [e] * len(batch)
        finally:
            with self._lock:
                line = self._lines[key]
                if line:
                    successor: _Waiting[Item, Outcome] | None = line[0]
                    line[0].leads = True
                else:
                    successor = None
                    del self._lines[key]
            if successor is not None:
                successor.wake()
        # batch[0] is the thread running this: it is awake. Every other one is woken once.
        for i, (waiting, outcome) in enumerate(zip(batch, outcomes, strict=True)):
            waiting.outcome = outcome
            if i:
                waiting.wake()
