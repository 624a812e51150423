"""The probe workers of `tpmon serve --probe-workers N`, seen from the main process, which alone writes.

N worker processes (`probe_worker.py`) each probe their share of the checks (`probe_wire.owner`: the same share
after every restart) and send back what they probed; the main process folds every result into the board, the
store writer and the metrics exactly as a probe of its own (`PoolSink.take`, `runner.Pipeline.take` in `app.py`).

- **A worker that dies** (killed, crashed) is started again at once — after `RESTART_DELAY` s if it lived less
  than that, so that one that cannot start does not spin. It is told when each of its checks was next due (the
  last result seen + its interval): a check whose turn passed while it was down runs within a second
  (`scheduler.OVERDUE_SPREAD`), the others keep their pace — no check probed twice, none left out.
- **A reload** reaches every live worker (`apply`); a worker started later gets the settings of the time.
- **What a worker says** is checked (`probe_wire.decode_batch`): a malformed line or result is dropped and
  counted (`tpmon_probe_worker_bad_messages_total`), never raised; a result of a check that is not the worker's is
  dropped too.
- **Stop** (`stop`): a stop message to each, then SIGKILL for whoever is still there after `grace` s: within
  `STOP_GRACE` + `KILLED_WAIT` s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from .config import Settings
from .models import ComponentRef, ProbeResult
from .probe_wire import LINE_LIMIT, Control, WireError, control_frame, decode_batch, owner

__all__ = ["RESTART_DELAY", "STOP_GRACE", "PoolSink", "ProbePool", "worker_count"]

log = logging.getLogger("tpmon.probe_pool")

RESTART_DELAY = 1.0  # seconds before starting again a worker that lived less than this
STOP_GRACE = 1.5  # seconds a worker gets to stop before it is killed
KILLED_WAIT = 0.5  # seconds to wait for a killed worker to be gone
MAX_WORKERS = 64


def worker_count(text: str) -> int:
    """`--probe-workers`: a number from 1 to 64, or `auto` (one per core); ValueError otherwise."""
    if text.strip() == "auto":
        return max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    count = int(text.strip())
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"{count} is not between 1 and {MAX_WORKERS}")
    return count


class PoolSink(Protocol):
    """Where the pool hands what the workers probed and what their schedulers saw."""

    def take(self, result: ProbeResult, worker: int) -> None:
        """A result of a check of `worker` (0 … count - 1)."""

    def lag(self, seconds: float) -> None: ...

    def missed(self, runs: int) -> None: ...

    def skipped(self, runs: int) -> None: ...


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    taken: int = 0  # results recorded from this worker (all its lives)


class ProbePool:
    """`count` probe workers kept running, their results handed to `sink` on the main process's event loop."""

    def __init__(
        self,
        count: int,
        sink: PoolSink,
        *,
        registry: CollectorRegistry | None = None,
        speed: float = 1.0,
        log_level: str = "info",
        log_format: str = "text",
        environ: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.count = count
        self._sink = sink
        self._speed = speed
        self._log = (log_level, log_format)
        self._environ = {**os.environ, **(environ or {})}
        self._command = list(command or [sys.executable, "-m", "monitor.probe_worker"])
        self._slots = [_Slot(index) for index in range(count)]
        self._settings: Settings | None = None
        self._known: dict[str, ComponentRef] = {}
        self._owner: dict[str, int] = {}
        self._interval: dict[str, float] = {}
        self._last: dict[str, float] = {}  # check key → epoch seconds of the start of its last probe seen
        self._stopping = False
        self.restarts = 0
        self.bad_messages = 0
        registry = registry or CollectorRegistry()
        self._restarts = Counter(
            "tpmon_probe_worker_restarts_total", "Probe workers started again after they died", registry=registry
        )
        self._bad = Counter(
            "tpmon_probe_worker_bad_messages_total",
            "Malformed lines or results from probe workers, dropped",
            registry=registry,
        )
        Gauge("tpmon_probe_workers", "Probe worker processes running now", registry=registry).set_function(
            lambda: self.alive
        )

    @property
    def alive(self) -> int:
        """Workers running now."""
        return sum(1 for s in self._slots if s.process is not None and s.process.returncode is None)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None and s.process.returncode is None]

    def taken(self) -> list[int]:
        """Results recorded from each worker so far."""
        return [s.taken for s in self._slots]

    async def start(self, settings: Settings) -> None:
        """Start every worker (they probe once they have read the settings)."""
        self._use(settings)
        for slot in self._slots:
            slot.task = asyncio.create_task(self._keep(slot), name=f"tpmon-probe-worker-{slot.index}")

    def apply(self, settings: Settings) -> None:
        """The new settings, to every worker running now (a worker started later gets them when it starts)."""
        self._use(settings)
        frame = control_frame(Control(settings, speed=self._speed))
        for slot in self._slots:
            if slot.writer is not None and not slot.writer.is_closing():
                slot.writer.write(frame)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Tell every worker to stop; kill whoever is still there after `grace` s; wait for them all."""
        self._stopping = True
        frame = control_frame(Control(stop=True))
        for slot in self._slots:
            if slot.writer is not None and not slot.writer.is_closing():
                with contextlib.suppress(OSError):
                    slot.writer.write(frame)
        tasks = [s.task for s in self._slots if s.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for slot in self._slots:
                if slot.process is not None and slot.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        slot.process.kill()
            if late:  # killed: they end at once
                await asyncio.wait(late, timeout=KILLED_WAIT)
            for task in late:
                task.cancel()

    def _use(self, settings: Settings) -> None:
        probed = [(n, c) for n, c in settings.checks() if c.kind != "push"]
        self._settings = settings
        self._known = {}
        self._interval = {}
        for network, check in probed:
            ref = ComponentRef.for_check(network, check.flow, check.name)
            self._known[ref.key] = ref
            self._interval[ref.key] = check.interval / self._speed
        known = self._owner
        self._owner = {key: known[key] if key in known else owner(key, self.count) for key in self._known}
        self._last = {key: at for key, at in self._last.items() if key in self._known}

    def _due(self, index: int) -> dict[str, float]:
        """When each check of worker `index` was next due, from the last result seen of it."""
        return {
            key: at + self._interval[key]
            for key, at in self._last.items()
            if self._owner.get(key) == index and key in self._interval
        }

    async def _keep(self, slot: _Slot) -> None:
        """Run worker `slot`, and again each time it dies, until the pool stops."""
        while not self._stopping:
            began = time.monotonic()
            try:
                await self._run(slot)
            except OSError as exc:  # could not start it (fork refused, no such interpreter…)
                log.error("probe worker %d could not start: %s", slot.index + 1, exc)
            if self._stopping:
                break
            self.restarts += 1
            self._restarts.inc()
            code = slot.process.returncode if slot.process is not None else None
            log.warning("probe worker %d of %d ended (exit %s): starting it again", slot.index + 1, self.count, code)
            if time.monotonic() - began < RESTART_DELAY:
                await asyncio.sleep(RESTART_DELAY)

    async def _run(self, slot: _Slot) -> None:
        """One life of a worker: start it, hand it the settings, read what it probed until it ends."""
        parent, child = socket.socketpair()
        try:
            level, fmt = self._log
            slot.process = await asyncio.create_subprocess_exec(
                *self._command,
                *("--fd", str(child.fileno()), "--index", str(slot.index), "--count", str(self.count)),
                *("--log-level", level, "--log-format", fmt),
                stdin=subprocess.DEVNULL,
                pass_fds=(child.fileno(),),
                env=self._environ,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=LINE_LIMIT)
        try:
            assert self._settings is not None
            writer.write(control_frame(Control(self._settings, due=self._due(slot.index), speed=self._speed)))
            slot.writer = writer
            await self._read(slot, reader)
        finally:
            slot.writer = None
            writer.close()
            process = slot.process
            with contextlib.suppress(TimeoutError):  # it closed its end: it is ending
                await asyncio.wait_for(asyncio.shield(process.wait()), KILLED_WAIT)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()

    async def _read(self, slot: _Slot, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than LINE_LIMIT: skipped up to its end
                self._note_bad(slot, 1, "a line too long")
                continue
            except ConnectionError:
                return
            if not line.endswith(b"\n"):  # the end (a line cut short by the worker's death is dropped)
                return
            self._take(slot, line)

    def _take(self, slot: _Slot, line: bytes) -> None:
        try:
            batch = decode_batch(line, self._known)
        except WireError as exc:
            self._note_bad(slot, 1, str(exc))
            return
        bad = batch.bad
        sink, index, mine = self._sink, slot.index, self._owner
        for result in batch.results:
            key = result.check.key
            if mine.get(key) != index:  # not its check: never recorded twice
                bad += 1
                continue
            self._last[key] = result.started_at.timestamp()
            slot.taken += 1
            sink.take(result, index)
        for lag in batch.lags:
            sink.lag(lag)
        if batch.missed:
            sink.missed(batch.missed)
        if batch.skipped:
            sink.skipped(batch.skipped)
        if bad:
            self._note_bad(slot, bad, "malformed results")

    def _note_bad(self, slot: _Slot, count: int, what: str) -> None:
        if self.bad_messages == 0 or self.bad_messages // 1000 != (self.bad_messages + count) // 1000:
            log.warning("probe worker %d: %s dropped (%d so far)", slot.index + 1, what, self.bad_messages + count)
        self.bad_messages += count
        self._bad.inc(count)
