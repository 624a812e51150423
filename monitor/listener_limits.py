"""The limits of `tpmon serve`'s listeners (the public one and the operators'): file descriptors budgeted for
probes and the store first, then a connection cap for each listener, a deadline and a size cap on request heads,
a deadline on request bodies, idle keep-alive and stalled-write timeouts, around uvicorn.

Whoever reaches a web port must never be able to take what the probes need (issue 11: 20,000 idle half-sent
requests took every descriptor, probes failed with "Too many open files" and healthy networks went down), nor
lock the operators out: each listener has its own cap and its own table of idle connections.
uvicorn's httptools protocol has no header size limit, no deadline before the first request head and no cap on
open connections (`limit_concurrency` answers 503 only once a head is complete), so `guarded_protocol` adds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import socket
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings
from .errors import MonitorError
from .i18n import said

__all__ = ["ListenerLimits", "budget_file_descriptors", "guarded_protocol", "uvicorn_settings"]

log = logging.getLogger("tpmon.listener")

FILES_PER_PROBE = 2  # its socket, and the resolver's while it looks the name up
FILES_FOR_THE_REST = 64  # the store's pool and files, logs, the event loop's own, uvicorn's listening socket
MIN_CONNECTIONS = 16
ADMIN_SHARE = 8  # the operators' listener gets this fraction of the room (1/8), the public one the rest


@dataclass(frozen=True)
class ListenerLimits:
    """What one listener allows; `file_limit` and `reserved` say how `max_connections` was derived."""

    max_connections: int
    max_header_bytes: int
    header_timeout: float
    keepalive_timeout: float
    send_timeout: float
    file_limit: int = 0
    reserved: int = 0

    def __str__(self) -> str:
        return (
            f"at most {self.max_connections} connections (file descriptors: limit {self.file_limit}, "
            f"{self.reserved} kept for probes and the store), request heads ≤ {self.max_header_bytes} bytes "
            f"within {self.header_timeout:g} s, idle connections closed after {self.keepalive_timeout:g} s"
        )


def _open_files() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: assume a busy start
        return 256


def budget_file_descriptors(settings: Settings, *, admin: bool = False) -> tuple[ListenerLimits, ListenerLimits | None]:
    """Raise the soft RLIMIT_NOFILE to the hard one, keep what probes and the store need, give the listeners the
    rest: the operators' listener (when `admin`) an eighth of it (at least MIN_CONNECTIONS), the public one the rest.

    MonitorError when a listener would get less than MIN_CONNECTIONS: better not to start than to let readers
    starve probes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:  # a system that refuses: keep the soft limit we have
            log.warning("could not raise the file descriptor limit from %d to %d: %s", soft, wanted, exc)
    limit = int(soft) if soft != resource.RLIM_INFINITY else wanted
    kept_alive = sum(1 for _, check in settings.checks() if getattr(check, "reuse_connection", False))
    reserved = _open_files() + FILES_PER_PROBE * settings.max_concurrency + kept_alive + FILES_FOR_THE_REST
    room = limit - reserved
    web = settings.web
    admin_room = min(web.max_connections, max(MIN_CONNECTIONS, room // ADMIN_SHARE)) if admin else 0
    if room - admin_room < MIN_CONNECTIONS:
        needed = MIN_CONNECTIONS + admin_room
        raise MonitorError(
            said(
                "file descriptors: the limit is {limit} and probes (max_concurrency {concurrency}) and "
                "the store need {reserved}, which leaves {room} for the web listeners (at least {needed}): "
                "raise it (`ulimit -n`, systemd LimitNOFILE=) or lower max_concurrency",
                limit=limit,
                concurrency=settings.max_concurrency,
                reserved=reserved,
                room=max(room, 0),
                needed=needed,
            )
        )

    def limits(connections: int) -> ListenerLimits:
        return ListenerLimits(
            max_connections=connections,
            max_header_bytes=web.max_header_bytes,
            header_timeout=web.header_timeout,
            keepalive_timeout=web.keepalive_timeout,
            send_timeout=web.send_timeout,
            file_limit=limit,
            reserved=reserved,
        )

    public = limits(min(web.max_connections, room - admin_room))
    return public, (limits(admin_room) if admin else None)


_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 30\r\n\r\nrequest head too large / trop\n"
)


_HEAD_END = b"\r\n\r\n"
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def _reset(transport: asyncio.Transport) -> None:
    """Close with a reset, not a FIN after what is queued: the kernel frees the socket and its buffers at once."""
    with contextlib.suppress(OSError, AttributeError):
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


class _Guarded(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `limits`; see `guarded_protocol`."""

    limits: ClassVar[ListenerLimits]
    idle: ClassVar[dict[_Guarded, None]]  # connections waiting for a request head, longest-waiting first

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request head: from the connection (or the previous request's end) to its end
        self._head_bytes = 0  # of the head being read, before the last chunk
        self._tail = b""  # the last bytes of the head so far: its end may straddle two chunks
        self._ended = False  # a request ended in the chunk being parsed
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None

    # --- connections: a cap, and room made by closing the longest-idle one --------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if full and not self._make_room():
            self.connections.discard(self)
            _reset(transport)  # every connection is busy with a request: this one waits outside, not in our fds
            return
        self.idle[self] = None
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_too_slow)

    def _make_room(self) -> bool:
        victim = next(iter(self.idle), None)
        if victim is None:
            return False
        victim._close(abort=True)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        self._cancel_timers()
        super().connection_lost(exc)

    def _close(self, *, abort: bool = False) -> None:
        self.idle.pop(self, None)
        self.connections.discard(self)  # at once: a second newcomer must not close another for the same room
        self._cancel_timers()
        if abort:
            _reset(self.transport)
        elif not self.transport.is_closing():
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._send_timer = None

    # --- request heads: a size cap and a deadline ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._in_head and not self.transport.is_closing() and self._head_over(data):
            self.logger.info("request head over %d bytes: 431", self.limits.max_header_bytes)
            self.transport.write(_TOO_LARGE)
            self._close()
            return
        self._ended = False
        super().data_received(data)
        if not self._in_head and self._body_timer is None and not self.transport.is_closing():
            # a head whose body has not come whole with it (a form, an API write): the body gets as long as a head
            self._body_timer = self.loop.call_later(self.limits.header_timeout, self._body_too_slow)
        if self._ended and self._in_head:  # a request ended in this chunk and the next began: its head so far
            end = data.rfind(_HEAD_END)
            self._head_bytes, self._tail = (len(data) - end - len(_HEAD_END), data[-3:]) if end >= 0 else (0, b"")

    def _head_over(self, data: bytes) -> bool:
        """Whether the head being read, with `data`, is over the cap — checked before the parser sees `data`, so
        that a head that comes whole in one chunk is held to it too. Bytes after the head's end are the body's or
        the next request's: counted once the parser has told which."""
        seen = self._tail + data
        end = seen.find(_HEAD_END)
        if end >= 0:
            return self._head_bytes - len(self._tail) + end + len(_HEAD_END) > self.limits.max_header_bytes
        self._head_bytes += len(data)
        self._tail = seen[-3:]
        return self._head_bytes > self.limits.max_header_bytes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes, self._tail = False, 0, b""
        self.idle.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._ended = True, True  # what comes next is the next request's head
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if not self._in_head:  # the body is still not whole: a slowloris on bodies, or a reader that left
            self._close(abort=True)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.idle[self] = None  # waits for its next request (uvicorn's keep-alive timer runs), or its end

    # --- answers: a reader that takes nothing for send_timeout is cut off ---------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._stalled)

    def _stalled(self) -> None:
        self._send_timer = None
        self._close(abort=True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None


def guarded_protocol(limits: ListenerLimits) -> type[asyncio.Protocol]:
    """A protocol class for uvicorn's `http=` with `limits`, and its own table of idle connections."""
    return type("GuardedHttpTools", (_Guarded,), {"limits": limits, "idle": {}})


def uvicorn_settings(limits: ListenerLimits) -> dict[str, Any]:
    """uvicorn's settings for a listener with `limits`: the guarded protocol, and uvicorn's own where it has them."""
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": max(1, math.ceil(limits.keepalive_timeout)),
        "h11_max_incomplete_event_size": limits.max_header_bytes,  # if someone forces h11
        # uvloop accepts a whole queue in one go: 2048 (uvicorn's default) new connections cost the loop ~0.25 s
        # before a probe's answer is read again; nginx's 511 keeps a flood's bursts short
        "backlog": 511,
    }
