"""A check handed over between two instances (`Coordinator` + `Scheduler`, wired as `app._join_cluster` does): each
slot runs on exactly one instance, even when their estimates of the database's clock differ by a few milliseconds
(each one measures it at its heartbeats, with its own error), and a slot an instance leaves undone is counted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent

from monitor.cluster.coordinator import Coordinator
from monitor.cluster.ownership import Member, View, weight
from monitor.config import Check, Settings
from monitor.scheduler import Scheduler, SchedulerHooks
from monitor.store import Store

HEARTBEAT = 2.0
INTERVAL = 2.0
S = timedelta(seconds=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'tpmon.db'}")
    yield opened
    opened.close()


def _handed_to_c() -> str:
    """A check that is a's among a and b, and c's once c counts."""
    for i in range(200):
        key = f"check:alpha/facturation/c{i}"
        if max("ab", key=lambda m: weight(m, key)) == "a" and max("abc", key=lambda m: weight(m, key)) == "c":
            return key
    raise AssertionError("no such check")


def _settings(name: str) -> Settings:
    check = {"name": name, "flow": "facturation", "kind": "tcp", "host": "127.0.0.1", "port": 9, "timeout": "1s"}
    networks = {"alpha": {"name": "Alpha", "kind": "operateur", "lines": ["pharmacie"], "checks": [check]}}
    check["interval"] = f"{INTERVAL:g}s"
    return Settings.model_validate({"jitter": 0, "networks": networks})


async def _run(network: str, check: Check) -> None:
    pass


class Instance:
    """An instance's coordinator and scheduler, wired as the app wires them (its heartbeats are not written here:
    its view and its estimate of the database's clock are set by the test)."""

    def __init__(self, store: Store, me: str, offset: float) -> None:
        self.missed = 0
        self.coordinator = Coordinator(store, "default", HEARTBEAT)
        self.coordinator.id = me
        self.coordinator.offset = timedelta(seconds=offset)
        self.scheduler = Scheduler(_run, hooks=SchedulerHooks(missed=self._missed))
        self.scheduler.gate = self.coordinator.runs
        self.scheduler.since = self.coordinator.since
        self.scheduler.gate_offset = self.coordinator.gate_offset

    def _missed(self) -> None:
        self.missed += 1

    def fire_times(self, key: str, count: int) -> list[datetime]:
        """When this instance's scheduler starts the next `count` runs of `key` (wall clock)."""
        job: Any = self.scheduler._aps.get_job(key)
        found = [job.next_run_time]
        while len(found) < count:
            found.append(job.trigger.get_next_fire_time(found[-1], found[-1]))
        return found

    def runs(self, key: str, fired: datetime) -> bool:
        """Whether the run started at `fired` goes on (the scheduler's gate, as a job started then asks it)."""
        return self.scheduler._gated_in(key, fired)


@pytest.mark.parametrize("apart", [0.03, -0.03])
async def test_a_slot_at_a_hand_over_runs_once_whatever_each_instance_makes_of_the_database_clock(
    store: Store, apart: float
) -> None:
    """a and b share the checks; c joins, and counts two heartbeats later (the boundary). a's estimate of the
    database's clock is 30 ms off c's, and a slot of a check a hands to c lies 10 ms from the boundary: on one side
    of it by c's estimate, on the other by a's. Judged each on its own estimate, neither ran it (or both did)."""
    key = _handed_to_c()
    a, c = Instance(store, "a", apart), Instance(store, "c", 0.0)
    for instance in (a, c):
        instance.scheduler.apply(_settings(key.rsplit("/", 1)[1]))
    slots = c.fire_times(key, 4)  # c's estimate agrees with the wall clock: its runs start at the slots
    boundary = slots[2] + (0.01 if apart > 0 else -0.01) * S  # by the database's clock
    joined = boundary - 2 * HEARTBEAT * S
    beat = slots[2] - S  # every member's last heartbeat, read just then: none late, none missing
    members = (Member("a", joined - 60 * S, beat), Member("b", joined - 60 * S, beat), Member("c", joined, beat))
    for instance in (a, c):
        instance.coordinator.view = View(instance.coordinator.id, members, HEARTBEAT, beat)
    ran = [
        [x.coordinator.id for x, fired in ((a, fa), (c, fc)) if x.runs(key, fired)]
        for fa, fc in zip(a.fire_times(key, 4), slots, strict=True)
    ]
    third = "a" if apart > 0 else "c"  # 10 ms before the boundary, or after it, on the database's clock
    assert ran == [["a"], ["a"], [third], ["c"]], (apart, ran)  # each slot once: never both, never neither
    assert a.missed == c.missed == 0


async def test_a_slot_an_instance_leaves_undone_because_it_is_late_is_counted_missed(store: Store) -> None:
    """A heartbeat came late: the instance owns nothing until the others have read it again. The runs of its
    share it leaves meanwhile are a gap at the farm: counted where the scheduler counts its missed runs (the
    metric `tpmon_scheduler_missed_runs_total`), not only in a log line."""
    key = _handed_to_c()
    c = Instance(store, "c", 0.0)
    c.scheduler.apply(_settings(key.rsplit("/", 1)[1]))
    slots = c.fire_times(key, 2)
    beat = slots[0] - S
    members = (Member("a", beat - 60 * S, beat), Member("c", beat - 60 * S, beat))
    c.coordinator.view = View("c", members, HEARTBEAT, beat, resumes_at=slots[0] + 0.5 * S)
    assert c.coordinator.view.owner(key, slots[0]) == "c"
    assert [c.runs(key, fired) for fired in slots] == [False, True]
    assert c.missed == 1
    assert c.coordinator.late_runs == 1  # and told at the next heartbeat, as before


async def test_a_slot_placed_in_the_past_that_was_another_instances_is_not_counted_missed(store: Store) -> None:
    """A share read just before a slot: the check is scheduled with that slot in the past (`since`), run late rather
    than never. Started past APScheduler's grace, the run is dropped as missed — a gap only if the slot was this
    instance's: one still the previous owner's (c counts only two heartbeats after joining) was run there."""
    key = _handed_to_c()
    c = Instance(store, "c", 0.0)
    c.scheduler.apply(_settings(key.rsplit("/", 1)[1]))
    slots = c.fire_times(key, 3)
    joined = slots[1] - 2 * HEARTBEAT * S  # c counts from slots[1] on: slots[0] is still a's
    members = (Member("a", joined - 60 * S, slots[1]), Member("c", joined, slots[1]))
    c.coordinator.view = View("c", members, HEARTBEAT, slots[1])
    for fired in slots[:2]:
        c.scheduler._on_event(JobExecutionEvent(EVENT_JOB_MISSED, key, "default", fired))
    assert c.missed == 1  # slots[1], c's own; not slots[0], a's
