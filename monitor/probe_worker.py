"""A probe worker of `tpmon serve --probe-workers N`: its share of the checks, probed on its own event loop.

Started by the main process (`probe_pool.py`) as `python -m monitor.probe_worker --fd FD --index I --count N`,
with one end of a socket pair as FD. It reads the settings from it (`probe_wire.Control`), schedules the checks it
owns (`probe_wire.owner`) with the same `Scheduler` and probes as the single-process path, and writes back what it
probed in batches (`probe_wire.encode_batch`) every `BATCH_WAIT` s. It writes no store and holds no board: the main
process records every result. It stops, its probes under way cut short, at a stop message or when the main process
is gone (the end of the socket); it ignores SIGTERM and SIGINT, which a terminal or systemd send to the whole
process group: the main process stops its workers itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .config import Check, Settings
from .logs import setup_logging
from .models import ProbeResult
from .probe_wire import Control, encode_batch, owner, read_control
from .probes import ProbeContext, probe_check
from .probes.clients import HttpClients
from .scheduler import Scheduler, SchedulerHooks

__all__ = ["BATCH_WAIT", "MAX_PENDING", "main", "work"]

log = logging.getLogger("tpmon.probe_worker")

BATCH_WAIT = 0.02  # seconds a result may wait for others to go in the same batch
MAX_BATCH = 2048  # results per line at most
MAX_PENDING = 200_000  # results kept while the main process does not read; the oldest are dropped beyond


class _Outbox:
    """What was probed and not yet sent, and what the scheduler saw meanwhile."""

    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.lags: list[float] = []
        self.missed = 0
        self.skipped = 0
        self.dropped = 0
        self.ready = asyncio.Event()

    def add(self, result: ProbeResult) -> None:
        if len(self.results) >= MAX_PENDING:
            del self.results[0]
            self.dropped += 1
        self.results.append(result)
        self.ready.set()

    def lag(self, seconds: float) -> None:
        if len(self.lags) < MAX_PENDING:
            self.lags.append(seconds)

    def take(self) -> bytes:
        results, self.results = self.results[:MAX_BATCH], self.results[MAX_BATCH:]
        lags, self.lags = self.lags[: MAX_BATCH * 2], self.lags[MAX_BATCH * 2 :]
        line = encode_batch(results, lags, self.missed, self.skipped)
        self.missed = self.skipped = 0
        if not (self.results or self.lags):
            self.ready.clear()
        return line


class _Worker:
    """One worker's probes: its scheduler, its clients, and the contexts of its networks."""

    def __init__(self, first: Control, index: int, count: int, outbox: _Outbox) -> None:
        assert first.settings is not None
        self.settings: Settings = first.settings
        self.outbox = outbox
        self.clients = HttpClients()
        self.contexts: dict[str, ProbeContext] = {}
        hooks = SchedulerHooks(outbox.lag, self._note("missed"), self._note("skipped"))
        self.scheduler = Scheduler(self._run, hooks=hooks, speed=first.speed, owns=lambda k: owner(k, count) == index)

    def _note(self, attribute: str) -> Callable[[], None]:
        def count() -> None:
            setattr(self.outbox, attribute, getattr(self.outbox, attribute) + 1)

        return count

    def _context(self, network: str) -> ProbeContext:
        found = self.contexts.get(network)
        if found is None:
            ua, clients = self.settings.user_agent, self.clients
            source = self.settings.cluster.source_address(self.settings.cluster.location)
            found = self.contexts[network] = ProbeContext(
                network, clients.get(), ua, os.environ, clients=clients, source_address=source
            )
        return found

    async def _run(self, network: str, check: Check) -> None:
        self.outbox.add(await probe_check(check, self._context(network)))

    def apply(self, settings: Settings) -> None:
        self.settings = settings
        self.contexts.clear()  # the user agent may have changed
        self.scheduler.apply(settings)


async def work(sock: socket.socket, index: int, count: int, *, stop: asyncio.Event | None = None) -> None:
    """Probe this worker's share until told to stop (a message, or `stop`), or the end of `sock`."""
    stop = stop or asyncio.Event()
    reader, writer = await asyncio.open_connection(sock=sock)
    first = await read_control(reader)
    if first is None or first.stop or first.settings is None:
        writer.close()
        return
    asyncio.get_running_loop().set_default_executor(  # DNS lookups of probes, as in the main process
        ThreadPoolExecutor(max_workers=min(64, first.settings.max_concurrency + 4), thread_name_prefix="tpmon-probe")
    )
    outbox = _Outbox()
    worker = _Worker(first, index, count, outbox)
    worker.scheduler.start(first.settings, first.due)
    log.info("probe worker %d of %d: started (pid %d)", index + 1, count, os.getpid())

    async def send() -> None:
        while True:
            await outbox.ready.wait()
            await asyncio.sleep(BATCH_WAIT)
            while outbox.ready.is_set():
                writer.write(outbox.take())
                await writer.drain()

    async def listen() -> None:
        while True:
            message = await read_control(reader)
            if message is None or message.stop:
                return
            if message.settings is not None:
                worker.apply(message.settings)

    tasks = {asyncio.create_task(send()), asyncio.create_task(listen()), asyncio.create_task(stop.wait())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        worker.scheduler.shutdown()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(OSError, TimeoutError):  # what was probed goes out, if the main process reads
            if outbox.results:
                writer.write(outbox.take())
                await asyncio.wait_for(writer.drain(), 0.5)
        writer.close()
        await worker.clients.aclose()
        log.info("probe worker %d of %d: stopped", index + 1, count)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.probe_worker", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--fd", type=int, required=True, help="the worker's end of the socket pair")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    args = parser.parse_args(argv)
    if not 0 <= args.index < args.count:
        parser.error("--index must be between 0 and --count - 1")
    setup_logging(args.log_level, args.log_format)
    # the main process stops its workers (a stop message, else SIGKILL), and they stop when it is gone (the end of
    # the socket): a SIGTERM or Ctrl-C to the whole group (systemd's default, a terminal) is the main process's
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(work(sock, args.index, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
