"""TLS probe: TCP connect and TLS handshake; reports certificate expiry and verification failures."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from ..config import TlsCheck
from ..models import FailureReason, ProbeResult
from .certs import expiries, expiry_problem, tls_detail
from .clients import default_tls_context, tls_context
from .context import ProbeContext
from .net import close, open_tcp
from .outcome import Stopwatch, os_detail

__all__ = ["probe"]


def _context(check: TlsCheck, ctx: ProbeContext) -> ssl.SSLContext:
    """The cached context when the probe context has a cache (or the settings are the default ones), else a
    fresh one (~25 ms of CPU)."""
    if ctx.clients is not None:
        return ctx.clients.ssl_context(check.tls_verify, check.ca_file)
    if check.tls_verify and check.ca_file is None:
        return default_tls_context()
    return tls_context(check.tls_verify, check.ca_file)


async def probe(check: TlsCheck, ctx: ProbeContext) -> ProbeResult:
    """Connect and handshake with SNI `server_name or host`; phases `resolve`, `connect` and `tls`.

    Fails with TLS on a handshake or verification error, CERTIFICATE_EXPIRY when the earliest
    expiry of the chain is closer than `cert_valid_days`.
    """
    watch = Stopwatch(check, ctx)
    try:
        context = _context(check, ctx)
    except OSError as exc:
        return watch.failed(FailureReason.INTERNAL, f"cannot load ca_file: {os_detail(exc)}")
    phases: dict[str, float] = {}
    writer: asyncio.StreamWriter | None = None
    handshaking = False
    try:
        async with asyncio.timeout(check.timeout):
            _, writer = await open_tcp(check.host, check.port, phases)
            handshaking = True
            start = time.perf_counter()
            await writer.start_tls(context, server_hostname=check.server_name or check.host)
            phases["tls"] = time.perf_counter() - start
        leaf, chain = expiries(writer.get_extra_info("ssl_object"))
        problem = expiry_problem(chain, check.cert_valid_days, ctx.clock())
        if problem:
            return watch.failed(
                FailureReason.CERTIFICATE_EXPIRY, problem, phases=phases, cert_expiry=leaf, chain_expiry=chain
            )
        return watch.ok(phases=phases, cert_expiry=leaf, chain_expiry=chain)
    except TimeoutError:
        where = "in the TLS handshake" if handshaking else "while connecting"
        return watch.timed_out(where, phases=phases)
    except socket.gaierror as exc:
        return watch.failed(FailureReason.DNS, f"cannot resolve: {os_detail(exc)}", phases=phases, cause=exc)
    except ssl.SSLError as exc:
        return watch.failed(FailureReason.TLS, tls_detail(exc), phases=phases)
    except OSError as exc:
        if handshaking:
            detail = f"connection lost in the TLS handshake: {os_detail(exc)}"
            return watch.failed(FailureReason.TLS, detail, phases=phases, cause=exc)
        return watch.failed(FailureReason.CONNECT, f"cannot connect: {os_detail(exc)}", phases=phases, cause=exc)
    finally:
        if writer is not None:
            await close(writer)
