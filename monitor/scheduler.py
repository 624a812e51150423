"""APScheduler 3 jobs, one per check, handed a `run` coroutine; knows nothing of probes."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import Check, Settings
from .models import ComponentRef

__all__ = ["ReloadReport", "Scheduler", "SchedulerHooks"]

log = logging.getLogger("tpmon.scheduler")

RunCheck = Callable[[str, Check], Awaitable[object]]


@dataclass
class SchedulerHooks:
    """Where the scheduler reports what it sees (metrics plug in here)."""

    lag: Callable[[float], None] = lambda seconds: None
    missed: Callable[[], None] = lambda: None
    skipped: Callable[[], None] = lambda: None


class _SteadyInterval(IntervalTrigger):  # type: ignore[misc]  # apscheduler is untyped
    """An interval trigger whose jitter does not accumulate: run k is at start + k × interval + U(0, jitter).

    APScheduler 3 adds the jitter to the previous (already jittered) run time, so every run slips by the
    mean jitter: with a 10 % jitter a 10 s check ran every 10.5 s on average, 95 % of the intended probes.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None or not self.jitter:
            return super().get_next_fire_time(previous_fire_time, now)  # type: ignore[no-any-return]
        start, length = self.start_date.timestamp(), self.interval_length
        # the slot of the previous run: it lies in [slot, slot + jitter], jitter ≤ half an interval
        slot = round((previous_fire_time.timestamp() - start) / length - 0.25)
        fire = start + (slot + 1) * length + random.uniform(0, self.jitter)
        if self.end_date and fire > self.end_date.timestamp():
            return None
        return datetime.fromtimestamp(fire, tz=self.timezone)


class _LoopScheduler(AsyncIOScheduler):  # type: ignore[misc]  # apscheduler is untyped
    """AsyncIOScheduler whose own timer processes the due jobs directly on the loop.

    Its `wakeup` is meant to be callable from any thread, so each firing of the timer went through
    `call_soon_threadsafe` (a write to the loop's self-pipe, an extra turn of the loop, a read): a
    cost paid once per probe when the checks are spread in time. `wakeup` itself is unchanged.
    """

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None:
            self._timeout = self._eventloop.call_later(wait_seconds, self._wake_on_loop)

    def _wake_on_loop(self) -> None:
        if self._eventloop is None:  # shut down meanwhile
            return
        self._stop_timer()
        self._start_timer(self._process_jobs())


@dataclass(frozen=True)
class ReloadReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"


class Scheduler:
    """Runs every check on its interval with jitter, at most one run per check, bounded concurrency."""

    def __init__(
        self,
        run: RunCheck,
        *,
        hooks: SchedulerHooks | None = None,
        rng: random.Random | None = None,
        speed: float = 1.0,
    ) -> None:
        """`speed` > 1 runs intervals faster than the wall clock (the demo's virtual time); timeouts are real."""
        self._run = run
        self._speed = speed
        self._hooks = hooks or SchedulerHooks()
        self._rng = rng or random.Random()
        self._checks: dict[str, tuple[str, Check]] = {}
        self._scheduled: dict[str, datetime] = {}
        self._concurrency = 64
        self._semaphore = asyncio.Semaphore(self._concurrency)
        self._jitter = 0.1
        self.waiting = 0  # runs due but held back by the concurrency bound
        self._aps = _LoopScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self._aps.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._aps.add_listener(self._on_error, EVENT_JOB_ERROR)

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    def start(self, settings: Settings) -> ReloadReport:
        """Schedule every check and start; must be called with the event loop running (apscheduler#994)."""
        report = self.apply(settings)
        self._aps.start()
        return report

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def every(self, name: str, seconds: float, func: Callable[[], Awaitable[None]]) -> None:
        """A periodic housekeeping job (board tick, flushes…), not subject to the probe semaphore."""
        self._aps.add_job(func, IntervalTrigger(seconds=seconds), id=f"task:{name}", replace_existing=True)

    def apply(self, settings: Settings) -> ReloadReport:
        """Make the jobs match `settings`: add new checks, remove gone ones, update changed ones."""
        if settings.max_concurrency != self._concurrency:
            self._concurrency = settings.max_concurrency
            self._semaphore = asyncio.Semaphore(settings.max_concurrency)
        self._jitter = settings.jitter
        wanted: dict[str, tuple[str, Check]] = {  # push checks are fed by partners' signals, never probed
            ComponentRef.for_check(network, check.flow, check.name).key: (network, check)
            for network, check in settings.checks()
            if check.kind != "push"
        }
        report = ReloadReport(
            added=sorted(set(wanted) - set(self._checks)),
            removed=sorted(set(self._checks) - set(wanted)),
            changed=sorted(k for k in set(wanted) & set(self._checks) if wanted[k] != self._checks[k]),
        )
        for key in report.removed:
            self._aps.remove_job(key)
            self._scheduled.pop(key, None)
        old = self._checks
        self._checks = wanted
        for key in report.added:
            self._add_job(key, wanted[key][1])
        for key in report.changed:
            if wanted[key][1].interval != old[key][1].interval:
                self._add_job(key, wanted[key][1])
        return report

    def _add_job(self, key: str, check: Check) -> None:
        interval = check.interval / self._speed
        first = datetime.now(UTC) + timedelta(seconds=self._rng.uniform(0, interval))  # spread the load
        jitter = interval * self._jitter or None
        trigger = _SteadyInterval(seconds=interval, start_date=first, jitter=jitter, timezone=UTC)
        self._aps.add_job(
            self._job,
            trigger,
            args=(key,),
            id=key,
            name=key,
            replace_existing=True,
            next_run_time=first,
            misfire_grace_time=max(1, round(interval / 2)),
        )

    async def _job(self, key: str) -> None:
        entry = self._checks.get(key)
        if entry is None:
            return
        semaphore = self._semaphore  # a reload may replace it meanwhile: release the one acquired
        self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            scheduled = self._scheduled.pop(key, None)
            if scheduled is not None:
                self._hooks.lag(max(0.0, (datetime.now(UTC) - scheduled).total_seconds()))
            await self._run(*entry)
        finally:
            semaphore.release()

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED and isinstance(event, JobSubmissionEvent) and event.job_id in self._checks:
            self._scheduled[event.job_id] = event.scheduled_run_times[-1]
        elif event.code == EVENT_JOB_MISSED:
            self._hooks.missed()
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self._hooks.skipped()

    def _on_error(self, event: JobEvent) -> None:
        log.error("job %s failed: %s", event.job_id, getattr(event, "exception", None))
