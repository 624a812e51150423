"""Several locations: who writes what of a check (pure: views set by hand, no heartbeat written). Each location's
owner writes its location's own memory; the owner in the primary location alone writes the verdict; every other
instance follows both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.cluster.coordinator import Coordinator
from monitor.cluster.ownership import Member, View
from monitor.engine.quorum import located_key
from monitor.store import Store

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
BEAT = 5.0
KEYS = [f"check:alpha/pec/c{i}" for i in range(200)]
ROWS = (
    Member("a1", T0 - timedelta(minutes=5), T0, "a"),
    Member("a2", T0 - timedelta(minutes=5), T0, "a"),
    Member("b1", T0 - timedelta(minutes=5), T0, "b"),
    Member("c1", T0 - timedelta(minutes=5), T0, "c"),
)


@pytest.fixture
def store() -> Iterator[Store]:
    opened = Store.open("sqlite://")  # never written: the coordinators' views are set by hand
    yield opened
    opened.close()


def _fleet(store: Store, rows: tuple[Member, ...] = ROWS) -> list[Coordinator]:
    found = []
    for member in rows:
        coordinator = Coordinator(store, member.location, BEAT, clock=lambda: T0)
        coordinator.view = View(member.id, rows, BEAT, T0, member.location)
        found.append(coordinator)
    return found


def test_each_location_writes_its_memory_once_and_the_primary_location_the_verdict_once(store: Store) -> None:
    fleet = _fleet(store)
    for key in KEYS:
        assert sum(c.writes(key) for c in fleet) == 1  # the verdict: once, from location a
        assert [c.location for c in fleet if c.writes(key)] == ["a"]
        for location in "abc":
            mine = located_key(key, location)
            writers = [c for c in fleet if c.writes(mine)]
            assert len(writers) == 1 and writers[0].location == location
            assert all(c.follows(mine) for c in fleet if c not in writers)
        assert all(c.follows(key) for c in fleet if not c.writes(key))


def test_alone_a_location_writes_no_memory_of_its_own_its_verdict_is_its_memory(store: Store) -> None:
    fleet = _fleet(store, ROWS[:2])
    for key in KEYS:
        assert not any(c.writes(located_key(key, "a")) for c in fleet)
        assert sum(c.writes(key) for c in fleet) == 1
