"""The scheduler on a real APScheduler and event loop: jobs follow the config, never overlap, stay bounded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from monitor.config import Check, Settings
from monitor.scheduler import Scheduler, SchedulerHooks


def settings(*checks: dict[str, Any], max_concurrency: int = 64) -> Settings:
    return Settings.model_validate(
        {
            "max_concurrency": max_concurrency,
            "networks": {
                "alpha": {
                    "name": "Alpha",
                    "kind": "operateur",
                    "lines": ["pharmacie"],
                    "checks": [
                        {"flow": "facturation", "kind": "tcp", "host": "127.0.0.1", "port": 9, **c} for c in checks
                    ],
                }
            },
        }
    )


def check(name: str, interval: float = 0.2, **extra: Any) -> dict[str, Any]:
    return {"name": name, "interval": interval, "timeout": interval / 2, **extra}


async def until(condition: Any, deadline: float = 5.0) -> None:
    """Poll a condition on the loop, with a deadline (the scheduler runs on the same loop)."""
    async with asyncio.timeout(deadline):
        while not condition():  # noqa: ASYNC110 - the jobs signal nothing else to wait on
            await asyncio.sleep(0.01)


async def test_jobs_follow_the_config_on_apply() -> None:
    runs: Counter[str] = Counter()
    ports: dict[str, int] = {}

    async def run(network: str, c: Check) -> None:
        runs[c.name] += 1
        ports[c.name] = getattr(c, "port", 0)

    scheduler = Scheduler(run)
    report = scheduler.start(settings(check("a"), check("b")))
    try:
        assert report.added == ["check:alpha/facturation/a", "check:alpha/facturation/b"]
        await until(lambda: runs["a"] >= 2 and runs["b"] >= 2)

        report = scheduler.apply(settings(check("a", port=10), check("c")))
        assert report.added == ["check:alpha/facturation/c"]
        assert report.removed == ["check:alpha/facturation/b"]
        assert report.changed == ["check:alpha/facturation/a"]
        b_runs = runs["b"]
        await until(lambda: runs["c"] >= 2 and ports.get("a") == 10)
        assert runs["b"] == b_runs  # removed: never runs again
        assert str(scheduler.apply(settings(check("a", port=10), check("c")))) == "0 added, 0 removed, 0 changed"
    finally:
        scheduler.shutdown()


async def test_jobs_share_what_they_hold_equal_and_each_runs_its_own_check() -> None:
    """Memory at 10,000 checks: the jobs' interval, jitter, keyword arguments and function reference are one
    object for all the jobs that hold them equal (APScheduler would make them anew for each)."""
    runs: Counter[str] = Counter()

    async def run(network: str, c: Check) -> None:
        runs[c.name] += 1

    scheduler = Scheduler(run)
    scheduler.start(settings(check("a"), check("b"), check("c", interval=0.3)))
    try:
        a, b, c = (scheduler._aps.get_job(f"check:alpha/facturation/{name}") for name in "abc")
        assert a.kwargs is b.kwargs is c.kwargs and a.kwargs == {}
        assert a.func_ref is b.func_ref is c.func_ref
        assert a.trigger.interval_length is b.trigger.interval_length == 0.2 and c.trigger.interval_length == 0.3
        assert a.trigger.jitter is b.trigger.jitter and a.trigger.jitter == pytest.approx(0.02)
        await until(lambda: all(runs[name] >= 2 for name in "abc"))
    finally:
        scheduler.shutdown()


async def test_a_check_never_runs_twice_at_once_and_overruns_are_counted() -> None:
    release = asyncio.Event()
    running = 0
    peak = 0
    skipped = 0

    async def run(network: str, c: Check) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    def on_skip() -> None:
        nonlocal skipped
        skipped += 1

    scheduler = Scheduler(run, hooks=SchedulerHooks(skipped=on_skip))
    scheduler.start(settings(check("slow", interval=0.1)))
    try:
        await until(lambda: skipped >= 2)
        assert peak == 1
    finally:
        release.set()
        scheduler.shutdown()


async def test_global_concurrency_is_bounded_and_lag_is_reported() -> None:
    release = asyncio.Event()
    running = 0
    peak = 0
    lags: list[float] = []

    async def run(network: str, c: Check) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    scheduler = Scheduler(run, hooks=SchedulerHooks(lag=lags.append))
    scheduler.start(settings(*(check(f"c{i}", interval=0.2) for i in range(6)), max_concurrency=2))
    try:
        await until(lambda: running == 2 and scheduler.waiting == 4)  # the other four queue at the bound
        assert peak == 2
        assert len(lags) == 2  # each run reports its lag once through the bound, before it runs
        release.set()
        await until(lambda: len(lags) >= 6)  # so do the four that queued, once let through
    finally:
        release.set()
        scheduler.shutdown()
    assert len(lags) >= 6
    assert all(0 <= lag < 5 for lag in lags)


async def test_push_checks_get_no_job_and_speed_scales_intervals() -> None:
    runs: Counter[str] = Counter()

    async def run(network: str, c: Check) -> None:
        runs[c.name] += 1

    config = settings(check("fast", interval=100.0))
    network = config.networks["alpha"].model_dump()
    network["checks"] = [*network["checks"], {"name": "beat", "flow": "paiements", "kind": "push", "interval": 100.0}]
    config = Settings.model_validate({"networks": {"alpha": network}})
    scheduler = Scheduler(run, speed=500)  # 100 s of scenario time pass in 0.2 s
    report = scheduler.start(config)
    try:
        assert report.added == ["check:alpha/facturation/fast"]
        await until(lambda: runs["fast"] >= 3, deadline=3.0)
        assert runs["beat"] == 0
    finally:
        scheduler.shutdown()


def test_jitter_never_accumulates_runs_stay_on_their_own_grid() -> None:
    """APScheduler 3 adds the jitter to the previous jittered run: a 10 s check ran every 10.5 s on average."""
    from datetime import UTC, datetime, timedelta

    from apscheduler.triggers.interval import IntervalTrigger

    from monitor.scheduler import _SteadyInterval

    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    ours = _SteadyInterval(seconds=10, start_date=start, jitter=1.0)
    stock = IntervalTrigger(seconds=10, start_date=start, jitter=1.0, timezone=UTC)
    fire = previous = None
    stock_fire = None
    for k in range(1000):
        fire = ours.get_next_fire_time(previous, start)
        assert fire is not None
        slot = start + timedelta(seconds=10 * k)
        assert slot <= fire <= slot + timedelta(seconds=1.05), (k, fire)  # its own window, never later
        previous = fire
        stock_fire = stock.get_next_fire_time(stock_fire, start)
    assert fire is not None
    assert stock_fire is not None
    assert (stock_fire - start).total_seconds() > 10 * 999 + 300  # the drift this trigger fixes


def test_first_run_is_the_first_slot_at_or_after_now() -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.scheduler import _SteadyInterval

    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    trigger = _SteadyInterval(seconds=10, start_date=start)
    assert trigger.get_next_fire_time(None, start - timedelta(hours=1)) == start
    assert trigger.get_next_fire_time(None, start) == start
    assert trigger.get_next_fire_time(None, start + timedelta(seconds=25)) == start + timedelta(seconds=30)
    assert trigger.get_next_fire_time(start + timedelta(seconds=30), start) == start + timedelta(seconds=40)
    jittered = _SteadyInterval(seconds=10, start_date=start, jitter=1.0)
    first = jittered.get_next_fire_time(None, start + timedelta(seconds=25))
    assert first is not None
    assert start + timedelta(seconds=30) <= first <= start + timedelta(seconds=31.05)


async def test_runs_are_started_by_the_loop_timer_without_a_thread_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer processes due jobs on the loop itself: no `call_soon_threadsafe` per run (one per wakeup)."""
    runs = 0

    async def run(network: str, c: Check) -> None:
        nonlocal runs
        runs += 1

    loop = asyncio.get_running_loop()
    hops = 0
    threadsafe = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return threadsafe(*args, **kwargs)

    scheduler = Scheduler(run)
    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    try:
        scheduler.start(settings(check("a", interval=0.05), check("b", interval=0.05)))
        await until(lambda: runs >= 20)
        assert hops <= 3, hops  # the wakeups of start() and of the two add_job, not one per run
    finally:
        scheduler.shutdown()
        monkeypatch.undo()
    await until(lambda: not scheduler.running)
    assert scheduler._aps._timer is None  # shut down: its timer is gone


