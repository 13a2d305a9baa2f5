"""One APScheduler BackgroundScheduler, its jobs kept in the bot's own database.

Jobs are module-level functions of `jobs.*`, passed as callables; the store keeps their textual
reference (`jobs.maintenance:prune_processed_events`) with plain arguments, so they survive
restarts (moving or renaming a job function needs a migration of the stored jobs); ids are deterministic (`reminder:S-3:U123:…`), so scheduling
the same thing twice replaces instead of duplicating. A job finds the running services through
`jobs.runtime.services()`.

Time comes from our Clock: APScheduler asks `datetime.now(scheduler.timezone)`, and the timezone we
hand it is a UTC that carries the Clock, whose "now" the scheduler reads (`_ClockedDatetime`). With
the real clock nothing changes; with a FakeClock, tests move time and the scheduler runs what fell
due at once, without sleeping.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import base as aps_base
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.engine import Engine

from core.clock import Clock, FakeClock
from jobs.leadership import Leadership

log = logging.getLogger("crewcall.jobs")


class ClockZone(tzinfo):
    """UTC, carrying the Clock that `datetime.now(zone)` reads inside APScheduler (see below)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled triggers keep plain UTC: the clock belongs to the running process only.
        return (_utc, ())


class _ClockedDatetime(datetime):
    """APScheduler's scheduler reads the time only as `datetime.now(self.timezone)`; given a
    ClockZone, that is our Clock's time. (The zone's `fromutc` can't do it alone: `astimezone`
    calls it too, and every job time converted into the zone would become "now", so the
    scheduler would never sleep.)"""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        if isinstance(tz, ClockZone):
            return tz.clock.now().astimezone(tz)
        return datetime.now(tz)


aps_base.datetime = _ClockedDatetime  # type: ignore[misc]


def _utc() -> tzinfo:
    return UTC


class ClockedExecutor(ThreadPoolExecutor):
    """APScheduler's executor judges misfires by the wall clock; this one asks our Clock, so a
    job's misfire grace means the same in tests as in production."""

    def __init__(self, clock: Clock, max_workers: int) -> None:
        super().__init__(max_workers)
        self._clock = clock

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        grace = job.misfire_grace_time
        now = self._clock.now()
        due = [t for t in run_times if grace is None or now - t <= timedelta(seconds=grace)]
        missed = [
            JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, t)  # noqa: SLF001
            for t in run_times
            if t not in due
        ]
        if not due:
            self._run_job_success(job.id, missed)
            return
        # Misfires are decided above; the library's own wall-clock check must not redo it.
        judged = copy.copy(job)
        judged.misfire_grace_time = None
        judged._jobstore_alias = job._jobstore_alias  # noqa: SLF001
        super()._do_submit_job(judged, due)
        for event in missed:
            self._scheduler._dispatch_event(event)  # noqa: SLF001


class TakingJobStore(SQLAlchemyJobStore):
    """The library's SQLAlchemy store, except that the one-off jobs that fell due leave the store in
    one statement as they are fetched. The scheduler's loop would delete them one write transaction
    at a time, each queued behind the running jobs' writes, and a burst of a thousand reminders
    reached the workers no faster than those deletes. The library, too, removes a one-off job when
    it hands it to a worker, before it has run: a job lost in a crash is registered again from the
    database at start-up (e.g. `jobs.shifts.start`)."""

    def __init__(self, engine: Engine, tablename: str, fence: Callable[[], bool] | None = None) -> None:
        super().__init__(engine=engine, tablename=tablename)
        self._taken: set[str] = set()
        self._fence = fence

    def get_due_jobs(self, now: datetime) -> list[Job]:
        if self._fence is not None and not self._fence():
            return []  # no longer the leader: another process may run these
        due = super().get_due_jobs(now)
        # The scheduler's lock is held from here until it has asked to remove each of these.
        self._taken = {job.id for job in due if isinstance(job.trigger, DateTrigger)}
        if self._taken:
            with self.engine.begin() as connection:
                connection.execute(self.jobs_t.delete().where(self.jobs_t.c.id.in_(self._taken)))
        return due

    def remove_job(self, job_id: str) -> None:
        if job_id in self._taken:
            self._taken.discard(job_id)
            return
        super().remove_job(job_id)


