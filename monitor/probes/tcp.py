"""TCP probe: can a connection to host:port be opened within the check's timeout."""

from __future__ import annotations

import asyncio
import socket

from ..config import TcpCheck
from ..models import FailureReason, ProbeResult
from .context import ProbeContext
from .net import close, open_tcp
from .outcome import Stopwatch, os_detail

__all__ = ["probe"]


async def probe(check: TcpCheck, ctx: ProbeContext) -> ProbeResult:
    """Resolve and connect to `check.host:check.port`, then close; phases `resolve` and `connect`."""
    watch = Stopwatch(check, ctx)
    phases: dict[str, float] = {}
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(check.timeout):
            _, writer = await open_tcp(check.host, check.port, phases)
        return watch.ok(phases=phases)
    except TimeoutError:
        return watch.timed_out("while resolving" if "resolve" not in phases else "while connecting", phases=phases)
    except socket.gaierror as exc:
        return watch.failed(FailureReason.DNS, f"cannot resolve: {os_detail(exc)}", phases=phases, cause=exc)
    except OSError as exc:
        return watch.failed(FailureReason.CONNECT, f"cannot connect: {os_detail(exc)}", phases=phases, cause=exc)
    finally:
        if writer is not None:
            await close(writer)