async def test_a_check_newly_scheduled_runs_the_slot_due_since_its_share_was_read() -> None:
    """Several instances: the reading that hands a check over comes before its slot, scheduling it may come just
    after: that slot runs (late, the gate judges it), not lost; a slot due before the reading never does."""
    for ago, caught_up in ((1.5, True), (0.0, False)):
        slots: list[datetime] = []
        started = time.time()
        read_at = started - ago

        def gate(key: str, at: datetime, slots: list[datetime] = slots) -> bool:
            slots.append(at)
            return True

        async def run(network: str, c: Check) -> None:
            pass

        scheduler = Scheduler(run)
        scheduler.gate = gate
        scheduler.since = lambda read_at=read_at: read_at  # bound per case
        scheduler.start(settings(check("a", interval=1.0)))
        try:
            await until(lambda slots=slots: bool(slots))
        finally:
            scheduler.shutdown()
        first = slots[0].timestamp()
        assert (first < started) is caught_up, (first - started, ago)
        assert first >= read_at  # never a slot due before the reading


async def test_a_run_held_at_the_bound_tells_its_lag_even_if_its_check_leaves_meanwhile() -> None:
    """Several instances: a run starts on time and waits for a permit; meanwhile the share is read again and its
    check is no longer scheduled here (handed over). Its slot was this instance's: it still runs, late, and says
    so — its lag was lost with the check's entry (a late run not counted as late)."""
    release = asyncio.Event()
    ran: list[tuple[str, int]] = []  # (check, lags told when it ran)
    lags: list[float] = []

    async def run(network: str, c: Check) -> None:
        ran.append((c.name, len(lags)))
        await release.wait()

    scheduler = Scheduler(run, hooks=SchedulerHooks(lag=lags.append))
    scheduler.start(settings(check("a", interval=0.2), check("b", interval=0.2), max_concurrency=1))
    try:
        await until(lambda: len(ran) == 1 and scheduler.waiting == 1)  # one runs, the other waits for the permit
        first = ran[0][0]
        scheduler.apply(settings(check(first, interval=0.2), max_concurrency=1))  # the other leaves
        release.set()
        await until(lambda: len(ran) >= 2)
    finally:
        release.set()
        scheduler.shutdown()
    assert ran[1][0] != first
    assert ran[1][1] == 2  # its lag told as it went through the bound, as the first one's
