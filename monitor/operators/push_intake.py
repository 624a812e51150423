"""Partners' pushes written in groups: each request waits until its signal is committed, and every signal that
arrives while a write runs goes into the next one (group commit). A thousand pushes a second cost tens of
transactions, not a thousand, and an answered push is never lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from ..errors import StoreError
from ..store import Store
from ..store.signal_store import NewSignal, StoredSignal, add_signals

__all__ = ["IntakeBusy", "PushIntake"]

log = logging.getLogger("tpmon.push")

Waiting = tuple[NewSignal, "asyncio.Future[StoredSignal]"]


class IntakeBusy(StoreError):
    """More pushes wait than the intake holds, or it is not running: the partner retries shortly."""


class PushIntake:
    """Owned by the app's lifespan (`start`, `stop`). `accept` returns once the signal is in the store."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] | None = None,
        max_batch: int = 1000,
        max_waiting: int = 20_000,
    ) -> None:
        self.store = store
        self.clock = clock  # when signals are received (the app's clock: the demo's is virtual); None: the store's
        self.max_batch = max_batch
        self._queue: asyncio.Queue[Waiting] = asyncio.Queue(max_waiting)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # transactions written, for tests and the benchmark
        self.accepted = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tpmon-push-intake")

    async def accept(self, signal: NewSignal) -> StoredSignal:
        """Append `signal` to the inbox; StoreError (IntakeBusy when saturated) if it cannot be written."""
        if self._task is None or self._task.done() or self._closing:
            raise IntakeBusy("the push intake is not running")
        waiting: asyncio.Future[StoredSignal] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((signal, waiting))
        except asyncio.QueueFull:
            raise IntakeBusy("too many pushes are waiting to be written") from None
        return await waiting

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Waiting]) -> None:
        try:
            at = self.clock() if self.clock is not None else None
            stored = await asyncio.to_thread(add_signals, self.store, [signal for signal, _ in batch], received_at=at)
        except StoreError as exc:
            log.warning("%d pushes not written: %s", len(batch), exc)
            for _, waiting in batch:
                if not waiting.done():
                    waiting.set_exception(exc)
            return
        self.batches += 1
        self.accepted += len(stored)
        for (_, waiting), signal in zip(batch, stored, strict=True):
            if not waiting.done():  # the partner may have hung up meanwhile: the signal is stored all the same
                waiting.set_result(signal)

    async def stop(self, *, within: float = 10.0) -> None:
        """Refuse new pushes, write those still waiting (for at most `within` seconds), then stop."""
        if self._task is None:
            return
        self._closing = True
        if not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), within)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
