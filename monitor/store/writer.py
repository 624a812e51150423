"""StoreWriter: buffers what the pipeline records and writes it in batches, off the event loop, retrying."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import StoreError
from monitor.models import CheckMemory, ComponentStatus, ProbeResult, Transition
from monitor.store.store import Batch, Store, WriteRefused

__all__ = ["StoreWriter", "WriterStats"]

log = logging.getLogger(__name__)


@dataclass
class WriterStats:
    """What the writer did so far; read by metrics and /readyz."""

    buffered_results: int = 0
    buffered_transitions: int = 0
    dropped_results: int = 0  # oldest results dropped past max_buffered_results, or refused by the DB
    written_results: int = 0
    written_transitions: int = 0
    writes: int = 0  # successful transactions
    failures: int = 0  # failed write attempts
    write_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100))  # latest durations
    last_error: str = ""  # short, password masked
    db_up: bool = True


class StoreWriter:
    """Owned by the app's lifespan: `add_*` never block nor raise; a background task writes batches.

    If the database is down, everything is kept and retried every `retry_interval`. Past
    `max_buffered_results` the oldest raw results are dropped and counted; transitions (in order),
    statuses and memories (coalesced by key) are never dropped. Call `add_*` from the event loop thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_buffered_results: int = 50_000,
        flush_interval: float = 0.5,
        max_batch: int = 5_000,
        retry_interval: float = 2.0,
        on_write: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.stats = WriterStats()
        self.on_write = on_write  # called with each successful transaction's duration, in seconds
        self._max_results = max(1, max_buffered_results)
        self._flush_interval = flush_interval
        self._max_batch = max(1, max_batch)
        self._retry_interval = retry_interval
        self._results: deque[ProbeResult] = deque()
        self._transitions: list[Transition] = []
        self._statuses: dict[str, ComponentStatus] = {}
        self._memories: dict[str, CheckMemory] = {}
        self._in_flight = 0  # results taken by the write under way
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    def add_result(self, result: ProbeResult) -> None:
        if len(self._results) >= self._max_results:
            self._results.popleft()
            self.stats.dropped_results += 1
        self._results.append(result)
        self._count()
        if len(self._results) >= self._max_batch and self.stats.db_up:
            self._wake.set()

    def add_transition(self, transition: Transition) -> None:
        self._transitions.append(transition)
        self._count()

    def set_status(self, status: ComponentStatus) -> None:
        self._statuses[status.ref.key] = status

    def set_memory(self, key: str, memory: CheckMemory) -> None:
        self._memories[key] = memory

    async def start(self) -> None:
        """Start the background task that flushes every `flush_interval` (or at `max_batch` results)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="tpmon-store-writer")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the background task, then write what can be written, within `grace` seconds."""
        task, self._task = self._task, None
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(grace):
                if task is not None:
                    await asyncio.shield(task)
                flushed = await self.flush()
        except TimeoutError:  # a write hangs: the database does not answer
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.stats.last_error = f"no answer from the database within {grace:g} s"
            flushed = False
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        if not flushed:
            log.warning(
                "store writer stopped with %d results and %d transitions unwritten: %s",
                self.stats.buffered_results,
                self.stats.buffered_transitions,
                self.stats.last_error,
            )

    async def flush(self) -> bool:
        """Write everything buffered now, in batches of `max_batch`; False if a write failed."""
        async with self._flushing:
            backlog = max(len(self._results), len(self._transitions))
            for _ in range(backlog // self._max_batch + 1):
                batch = self._take()
                if batch.empty:
                    break
                if not await self._write(batch):
                    return False
            return True

    async def _run(self) -> None:
        delay = self._flush_interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            if self._stopping:
                break
            delay = self._flush_interval if await self.flush() else self._retry_interval

    def _take(self) -> Batch:
        count = min(len(self._results), self._max_batch)
        batch = Batch(
            results=[self._results.popleft() for _ in range(count)],
            transitions=self._transitions[: self._max_batch],
            statuses=self._statuses,
            memories=self._memories,
        )
        del self._transitions[: self._max_batch]
        self._statuses, self._memories = {}, {}
        self._in_flight = count
        self._count()
        return batch

    def _put_back(self, batch: Batch) -> None:
        """Return an unwritten batch to the front of the buffers; newer statuses/memories win."""
        self._results.extendleft(reversed(batch.results))
        excess = len(self._results) - self._max_results
        for _ in range(max(0, excess)):
            self._results.popleft()
        self.stats.dropped_results += max(0, excess)
        self._transitions[:0] = batch.transitions
        self._statuses = batch.statuses | self._statuses
        self._memories = batch.memories | self._memories

    async def _write(self, batch: Batch) -> bool:
        started = time.perf_counter()
        try:
            try:
                await self._in_thread(self.store.write, batch)
                self._tally(batch)
            except WriteRefused as exc:
                log.error("the database refused a batch, writing it piecewise: %s", exc)
                salvage = _Salvage(batch)
                try:
                    await self._in_thread(salvage.run, self.store)
                finally:
                    self._tally(salvage.written)
                    self.stats.dropped_results += len(salvage.refused)
                    batch = salvage.rest
        except asyncio.CancelledError:  # at least once: the thread may still commit it
            self._put_back(batch)
            raise
        except Exception as exc:  # StoreError, or a bug: keep the batch either way
            self._failed(batch, exc)
            return False
        finally:
            self._in_flight = 0
            self._count()
        self._succeeded(time.perf_counter() - started)
        return True

    async def _in_thread(self, func: Callable[[Store], None] | Callable[[Batch], None], arg: Any) -> None:
        """Run a blocking write on the writer's own thread: probes' DNS lookups can never starve it."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpmon-store")
        await asyncio.get_running_loop().run_in_executor(self._executor, func, arg)

    def _failed(self, batch: Batch, exc: Exception) -> None:
        self._put_back(batch)
        self.stats.failures += 1
        self.stats.last_error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if not isinstance(exc, StoreError):
            log.exception("unexpected error while writing to the store")
        elif self.stats.db_up:
            log.warning("store write failed, retrying every %.1f s: %s", self._retry_interval, exc)
        self.stats.db_up = isinstance(exc, WriteRefused)

    def _tally(self, written: Batch) -> None:
        self.stats.written_results += len(written.results)
        self.stats.written_transitions += len(written.transitions)

    def _succeeded(self, seconds: float) -> None:
        if not self.stats.db_up:
            log.info("store writes resumed")
        self.stats.db_up = True
        self.stats.writes += 1
        self.stats.write_seconds.append(seconds)
        if self.on_write is not None:
            try:
                self.on_write(seconds)
            except Exception:
                log.exception("store writer on_write hook failed")

    def _count(self) -> None:
        self.stats.buffered_results = len(self._results) + self._in_flight
        self.stats.buffered_transitions = len(self._transitions)


class _Salvage:
    """Writes a refused batch piecewise (in a thread), halving the results to isolate the refused ones."""

    def __init__(self, batch: Batch) -> None:
        self.rest = batch  # what is left to write; put back by the caller if `run` raises
        self.written = Batch()
        self.refused: list[ProbeResult] = []

    def run(self, store: Store) -> None:
        others = Batch([], self.rest.transitions, self.rest.statuses, self.rest.memories)
        store.write(others)  # refused too: raises, and the whole batch is retried later
        self.written.transitions = others.transitions
        pending = deque([self.rest.results])
        try:
            while pending:
                chunk = pending.popleft()
                try:
                    store.write(Batch(chunk))
                except WriteRefused:
                    if len(chunk) > 1:
                        pending.extendleft([chunk[len(chunk) // 2 :], chunk[: len(chunk) // 2]])
                    else:
                        self.refused.extend(chunk)
                        log.error("the database refused a probe result of %s: dropped", chunk[0].check)
                except BaseException:
                    pending.appendleft(chunk)
                    raise
                else:
                    self.written.results.extend(chunk)
        finally:
            self.rest = Batch([result for chunk in pending for result in chunk])
