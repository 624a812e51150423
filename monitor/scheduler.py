"""APScheduler 3 jobs, one per check, handed a `run` coroutine; knows nothing of probes."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import sys
import zlib
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Check, Settings
from .models import ComponentRef

__all__ = ["OVERDUE_SPREAD", "ReloadReport", "Scheduler", "SchedulerHooks", "probed", "slot_phase"]

log = logging.getLogger("tpmon.scheduler")

RunCheck = Callable[[str, Check], Awaitable[object]]

# The concurrency permit of the run under way, in its task's context: `probed()` gives it back.
_PERMIT: ContextVar[Callable[[], None] | None] = ContextVar("tpmon_probe_permit", default=None)


def probed() -> None:
    """A run says its probe is done: its permit of the concurrency bound goes back now, not when the run ends.

    What follows a probe (a check just taken over reads its memory from the store first, then the result is
    recorded) may wait on the store; holding the permit meanwhile made every other check's probe wait for one, late:
    two instances on PostgreSQL, each first run of a check read its stored memory under a permit, ~0.4 s each on a
    busy database, and 64 permits let ~150 runs a second through where 500 were due — runs queued up to 20 s, their
    checks' next slots skipped, until the last first run was done. Without a permit (outside a run), nothing."""
    release = _PERMIT.get()
    if release is not None:
        release()


@dataclass
class SchedulerHooks:
    """Where the scheduler reports what it sees (metrics plug in here)."""

    lag: Callable[[float], None] = lambda seconds: None
    missed: Callable[[], None] = lambda: None
    skipped: Callable[[], None] = lambda: None


_NO_KWARGS: dict[str, object] = {}  # the keyword arguments of every probe job: none (never changed)

# Run times fall on a lattice of this many seconds (of the UNIX epoch): the checks due within one step
# start on one wakeup of the scheduler and share the turns of the loop, where a probe woken alone pays
# for a cold wakeup. 1000 checks every 10 s: 1.95 -> 1.59 ms of CPU per probe, lag p50 0.8 -> 2 ms.
# Far below the jitter (10 % of the interval by default), which spreads the runs anyway.
_TICK = 0.05
OVERDUE_SPREAD = 1.0  # seconds over which checks whose run is past due (`Scheduler.start(due=…)`) are spread


def _tick(interval: float) -> float:
    """The lattice step for an interval: small beside it, so that a run's slot stays readable."""
    return min(_TICK, interval / 8)


def _on_lattice(timestamp: float, tick: float) -> float:
    """The first lattice point at or after `timestamp`."""
    return math.ceil(timestamp / tick) * tick


def slot_phase(key: str, interval: float) -> float:
    """Several instances: the slots of check `key` lie at this phase + k × `interval` (epoch seconds, the database's
    clock), the same on every instance; each run at its slot plus a jitter. Benchmarks date arrivals with it."""
    return _on_lattice(interval * (zlib.crc32(key.encode()) / 2**32), _tick(interval))


class _SteadyInterval(BaseTrigger):  # type: ignore[misc]  # apscheduler is untyped
    """Run k is at start + k × interval + U(0, jitter), moved up to the next point of the _TICK lattice.

    The jitter does not accumulate: APScheduler 3's IntervalTrigger adds it to the previous (already jittered)
    run time, so every run slipped by the mean jitter and a 10 s check with a 10 % jitter ran every 10.5 s.
    A trigger of its own, as APScheduler 3 documents ("Extending APScheduler": subclass BaseTrigger and
    implement `get_next_fire_time`). Slots, as BaseTrigger's: one per check, no `__dict__` each.
    """

    __slots__ = ("interval_length", "jitter", "start_date", "tick")

    def __init__(self, *, seconds: float, start_date: datetime, jitter: float | None = None) -> None:
        self.start_date = start_date
        self.interval_length = seconds
        self.jitter = jitter
        self.tick = _tick(seconds)

    def __str__(self) -> str:
        return f"steady interval[{self.interval_length:g} s, jitter {self.jitter or 0:g} s]"

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start, length = self.start_date.timestamp(), self.interval_length
        if previous_fire_time is None:  # the first slot at or after now
            slot = max(0, math.ceil((now.timestamp() - start) / length)) - 1
        else:  # the slot of the previous run: it lies in [slot, slot + jitter + tick], within 5/8 of an interval
            slot = round((previous_fire_time.timestamp() - start) / length - 0.25)
        fire = start + (slot + 1) * length + (random.uniform(0, self.jitter) if self.jitter else 0.0)
        return datetime.fromtimestamp(_on_lattice(fire, self.tick), tz=self.start_date.tzinfo)


