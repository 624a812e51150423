"""Helpers of the store suite: sample records, polling with a deadline, a TCP proxy that can cut a link."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import make_url

from monitor.models import ComponentRef, ProbeResult, Source, State, Transition

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
CHECK = ComponentRef.for_check("viamedis", "portail_ps", "home")


def sample_result(i: int, check: ComponentRef = CHECK) -> ProbeResult:
    return ProbeResult(check, T0 + timedelta(seconds=i), 0.1, success=True, phases={"connect": 0.01})


def sample_transition(i: int, ref: ComponentRef = CHECK) -> Transition:
    state, previous = (State.DOWN, State.OPERATIONAL) if i % 2 else (State.OPERATIONAL, State.DOWN)
    at = T0 + timedelta(minutes=i)
    return Transition(ref, previous, state, at=at, recorded_at=at, source=Source.PROBE, detail=f"t{i}")


async def until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    """Poll `condition` on the event loop until it holds; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"condition not met within {deadline} s")
        await asyncio.sleep(0.01)


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `cut()` drops every link and refuses new ones until `restore()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.is_cut = False
        self.is_stalled = False  # links stay open but nothing goes through: a hung database
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._link(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self.is_cut:  # cut while connecting upstream
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self._links.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        self._links.difference_update((writer, upstream_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not self.is_stalled:
                    writer.write(data)
                    await writer.drain()
        writer.transport.abort()

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self._links):
            writer.transport.abort()

    def restore(self) -> None:
        self.is_cut = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def proxied_url(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
