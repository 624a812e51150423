"""The two listeners of `tpmon serve` in one process: the public site, and the operators' listener (write API,
partners' pushes, staff sign-in) on its own address — 127.0.0.1:8081 by default, so that the public port has no
admin route at all. One set of Services (the public app's lifespan builds them); on SIGTERM or SIGINT the
operators' listener stops first, then the public one, each finishing its requests. Each listener has its own
limits (`listener_limits.py`): a flood of the public port never takes the operators' connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from socket import socket
from types import FrameType
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from .app import WEB_GRACE, QuietServer
from .listener_limits import ListenerLimits, uvicorn_settings

__all__ = ["admin_server", "listener_config", "public_server", "serve_listeners"]


def listener_config(
    app: ASGIApp, host: str, port: int, limits: ListenerLimits, *, lifespan: Literal["auto", "on", "off"] = "on"
) -> uvicorn.Config:
    """uvicorn's config of one listener, with its limits on connections, request heads and idle time."""
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan=lifespan, **uvicorn_settings(limits)
    )


class _Front(QuietServer):
    """The public listener's server: it owns the Services, catches the signals, and lets the operators' listener
    (`behind`) stop first."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.behind: uvicorn.Server | None = None

    async def startup(self, sockets: list[socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.behind is not None:
            self.arm_deadline()  # the whole shutdown, both listeners included, is bounded from the first signal
            self.behind.handle_exit(sig, frame)  # a second Ctrl-C forces it, as uvicorn does
            return
        super().handle_exit(sig, frame)


class _Behind(uvicorn.Server):
    """The operators' listener's server: it borrows the Services and leaves the signals to the public one; its
    open requests get `WEB_GRACE` s at shutdown, as the public one's."""

    def __init__(self, config: uvicorn.Config) -> None:
        if config.timeout_graceful_shutdown is None:
            config.timeout_graceful_shutdown = WEB_GRACE
        super().__init__(config)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def public_server(app: ASGIApp, host: str, port: int, limits: ListenerLimits) -> QuietServer:
    return _Front(listener_config(app, host, port, limits))


def admin_server(app: ASGIApp, host: str, port: int, limits: ListenerLimits) -> uvicorn.Server:
    """The operators' listener; its lifespan borrows the Services the public one started."""
    return _Behind(listener_config(app, host, port, limits))


async def serve_listeners(public: QuietServer, admin: uvicorn.Server | None) -> None:
    """Serve the public listener, then (once it is up) the operators' one; stop the operators' one first."""
    front_task = asyncio.create_task(public.serve())
    if admin is None or not isinstance(public, _Front):
        await front_task
        return
    ready = asyncio.create_task(public.ready.wait())
    await asyncio.wait({front_task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if front_task.done() or public.should_exit:
        ready.cancel()
        await front_task
        return
    public.behind = admin
    try:
        await admin.serve()
    finally:
        public.behind = None
        public.should_exit = True  # the operators' listener is closed: now the public one, then the Services
        await front_task
