"""A virtual clock: scenario time that runs `speed` times faster than the wall clock, from a chosen instant."""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class VirtualClock:
    """`now()` is `origin` plus the real time elapsed since the clock started, times `speed`.

    `set(moment)` jumps (used to replay history before the live part); `start()` anchors the live run.
    """

    def __init__(self, origin: datetime, speed: float = 1.0) -> None:
        if origin.tzinfo is None:
            raise ValueError("the origin must be an aware datetime")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin = origin
        self._anchor: float | None = None  # perf_counter when the live run started; None: frozen

    def set(self, moment: datetime) -> None:
        """Freeze the clock at `moment` (replay); `start()` makes it run again from there."""
        self._origin, self._anchor = moment, None

    def start(self) -> None:
        self._anchor = time.perf_counter()

    @property
    def running(self) -> bool:
        return self._anchor is not None

    def now(self) -> datetime:
        if self._anchor is None:
            return self._origin
        return self._origin + timedelta(seconds=(time.perf_counter() - self._anchor) * self.speed)

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long `virtual_seconds` of scenario time last on the wall clock."""
        return virtual_seconds / self.speed

    __call__ = now
