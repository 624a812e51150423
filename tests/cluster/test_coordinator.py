"""One instance's share between heartbeats (`cluster.coordinator.Coordinator`): which checks it schedules and
follows, judged on an injected clock and a view as a heartbeat read it (no heartbeat written here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cluster.coordinator import Coordinator
from monitor.cluster.ownership import Member, View
from monitor.store import Store

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
HEARTBEAT = 2.0
S = timedelta(seconds=1)
KEYS = [f"check:alpha/pec/c{i}" for i in range(60)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'tpmon.db'}")
    yield opened
    opened.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _coordinator(store: Store, clock: Clock, members: tuple[Member, ...], read_at: datetime) -> Coordinator:
    """An instance "me" whose last heartbeat read `members` at `read_at` (its clock and the database's agree)."""
    coordinator = Coordinator(store, "default", HEARTBEAT, clock=clock)
    coordinator.id = "me"
    coordinator.view = View("me", members, HEARTBEAT, read_at)
    return coordinator


def test_the_share_of_a_member_seen_missing_is_scheduled_before_it_is_taken(store: Store) -> None:
    """ "other" wrote its last heartbeat at T0 and was killed: a reading 1.6 heartbeats later shows the next one
    missing. Its checks are this instance's from two heartbeats after T0; they are scheduled at that reading, so
    that the first slot past two heartbeats runs here (not only once a later reading shows it dead)."""
    members = (Member("me", T0 - 60 * S, T0 + 3.2 * S), Member("other", T0 - 60 * S, T0))
    clock = Clock(T0 + 3.2 * S)
    coordinator = _coordinator(store, clock, members, T0 + 3.2 * S)
    theirs = [key for key in KEYS if coordinator.view.owner(key, T0 + 3.2 * S) == "other"]
    assert theirs  # about half
    assert not any(coordinator.owns(key) for key in theirs)  # not yet: two heartbeats after T0 is to come
    assert all(coordinator.may_own(key) for key in theirs)  # but scheduled now
    assert all(coordinator.owns(key, T0 + 4.05 * S) for key in theirs)  # and run at the first slot past it


def test_a_joining_instance_schedules_its_share_before_it_counts(store: Store) -> None:
    """ "me" joined at T0: it counts from two heartbeats later; its share is scheduled from its first reading."""
    members = (Member("me", T0, T0), Member("other", T0 - 60 * S, T0 - 0.5 * S))
    clock = Clock(T0 + 0.1 * S)
    coordinator = _coordinator(store, clock, members, T0)
    mine = [key for key in KEYS if coordinator.view.owner(key, T0 + 4.1 * S) == "me"]
    assert mine
    assert not any(coordinator.owns(key) for key in mine)
    assert all(coordinator.may_own(key) for key in mine)
    assert not any(coordinator.may_own(key) for key in KEYS if key not in mine)


def test_a_check_taken_over_is_followed_until_its_first_result_here(store: Store) -> None:
    """Its copy on this board may be older than the store's: expiring it would write a false "unknown"."""
    clock = Clock(T0 + 0.1 * S)
    coordinator = _coordinator(store, clock, (Member("me", T0 - 60 * S, T0),), T0)
    key = KEYS[0]
    assert coordinator.owns(key) and not coordinator.follows(key)  # alone: every check is its own
    coordinator.scheduled([key])  # just taken (the scheduler added it)
    assert coordinator.follows(key)
    assert coordinator.runs(key, clock.now)
    assert coordinator.follows(key)  # run, its result not recorded yet
    assert coordinator.taken(key)  # its first result: the stored memory read first…
    assert coordinator.follows(key)  # …while a tick may come: still followed
    coordinator.recording(key)  # the result recorded
    assert not coordinator.follows(key)  # from then on expired here
    coordinator.scheduled([KEYS[1]])
    coordinator.scheduled([], [KEYS[1]])  # removed before it ran here: no longer taken
    assert not coordinator.follows(KEYS[1])


def test_a_check_handed_over_stays_scheduled_a_heartbeat_past_the_hand_over(store: Store) -> None:
    """ "c" counts from T0: the checks "me" hands it were unscheduled at the first heartbeat past T0, and a slot just
    before T0 whose run was late (a busy loop) then never ran, on neither instance, and was counted nowhere. Kept
    one heartbeat more: that run goes on here (the gate judges it, by its slot: before T0, "me"'s)."""
    members = (
        Member("me", T0 - 60 * S, T0 - 0.5 * S),
        Member("other", T0 - 60 * S, T0 - 0.5 * S),
        Member("c", T0 - 2 * HEARTBEAT * S, T0 - 0.5 * S),
    )
    clock = Clock(T0 + 0.2 * S)
    coordinator = _coordinator(store, clock, members, T0 - 0.4 * S)
    handed = [
        key for key in KEYS if coordinator.view.owner(key, T0 - 0.01 * S) == "me" != coordinator.view.owner(key, T0)
    ]
    assert handed
    assert all(coordinator.may_own(key) for key in handed)  # scheduled still
    assert all(coordinator.runs(key, T0 - 0.05 * S) for key in handed)  # its slot before T0: run here, late
    assert not any(coordinator.runs(key, T0) for key in handed)  # the next ones are c's
    clock.now = T0 + (HEARTBEAT + 0.01) * S
    assert not any(coordinator.may_own(key) for key in handed)  # then unscheduled
