"""A TCP proxy the tests control, for database faults: `pass` forwards, `cut` closes every connection and refuses new
ones, `hang` accepts and forwards nothing (the case that finds missing deadlines).

It runs its own event loop in a thread, so a test (or a fixture) can switch modes while tpmon talks through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Literal

Mode = Literal["pass", "cut", "hang"]


class TcpProxy:
    """127.0.0.1:`port` → `target_host`:`target_port`, in the mode the test sets."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None  # set unless hanging; made on the proxy's loop
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TCP proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        self._writers.add(writer)
        if self.mode == "hang":
            return  # accepted, never answered: the client waits until its own deadline
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                assert self._flowing is not None
                await self._flowing.wait()  # hanging: stop forwarding, keep the connection open
                if self.mode == "cut":
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def set_mode(self, mode: Mode) -> None:
        """Switch mode, applied on the proxy's loop before this returns; `cut` also closes every open connection."""

        async def apply() -> None:
            self.mode = mode
            assert self._flowing is not None
            if mode == "hang":
                self._flowing.clear()
            else:
                self._flowing.set()
            if mode == "cut":
                for writer in list(self._writers):
                    writer.close()
                self._writers.clear()

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(10)

    def close(self) -> None:
        async def stop() -> None:
            for writer in list(self._writers):
                writer.close()
            if self._server is not None:
                self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
