"""Throttles in memory, with an injected monotonic clock: a token bucket per key (pushes per token) and a window
of failures per key (sign-in per address and per account, wrong tokens per address). Bounded in size."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Buckets", "Failures"]

Monotonic = Callable[[], float]


@dataclass
class Buckets:
    """`rate` per `per` seconds per key, in bursts of up to `burst`; `take(key)` is 0 when allowed, else the seconds
    to wait. The least recently used keys are forgotten past `size` (a forgotten key starts full again)."""

    rate: float
    per: float = 60.0
    burst: float | None = None
    size: int = 100_000
    clock: Monotonic = time.monotonic
    _levels: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict, repr=False)

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)

    def take(self, key: str) -> float:
        now, refill = self.clock(), self.rate / self.per
        level, at = self._levels.pop(key, (self.capacity, now))
        level = min(self.capacity, level + (now - at) * refill)
        if level >= 1.0:
            self._keep(key, (level - 1.0, now))
            return 0.0
        self._keep(key, (level, now))
        return (1.0 - level) / refill

    def _keep(self, key: str, value: tuple[float, float]) -> None:
        self._levels[key] = value
        while len(self._levels) > self.size:
            self._levels.popitem(last=False)


@dataclass
class Failures:
    """At most `limit` failures per key within `window` seconds; past that, `blocked(key)` says how long to wait."""

    limit: int
    window: float
    size: int = 100_000
    clock: Monotonic = time.monotonic
    _seen: OrderedDict[str, list[float]] = field(default_factory=OrderedDict, repr=False)

    def _recent(self, key: str) -> list[float]:
        horizon = self.clock() - self.window
        recent = [t for t in self._seen.pop(key, []) if t > horizon]
        if recent:
            self._seen[key] = recent
        return recent

    def blocked(self, key: str) -> float:
        """0 when `key` may try again; otherwise the seconds until its oldest failure leaves the window."""
        recent = self._recent(key)
        if len(recent) < self.limit:
            return 0.0
        return max(1.0, math.ceil(recent[-self.limit] + self.window - self.clock()))

    def fail(self, key: str) -> None:
        recent = self._recent(key)
        self._seen[key] = [*recent[-(self.limit * 2) :], self.clock()]
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
