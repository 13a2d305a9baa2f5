"""What the bot counts, for Prometheus (`GET /metrics`), in any layer.

One process: the metrics live in prometheus_client's default registry. Several processes on one
host: with PROMETHEUS_MULTIPROC_DIR set in the environment before the process starts, every process
writes its values to files in that directory and a scrape of any of them reports all of them
together (`MultiProcessCollector`). The directory must be emptied before the processes start (the
deploy recipes do), never while they run; a process that stops cleanly marks itself dead, and a
scrape marks dead the processes whose PID is no longer alive (one killed with SIGKILL), so their
live gauges go away while their counters stay in the totals.

Label values are bounded: request kinds and Web API methods are checked against a shape and at most
`MAX_LABELS` distinct values are kept per metric; anything beyond becomes "other".
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_LABELS = 100
OTHER = "other"

# Slack gives an acknowledgement 3 s; buckets resolve the range that matters (< 50 ms) and that limit.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "crewcall_request_seconds",
    "Requests from Slack by kind (command /tasks, action claim, view_submission …, event …) and the "
    "seconds from the request reaching the bot to its acknowledgement",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
SLACK_CALLS = Counter(
    "crewcall_slack_api_calls",
    "Web API calls made (each HTTP attempt, retries included) by method; response_url posts as response_url",
    ["method"],
)
SLACK_RATE_LIMITED = Counter(
    "crewcall_slack_api_rate_limited",
    "Web API answers that were HTTP 429 (rate limited), by method",
    ["method"],
)
SCHEDULER_LEADER = Gauge(
    "crewcall_scheduler_leader",
    "1 while this process runs the scheduler (leads), 0 while it stands by",
    multiprocess_mode="liveall",  # one series per live process (label pid)
)


class _Bounded:
    """Label values of one metric: a value of the wrong shape, or one past MAX_LABELS distinct
    values, is reported as "other", so nothing a request carries can grow the series without end."""

    def __init__(self, shape: re.Pattern[str]) -> None:
        self._shape = shape
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if not self._shape.fullmatch(value):
            return OTHER
        with self._lock:
            if len(self._seen) >= MAX_LABELS:
                return OTHER
            self._seen.add(value)
        return value


_kind = _Bounded(re.compile(r"[a-z_]+(?: [/A-Za-z0-9_.:-]{1,60})?"))
_method = _Bounded(re.compile(r"[a-z]+(?:\.[A-Za-z]+){1,3}|response_url"))


def observe_request(kind: str, seconds: float) -> None:
    REQUEST_SECONDS.labels(_kind(kind)).observe(seconds)


def count_slack_call(method: str, status: int | None) -> None:
    """One HTTP attempt at a Web API `method`, answered with `status` (None: no answer)."""
    label = _method(method)
    SLACK_CALLS.labels(label).inc()
    if status == 429:
        SLACK_RATE_LIMITED.labels(label).inc()


def report_scheduler_leader(leading: bool) -> None:
    """Call wherever this process wins (True) or gives up (False) the scheduler's leadership."""
    SCHEDULER_LEADER.set(1 if leading else 0)


# ---- exposition ----------------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw else None


class Gauges(Collector):
    """Gauges computed when scraped, by the process answering the scrape (queue depths read from
    the database: one truth for every process, so they are never summed across processes)."""

    def __init__(self, read: Callable[[], Mapping[str, tuple[str, float]]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        for name, (help_text, value) in self._read().items():
            yield GaugeMetricFamily(name, help_text, value=value)


class _Each(Collector):
    """The default registry's metrics (this process only)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text a scrape gets: every process's metrics (one, or all sharing the directory) and
    `extra`, computed now."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory is not None:
        forget_dead_processes(directory)
        multiprocess.MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(_Each())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def forget_dead_processes(directory: Path) -> None:
    """Live gauges of processes that are gone (SIGKILL leaves no chance to say so) are removed;
    their counters stay, as the totals include them."""
    pids = {int(m.group(1)) for f in os.listdir(directory) if (m := _PID_IN_NAME.search(f))}
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))


def stopping() -> None:
    """This process is stopping cleanly: its live gauges leave the report."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), str(directory))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
