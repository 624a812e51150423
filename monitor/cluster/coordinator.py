"""One instance among several on PostgreSQL, at run time: heartbeats, the share of the checks, the lead.

Every heartbeat: write this instance's row and read its location's (`members.Members`), keep or try the lead
(`members.Leadership`), then follow what the others stored of the checks they probe. Between heartbeats,
`owns(key, at)` says whether this instance runs a check's slot due at `at` (`ownership.View`), and `writes(key)`
whether it writes a component's change: a check's by its owner, a flow's, line's or network's by the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from monitor.errors import StoreError
from monitor.store import Store

from .members import Leadership, Members
from .ownership import View

__all__ = ["Coordinator"]

log = logging.getLogger("tpmon.cluster")


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.location = location
        self.heartbeat = heartbeat
        self._members = Members(store, self.id, location, heartbeat, host=socket.gethostname(), pid=os.getpid())
        self._leadership = Leadership(store, heartbeat)
        self._follow = follow
        self._on_lead = on_lead
        self._clock = clock  # the wall clock; the database's is this plus `offset`
        self.offset = timedelta(0)
        self.view = View(self.id, (), heartbeat)
        self.leading = False
        self._task: asyncio.Task[None] | None = None

    # --- between heartbeats ------------------------------------------------------------------------------------
    def owns(self, key: str, at: datetime | None = None) -> bool:
        """Whether this instance runs the slot of check `key` due at `at` (now by default)."""
        return self.view.owns(key, (at or self._clock()) + self.offset)

    def writes(self, key: str) -> bool:
        """Whether this instance writes a change of component `key`: its checks', and the derived ones if it leads."""
        return self.owns(key) if key.startswith("check:") else self.leading

    def follows(self, key: str) -> bool:
        """A check another instance probes now: its owner writes and expires it; this one reads what it stored."""
        return not self.owns(key)

    # --- heartbeats --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """The first heartbeat (StoreError if it cannot be written), then one every `heartbeat` seconds."""
        await self.beat(strict=True)
        log.info("instance %s joined location %s (%d live)", self.id[:8], self.location, len(self.view.members))
        self._task = asyncio.create_task(self._run(), name="tpmon-cluster")

    async def beat(self, *, strict: bool = False) -> None:
        """Write the heartbeat and read the members, keep or try the lead, follow the others' checks."""
        sent = time.monotonic()
        try:
            reading = await asyncio.to_thread(self._members.beat)
        except StoreError as exc:
            if strict:
                raise
            log.warning("%s; the share of the checks stays as last read", exc)
        else:
            half_way = self._clock() - timedelta(seconds=(time.monotonic() - sent) / 2)
            self.offset = reading.at - half_way
            view = View(self.id, reading.members, self.heartbeat, reading.at)
            if {m.id for m in view.alive} != {m.id for m in self.view.alive}:
                log.info("location %s: %d live instance(s)", self.location, len(view.alive))
            self.view = view
        leading = await asyncio.to_thread(self._leadership.hold)
        if leading != self.leading:
            self.leading = leading
            if self._on_lead is not None:
                self._on_lead(leading)
        if self._follow is not None:
            await self._follow()

    async def _run(self) -> None:
        next_at = time.monotonic() + self.heartbeat
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.heartbeat
            if next_at < time.monotonic():  # a late heartbeat: the next one a full heartbeat later
                next_at = time.monotonic() + self.heartbeat
            try:
                await self.beat()
            except Exception:  # a bug must not end the heartbeats: the others would take every check
                log.exception("heartbeat failed")

    async def stop(self) -> None:
        """No more heartbeats; the row deleted and the lead let go, so that the others take over at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self._members.leave)
        await asyncio.to_thread(self._leadership.release)
        self.leading = False
