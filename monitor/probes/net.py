"""TCP connections for the probes: timed resolution (skipped for an IP literal) and connection, a bounded close."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

__all__ = ["CLOSE_GRACE", "Address", "close", "literal_address", "open_tcp"]

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
    for family, _, _, _, address in addresses:
        # a numeric host: asyncio and uvloop connect without resolving again (uvloop's sock_connect would)
        try:
            streams = await asyncio.open_connection(address[0], address[1], family=family)
        except OSError as exc:
            error = exc
            continue
        phases["connect"] = phases.get("connect", 0.0) + time.perf_counter() - resolved
        return streams
    raise error


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