class Scheduler:
    """Several bot processes may share one PostgreSQL database, but APScheduler 3 must not run the
    same job store twice: one process leads (`jobs.leadership`) and runs jobs; the others keep their
    scheduler paused, which still adds and removes jobs in the shared store, and take over within
    `standby_retry` seconds of the leader's death. The leader looks at the store every `store_poll`
    seconds, so a job another process added runs on time. On SQLite there is one process and no
    election: it always leads.

    Work that must run in the leader only (the announcement sender, recovery after a takeover) is
    registered with `while_leading`."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        threads: int = 16,
        standby_retry: float = 5.0,
        store_poll: float = 1.0,
    ) -> None:
        self.clock = clock
        self.store_poll = store_poll
        self._leadership = (
            Leadership(engine.url, standby_retry, self._elected, self._deposed)
            if engine.dialect.name == "postgresql"
            else None
        )
        self._started = False
        self._first_try = False  # inside start(): an election now is not a takeover
        self._stop = threading.Event()
        self._poll: threading.Thread | None = None
        self._leading: list[tuple[Callable[[bool], None], Callable[[], None]]] = []
        self._stepping_down: threading.Thread | None = None
        self._executor = ClockedExecutor(clock, threads)
        fence = self._leadership.confirm if self._leadership else None
        self._aps = BackgroundScheduler(
            jobstores={"default": TakingJobStore(engine, "apscheduler_jobs", fence)},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=ClockZone(clock),
        )
        self._aps.add_listener(self._on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        if isinstance(clock, FakeClock):
            clock.on_change.append(self.wakeup)

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the scheduled jobs (for /metrics and the leader-only work)."""
        if self._leadership is None:
            return self._started
        return self._leadership.is_leader

    def while_leading(self, start: Callable[[bool], None], stop: Callable[[], None]) -> None:
        """Run `start(took_over)` whenever this process becomes the leader (`took_over`: it was a
        standby until now, so a leader died or stepped down), and `stop()` when it steps down or
        stops. Registered before `start()`, or while leading (then started at once)."""
        self._leading.append((start, stop))
        if self._started and self.is_leader:
            start(False)

    def start(self) -> None:
        if self._leadership is None:
            self._aps.start()
            self._started = True
            for begin, _ in self._leading:
                begin(False)
            return
        self._aps.start(paused=True)
        self._started = True
        self._stop.clear()
        self._first_try = True
        self._leadership.start()
        self._first_try = False
        self._poll = threading.Thread(target=self._poll_store, name="scheduler-poll", daemon=True)
        self._poll.start()

    def shutdown(self, wait: bool = True) -> None:
        if isinstance(self.clock, FakeClock) and self.wakeup in self.clock.on_change:
            self.clock.on_change.remove(self.wakeup)
        self._stop.set()
        if self._poll:
            self._poll.join(timeout=self.store_poll + 1)
        if self._leadership is not None:
            self._leadership.stop()
        elif self._started:
            self._deposed()
        if self._stepping_down is not None:
            self._stepping_down.join()
        self._started = False
        if self._aps.running:
            # APScheduler's shutdown waits for running jobs while holding the job-store lock, which
            # a running job needs to add or remove a job: so stop taking jobs and wait for the
            # running ones first, then shut down.
            self._aps.pause()
            if wait:
                self._executor.shutdown(wait=True)
            self._aps.shutdown(wait=False)

    def _elected(self) -> None:
        took_over = not self._first_try
        if self._stepping_down is not None:
            self._stepping_down.join()  # the last leadership's work has stopped
        self._aps.resume()
        for begin, _ in self._leading:
            try:
                begin(took_over)
            except Exception:
                log.exception("leader's start-up work failed")

    def _deposed(self) -> None:
        """Stop handing out jobs at once; the leader-only work stops on a thread of its own (this
        may be the scheduler's own thread, which that work may need)."""
        if self._aps.running:
            self._aps.pause()

        def stop_leading() -> None:
            for _, end in reversed(self._leading):
                try:
                    end()
                except Exception:
                    log.exception("leader's stopping work failed")

        self._stepping_down = threading.Thread(target=stop_leading, name="scheduler-step-down", daemon=True)
        self._stepping_down.start()

    def _poll_store(self) -> None:
        """The leader's look at the store for jobs that other processes added since."""
        while not self._stop.wait(self.store_poll):
            if self.is_leader:
                self.wakeup()

    def wakeup(self) -> None:
        if self._aps.running:
            self._aps.wakeup()

    def at(
        self,
        job_id: str,
        func: Callable[..., Any],
        run_at: datetime,
        args: tuple[Any, ...] = (),
        misfire_grace: timedelta | None = timedelta(minutes=1),
    ) -> Job:
        """Run once at `run_at`. A run missed by more than `misfire_grace` (e.g. while the bot was
        down) is skipped and logged; None means "run however late"."""
        return self._aps.add_job(
            func,
            trigger="date",
            run_date=run_at.astimezone(UTC),
            args=list(args),
            id=job_id,
            replace_existing=True,
            misfire_grace_time=int(misfire_grace.total_seconds()) if misfire_grace is not None else None,
        )

    def every(self, job_id: str, func: Callable[..., Any], interval: timedelta, **kwargs: Any) -> Job:
        """Run every `interval`, first one `interval` from now. Registering it again at start-up
        keeps the stored schedule, so frequent restarts never postpone it indefinitely."""
        existing = self.get(job_id)
        if existing is not None and getattr(existing.trigger, "interval", None) == interval:
            return existing
        return self._aps.add_job(
            func,
            trigger="interval",
            seconds=int(interval.total_seconds()),
            # The trigger would read the wall clock for its start; it must read ours.
            start_date=self.clock.now() + interval,
            timezone=UTC,
            id=job_id,
            replace_existing=True,
            **kwargs,
        )

    def cron(self, job_id: str, func: Callable[..., Any], tz: str = "UTC", **fields: Any) -> Job:
        return self._aps.add_job(
            func, trigger="cron", timezone=tz, id=job_id, replace_existing=True, **fields
        )

    def remove(self, job_id: str) -> bool:
        try:
            self._aps.remove_job(job_id)
            return True
        except JobLookupError:
            return False

    def get(self, job_id: str) -> Job | None:
        return self._aps.get_job(job_id)

    def jobs(self, prefix: str = "") -> list[Job]:
        return [j for j in self._aps.get_jobs() if j.id.startswith(prefix)]

    def _on_job_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "job %s missed its run time %s and was skipped", event.job_id, event.scheduled_run_time
            )
        else:
            log.error("job %s failed", event.job_id, exc_info=event.exception)
