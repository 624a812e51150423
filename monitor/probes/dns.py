"""DNS probe: does a name resolve, and to every address the check expects."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from ..config import DnsCheck
from ..models import FailureReason, ProbeResult
from .context import ProbeContext
from .outcome import Stopwatch, os_detail

__all__ = ["probe"]

_FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


def _normal(address: str) -> str:
    """One spelling per address, so that `::1` and `0:0::1` compare equal."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


async def probe(check: DnsCheck, ctx: ProbeContext) -> ProbeResult:
    """Resolve `check.host` with the system resolver; every `expect_addresses` must be in the answer."""
    watch = Stopwatch(check, ctx)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(check.timeout):
            answer = await loop.getaddrinfo(check.host, None, family=_FAMILIES[check.family], type=socket.SOCK_STREAM)
    except TimeoutError:
        return watch.timed_out("while resolving")
    except OSError as exc:  # socket.gaierror mostly
        return watch.failed(FailureReason.DNS, f"cannot resolve: {os_detail(exc)}", cause=exc)
    except UnicodeError:
        return watch.failed(FailureReason.DNS, "cannot resolve: invalid host name")
    phases = {"resolve": watch.elapsed()}
    found = {_normal(str(info[4][0])) for info in answer}
    missing = [address for address in check.expect_addresses if _normal(address) not in found]
    if missing:
        detail = f"{len(found)} addresses, missing expected {', '.join(missing)}"
        return watch.failed(FailureReason.ASSERTION, detail, phases=phases)
    return watch.ok(phases=phases)
