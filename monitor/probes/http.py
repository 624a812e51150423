"""HTTP probe: one request and its redirects, the body read up to a cap, conditions evaluated.

The request is prepared once per check and environment (a template: ${VAR}s expanded, URL parsed, headers
built by httpx as its client would) and sent on a fresh connection per probe (wire.py: h11 HTTP/1.1
over an asyncio stream, no pool, no cookie jar), or through the keep-alive client with `reuse_connection`.
"""

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

import httpcore
import httpx

from ..config import HttpCheck
from ..config.values import ENV_REF
from ..models import FailureReason, ProbeResult
from .certs import expiries, tls_detail
from .clients import default_tls_context
from .conditions import Answer, check_conditions
from .context import ProbeContext
from .outcome import Stopwatch, os_detail
from .phases import HttpPhases
from .wire import Connection, Target, connect

__all__ = ["probe"]

# What httpx and httpcore raise for a failed exchange (httpcore's own errors come from the fresh connection).
_TRANSPORT_ERRORS = (
    httpx.HTTPError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)
# A request that cannot be sent as it is: unknown scheme, or a header h11 refuses.
_UNSENDABLE = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.LocalProtocolError,
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


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


@dataclass(frozen=True, eq=False, repr=False, slots=True)  # no repr: it holds the expanded secrets
class _Template:
    """What one check sends, built once for a check object, an environment and a user agent."""

    check: HttpCheck
    environ: Mapping[str, str]
    user_agent: str
    first: Target  # the first request, encoded for a fresh connection
    ssl_context: ssl.SSLContext  # for every https hop (redirects included)
    client: httpx.AsyncClient | None  # the keep-alive client, with reuse_connection only

    def serves(self, check: HttpCheck, ctx: ProbeContext) -> bool:
        return self.check is check and self.environ is ctx.environ and self.user_agent == ctx.user_agent


def _ssl_context(check: HttpCheck, ctx: ProbeContext) -> ssl.SSLContext:
    if ctx.clients is None:
        if not check.tls_verify or check.ca_file is not None:
            raise _Unusable("no HttpClients in the probe context for tls_verify, ca_file or reuse_connection")
        return default_tls_context()
    try:
        return ctx.clients.ssl_context(check.tls_verify, check.ca_file)
    except OSError as exc:
        raise _Unusable(f"cannot load ca_file: {os_detail(exc)}") from None


def _build(check: HttpCheck, ctx: ProbeContext) -> _Template:
    ssl_context = _ssl_context(check, ctx)
    client = None
    if check.reuse_connection:
        if ctx.clients is None:
            raise _Unusable("no HttpClients in the probe context for tls_verify, ca_file or reuse_connection")
        client = ctx.clients.get(
            verify=check.tls_verify, ca_file=check.ca_file, keep_alive=True, source=ctx.source_address
        )
    url = _expand(check.url, ctx.environ)
    body = None if check.body is None else _expand(check.body, ctx.environ).encode()
    try:
        headers = httpx.Headers({"User-Agent": ctx.user_agent})
        for name, value in check.headers.items():
            headers[name] = _expand(value, ctx.environ)
        # the default client's build_request: its default headers (Accept, Accept-Encoding…), as before
        request = ctx.http.build_request(check.method, url, headers=headers, content=body, timeout=check.timeout)
        first = Target.of(request, ssl_context, None if ctx.clients is None else ctx.clients.shared)
    except httpx.UnsupportedProtocol:
        raise _Unusable("the request could not be sent (URL scheme or header)") from None
    except (httpx.InvalidURL, ValueError, UnicodeError):
        # their messages may quote the URL or a header value: neither goes in a detail
        raise _Unusable("invalid URL or header value (after ${VAR} expansion)") from None
    return _Template(check, ctx.environ, ctx.user_agent, first, ssl_context, client)


def _template(check: HttpCheck, ctx: ProbeContext) -> _Template:
    """The check's template, from the cache of `ctx.clients` when it was built for this very check object
    (a reloaded configuration brings new ones) and environment."""
    if ctx.clients is None:
        return _build(check, ctx)
    key = (ctx.network, check.flow, check.name)
    cached = ctx.clients.templates.get(key)
    if isinstance(cached, _Template) and cached.serves(check, ctx):
        return cached
    built = ctx.clients.templates[key] = _build(check, ctx)
    return built


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if first is None else first if second is None else min(first, second)


@dataclass
class _Hops:
    """What the probe saw over its requests: the last status, the redirects, the earliest cert dates."""

    status_code: int | None = None
    redirects: int = 0
    cert_expiry: datetime | None = None
    chain_expiry: datetime | None = None

    def saw(self, status_code: int, ssl_object: ssl.SSLObject | None) -> None:
        self.status_code = status_code
        if ssl_object is not None:
            leaf, chain = expiries(ssl_object)
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


def _encoding(response: httpx.Response) -> str:
    """httpx's `response.encoding` (the Content-Type's charset, else UTF-8), without parsing a Content-Type
    that names no charset (httpx parses it with the email package: ~8 µs a probe)."""
    content_type = response.headers.get("Content-Type")
    if content_type is None or "charset" not in content_type.lower():
        return "utf-8"
    return response.encoding or "utf-8"


