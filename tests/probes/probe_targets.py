"""Real loopback targets for the probe tests: an asyncio HTTP/1.1 responder (plain or TLS), raw servers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trustme

from monitor.config import DnsCheck, HttpCheck, TcpCheck, TlsCheck

SECRET = "s3cr3t-Tok3n-4242"
ENVIRON = {"TPMON_TEST_TOKEN": SECRET, "TPMON_TEST_HOST": "127.0.0.1"}
USER_AGENT = "tpmon-test/1.0"

Connection = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]]


@dataclass
class Request:
    """One request as the responder read it; header names lowercased."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


Handler = Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def response_head(status: int, headers: dict[str, str] | None = None, length: int | None = 0) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reply(status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None) -> Handler:
    """A handler answering one fixed response."""
    data = body.encode() if isinstance(body, str) else body

    async def handler(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(status, headers, len(data)) + data)
        await writer.drain()

    return handler


class Server:
    """A server on 127.0.0.1 and a free port; its connection tasks are cancelled at `stop`."""

    def __init__(self, connection: Connection, tls: ssl.SSLContext | None = None) -> None:
        self._connection = connection
        self._tls = tls
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def stop(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


class HttpServer(Server):
    """A tiny HTTP/1.1 responder: one request per connection, `routes[path]` answers, 404 otherwise."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(self._http, tls)
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.scheme = "https" if tls else "http"

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        first, *lines = head.rstrip("\r\n").split("\r\n")
        method, target, _ = first.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, body)
        self.requests.append(request)
        await self.routes.get(request.path, reply(404, "not found"))(request, reader, writer)


@dataclass
class Servers:
    """Starts servers for one test and stops them all after it."""

    started: list[Server] = field(default_factory=list)

    async def http(self, tls: ssl.SSLContext | None = None) -> HttpServer:
        server = HttpServer(tls)
        await self.add(server)
        return server

    async def raw(self, connection: Connection, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(connection, tls)
        await self.add(server)
        return server

    async def add(self, server: Server) -> None:
        await server.start()
        self.started.append(server)


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def http_check(url: str, **fields: Any) -> HttpCheck:
    return HttpCheck.model_validate({"kind": "http", "name": "portail", "flow": "pec", "url": url, **fields})


def tcp_check(host: str, port: int, **fields: Any) -> TcpCheck:
    return TcpCheck.model_validate({"kind": "tcp", "name": "port", "flow": "pec", "host": host, "port": port, **fields})


def tls_check(host: str, port: int, **fields: Any) -> TlsCheck:
    return TlsCheck.model_validate({"kind": "tls", "name": "cert", "flow": "pec", "host": host, "port": port, **fields})


def dns_check(host: str, **fields: Any) -> DnsCheck:
    return DnsCheck.model_validate({"kind": "dns", "name": "nom", "flow": "pec", "host": host, **fields})
