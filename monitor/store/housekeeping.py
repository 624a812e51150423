"""Periodic upkeep of the store off the event loop: availability rollups, then hourly pruning of raw results, of the
audit trail past its retention, of idempotency keys and of long-ended sessions."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import Settings
from monitor.errors import StoreError
from monitor.models import ComponentRef
from monitor.store.audit_store import prune_audit
from monitor.store.idempotency_store import prune_idempotency
from monitor.store.rollup_store import prune_results, roll_up
from monitor.store.staff_store import StaffStore
from monitor.store.store import Store

__all__ = ["Housekeeper", "HousekeepingReport", "component_keys"]

log = logging.getLogger(__name__)

ROLLUP_EVERY = 300.0  # seconds between runs the app should schedule
PRUNE_EVERY = timedelta(hours=1)
IDEMPOTENCY_KEPT = timedelta(hours=24)  # a client retries a write within a day, or sends a new key
SESSIONS_KEPT = timedelta(days=7)  # after its last use, well past any session's end


def component_keys(settings: Settings) -> list[str]:
    """Every configured component: checks, each network's flows and lines, networks (as the board has them)."""
    keys: list[str] = []
    for name, network in settings.networks.items():
        keys += [ComponentRef.for_check(name, check.flow, check.name).key for check in network.checks]
        keys += [ComponentRef("flow", name, flow).key for flow in network.flow_names(settings.flows)]
        keys += [ComponentRef("line", name, line).key for line in network.lines]
        keys.append(ComponentRef("network", name).key)
    return keys


@dataclass(frozen=True)
class HousekeepingReport:
    rollups: int | None  # rollups written; None if the roll-up failed
    pruned: int | None  # raw results deleted; None if pruning was not due or failed


class Housekeeper:
    """Owned by the app's lifespan; `run` every `ROLLUP_EVERY` seconds. The blocking work runs in a thread.

    Remembers the last transition id rolled up (so late-written transitions are rolled up too) and when it
    last pruned (pruning runs on the first call, then once per `prune_every`). A failure is logged and
    retried on the next run; nothing is lost, since rollups are recomputed from the transitions.
    """

    def __init__(
        self,
        store: Store,
        *,
        prune_every: timedelta = PRUNE_EVERY,
        batch_size: int = 500,
        pause: float = 0.01,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.prune_every = prune_every
        self.batch_size = batch_size
        self.pause = pause  # seconds between pruning batches, for the store writer's sake
        self._after_id: int | None = None
        self._pruned_at: datetime | None = None
        self._running = asyncio.Lock()
        self._stop = stop if stop is not None else threading.Event()  # set: a shutdown (see `stop`)

    def stop(self) -> None:
        """A shutdown: a run under way ends after the component or batch it is at; no run starts again."""
        self._stop.set()

    async def run(self, settings: Settings, now: datetime) -> HousekeepingReport:
        """Roll up what changed since the last run, then prune raw results if an hour has passed."""
        async with self._running:
            rolled: int | None = None
            if self._stop.is_set():
                return HousekeepingReport(None, None)
            try:
                done = await asyncio.to_thread(
                    roll_up, self.store, component_keys(settings), now, after_id=self._after_id, stop=self._stop
                )
            except StoreError as exc:
                log.warning("availability roll-up failed, retrying next run: %s", exc)
            else:
                rolled = done.rows
                if done.through_id is not None:
                    self._after_id = done.through_id
            pruned: int | None = None
            if self._pruned_at is None or now - self._pruned_at >= self.prune_every:
                pruned = await self._prune(settings, now)
            return HousekeepingReport(rolled, pruned)

    async def _prune(self, settings: Settings, now: datetime) -> int | None:
        retention = settings.raw_retention_days
        try:
            pruned = await asyncio.to_thread(
                prune_results,
                self.store,
                now,
                retention,
                batch_size=self.batch_size,
                pause=self.pause,
                stop=self._stop,
            )
        except StoreError as exc:
            log.warning("pruning raw results failed, retrying next run: %s", exc)
            return None
        self._pruned_at = now
        if pruned:
            log.info("pruned %d raw results older than %d days", pruned, retention)
        await self._prune_operators(settings, now)
        return pruned

    async def _prune_operators(self, settings: Settings, now: datetime) -> None:
        """The audit trail past `admin.audit_retention_days`, idempotency keys after a day, ended sessions."""
        kept = timedelta(days=settings.admin.audit_retention_days)
        try:
            audited = 0
            while done := await asyncio.to_thread(prune_audit, self.store, now - kept, self.batch_size):
                audited += done
                await asyncio.sleep(self.pause)
            await asyncio.to_thread(prune_idempotency, self.store, now - IDEMPOTENCY_KEPT)
            await asyncio.to_thread(StaffStore(self.store).prune_sessions, now - SESSIONS_KEPT)
        except StoreError as exc:
            log.warning("pruning the operators' records failed, retrying next run: %s", exc)
            return
        if audited:
            log.info("pruned %d audit events older than %d days", audited, settings.admin.audit_retention_days)
