"""The publishing loop ends at shutdown even when a change comes at the moment it is cancelled: on Python 3.11,
`asyncio.wait_for` drops a cancellation that arrives as what it waits for completes (python/cpython#86296); the
loop then went on until the 15 s shutdown deadline, and `tpmon serve` exited 1 (seen in CI)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from monitor.app import _cancel


async def _loop_waking_on(event: asyncio.Event) -> None:
    """As the publisher's loop: wait for a wake-up at most 0.2 s, then work, forever."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 0.2)
        event.clear()
        await asyncio.sleep(0)


async def _woken_as_cancelled(stop: bool) -> bool:
    """Whether the loop has ended 1 s after a cancellation that came with a wake-up (`stop`: through `_cancel`)."""
    event = asyncio.Event()
    task = asyncio.create_task(_loop_waking_on(event))
    for _ in range(3):
        await asyncio.sleep(0)  # the loop waits in wait_for
    event.set()  # a change of the board, in the same turn of the event loop as the signal
    if stop:
        await asyncio.wait_for(_cancel(task, within=5), 1)
    else:
        task.cancel()
        await asyncio.wait({task}, timeout=1)
    ended = task.done()
    task.cancel()  # the plain cancellation's loop must not outlive the test
    await asyncio.wait({task}, timeout=1)
    return ended


def test_a_cancellation_that_comes_with_a_wake_up_still_ends_the_loop() -> None:
    assert asyncio.run(_woken_as_cancelled(stop=True))


def test_a_single_cancellation_can_be_dropped_by_wait_for() -> None:
    """What `_cancel` guards against, as this Python does it (on 3.12 and later, wait_for no longer drops it)."""
    dropped = not asyncio.run(_woken_as_cancelled(stop=False))
    assert dropped == (sys.version_info < (3, 12))
