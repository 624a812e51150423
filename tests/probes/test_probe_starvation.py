"""A timeout while tpmon's own process was starved says nothing of the target: INTERNAL, never a failure of it."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from monitor.models import FailureReason
from monitor.probes import ProbeContext, probe_check
from monitor.probes.starvation import MIN_LATE, STARVED_SHARE, TICK, LoopWatch

from .probe_targets import http_check


@pytest.fixture
def silent() -> Iterator[str]:
    """An address that takes connections (the kernel's backlog) and never answers: every probe times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        listener.close()


async def test_a_timeout_of_a_silent_target_is_the_targets(silent: str, ctx: ProbeContext) -> None:
    result = await probe_check(http_check(silent, timeout=1.0), ctx)
    if result.reason is FailureReason.INTERNAL:  # only if this machine truly held the test's process up that long
        late = float(result.detail.rsplit("tpmon itself ", 1)[1].split(" s late")[0])
        assert late >= STARVED_SHARE * 1.0, result
    else:
        assert result.reason is FailureReason.TIMEOUT, result


async def test_a_timeout_while_the_process_was_held_up_is_tpmons_own(silent: str, ctx: ProbeContext) -> None:
    """The loop held up for 0.8 s of a 0.4 s timeout (what other processes taking the cores, or a burst of work,
    do): the probe cannot tell whether the target answered in time."""
    probe = asyncio.create_task(probe_check(http_check(silent, timeout=0.4), ctx))
    await asyncio.sleep(0.05)  # the probe is under way, waiting for the answer
    time.sleep(0.8)  # noqa: ASYNC251 — the fault injected: this process starved, not a wait
    result = await probe
    assert not result.success and result.reason is FailureReason.INTERNAL, result
    assert "tpmon itself" in result.detail and "s late" in result.detail


def test_the_watch_tells_how_late_the_loop_ran_during_a_probe() -> None:
    now = [100.0]
    watch = LoopWatch(clock=lambda: now[0])
    watch.note(100.0, 100.0 + TICK + 0.01)  # on time, within 10 ms
    watch.note(101.0, 101.0 + TICK + 0.3)  # 300 ms late, woke at 101.35
    assert watch.worst(100.5, 102.0) == pytest.approx(0.3)
    assert watch.worst(101.4, 102.0) == 0.0  # that wake-up is before the probe
    assert watch.starved(100.5, 102.0, timeout=1.0)  # 0.3 ≥ 25 % of 1 s
    assert not watch.starved(100.5, 102.0, timeout=2.0)  # 0.3 < 25 % of 2 s
    assert MIN_LATE > STARVED_SHARE * 0.2  # a short timeout: 100 ms late at least, never a mere scheduling jitter
    assert not watch.starved(101.4, 102.0, timeout=0.2)
