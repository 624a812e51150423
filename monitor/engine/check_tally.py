"""A flow over its checks, kept up to date one check at a time: exactly what `over_checks` says of them, for the
cost of the check that changed (O(log n)), so that a large outage costs what changes, not checks × checks."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ..models import SEVERITY, Source, State
from .aggregate import NO_SIGNAL, Input, over_checks

__all__ = ["CheckTally"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_WORKING = (State.OPERATIONAL, State.DEGRADED, State.PARTIAL, State.RECOVERING)


def _plain(value: Input) -> bool:
    """What checks are: a share of 0 or 1, never recovering. Anything else is left to `over_checks` itself."""
    return value.share in (0.0, 1.0) and value.state is not State.RECOVERING and value.stable_since is None


class CheckTally:
    """The inputs of one flow (its checks, in config order), with counts by state and source, the share up, and
    two lazy heaps: the driver (`over_checks` takes the first input of the highest severity and latest date) and
    the latest date. `value()` equals `over_checks(inputs)` — the property tests hold it to that."""

    def __init__(self, inputs: Iterable[Input]) -> None:
        self._inputs = list(inputs)
        self._versions = [0] * len(self._inputs)
        self._states = dict.fromkeys(State, 0)
        self._sources = dict.fromkeys(Source, 0)
        self._up = 0  # inputs with share 1
        self._odd = 0  # inputs `over_checks` must see itself
        for value in self._inputs:
            self._count(value, 1)
        self._drivers: list[tuple[int, float, int, int]] = []
        self._dates: list[tuple[int, int, int]] = []
        self._rebuild()

    def __len__(self) -> int:
        return len(self._inputs)

    def set(self, position: int, value: Input) -> None:
        """The input at `position` (in config order) is now `value`."""
        old = self._inputs[position]
        if old == value:
            return
        self._count(old, -1)
        self._count(value, 1)
        self._inputs[position] = value
        self._versions[position] += 1
        if len(self._drivers) > 2 * len(self._inputs) + 16:
            self._rebuild()  # the stale entries cost more than one rebuild: O(1) amortized
        else:
            self._push(position)

    def value(self) -> Input:
        """`over_checks` of the inputs."""
        count = len(self._inputs)
        if not count:
            return NO_SIGNAL
        if self._odd:
            return over_checks(self._inputs)
        states = self._states
        if states[State.DOWN] and any(states[s] for s in _WORKING):
            state = State.PARTIAL  # working and down inputs mixed
        else:
            state = max((s for s, n in states.items() if n), key=SEVERITY.__getitem__)
        driver = self._driver()
        if state is State.UNKNOWN:
            source = Source.NONE
        elif driver.source is not Source.NONE:
            source = driver.source
        else:
            source = min((s for s, n in self._sources.items() if n and s is not Source.NONE), default=Source.NONE)
        return Input(state, self._up / count, self._latest(), source, driver.detail, None)

    def _count(self, value: Input, step: int) -> None:
        self._states[value.state] += step
        self._sources[value.source] += step
        if value.share == 1.0:
            self._up += step
        if not _plain(value):
            self._odd += step

    def _push(self, position: int) -> None:
        driver, date = self._entries(position)
        heapq.heappush(self._drivers, driver)
        if date is not None:
            heapq.heappush(self._dates, date)

    def _entries(self, position: int) -> tuple[tuple[int, float, int, int], tuple[int, int, int] | None]:
        """Heap entries of one input: over_checks' driver is the max by (severity, timestamp), the first in order
        among equals; the latest date is compared to the microsecond."""
        value, version = self._inputs[position], self._versions[position]
        stamp = value.since.timestamp() if value.since else 0.0
        driver = (-SEVERITY[value.state], -stamp, position, version)
        if value.since is None:
            return driver, None
        return driver, (-((value.since - _EPOCH) // _MICROSECOND), position, version)

    def _rebuild(self) -> None:
        entries = [self._entries(position) for position in range(len(self._inputs))]
        self._drivers = [driver for driver, _ in entries]
        self._dates = [date for _, date in entries if date is not None]
        heapq.heapify(self._drivers)
        heapq.heapify(self._dates)

    def _driver(self) -> Input:
        heap = self._drivers
        while heap[0][3] != self._versions[heap[0][2]]:
            heapq.heappop(heap)
        return self._inputs[heap[0][2]]

    def _latest(self) -> datetime | None:
        heap = self._dates
        while heap and heap[0][2] != self._versions[heap[0][1]]:
            heapq.heappop(heap)
        return self._inputs[heap[0][1]].since if heap else None
