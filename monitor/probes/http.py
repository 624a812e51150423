"""HTTP probe: one request and its redirects with httpx, the body read up to a cap, conditions evaluated."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import httpx

from ..config import HttpCheck
from ..config.values import ENV_REF
from ..models import FailureReason, ProbeResult
from .certs import expiries, tls_detail
from .conditions import Answer, check_conditions
from .context import ProbeContext
from .outcome import Stopwatch, os_detail
from .phases import HttpPhases

__all__ = ["probe"]


class _Unusable(Exception):
    """The check cannot run as configured here (unset variable, no client, bad URL): INTERNAL."""


def _expand(text: str, environ: Mapping[str, str]) -> str:
    """`text` with each ${VAR} replaced from `environ`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise _Unusable(f"environment variable {name} is not set")
        return environ[name]

    return ENV_REF.sub(value, text)


def _client(check: HttpCheck, ctx: ProbeContext) -> httpx.AsyncClient:
    if check.tls_verify and check.ca_file is None and not check.reuse_connection:
        return ctx.http
    if ctx.clients is None:
        raise _Unusable("no HttpClients in the probe context for tls_verify, ca_file or reuse_connection")
    try:
        return ctx.clients.get(verify=check.tls_verify, ca_file=check.ca_file, keep_alive=check.reuse_connection)
    except OSError as exc:
        raise _Unusable(f"cannot load ca_file: {os_detail(exc)}") from None


def _request(check: HttpCheck, ctx: ProbeContext, client: httpx.AsyncClient, phases: HttpPhases) -> httpx.Request:
    url = _expand(check.url, ctx.environ)
    body = None if check.body is None else _expand(check.body, ctx.environ).encode()
    try:
        headers = httpx.Headers({"User-Agent": ctx.user_agent})
        for name, value in check.headers.items():
            headers[name] = _expand(value, ctx.environ)
        return client.build_request(
            check.method,
            url,
            headers=headers,
            content=body,
            timeout=check.timeout,
            extensions={"trace": phases.trace},
        )
    except (httpx.InvalidURL, ValueError, UnicodeError):
        # their messages may quote the URL or a header value: neither goes in a detail
        raise _Unusable("invalid URL or header value (after ${VAR} expansion)") from None


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if first is None else first if second is None else min(first, second)


@dataclass
class _Hops:
    """What the probe saw over its requests: the last status, the redirects, the earliest cert dates."""

    status_code: int | None = None
    redirects: int = 0
    cert_expiry: datetime | None = None
    chain_expiry: datetime | None = None

    def saw(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        if response.url.scheme == "https":
            stream = response.extensions.get("network_stream")
            leaf, chain = expiries(stream.get_extra_info("ssl_object") if stream is not None else None)
            self.cert_expiry = _earliest(self.cert_expiry, leaf)
            self.chain_expiry = _earliest(self.chain_expiry, chain)


async def _read(response: httpx.Response, limit: int, phases: HttpPhases) -> bytes:
    """The decoded body, at most `limit` bytes: the rest is never read."""
    start = time.perf_counter()
    chunks: list[bytes] = []
    size = 0
    if limit > 0:
        async with aclosing(cast(AsyncGenerator[bytes, None], response.aiter_bytes())) as body:
            async for chunk in body:
                chunks.append(chunk)
                size += len(chunk)
                if size >= limit:
                    break
    phases.add("transfer", time.perf_counter() - start)
    return b"".join(chunks)[:limit]


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    check: HttpCheck,
    phases: HttpPhases,
    hops: _Hops,
    watch: Stopwatch,
) -> Answer | None:
    """Send `request`, following redirects by hand; None after more than `max_redirects`."""
    cookies: httpx.Cookies | None = None  # this probe's own (the shared clients keep none), at the first Set-Cookie
    while True:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            hops.saw(response)
            if "set-cookie" in response.headers:  # nothing else in a response sets a cookie
                cookies = httpx.Cookies() if cookies is None else cookies
                cookies.extract_cookies(response)
            following = response.next_request if check.follow_redirects else None
            if following is None:
                body = await _read(response, check.max_body_bytes, phases)
                encoding = response.encoding or "utf-8"
                return Answer(
                    response.status_code, response.headers, body, encoding, watch.elapsed(), hops.chain_expiry
                )
            if hops.redirects >= check.max_redirects:
                return None
            hops.redirects += 1
            if cookies is not None:
                cookies.set_cookie_header(following)
            request = following
        finally:
            await response.aclose()


def _transport_failure(exc: httpx.HTTPError, stage: str) -> tuple[FailureReason, str]:
    """Reason and detail of a transport error, never from its message (it may quote the request)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return FailureReason.TLS, tls_detail(cause)
        if isinstance(cause, socket.gaierror):
            return FailureReason.DNS, f"cannot resolve: {os_detail(cause)}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return FailureReason.TIMEOUT, f"timed out {stage}"
    if isinstance(exc, httpx.ConnectError):
        return FailureReason.CONNECT, f"cannot connect: {os_detail(exc)}"
    if isinstance(exc, httpx.NetworkError):
        return FailureReason.CONNECT, f"connection lost {stage}: {os_detail(exc)}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return FailureReason.PROTOCOL, f"invalid or incomplete response {stage}"
    if isinstance(exc, httpx.DecodingError):
        return FailureReason.PROTOCOL, "the body could not be decoded"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return FailureReason.INTERNAL, "the request could not be sent (URL scheme or header)"
    return FailureReason.PROTOCOL, type(exc).__name__


async def probe(check: HttpCheck, ctx: ProbeContext) -> ProbeResult:
    """Request `check.url` (with ${VAR}s expanded) and evaluate `check.conditions` on the answer.

    Phases: resolve (always 0, see HttpPhases), connect, tls, processing, transfer, summed over
    redirects. `cert_expiry`/`chain_expiry` are the earliest seen over the https hops.
    """
    watch = Stopwatch(check, ctx)
    phases = HttpPhases()
    try:
        client = _client(check, ctx)
        request = _request(check, ctx, client, phases)
    except _Unusable as exc:
        return watch.failed(FailureReason.INTERNAL, str(exc))
    hops = _Hops()
    failure: tuple[FailureReason, str] | None = None
    cause: BaseException | None = None  # tells a local failure (no file descriptor…) from the target's
    try:
        async with asyncio.timeout(check.timeout):
            answer = await _exchange(client, request, check, phases, hops, watch)
    except TimeoutError:
        result = watch.timed_out(phases.stage, phases=phases.as_dict())
        await phases.abandon()
        return result
    except httpx.HTTPError as exc:
        failure, cause = _transport_failure(exc, phases.stage), exc
    except OSError as exc:
        failure, cause = (FailureReason.CONNECT, f"connection failed {phases.stage}: {os_detail(exc)}"), exc
    else:
        if answer is None:
            failure = FailureReason.TOO_MANY_REDIRECTS, f"more than {check.max_redirects} redirects"
        else:
            failure = check_conditions(check.conditions, answer, ctx.clock())
    if failure is None:
        return watch.ok(
            phases=phases.as_dict(),
            status_code=hops.status_code,
            cert_expiry=hops.cert_expiry,
            chain_expiry=hops.chain_expiry,
        )
    return watch.failed(
        *failure,
        phases=phases.as_dict(),
        status_code=hops.status_code,
        cert_expiry=hops.cert_expiry,
        chain_expiry=hops.chain_expiry,
        cause=cause,
    )