def _port_or_default(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else {"http": 80, "https": 443}.get(url.scheme)


def _redirect(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The request that follows a redirect response, as httpx's client builds it (httpx 0.28
    `_build_redirect_request`): 301 POST, 302 and 303 become GET (not HEAD) without a body; Authorization is
    dropped when leaving the origin (unless for the same host on https); no Cookie header (the probe sets it).

    Raises httpx.RemoteProtocolError for a Location that is not a URL.
    """
    method = request.method
    status = response.status_code
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        method = "GET"
    try:
        url = httpx.URL(response.headers["Location"])
    except httpx.InvalidURL:
        raise httpx.RemoteProtocolError("invalid URL in the Location header") from None
    if url.scheme and not url.host:
        url = url.copy_with(host=request.url.host)
    if url.is_relative_url:
        url = request.url.join(url)
    if request.url.fragment and not url.fragment:
        url = url.copy_with(fragment=request.url.fragment)
    headers = httpx.Headers(request.headers)
    old = request.url
    if (url.scheme, url.host, _port_or_default(url)) != (old.scheme, old.host, _port_or_default(old)):
        upgrade = url.host == old.host and (old.scheme, _port_or_default(old), url.scheme, _port_or_default(url)) == (
            "http",
            80,
            "https",
            443,
        )
        if not upgrade:
            headers.pop("Authorization", None)
        headers["Host"] = url.netloc.decode("ascii")
    drop_body = method != request.method and method == "GET"
    if drop_body:
        headers.pop("Content-Length", None)
        headers.pop("Transfer-Encoding", None)
    headers.pop("Cookie", None)
    return httpx.Request(
        method, url, headers=headers, stream=None if drop_body else request.stream, extensions=request.extensions
    )


async def _send(
    template: _Template, target: Target, phases: HttpPhases, connections: list[Connection]
) -> tuple[httpx.Response, ssl.SSLObject | None]:
    """One request: on a fresh connection (appended to `connections`, for the caller to close), or through
    the keep-alive client."""
    if template.client is None:
        connection = await connect(target, phases)
        connections.append(connection)
        return await connection.send(target, phases), connection.ssl_object()
    timeout = httpx.Timeout(template.check.timeout).as_dict()  # as the client's build_request set it
    request = target.request({"timeout": timeout, "trace": phases.trace})
    response = await template.client.send(request, stream=True, follow_redirects=False)
    stream = response.extensions.get("network_stream") if request.url.scheme == "https" else None
    return response, stream.get_extra_info("ssl_object") if stream is not None else None


async def _exchange(template: _Template, phases: HttpPhases, hops: _Hops, watch: Stopwatch) -> Answer | None:
    """Send the check's request, following redirects by hand; None after more than `max_redirects`."""
    check = template.check
    target = template.first
    cookies: httpx.Cookies | None = None  # this probe's own, at the first Set-Cookie
    connections: list[Connection] = []
    try:
        while True:
            response, ssl_object = await _send(template, target, phases, connections)
            try:
                hops.saw(response.status_code, ssl_object)
                if "set-cookie" in response.headers:  # nothing else in a response sets a cookie
                    cookies = httpx.Cookies() if cookies is None else cookies
                    response.request = target.request()  # where the cookies come from
                    cookies.extract_cookies(response)
                follow = (
                    check.follow_redirects and response.status_code in _REDIRECTS and "Location" in response.headers
                )
                if not follow:
                    body = await _read(response, check.max_body_bytes, phases)
                    encoding = _encoding(response)
                    return Answer(
                        response.status_code, response.headers, body, encoding, watch.elapsed(), hops.chain_expiry
                    )
                if hops.redirects >= check.max_redirects:
                    return None
                hops.redirects += 1
                following = _redirect(target.request(), response)
                if cookies is not None:
                    cookies.set_cookie_header(following)
                target = Target.of(following, template.ssl_context)
            finally:
                await response.aclose()
    finally:
        for connection in connections:
            connection.close()


def _transport_failure(exc: Exception, stage: str) -> tuple[FailureReason, str]:
    """Reason and detail of a transport error, never from its message (it may quote the request)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return FailureReason.TLS, tls_detail(cause)
        if isinstance(cause, socket.gaierror):
            return FailureReason.DNS, f"cannot resolve: {os_detail(cause)}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        return FailureReason.TIMEOUT, f"timed out {stage}"
    if isinstance(exc, httpx.ConnectError | httpcore.ConnectError):
        return FailureReason.CONNECT, f"cannot connect: {os_detail(exc)}"
    if isinstance(exc, httpx.NetworkError | httpcore.NetworkError):
        return FailureReason.CONNECT, f"connection lost {stage}: {os_detail(exc)}"
    if isinstance(exc, httpx.RemoteProtocolError | httpcore.RemoteProtocolError):
        return FailureReason.PROTOCOL, f"invalid or incomplete response {stage}"
    if isinstance(exc, httpx.DecodingError):
        return FailureReason.PROTOCOL, "the body could not be decoded"
    if isinstance(exc, _UNSENDABLE):
        return FailureReason.INTERNAL, "the request could not be sent (URL scheme or header)"
    return FailureReason.PROTOCOL, type(exc).__name__


async def probe(check: HttpCheck, ctx: ProbeContext) -> ProbeResult:
    """Request `check.url` (with ${VAR}s expanded) and evaluate `check.conditions` on the answer.

    Phases: resolve (0 for an IP literal), connect, tls, processing, transfer, summed over redirects (with
    `reuse_connection`, resolve is inside connect, and both are 0 on a reused connection).
    `cert_expiry`/`chain_expiry` are the earliest seen over the https hops.
    """
    watch = Stopwatch(check, ctx)
    phases = HttpPhases()
    try:
        template = _template(check, ctx)
    except _Unusable as exc:
        return watch.failed(FailureReason.INTERNAL, str(exc))
    hops = _Hops()
    failure: tuple[FailureReason, str] | None = None
    cause: BaseException | None = None  # tells a local failure (no file descriptor…) from the target's
    try:
        async with asyncio.timeout(check.timeout):
            answer = await _exchange(template, phases, hops, watch)
    except TimeoutError:
        result = watch.timed_out(phases.stage, phases=phases.as_dict())
        await phases.abandon()
        return result
    except _TRANSPORT_ERRORS as exc:
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