class _LoopScheduler(BaseScheduler):  # type: ignore[misc]  # apscheduler is untyped
    """A scheduler on the running event loop whose timer processes the due jobs directly on the loop.

    APScheduler's AsyncIOScheduler has its timer call `wakeup`, which is meant to be callable from any thread:
    each firing went through `call_soon_threadsafe` (a write to the loop's self-pipe, an extra turn of the
    loop, a read), a cost paid once per probe when the checks are spread in time. This one follows APScheduler
    3's contract for custom schedulers ("Extending APScheduler": subclass BaseScheduler, override `start`,
    `shutdown`, `wakeup` and `_create_default_executor`, sleep as long as `_process_jobs()` says) rather than
    overriding AsyncIOScheduler's private timer. `wakeup` and `shutdown` still hop onto the loop as there.
    """

    # AsyncIOExecutor, the default executor, takes the loop from its scheduler's `_eventloop` when it starts.
    _eventloop: asyncio.AbstractEventLoop | None = None
    _timer: asyncio.TimerHandle | None = None

    def start(self, paused: bool = False) -> None:
        self._eventloop = asyncio.get_running_loop()
        super().start(paused)

    def shutdown(self, wait: bool = True) -> None:
        if self._eventloop is None or not self.running:
            raise SchedulerNotRunningError
        self._eventloop.call_soon_threadsafe(self._shutdown_on_loop, wait)

    def wakeup(self) -> None:
        if self._eventloop is not None:
            self._eventloop.call_soon_threadsafe(self._process_on_loop)

    def _create_default_executor(self) -> AsyncIOExecutor:
        return AsyncIOExecutor()

    def _shutdown_on_loop(self, wait: bool) -> None:
        super().shutdown(wait)
        self._cancel_timer()
        self._eventloop = None

    def _process_on_loop(self) -> None:
        if self._eventloop is None:  # shut down meanwhile
            return
        self._cancel_timer()
        wait_seconds = self._process_jobs()
        if wait_seconds is not None:
            self._timer = self._eventloop.call_later(wait_seconds, self._process_on_loop)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


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
        owns: Callable[[str], bool] = lambda key: True,
    ) -> None:
        """`speed` > 1 runs intervals faster than the wall clock (the demo's virtual time); timeouts are real.

        `owns(key)` says which checks get a job here (a probe worker's share, or none in a process whose workers
        probe); the reload report always covers every check of the config."""
        self._run = run
        self._owns = owns
        self._speed = speed
        self._hooks = hooks or SchedulerHooks()
        self._rng = rng or random.Random()
        self._checks: dict[str, tuple[str, Check]] = {}
        self._scheduled: dict[str, datetime] = {}
        self._concurrency = 64
        self._semaphore = asyncio.Semaphore(self._concurrency)
        self._jitter = 0.1
        self.waiting = 0  # runs due but held back by the concurrency bound
        # Several instances (monitor/cluster): whether this one runs a check's slot due at a given instant. Set, the
        # slots of a check fall at the same instants on every instance (a phase from its key, not at random), so
        # that a check handed over runs on the next slot, neither twice nor never.
        # The gate answers None for a slot that is this instance's and that it leaves undone (it is late): counted
        # missed, as a gap at the target must never be silent.
        self.gate: Callable[[str, datetime], bool | None] | None = None
        # The gate's clock (the database's) is this many seconds ahead of this process's: the slots lie on the gate's
        # clock, and each is judged at its instant there, the same number on every instance, whatever the error of
        # each one's estimate of that offset (judged on its own estimate, a slot within that error of a hand-over
        # was run by both instances, or by neither).
        self.gate_offset: Callable[[], float] = lambda: 0.0
        self.scheduled: Callable[[str], bool] | None = None  # and which checks it schedules at all
        # and since when (epoch seconds on the gate's clock) a slot already due of a check newly scheduled is its to
        # run: the reading that handed it over came just before that slot, and scheduling it came just after
        self.since: Callable[[], float | None] | None = None
        # key -> (first run, interval, first slot): epoch seconds, the slot on the gate's clock
        self._slots: dict[str, tuple[float, float, float]] = {}
        self._numbers: dict[float, float] = {}
        self._aps = _LoopScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self._aps.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._aps.add_listener(self._on_error, EVENT_JOB_ERROR)
        executor_log = logging.getLogger("apscheduler.executors.default")
        if not any(isinstance(f, _NotCancelled) for f in executor_log.filters):
            executor_log.addFilter(_NotCancelled())

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    def start(self, settings: Settings, due: Mapping[str, float] | None = None) -> ReloadReport:
        """Schedule every check and start; must be called with the event loop running (apscheduler#994).

        `due` (check key → epoch seconds) is when a check's next run was due elsewhere (a probe worker that died):
        it runs then, or within `OVERDUE_SPREAD` s when that is past, instead of at a random point of its interval.
        """
        report = self.apply(settings, due)
        self._aps.start()
        return report

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def every(self, name: str, seconds: float, func: Callable[[], Awaitable[None]]) -> None:
        """A periodic housekeeping job (board tick, flushes…), not subject to the probe semaphore."""
        self._aps.add_job(func, IntervalTrigger(seconds=seconds), id=f"task:{name}", replace_existing=True)

    def apply(self, settings: Settings, due: Mapping[str, float] | None = None) -> ReloadReport:
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
        if self.scheduled is not None:
            wanted = {key: entry for key, entry in wanted.items() if self.scheduled(key)}
        report = ReloadReport(
            added=sorted(set(wanted) - set(self._checks)),
            removed=sorted(set(self._checks) - set(wanted)),
            changed=sorted(k for k in set(wanted) & set(self._checks) if wanted[k] != self._checks[k]),
        )
        owns, due = self._owns, due or {}
        for key in report.removed:
            if owns(key):
                self._aps.remove_job(key)
            self._scheduled.pop(key, None)
            self._slots.pop(key, None)
        old = self._checks
        self._checks = wanted
        for key in report.added:
            if owns(key):
                self._add_job(key, wanted[key][1], due.get(key), catch_up=True)
        for key in report.changed:
            if wanted[key][1].interval != old[key][1].interval and owns(key):
                self._add_job(key, wanted[key][1])
        return report

    def _add_job(self, key: str, check: Check, due: float | None = None, *, catch_up: bool = False) -> None:
        numbers = self._numbers  # one float object for each interval and jitter, not one a job
        interval = numbers.setdefault(check.interval / self._speed, check.interval / self._speed)
        now = datetime.now(UTC).timestamp()
        slot: float | None = None
        if self.gate is not None:  # the same slots on every instance, spread by the key (a kept due is one of them)
            shift = self.gate_offset()
            phase = slot_phase(key, interval)
            slot = phase + math.ceil((now + shift - phase) / interval) * interval  # on the gate's clock
            since = self.since() if catch_up and self.since is not None else None
            if since is not None and since <= slot - interval:
                slot -= interval  # due since the share was read: run late (the gate judges it), not lost
            spread = slot - shift
        elif due is not None and now <= due <= now + interval:  # its turn, as it was kept elsewhere
            spread = due
        elif due is not None and due < now:  # overdue: soon, not all at once
            spread = now + self._rng.uniform(0, min(interval, OVERDUE_SPREAD))
        else:
            spread = now + self._rng.uniform(0, interval)  # spread the load
        first = datetime.fromtimestamp(_on_lattice(spread, _tick(interval)), UTC)
        start = first.timestamp()
        self._slots[key] = (start, interval, start if slot is None else slot)
        jitter = numbers.setdefault(interval * self._jitter, interval * self._jitter) or None
        trigger = _SteadyInterval(seconds=interval, start_date=first, jitter=jitter)
        job = self._aps.add_job(
            Scheduler._job,  # the function, not a bound method: its signature is built once (see below)
            trigger,
            args=(self, key),
            id=key,
            name=key,
            replace_existing=True,
            next_run_time=first,
            misfire_grace_time=max(1, round(interval / 2)),
        )
        # APScheduler makes these anew for every job, the same for all: one object each (~0.14 KiB a job)
        job.kwargs, job.func_ref = _NO_KWARGS, sys.intern(job.func_ref)

    async def _job(self, key: str) -> None:
        entry = self._checks.get(key)
        # this run's time, taken as it starts: its lag is told once it goes through the bound, even if the check
        # left this instance's share meanwhile (a reload forgets the check's entry)
        scheduled = self._scheduled.pop(key, None)
        if entry is None or not self._gated_in(key, scheduled):
            return
        semaphore = self._semaphore  # a reload may replace it meanwhile: release the one acquired
        self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            self.waiting -= 1
        held = True

        def release() -> None:  # once: by `probed()` when the probe is done, else when the run ends
            nonlocal held
            if held:
                held = False
                semaphore.release()

        permit = _PERMIT.set(release)
        try:
            if scheduled is not None:
                self._hooks.lag(max(0.0, (datetime.now(UTC) - scheduled).total_seconds()))
            await self._run(*entry)
        finally:
            _PERMIT.reset(permit)
            release()

    def _slot_at(self, key: str, scheduled: datetime | None) -> datetime:
        """The slot a run started for `scheduled` (now if unknown), dated on the gate's clock without its jitter."""
        first, interval, slot = self._slots.get(key, (0.0, 0.0, 0.0))
        if scheduled is None or interval <= 0:
            return datetime.fromtimestamp(datetime.now(UTC).timestamp() + self.gate_offset(), UTC)
        return datetime.fromtimestamp(
            slot + math.floor((scheduled.timestamp() - first) / interval + 1e-6) * interval, UTC
        )

    def _gated_in(self, key: str, scheduled: datetime | None) -> bool:
        """Without a gate, always; with one, whether this instance runs the slot of the run started for `scheduled`,
        dated on the gate's clock and without its jitter (each instance draws its own). A slot the gate says is this
        instance's to leave undone is counted missed."""
        if self.gate is None:
            return True
        verdict = self.gate(key, self._slot_at(key, scheduled))
        if verdict:
            return True
        if verdict is None:
            self._hooks.missed()
        return False

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED and isinstance(event, JobSubmissionEvent) and event.job_id in self._checks:
            self._scheduled[event.job_id] = event.scheduled_run_times[-1]
        elif event.code == EVENT_JOB_MISSED:
            # started too late to run (APScheduler's misfire grace): missed if the slot was this instance's. A slot
            # placed in the past (`since`: a share read just before it) may be another's, which ran it: not missed.
            scheduled = event.scheduled_run_time if isinstance(event, JobExecutionEvent) else None
            self._scheduled.pop(event.job_id, None)
            if self.gate is None or event.job_id not in self._checks:
                self._hooks.missed()
            elif self.gate(event.job_id, self._slot_at(event.job_id, scheduled)) is not False:
                self._hooks.missed()  # this instance's (True), or left undone while late (None): counted once
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self._hooks.skipped()

    def _on_error(self, event: JobEvent) -> None:
        error = getattr(event, "exception", None)
        if not isinstance(error, asyncio.CancelledError):  # cancelled at shutdown: nothing went wrong
            log.error("job %s failed: %s", event.job_id, error)


# APScheduler checks the arguments of every job it adds against the callable's signature, which `inspect` builds
# anew each time, twice for a bound method (~0.14 ms: ~1.4 s of `serve`'s start at 10,000 checks). The jobs call
# the plain function with the scheduler as first argument, and the function keeps its signature once built.
Scheduler._job.__signature__ = inspect.signature(Scheduler._job)  # type: ignore[attr-defined]


class _NotCancelled(logging.Filter):
    """APScheduler logs a probe run cancelled at shutdown as a job error; it is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))
