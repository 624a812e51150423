"""What falls due when: keys ordered by the time `when(key)` tells, so that finding what is due by `now` costs
what is due, not a look at every key (stale checks, push deadlines, recoveries to end). Pure: `now` is a parameter.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["Timers"]

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """Keys by the time they fall due, as `when(key)` tells (None: never, for now).

    `when` is the truth; the heap only remembers, for each key, a time at or before it. `touch(key)` after anything
    that may bring a key's time earlier; a time that moved later is found when the earlier entry comes up, so a key
    whose time only moves later (a check's deadline, with each result) needs one entry, not one per change:
    `schedule(key)` does only what a key without an entry needs.
    """

    def __init__(self, when: Callable[[K], datetime | None]) -> None:
        self._when = when
        self._heap: list[tuple[datetime, K]] = []
        self._at: dict[K, datetime] = {}  # each key's live entry

    def schedule(self, key: K) -> None:
        """Give `key` an entry if it has none and falls due some day (its time may only have moved later)."""
        if key not in self._at:
            self.touch(key)

    def touch(self, key: K) -> None:
        """`key`'s time may have changed, earlier included."""
        at = self._when(key)
        if at is not None:
            live = self._at.get(key)
            if live is None or at < live:
                self._at[key] = at
                heapq.heappush(self._heap, (at, key))

    def due(self, now: datetime) -> list[K]:
        """The keys due by `now`, soonest first. They stay scheduled: due again until `when` says otherwise."""
        found: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._at.get(key) != at:
                continue  # an entry replaced by an earlier one, or already met
            del self._at[key]
            real = self._when(key)
            if real is None:
                continue
            if real <= now:
                found.append(key)
            else:
                self._at[key] = real
                heapq.heappush(heap, (real, key))
        for key in found:
            self.touch(key)
        return found

    def next(self) -> datetime | None:
        """When the soonest key falls due; None if none ever does, for now."""
        heap = self._heap
        while heap:
            at, key = heap[0]
            if self._at.get(key) != at:
                heapq.heappop(heap)
                continue
            real = self._when(key)
            if real == at:
                return at
            heapq.heappop(heap)
            del self._at[key]
            if real is not None:
                self._at[key] = real
                heapq.heappush(heap, (real, key))
        return None

    def __len__(self) -> int:
        return len(self._heap)
