"""StoreWriter: buffers what the pipeline records and writes it in batches, off the event loop, under a deadline,
retrying; what cannot be written goes to the journal, replayed when the database answers again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from monitor.errors import StoreError
from monitor.models import CheckMemory, ComponentStatus, ProbeResult, Transition
from monitor.store.journal import Journal, journal_path
from monitor.store.store import DEADLINE, Batch, Store, WriteRefused, new_uid

__all__ = ["REPLAY_DEADLINE", "STOP_GRACE", "StoreWriter", "WriterStats", "replay_journal", "start_journal"]

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_GRACE = 5.0  # seconds `stop` gives the last writes before journalling what is left
REPLAY_DEADLINE = 30.0  # seconds for each journal segment replayed at start (up to 1,000 results)


@dataclass
class WriterStats:
    """What the writer did so far; read by metrics and /readyz."""

    buffered_results: int = 0
    buffered_transitions: int = 0
    dropped_results: int = 0  # oldest results dropped past the buffer and the journal, or refused by the DB
    written_results: int = 0
    written_transitions: int = 0
    writes: int = 0  # successful transactions
    failures: int = 0  # failed (or late) write attempts and pings
    write_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100))  # latest durations
    last_error: str = ""  # short, password masked
    db_up: bool = True  # the last write or ping succeeded
    deadline: float = DEADLINE  # a write under way for longer is late: the store counts as down already
    write_started: float | None = None  # on `clock`, while a write or ping is under way
    journal_bytes: int = 0
    journal_segments: int = 0  # segments waiting in the journal
    journalled_results: int = 0
    journalled_transitions: int = 0
    replayed_results: int = 0  # written from the journal (at start, or when the database came back)
    replayed_transitions: int = 0
    journal_failures: int = 0  # spills the journal refused (full disk…): kept in memory, retried
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def late(self) -> bool:
        started = self.write_started
        return started is not None and self.clock() - started > self.deadline

    @property
    def store_up(self) -> bool:
        """The last write (or ping) succeeded and the one under way, if any, is not late."""
        return self.db_up and not self.late


class StoreWriter:
    """Owned by the app's lifespan: `add_*` never block nor raise; a background task writes batches.

    Every write has the store's deadline. If the database is down, late or refuses the disk (SQLite), what is
    buffered goes to the `journal` (when there is one) and is written back, oldest first, as soon as the
    database answers — also at the next start (`replay_journal`). Raw results are kept up to
    `max_buffered_results` in memory plus the journal's own bound, the oldest beyond that dropped and counted;
    transitions (in order, each with a write key that makes a second write a no-op), statuses and memories
    (coalesced by key) are never dropped. When idle, the writer pings the database every `heartbeat`
    seconds, so that `stats.store_up` stays true to it. Call `add_*` from the event loop thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        journal: Journal | None = None,
        max_buffered_results: int = 50_000,
        flush_interval: float = 0.5,
        max_batch: int = 1_000,
        retry_interval: float = 2.0,
        heartbeat: float = 5.0,
        on_write: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.stats = WriterStats(deadline=store.deadline)
        self.on_write = on_write  # called with each successful transaction's duration, in seconds
        self._max_results = max(1, max_buffered_results)
        self._flush_interval = flush_interval
        self._max_batch = max(1, max_batch)
        self._retry_interval = retry_interval
        self._heartbeat = heartbeat
        self._results: deque[ProbeResult] = deque()
        self._transitions: list[tuple[Transition, str]] = []  # with their write keys
        self._statuses: dict[str, ComponentStatus] = {}
        self._memories: dict[str, CheckMemory] = {}
        self._in_flight = 0  # results taken by the write under way
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._journal_executor: ThreadPoolExecutor | None = None
        self._busy: asyncio.Future[Any] | None = None  # the writer thread's current call
        self._stopping = False
        self._contact = time.monotonic()  # last write or ping attempted
        self._journal_stats()

    def add_result(self, result: ProbeResult) -> None:
        if len(self._results) >= self._max_results:
            self._results.popleft()
            self.stats.dropped_results += 1
        self._results.append(result)
        self._count()
        if len(self._results) >= self._max_batch and self.stats.db_up:
            self._wake.set()

    def add_transition(self, transition: Transition) -> None:
        self._transitions.append((transition, new_uid()))
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

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop within about `grace` + 1 s: write what can be written in `grace`, journal the rest.

        A write still under way when the grace is over is aborted (its batch is journalled, never lost).
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        task, self._task = self._task, None
        self._stopping = True
        self._wake.set()
        if task is not None and not await self._finish(task, end - loop.time()):
            self.stats.last_error = f"no answer from the database within {grace:g} s"
        flushed = False
        if self.stats.store_up and loop.time() < end and not self._drained():
            flushing = asyncio.create_task(self.flush(), name="tpmon-store-last-flush")
            if await self._finish(flushing, end - loop.time()):
                flushed = flushing.result()
            else:
                self.stats.last_error = f"no answer from the database within {grace:g} s"
        await self._idle(1.0)  # the writer thread is done with any write: what is journalled cannot commit too
        await self._spill()
        for executor in (self._executor, self._journal_executor):
            if executor is not None:
                executor.shutdown(wait=False)
        self._executor = self._journal_executor = None
        unsaved = (self.stats.buffered_results, self.stats.buffered_transitions)
        if unsaved != (0, 0):
            log.error(
                "store writer stopped with %d results and %d transitions neither written nor journalled: %s",
                *unsaved,
                self.stats.last_error or "no journal",
            )
        elif not flushed and (self.stats.journal_segments or self.stats.journalled_transitions):
            log.warning(
                "store writer stopped; %d journal segments (%d bytes) will be written at the next start: %s",
                self.stats.journal_segments,
                self.stats.journal_bytes,
                self.stats.last_error,
            )

    async def _finish(self, task: asyncio.Task[Any], seconds: float) -> bool:
        """Wait for `task` up to `seconds`; then abort the store's operations and give it 1 s more, then cancel."""
        done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
        if not done:
            self.store.abort_operations()
            done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        return not task.cancelled() and task.exception() is None

    async def _idle(self, seconds: float) -> None:
        busy = self._busy
        if busy is not None and not busy.done():
            done, _ = await asyncio.wait({busy}, timeout=seconds)
            if not done:
                self.store.abort_operations()
                await asyncio.wait({busy}, timeout=seconds)

    async def flush(self) -> bool:
        """Write the journal's segments, then everything buffered now, in batches of `max_batch`; False if a
        write failed (or was late)."""
        async with self._flushing:
            if not await self._replay():
                return False
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
            ok = await self.flush()
            if ok and time.monotonic() - self._contact >= self._heartbeat:
                ok = await self._ping()
            if not ok and not self._stopping:
                await self._spill()
            delay = self._flush_interval if ok else self._retry_interval

    @property
    def behind(self) -> bool:
        """Transitions or statuses of this instance not yet in the database (buffered, or waiting in the journal):
        what the database holds of them is older than what this instance knows."""
        return bool(self._transitions or self._statuses) or (self.journal is not None and bool(self.journal.pending()))

    @property
    def cut_off(self) -> bool:
        """Writes of this instance held back by a database that failed (the last write or ping failed, or the
        journal waits): what the database holds of what it probes is older than what it knows — not the few
        milliseconds of a buffer between two flushes."""
        return not self.stats.db_up or (self.journal is not None and bool(self.journal.pending()))

    def _drained(self) -> bool:
        return not (self._results or self._transitions or self._statuses or self._memories) and not (
            self.journal is not None and self.journal.pending()
        )

    def _take(self, results: int | None = None) -> Batch:
        count = min(len(self._results), self._max_batch if results is None else results)
        transitions = list(self._transitions) if results is not None else self._transitions[: self._max_batch]
        batch = Batch(
            results=[self._results.popleft() for _ in range(count)],
            transitions=[transition for transition, _ in transitions],
            statuses=self._statuses,
            memories=self._memories,
            uids=[uid for _, uid in transitions],
        )
        del self._transitions[: len(transitions)]
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
        self._transitions[:0] = list(zip(batch.transitions, batch.keys(), strict=True))
        self._statuses = batch.statuses | self._statuses
        self._memories = batch.memories | self._memories
        self._in_flight = 0
        self._count()

    async def _replay(self) -> bool:
        """Write the journal's segments, oldest first; False at the first that fails."""
        journal = self.journal
        if journal is None:
            return True
        for segment in journal.pending():
            try:
                batch = await self._in_thread(journal.load, segment)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("journal %s: segment %s unreadable, skipped: %s", journal.path, segment.id, exc)
                self.stats.journal_failures += 1
                await self._in_thread(journal.skip, segment)
                continue
            if not await self._write(batch, replay=True):
                return False
            await self._in_thread(journal.written, segment)
            self._journal_stats()
            if not journal.pending():
                log.info("journal %s written to the database and emptied", journal.path)
        return True

    async def _spill(self) -> None:
        """Move what is buffered to the journal (raw results up to its room); kept in memory if it fails."""
        journal = self.journal
        if journal is None:
            return
        async with self._flushing:
            batch = self._take(results=journal.room_for_results())
            if batch.empty:
                return
            if self._journal_executor is None:  # its own thread: neither a hung write nor DNS lookups delay it
                self._journal_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpmon-journal")
            try:
                await asyncio.get_running_loop().run_in_executor(self._journal_executor, journal.append, batch)
            except OSError as exc:
                self._put_back(batch)
                self.stats.journal_failures += 1
                log.error("cannot journal %s: %s", journal.path, exc.strerror or exc)
                return
            finally:
                self._in_flight = 0
                self._count()
            self.stats.journalled_results += len(batch.results)
            self.stats.journalled_transitions += len(batch.transitions)
            self._journal_stats()

    async def _write(self, batch: Batch, *, replay: bool = False) -> bool:
        started = time.perf_counter()
        self.stats.write_started = self.stats.clock()
        self._contact = time.monotonic()
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
        except asyncio.CancelledError:  # at least once: the thread may still commit it (transitions: once)
            if not replay:
                self._put_back(batch)
            raise
        except Exception as exc:  # StoreError, or a bug: keep the batch either way
            if not replay:
                self._put_back(batch)
            self._failed(exc)
            return False
        finally:
            self.stats.write_started = None
            self._in_flight = 0
            self._count()
        self._succeeded(time.perf_counter() - started)
        return True

    async def _ping(self) -> bool:
        self.stats.write_started = self.stats.clock()
        self._contact = time.monotonic()
        try:
            await self._in_thread(self.store.ping)
        except Exception as exc:
            self._failed(exc)
            return False
        finally:
            self.stats.write_started = None
        if not self.stats.db_up:
            log.info("the database answers again")
        self.stats.db_up = True
        return True

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the writer's own thread: probes' DNS lookups can never starve it."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpmon-store")
        future = asyncio.get_running_loop().run_in_executor(self._executor, func, *args)
        self._busy = future
        return await future

    def _failed(self, exc: Exception) -> None:
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

    def _journal_stats(self) -> None:
        if self.journal is not None:
            self.stats.journal_bytes = self.journal.size_bytes
            self.stats.journal_segments = len(self.journal.pending())
            self.stats.replayed_results = self.journal.replayed_results  # at start too (`replay_journal`)
            self.stats.replayed_transitions = self.journal.replayed_transitions


