"""One HTTP/1.1 exchange on a fresh connection: httpcore's HTTP/1.1 state machine over an asyncio stream.

The HTTP probe's lean path. A probe opens its own connection (a monitor must see connect and TLS failures), so
it needs no connection pool, no cookie jar and no per-operation timeout (the probe's deadline bounds it all):
httpx's client and httpcore's pool are left out, httpcore's `AsyncHTTP11Connection` speaks HTTP/1.1 over an
asyncio stream opened here. Resolution (skipped for an IP literal), connection and TLS handshake are timed
here; the `trace` extension times the rest (phases.py). A `Target` is prepared once per check (URL parsed,
headers encoded, address worked out) and reused by every probe.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .net import Address, literal_address, open_tcp
from .phases import HttpPhases

__all__ = ["Connection", "Target", "Trace", "connect"]

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, eq=False, repr=False)  # no repr: the target may hold secrets (URL, headers, body)
class Target:
    """A request ready to send on a fresh connection: httpx's request encoded once for httpcore (≈ 1 kB per
    check; httpx's own request object, twice that, is rebuilt only when needed: redirects, cookies)."""

    address: httpx.URL  # the URL as httpx parsed it
    method: bytes
    url: httpcore.URL
    headers: list[tuple[bytes, bytes]]
    body: bytes
    host: str
    port: int
    literal: Address | None  # the socket address when the host is an IP literal (nothing to resolve)
    ssl_context: ssl.SSLContext | None  # https only

    @classmethod
    def of(cls, request: httpx.Request, ssl_context: ssl.SSLContext) -> Target:
        """The target of `request`; `ssl_context` is used for https.

        Raises httpx.UnsupportedProtocol for a scheme other than http and https, or a URL without a host.
        """
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise httpx.UnsupportedProtocol("the URL needs http:// or https:// and a host")
        port = url.port or _DEFAULT_PORTS[scheme]
        host = url.raw_host.decode("ascii")
        return cls(
            address=url,
            method=request.method.encode("ascii"),
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=port, target=url.raw_path),
            headers=request.headers.raw,
            body=request.read(),  # a redirect's request holds its body as a stream, not yet read
            host=host,
            port=port,
            literal=literal_address(host, port),
            ssl_context=ssl_context if scheme == "https" else None,
        )

    @property
    def https(self) -> bool:
        return self.ssl_context is not None

    def request(self, extensions: dict[str, Any] | None = None) -> httpx.Request:
        """httpx's request for this target: the same method, URL, headers (as they are) and body."""
        return httpx.Request(
            self.method.decode("ascii"),
            self.address,
            headers=self.headers,
            stream=httpx.ByteStream(self.body),
            extensions=extensions or {},
        )

    def core_request(self, trace: Trace) -> httpcore.Request:
        """httpcore's request for one probe, with its `trace` callback (and no timeout: the probe has one)."""
        extensions = {"trace": trace}
        return httpcore.Request(self.method, self.url, headers=self.headers, content=self.body, extensions=extensions)


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of an asyncio stream; OS errors become httpcore's ReadError and WriteError (chained)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: bool) -> None:
        self._reader = reader
        self._writer = writer
        self._tls = tls

    # `timeout` is httpcore's interface; unused: the probe's own deadline bounds every read and write
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            return await self._reader.read(max_bytes)
        except OSError as exc:
            raise httpcore.ReadError(type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await self._writer.drain()
        except OSError as exc:
            raise httpcore.WriteError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Close at once, never waiting on the peer: TCP with a FIN, TLS without waiting for close_notify."""
        transport = self._writer.transport
        if self._tls:
            transport.abort()
        else:
            transport.close()

    def get_extra_info(self, info: str) -> Any:
        if info in ("ssl_object", "socket"):
            return self._writer.get_extra_info(info)
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        return None


class _Body(httpx.AsyncByteStream):
    """httpcore's response body as httpx reads it (so that httpx decodes it)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class Connection:
    """One fresh connection to a target, for one request; `close()` releases it, whatever happened."""

    def __init__(self, stream: _Stream, origin: httpcore.Origin) -> None:
        self.stream = stream
        self._http = httpcore.AsyncHTTP11Connection(origin, stream)

    async def send(self, target: Target, trace: Trace) -> httpx.Response:
        """Send the target's request; the response's body is left to read (httpx decodes it). The response
        has no `request` (set it from `target.request()` where one is needed, e.g. to read its cookies)."""
        answer = await self._http.handle_async_request(target.core_request(trace))
        return httpx.Response(
            answer.status, headers=answer.headers, stream=_Body(answer.stream), extensions=answer.extensions
        )

    def ssl_object(self) -> ssl.SSLObject | None:
        found: ssl.SSLObject | None = self.stream.get_extra_info("ssl_object")
        return found

    def close(self) -> None:
        self.stream.close()


async def connect(target: Target, phases: HttpPhases) -> Connection:
    """A new connection to `target` (resolved unless an IP literal, connected, TLS handshake done), timed in
    `phases`; stage and failures as httpcore tells them.

    Raises httpcore.ConnectError chained to the cause: socket.gaierror, ssl.SSLError or another OSError.
    """
    phases.stage = "while connecting"
    try:
        reader, writer = await open_tcp(target.host, target.port, phases.totals, target.literal)
    except OSError as exc:
        raise httpcore.ConnectError(type(exc).__name__) from exc
    if target.ssl_context is not None:
        phases.stage = "in the TLS handshake"
        start = time.perf_counter()
        try:
            await writer.start_tls(target.ssl_context, server_hostname=target.host)
        except BaseException as exc:
            writer.transport.abort()
            if isinstance(exc, OSError):
                raise httpcore.ConnectError(type(exc).__name__) from exc
            raise
        phases.add("tls", time.perf_counter() - start)
    return Connection(_Stream(reader, writer, target.https), target.url.origin)
