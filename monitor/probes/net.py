"""TCP connections for the TCP and TLS probes: timed resolution and connection, and a bounded close."""

from __future__ import annotations

import asyncio
import socket
import time

__all__ = ["CLOSE_GRACE", "close", "open_tcp"]

# A polite close (TLS close_notify) waits on the peer; a probe's result never does, beyond this.
CLOSE_GRACE = 0.25


async def open_tcp(host: str, port: int, phases: dict[str, float]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve then connect to each address in turn; records `resolve` and `connect` in `phases`.

    Raises socket.gaierror when the name does not resolve, OSError when no address accepts.
    """
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    resolved = time.perf_counter()
    phases["resolve"] = resolved - start
    error: OSError = OSError("no address")
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        phases["connect"] = time.perf_counter() - resolved
        try:
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
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
