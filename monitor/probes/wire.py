"""One HTTP/1.1 exchange on a fresh connection: h11's state machine over an asyncio stream.

The HTTP probe's lean path. A probe opens its own connection (a monitor must see connect and TLS failures), so
it needs no connection pool, no cookie jar, no lock and no per-operation timeout (the probe's deadline bounds it
all): httpx's client and httpcore's pool and connection are left out; h11 (httpcore's own HTTP/1.1 parser) speaks
HTTP/1.1 over an asyncio stream opened here, and failures are raised as httpcore's exceptions, as its connection
raises them. Resolution (skipped for an IP literal), connection, TLS handshake and processing are timed here,
and the stage the probe is at kept up to date (phases.py). A `Target` is prepared once per check (URL parsed,
headers encoded and checked, address worked out) and reused by every probe; the parts equal across checks (header
items, method, host, address) are one object for all of them (`clients.Shared`): most checks send the same headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import h11
import httpcore
import httpx

from .clients import Shared
from .net import Address, literal_address, open_tcp
from .phases import HttpPhases

__all__ = ["Connection", "Target", "connect"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_BYTES = 64 * 1024  # as httpcore reads
_MAX_HEAD = 100 * 1024  # bytes of a response head at most (httpcore's MAX_INCOMPLETE_EVENT_SIZE)

_T = TypeVar("_T")


def _share_h11_headers(head: h11.Request, shared: Shared) -> None:
    """h11 keeps each header as (name, lowercased name, value), new objects for every request it is given: made
    the shared ones. h11's Headers keeps them in a list (`_full_items`, h11 0.13 to 0.16); another layout is
    left as it is."""
    items = getattr(head.headers, "_full_items", None)
    if type(items) is list:
        items[:] = [shared(item) for item in items]


@dataclass(frozen=True, eq=False, repr=False, slots=True)  # no repr: the target may hold secrets (URL, headers…)
class Target:
    """A request ready to send on a fresh connection: httpx's request encoded once for httpcore (≈ 0.6 kB per
    check; httpx's own request object, several times that, is rebuilt only when needed: redirects, cookies)."""

    address: httpx.URL | str  # the URL as httpx parsed it; its text in a target kept for many probes (see `of`)
    method: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    head: h11.Request | None  # the request line and headers h11 sends; None when h11 refuses them
    body: bytes
    host: str
    port: int
    literal: Address | None  # the socket address when the host is an IP literal (nothing to resolve)
    ssl_context: ssl.SSLContext | None  # https only

    @classmethod
    def of(cls, request: httpx.Request, ssl_context: ssl.SSLContext, shared: Shared | None = None) -> Target:
        """The target of `request`; `ssl_context` is used for https. With `shared` (a target kept for many
        probes), its parts equal to other targets' are the same objects as theirs, and it keeps its URL as text
        (httpx's parsed URL is ≈ 0.3 kB more a check), parsed again by `request()` (redirects, cookies, keep-alive).

        Raises httpx.UnsupportedProtocol for a scheme other than http and https, or a URL without a host.
        """
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise httpx.UnsupportedProtocol("the URL needs http:// or https:// and a host")
        port = url.port or _DEFAULT_PORTS[scheme]
        share = _alone if shared is None else shared
        host = share(url.raw_host.decode("ascii"))
        method = share(request.method.encode("ascii"))
        headers = tuple(map(share, request.headers.raw))
        try:  # checked once here; refused, every probe fails as httpcore would fail it (LocalProtocolError)
            head: h11.Request | None = h11.Request(method=method, target=url.raw_path, headers=list(headers))
        except h11.LocalProtocolError:
            head = None
        if head is not None and shared is not None:
            _share_h11_headers(head, shared)
        literal = literal_address(host, port)
        return cls(
            address=url if shared is None else str(url),
            method=method,
            headers=headers,
            head=head,
            body=request.read(),  # a redirect's request holds its body as a stream, not yet read
            host=host,
            port=port,
            literal=None if literal is None else share(literal),
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


def _alone(value: _T) -> _T:
    return value


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
    """The response body as httpx reads it (so that httpx decodes it): h11's data events up to the end of the
    message; closing it closes the connection."""

    def __init__(self, connection: Connection, phases: HttpPhases) -> None:
        self._connection = connection
        self._phases = phases

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._phases.stage = "while reading the body"
        while True:
            event = await self._connection.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
                return

    async def aclose(self) -> None:
        self._connection.close()


class Connection:
    """One fresh connection to a target, for one request; `close()` releases it, whatever happened."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self._h11 = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)

    async def send(self, target: Target, phases: HttpPhases) -> httpx.Response:
        """Send the target's request (timing `processing` in `phases`, up to the response head); the response's
        body is left to read (httpx decodes it). The response has no `request` (set it from `target.request()`
        where one is needed, e.g. to read its cookies).

        Raises httpcore's LocalProtocolError (a request h11 refuses), RemoteProtocolError (not an HTTP/1.1
        answer, or none) and ReadError, as httpcore's own connection does; a failed write is not raised: the
        server may have answered before it stopped reading (as httpcore does).
        """
        if target.head is None:
            raise httpcore.LocalProtocolError("the request's method, target or headers are refused by h11")
        phases.stage = "while sending the request"
        sent = time.perf_counter()
        state = self._h11
        try:
            data = state.send(target.head) or b""
            if target.body:
                data += state.send(h11.Data(data=target.body)) or b""
            data += state.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from exc
        with contextlib.suppress(httpcore.WriteError):
            await self.stream.write(data)
        phases.stage = "waiting for the response headers"
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response) or (
                isinstance(event, h11.InformationalResponse) and event.status_code == 101
            ):
                break
            if not isinstance(event, h11.InformationalResponse):
                raise httpcore.RemoteProtocolError("Server disconnected without sending a response.")
        phases.totals["processing"] += time.perf_counter() - sent
        extensions = {"http_version": b"HTTP/" + event.http_version, "reason_phrase": event.reason}
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            stream=_Body(self, phases),
            extensions=extensions,
        )

    async def next_event(self) -> Any:
        """h11's next event, reading what it needs; httpcore's RemoteProtocolError when h11 refuses what came."""
        state = self._h11
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpcore.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            data = await self.stream.read(_READ_BYTES)
            if not data and state.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError("Server disconnected without sending a response.")
            state.receive_data(data)

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
    return Connection(_Stream(reader, writer, target.https))