def replay_journal(store: Store, journal: Journal, *, deadline: float = REPLAY_DEADLINE) -> tuple[int, int]:
    """Write every segment of `journal` to `store`, oldest first (at start, before anything reads the store);
    (results, transitions) written. StoreError if the database fails: the journal keeps what is left."""
    results = transitions = 0
    for segment in journal.pending():
        try:
            batch = journal.load(segment)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("journal %s: segment %s unreadable, skipped: %s", journal.path, segment.id, exc)
            journal.skip(segment)
            continue
        try:
            store.write(batch, deadline=deadline)
        except WriteRefused as exc:
            log.error("the database refused a journal segment, writing it piecewise: %s", exc)
            salvage = _Salvage(batch)
            salvage.run(store)
        journal.written(segment)
        results += segment.results
        transitions += segment.transitions
    if results or transitions:
        log.info("journal %s: %d results, %d transitions written to the database", journal.path, results, transitions)
    return results, transitions


class _Salvage:
    """Writes a refused batch piecewise (in a thread), halving the results to isolate the refused ones."""

    def __init__(self, batch: Batch) -> None:
        self.rest = batch  # what is left to write; put back by the caller if `run` raises
        self.written = Batch()
        self.refused: list[ProbeResult] = []

    def run(self, store: Store) -> None:
        batch = self.rest
        others = Batch([], batch.transitions, batch.statuses, batch.memories, batch.keys(), batch.segment)
        if not store.write(others):  # refused too: raises, and the whole batch is retried later
            self.rest = Batch()  # a journal segment written before: its results too
            return
        self.written.transitions = others.transitions
        pending = deque([batch.results])
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


def start_journal(store: Store, url: str) -> Journal | None:
    """Open the journal of `url` (`journal.journal_path`; None for an in-memory SQLite) and write what it holds
    to `store` — before anything reads the store. StoreError in one line if either fails."""
    path = journal_path(url)
    if path is None:
        return None
    journal = Journal.open(path, database=url)
    try:
        replay_journal(store, journal)
    except BaseException:
        journal.close()
        raise
    return journal
