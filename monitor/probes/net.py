"""TCP connections for the probes: timed resolution (skipped for an IP literal) and connection, a bounded close."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from contextvars import ContextVar
from typing import Any

__all__ = ["CLOSE_GRACE", "SOURCE_ADDRESS", "Address", "bindable", "close", "literal_address", "open_tcp"]

# The local address the probe under way connects from (its location's `source_address`), set by `probe_check` for
# the probe's task; None: the system chooses.
SOURCE_ADDRESS: ContextVar[str | None] = ContextVar("tpmon_source_address", default=None)

# A polite close (TLS close_notify) waits on the peer; a probe's result never does, beyond this.
CLOSE_GRACE = 0.25

Address = tuple[int, tuple[Any, ...]]  # (address family, socket address)


def literal_address(host: str, port: int) -> Address | None:
    """(family, sockaddr) when `host` is an IPv4 or IPv6 literal (nothing to resolve), else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (host, port) if family == socket.AF_INET else (host, port, 0, 0)
    return None


async def open_tcp(
    host: str, port: int, phases: dict[str, float], literal: Address | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve then connect to each address in turn; adds `resolve` and `connect` to `phases`.

    An IP literal is not resolved (`resolve` stays 0): pass `literal_address(host, port)` when known, else it
    is worked out here. Raises socket.gaierror when the name does not resolve, OSError when no address accepts.
    With a source address (`SOURCE_ADDRESS`), only the addresses of its family are tried, from it.
    """
    start = time.perf_counter()
    if literal is None:
        literal = literal_address(host, port)
    if literal is not None:
        addresses: list[tuple[Any, ...]] = [(literal[0], socket.SOCK_STREAM, 0, "", literal[1])]
        phases["resolve"] = phases.get("resolve", 0.0)
    else:
        addresses = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        phases["resolve"] = phases.get("resolve", 0.0) + time.perf_counter() - start
    resolved = time.perf_counter()
    error: OSError = OSError("no address")
    source = SOURCE_ADDRESS.get()
    local = None if source is None else (source, 0)
    for family, _, _, _, address in addresses:
        if source is not None and _family(source) != family:
            error = OSError(errno.EAFNOSUPPORT, f"no address of the family of the source address {source}")
            continue
        # a numeric host: asyncio and uvloop connect without resolving again (uvloop's sock_connect would)
        try:
            streams = await asyncio.open_connection(address[0], address[1], family=family, local_addr=local)
        except OSError as exc:
            error = exc
            continue
        phases["connect"] = phases.get("connect", 0.0) + time.perf_counter() - resolved
        return streams
    raise error


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def bindable(address: str) -> str | None:
    """None if connections can leave from `address` (an address of this machine), else why not."""
    try:
        with socket.socket(_family(address), socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


async def close(writer: asyncio.StreamWriter) -> None:
    """Close the connection, waiting at most CLOSE_GRACE for the peer before aborting it."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        pass  # closed by an error already: nothing left to release
