"""One instance among several on PostgreSQL, at run time: heartbeats, the share of the checks, the lead.

Every heartbeat: write this instance's row and read its location's (`members.Members`), keep or try the lead
(`members.Leadership`), then follow what the others stored of the checks they probe. Between heartbeats,
`owns(key, at)` says whether this instance runs a check's slot due at `at` (`ownership.View`), and `writes(key)`
whether it writes a component's change: a check's by its owner, a flow's, line's or network's by the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from monitor.engine.quorum import split_key
from monitor.errors import StoreError
from monitor.models import CheckMemory
from monitor.store import Store

from .follower import Follower
from .members import Leadership, Members, Reading
from .ownership import BEAT, MISSED_BEATS, SLOW, View, weight

__all__ = ["Coordinator", "MemoryReads"]

log = logging.getLogger("tpmon.cluster")

FOLLOW_ALL_EVERY = 10  # heartbeats written (5 heartbeats): every memory read again, beside the notifications


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _owner(counted: tuple[str, ...], key: str) -> str | None:
    return max(counted, key=lambda member: weight(member, key)) if counted else None


class MemoryReads:
    """The stored memories that the first runs of checks just taken over ask for, read together: one query at a time
    (in a thread), for every key asked while the previous one ran.

    Each first run read its own before (a thread and a pooled connection per check, under its probe's concurrency
    permit): an instance that starts or takes a share asks for thousands within an interval, and its runs queued
    behind those reads — with two instances, the first one's probes were up to 20 s late until its last first run was
    done (`tests/benchmarks/instances.py`)."""

    def __init__(self, read: Callable[[frozenset[str]], Mapping[str, CheckMemory]]) -> None:
        self._read = read  # blocking: the stored memories of these keys (those found), StoreError if unreadable
        self._asked: list[tuple[frozenset[str], asyncio.Future[dict[str, CheckMemory]]]] = []
        self._task: asyncio.Task[None] | None = None
        self.queries = 0

    async def get(self, keys: Iterable[str]) -> dict[str, CheckMemory]:
        """The stored memories of `keys` (those found); StoreError if they could not be read."""
        future: asyncio.Future[dict[str, CheckMemory]] = asyncio.get_running_loop().create_future()
        self._asked.append((frozenset(keys), future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._reading(), name="tpmon-taken-memories")
        return await future

    async def _reading(self) -> None:
        while self._asked:
            asked, self._asked = self._asked, []
            wanted = frozenset().union(*(keys for keys, _ in asked))
            self.queries += 1
            try:
                found = await asyncio.to_thread(self._read, wanted)
            except Exception as exc:  # StoreError, or a bug: told to every run waiting, none left hanging
                for _, future in asked:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for keys, future in asked:
                if not future.done():  # its run may have been cancelled meanwhile (a stop)
                    future.set_result({key: found[key] for key in keys if key in found})


class Coordinator:
    """Owned by the app's lifespan when the store is PostgreSQL; `start` before the probes, `stop` after them."""

    def __init__(
        self,
        store: Store,
        location: str,
        heartbeat: float,
        *,
        follow: Callable[[], Awaitable[None]] | None = None,
        on_lead: Callable[[bool], None] | None = None,
        on_share: Callable[[], None] | None = None,
        before_lead: Callable[[], Awaitable[None]] | None = None,
        follower: Follower | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.location = location
        self.heartbeat = heartbeat
        self._members = Members(store, self.id, location, heartbeat, host=socket.gethostname(), pid=os.getpid())
        self._leadership = Leadership(store, heartbeat)
        self._follow = follow
        self._on_lead = on_lead
        self._on_share = on_share
        self._before_lead = before_lead
        self.follower = follower  # what the others write, as they tell it: followed within a second
        self._clock = clock  # the wall clock; the database's is this plus `offset`
        self.offset = timedelta(0)
        self.view = View(self.id, (), heartbeat, location=location)
        self.leading = False
        self._task: asyncio.Task[None] | None = None
        self._ran: set[str] = set()  # the checks whose last slot ran here
        self.late_runs = 0  # runs of its own share left undone because this instance was late
        self._told_late = 0
        self._taken: set[str] = set()  # those whose first run here is not recorded yet
        self._taking: set[str] = set()  # scheduled for a share taken or to come, no result recorded here yet
        self._beats = 0
        self._scheduled_for: tuple[tuple[str, ...], ...] | None = None  # `_shares` at the last apply
        self._leaving = False  # stopping: its row is deleted, the others run its share from their next reading

    # --- between heartbeats ------------------------------------------------------------------------------------
    def owns(self, key: str, at: datetime | None = None) -> bool:
        """Whether this instance runs the slot of check `key` due at `at` (now by default)."""
        return self.view.owns(key, (at or self._clock()) + self.offset)

    def runs(self, key: str, at: datetime) -> bool | None:
        """The scheduler's gate for the slot of check `key` due at `at` on the database's clock (the scheduler places
        the slots on that clock, `gate_offset`: every instance judges a slot at the same instant, whatever the error
        of its estimate of the offset). True to run it, noting the checks this instance runs and had not run
        before; False if it is another's; None if it is this instance's and it leaves it undone (late, counted and
        told at the next heartbeat; or leaving): the scheduler counts it missed."""
        if self.view.owner(key, at) != self.id:
            self._ran.discard(key)
            return False
        if self._leaving or self.view.late(at):
            if not self._leaving:
                self.late_runs += 1
            self._ran.discard(key)
            return None
        if key not in self._ran:
            self._ran.add(key)
            self._taken.add(key)
        return True

    def gate_offset(self) -> float:
        """Seconds the database's clock is ahead of this process's, as the last heartbeat measured it."""
        return self.offset.total_seconds()

    def taken(self, key: str) -> bool:
        """Once, after its first run here: whether check `key` was just taken over (its memory to read first)."""
        if key in self._taken:
            self._taken.discard(key)
            return True
        return False

    def recording(self, key: str) -> None:
        """A result of check `key` is recorded now, after its stored memory was read if it was just taken over (not
        before: a tick while that reading is under way would expire the copy followed so far): expired here from now
        on."""
        self._taking.discard(key)

    def scheduled(self, added: Iterable[str], removed: Iterable[str] = ()) -> None:
        """The scheduler added the checks of `added` (a share taken or to come) and removed those of `removed`."""
        self._taking.difference_update(removed)
        self._taking.update(added)

    def since(self) -> float | None:
        """The instant (epoch seconds, the database's clock) of the reading that gave this instance its share: a slot
        of a check newly scheduled due since then is its to run, late rather than never (the scheduler's `since`)."""
        read_at = self.view.read_at
        return None if read_at is None else read_at.timestamp()

    def may_own(self, key: str) -> bool:
        """Whether check `key` is this instance's share now or may be before the next heartbeats (a member that
        joins, or one seen missing, hands it over at an instant to come): the checks it schedules, so that the
        first slot of a share taken is run, not lost until a later reading; `runs` decides each run (and whether
        this instance is late then). A check handed over stays scheduled a heartbeat more: the run of its last slot
        here may start late (a busy loop), after the heartbeat that follows the hand-over; unscheduled, it was run
        by no instance, and counted by none."""
        return any(_owner(counted, key) == self.id for counted in self._shares())

    def writes(self, key: str) -> bool:
        """Whether this instance writes a change of component `key`: a check's verdict if it owns the check in the
        primary location (it combines the locations' memories), its location's own memory of a check it owns
        while several locations live, the derived ones if it leads."""
        check, location = split_key(key)
        if location is not None:
            return location == self.location and self.owns(check) and len(self.locations()) > 1
        if key.startswith("check:"):
            return self.view.primary == self.location and self.owns(key)
        return self.leading

    def follows(self, key: str) -> bool:
        """A check whose verdict another instance writes (its owner in the primary location: it expires it), or
        another's memory of a check from its location: this one reads what it stored. A check taken over is followed
        until its first result here: what this board followed of it may be older than the store's (the others tell
        changes of state, not every result), and expiring that copy would write a false "unknown" (the first run
        reads the stored memory first, `taken`)."""
        check, location = split_key(key)
        if location is not None:
            return location != self.location or check in self._taking or not self.owns(check)
        return key in self._taking or not self.writes(key)

    def locations(self) -> set[str]:
        """The locations with a live instance (this one's included)."""
        return {m.location for m in self.view.alive} | {self.location}

    # --- heartbeats --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """The first heartbeat (StoreError if it cannot be written), then one every `heartbeat` seconds."""
        await self.beat(strict=True)
        if self.follower is not None:
            self.follower.start()
        log.info("instance %s joined location %s (%d live)", self.id[:8], self.location, len(self.view.members))
        self._task = asyncio.create_task(self._run(), name="tpmon-cluster")

    async def beat(self, *, strict: bool = False) -> None:
        """Write the heartbeat and read the members, keep or try the lead, follow the others' checks.

        The new share and the lead apply only after the following: the checks this instance takes over were read
        as their last owner stored them, and a new leader first writes what the stored derived states missed
        (`before_lead`), so that every component's chain of transitions goes on where the store left it.
        """
        if self.late_runs != self._told_late:
            log.warning("instance late: %d run(s) of its share left undone so far", self.late_runs)
            self._told_late = self.late_runs
        sent = time.monotonic()
        view = self.view
        try:
            reading = await asyncio.to_thread(self._members.beat)
        except StoreError as exc:
            if strict:
                raise
            log.warning("%s; the share of the checks stays as last read", exc)
            view = dataclasses.replace(view, fenced=False)  # the others cannot read either: everyone goes on
        else:
            view = self._read(reading, time.monotonic() - sent)
        if view.primary == self.location:  # the leader writes facts: it is one of the writing location
            leading = await asyncio.to_thread(self._leadership.hold)
        else:
            leading = False
            await asyncio.to_thread(self._leadership.release)
        self._beats += 1
        listening = self.follower is not None and self.follower.listening.is_set()
        moved = {m.id for m in view.alive} != {m.id for m in self.view.alive} or leading != self.leading
        if self._follow is not None and (not listening or moved or self._beats % FOLLOW_ALL_EVERY == 0):
            # with the share as it was: what this instance takes over is read too. While the store's notifications
            # arrive, they carry every change of state; this full reading brings the rest (streaks, last results)
            await self._follow()
        if leading and not self.leading and self._before_lead is not None:
            try:
                await self._before_lead()
            except StoreError as exc:
                log.warning("lead not taken, the stored states could not be read: %s", exc)
                await asyncio.to_thread(self._leadership.release)
                leading = False
        here = {m.id for m in view.alive if m.location == self.location}
        if here != {m.id for m in self.view.alive if m.location == self.location}:
            log.info("location %s: %d live instance(s)", self.location, len(here))
        self.view = view
        shares = self._shares()
        if self._on_share is not None and shares != self._scheduled_for:
            self._scheduled_for = shares  # what the checks scheduled here follow: nothing else to do while it holds
            self._on_share()
        if leading != self.leading:
            self.leading = leading
            if self._on_lead is not None:
                self._on_lead(leading)

    def _read(self, reading: Reading, took: float) -> View:
        """The view a heartbeat's reading gives (`took` seconds to write and read), the database's clock offset."""
        # measured around the statement that read the database's clock; else (a reading of a test) around the whole
        # heartbeat, whose thread hops and other statements put its middle tens of milliseconds off on a busy loop
        local = reading.local if reading.local is not None else self._clock() - timedelta(seconds=took / 2)
        self.offset = reading.at - local
        view = View(self.id, reading.members, self.heartbeat, reading.at, self.location)
        before = next((m for m in self.view.members if m.id == self.id), None)
        mine = next((m for m in reading.members if m.id == self.id), None)
        gap = timedelta(seconds=self.heartbeat * (BEAT + SLOW))
        late = before is not None and mine is not None and mine.heartbeat_at - before.heartbeat_at > gap
        if late or (before is not None and took > self.heartbeat * SLOW):
            # this heartbeat came late, or slowly: the others may have taken the share meanwhile (a reading did
            # not show it); they read it again first
            again = timedelta(seconds=took + self.heartbeat * (BEAT + SLOW))
            view = dataclasses.replace(view, resumes_at=reading.at + again)
        return view

    def _shares(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """What `may_own` depends on: the members of this location counted a heartbeat ago, now and at the
        look-ahead."""
        now = self._clock() + self.offset
        ahead = now + timedelta(seconds=self.heartbeat * (MISSED_BEATS + 1))
        behind = now - timedelta(seconds=self.heartbeat)
        return self.view.counted(behind), self.view.counted(now), self.view.counted(ahead)

    async def _run(self) -> None:
        every = self.heartbeat * BEAT  # twice per heartbeat: a dead member is seen missing in time
        next_at = time.monotonic() + every
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += every
            if next_at < time.monotonic():  # a late heartbeat: the next one a full period later
                next_at = time.monotonic() + every
            try:
                await self.beat()
            except Exception:  # a bug must not end the heartbeats: the others would take every check
                log.exception("heartbeat failed")

    async def stop(self) -> None:
        """No more heartbeats; the row deleted and the lead let go, so that the others take over at once."""
        self._leaving = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.follower is not None:
            await self.follower.stop()
        await asyncio.to_thread(self._members.leave)
        await asyncio.to_thread(self._leadership.release)
        self.leading = False
