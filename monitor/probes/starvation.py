"""Whether a probe's timeout is the target's, or this process's: how late the event loop ran during the probe.

A probe times out when its check's timeout runs out before the answer is read. If the process itself was starved
meanwhile (its machine's cores taken by others, a burst of work in the loop, a connection flood), the answer may
have arrived in time and waited, unread, behind the timer: calling that an outage of the target would be a false
"down" made by load on tpmon's side. `LoopWatch` asks to wake every `TICK` seconds and notes how late it woke;
`starved(started, ended, timeout)` says whether the loop ran late by a large part of the timeout while the probe
was under way — the probe then tells nothing of the target (`FailureReason.INTERNAL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

__all__ = ["STARVED_SHARE", "TICK", "LoopWatch", "watch"]

TICK = 0.05  # seconds between two wake-ups of the watch
KEPT = 1200  # wake-ups remembered: one minute at TICK, more than any probe's timeout
STARVED_SHARE = 0.25  # the loop late by this share of the timeout (at least MIN_LATE) during a probe: starved
MIN_LATE = 0.1


class LoopWatch:
    """How late one event loop ran lately (wake-ups of its own task, on `clock`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._late: deque[tuple[float, float]] = deque(maxlen=KEPT)  # (woke at, late by)
        self._asleep_since: float | None = None  # when the watch last went to sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch the running loop (once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tpmon-loop-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def note(self, asleep_since: float, woke_at: float) -> None:
        """One wake-up: asleep since `asleep_since` for TICK, woke at `woke_at`."""
        self._late.append((woke_at, max(0.0, woke_at - asleep_since - TICK)))

    def worst(self, started: float, ended: float) -> float:
        """The most the loop ran late between `started` and `ended` (on `clock`), the wake-up still awaited
        included: the watch is itself late now if the loop was held up until this moment."""
        worst = 0.0
        for woke_at, late in reversed(self._late):
            if woke_at < started:
                break
            worst = max(worst, late)
        if self._asleep_since is not None:
            worst = max(worst, ended - self._asleep_since - TICK)
        return worst

    def starved(self, started: float, ended: float, timeout: float) -> bool:
        """Whether the loop ran late by a large part of `timeout` while a probe ran from `started` to `ended`."""
        return self.worst(started, ended) >= max(MIN_LATE, STARVED_SHARE * timeout)

    async def _run(self) -> None:
        while True:
            self._asleep_since = asleep = self._clock()
            await asyncio.sleep(TICK)
            self.note(asleep, self._clock())


_watches: dict[int, LoopWatch] = {}  # by id of the running loop: one per process (and per test's loop)


def watch() -> LoopWatch:
    """The running loop's watch, started at its first use."""
    loop = asyncio.get_running_loop()
    found = _watches.get(id(loop))
    if found is None or found._task is None or found._task.done():
        for key in [key for key, old in _watches.items() if old._task is None or old._task.done()]:
            del _watches[key]  # loops gone (tests open many)
        found = _watches[id(loop)] = LoopWatch()
        found.start()
    return found
