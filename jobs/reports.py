"""Leads' CSV reports (the week's hours, the payroll, the referrals export), built in a worker
process.

Turning a week of 30,000 members' rows into CSV lines is a second of Python. Built in the bot's own
process, that second held the GIL in 5 ms slices against every request answered meanwhile: a `/tasks`
of 12 ms took up to 630 ms while a report ran (bench.read_paths). So one worker process, started
(spawned: a fresh interpreter, nothing inherited from the bot's threads) on the first report, builds
the reports one at a time at a lower CPU priority, reading the store through its own connection
(`Database.read()`: a snapshot, no lock), and hands back the finished file; the bot only uploads it.
The worker ends within a second of the bot, however the bot ended (SIGKILL included).
A store that lives in this process's memory only (`sqlite://`) can't be opened by the worker, so its
reports are built here.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url

from core.slack import before_waiting
from db.engine import Database
from domain import hours, pay
from domain import referrals as referral_rules
from views import hours as hour_views
from views import pay as pay_views
from views import referrals as referral_views
from views.files import Counted

if TYPE_CHECKING:
    from sqlmodel import Session

    from jobs.runtime import Services

WORKER_NICENESS = 5  # below the request threads when both cores are busy

T = TypeVar("T")


@dataclass(frozen=True)
class HoursReport:
    content: bytes
    people: int
    hours: Decimal


@dataclass(frozen=True)
class Payroll:
    content: bytes
    people: int
    total_cents: int


@dataclass(frozen=True)
class ReferralExport:
    content: bytes
    count: int


def hours_report(services: Services, start: datetime, end: datetime) -> HoursReport:
    return _build(services, _hours_report, start, end)


def payroll(services: Services, monday: date, now: datetime) -> Payroll:
    return _build(services, _payroll, monday, now)


def referral_export(services: Services) -> ReferralExport:
    return _build(services, _referral_export)


# ---- what the worker runs (module-level functions: they travel to it by name) -------------------


def _hours_report(session: Session, start: datetime, end: datetime) -> HoursReport:
    rows = hours.report(session, start, end)
    total = sum((r.line.hours for r in rows), hours.as_hours(0))
    with hour_views.report_csv(rows) as csv_file:
        return HoursReport(csv_file.read(), len({r.user_id for r in rows}), total)


def _payroll(session: Session, monday: date, now: datetime) -> Payroll:
    statements = pay.payroll(session, monday, now)
    return Payroll(pay_views.payroll_csv(statements), len(statements), sum(s.total_cents for s in statements))


def _referral_export(session: Session) -> ReferralExport:
    rows = Counted(referral_rules.all_for_export(session))
    with referral_views.export_csv(rows) as csv_file:
        return ReferralExport(csv_file.read(), rows.count)


# ---- the worker ------------------------------------------------------------------------------------

_executor: ProcessPoolExecutor | None = None
_executor_lock = threading.Lock()
_worker_db: Database | None = None  # in the worker: its connection to the store it was last asked about


def _build(services: Services, work: Callable[..., T], *args: Any) -> T:
    url = services.db.url
    if make_url(url).database in (None, "", ":memory:"):
        with services.db.read(snapshot=True) as session:
            return work(session, *args)
    # A second or more at size: the request is acknowledged first (its answer would have waited for
    # the report), and no other request waits for this one meanwhile (on SQLite each waited 50 ms).
    before_waiting()
    try:
        return _worker().submit(_run_in_worker, url, work, *args).result()
    except BrokenProcessPool:  # the worker died (killed, out of memory): a new one, once
        _drop_worker()
        return _worker().submit(_run_in_worker, url, work, *args).result()


def _worker() -> ProcessPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return _executor


def _drop_worker() -> None:
    global _executor
    with _executor_lock:
        broken, _executor = _executor, None
    if broken is not None:
        broken.shutdown(wait=False)


def _start_worker(bot_pid: int) -> None:
    os.nice(WORKER_NICENESS)
    threading.Thread(target=_exit_with, args=(bot_pid,), name="exit-with-the-bot", daemon=True).start()


def _exit_with(bot_pid: int) -> None:
    """A worker whose bot died (a SIGKILL leaves it no time to say so) is adopted by another
    process: its parent changes, and it ends."""
    while os.getppid() == bot_pid:
        time.sleep(1)
    os._exit(0)


def _run_in_worker(url: str, work: Callable[..., T], *args: Any) -> T:
    global _worker_db
    if _worker_db is None or _worker_db.url != url:
        if _worker_db is not None:
            _worker_db.dispose()
        _worker_db = Database(url, pool_size=1)
    with _worker_db.read(snapshot=True) as session:
        return work(session, *args)
