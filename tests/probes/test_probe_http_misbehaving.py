"""The HTTP probe against targets that misbehave: it always returns, in time, with the right reason."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from typing import Any

import pytest

from monitor.config import HttpCheck
from monitor.models import FailureReason
from monitor.probes import ProbeContext
from monitor.probes.http import probe

from .probe_targets import HttpServer, Request, Servers, http_check, reply, response_head

GRACE = 0.5


async def hang(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up


async def timed(check: HttpCheck, ctx: ProbeContext) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await probe(check, ctx)
    return result, time.perf_counter() - start


async def test_hanging_target_times_out(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = hang
    result, elapsed = await timed(http_check(http_server.url("/"), timeout=0.5), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert result.detail == "no answer within 0.5 s waiting for the response headers"
    assert 0.5 <= elapsed < 0.5 + GRACE


async def test_target_that_never_reads_times_out(servers: Servers, ctx: ProbeContext) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    server = await servers.raw(silent)
    result, elapsed = await timed(http_check(f"https://127.0.0.1:{server.port}/", timeout=0.4), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert "TLS handshake" in result.detail
    assert elapsed < 0.4 + GRACE


@pytest.mark.parametrize("where", ["headers", "body"])
async def test_dribbling_target_times_out(http_server: HttpServer, ctx: ProbeContext, where: str) -> None:
    # a byte every 0.1 s: each read succeeds, only the probe's overall deadline can stop it
    async def dribble(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = response_head(200, length=1000) + b"x" * 1000
        if where == "body":
            writer.write(data[: data.index(b"\r\n\r\n") + 4])
            data = data[data.index(b"\r\n\r\n") + 4 :]
        for index in range(len(data)):
            writer.write(data[index : index + 1])
            await writer.drain()
            await asyncio.sleep(0.1)

    http_server.routes["/"] = dribble
    result, elapsed = await timed(http_check(http_server.url("/"), timeout=0.6), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert ("reading the body" if where == "body" else "response headers") in result.detail
    assert elapsed < 0.6 + GRACE


@pytest.mark.parametrize(("conditions", "reason"), [({}, None), ({"body_contains": "never"}, FailureReason.BODY)])
async def test_huge_body_is_not_read(
    http_server: HttpServer, ctx: ProbeContext, conditions: dict[str, Any], reason: FailureReason | None
) -> None:
    size = 100 * 1024 * 1024
    sent = 0
    chunk = b"a" * 65536

    async def flood(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(response_head(200, length=size))
        while sent < size and not writer.is_closing():
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()

    http_server.routes["/"] = flood
    check = http_check(http_server.url("/"), max_body_bytes=64 * 1024, conditions=conditions, timeout=5)
    result, elapsed = await timed(check, ctx)
    assert result.reason is reason, result
    assert result.status_code == 200
    assert elapsed < 0.5
    assert sent < 16 * 1024 * 1024  # what the socket buffers took (~4 MB here), not the 100 MB


async def test_reset_connection(http_server: HttpServer, ctx: ProbeContext) -> None:
    async def reset(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    http_server.routes["/"] = reset
    result, elapsed = await timed(http_check(http_server.url("/"), timeout=2), ctx)
    assert result.reason in (FailureReason.CONNECT, FailureReason.PROTOCOL), result
    assert elapsed < 1


async def test_reset_midway_through_the_body(http_server: HttpServer, ctx: ProbeContext) -> None:
    async def cut(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(200, length=1000) + b"partial")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    http_server.routes["/"] = cut
    result = await probe(http_check(http_server.url("/"), timeout=2), ctx)
    assert result.reason in (FailureReason.CONNECT, FailureReason.PROTOCOL), result
    assert result.status_code == 200


async def test_garbage_answer_is_a_protocol_failure(servers: Servers, ctx: ProbeContext) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    server = await servers.raw(garbage)
    result = await probe(http_check(f"http://127.0.0.1:{server.port}/", timeout=2), ctx)
    assert result.reason is FailureReason.PROTOCOL


async def test_redirect_loop(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/loop"] = reply(302, headers={"Location": "/loop"})
    result = await probe(http_check(http_server.url("/loop"), max_redirects=3), ctx)
    assert result.reason is FailureReason.TOO_MANY_REDIRECTS
    assert result.detail == "more than 3 redirects"
    assert result.status_code == 302
    assert len(http_server.requests) == 4


async def test_refused_and_unresolvable(ctx: ProbeContext, servers: Servers) -> None:
    server = await servers.raw(lambda reader, writer: reader.read())
    port = server.port
    await server.stop()
    servers.started.remove(server)
    refused = await probe(http_check(f"http://127.0.0.1:{port}/", timeout=2), ctx)
    assert refused.reason is FailureReason.CONNECT
    assert refused.detail == "cannot connect: Connection refused"
    unknown = await probe(http_check("http://tpmon-probe-test.invalid/", timeout=2), ctx)
    assert unknown.reason is FailureReason.DNS


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("self_signed", "certificate verify failed: self-signed certificate"),
        ("expired", "certificate verify failed: certificate has expired"),
        ("wrong_host", "certificate verify failed: Hostname mismatch"),
        ("unknown_ca", "certificate verify failed: unable to get local issuer certificate"),
    ],
)
async def test_bad_certificates(
    servers: Servers, tls_contexts: dict[str, ssl.SSLContext], ctx: ProbeContext, ca_file: str, kind: str, detail: str
) -> None:
    server = await servers.http(tls_contexts["good" if kind == "unknown_ca" else kind])
    server.routes["/"] = reply(200, "ok")
    # unknown CA: the system store does not know the test CA; the others trust it via ca_file
    host = "localhost" if kind == "wrong_host" else "127.0.0.1"
    check = http_check(
        server.url("/", host), timeout=2, **({} if kind in ("unknown_ca", "self_signed") else {"ca_file": ca_file})
    )
    result = await probe(check, ctx)
    assert result.reason is FailureReason.TLS, result
    assert result.detail == detail
    insecure = await probe(http_check(server.url("/"), tls_verify=False), ctx)
    assert insecure.success, insecure
    assert insecure.cert_expiry is not None


async def test_hanging_targets_do_not_delay_a_healthy_one(
    servers: Servers, http_server: HttpServer, ctx: ProbeContext
) -> None:
    http_server.routes["/"] = reply(200, "ok")
    hanging = [await servers.raw(lambda reader, writer: reader.read()) for _ in range(8)]
    checks = [http_check(f"http://127.0.0.1:{s.port}/", timeout=1) for s in hanging]
    start = time.perf_counter()
    results = await asyncio.gather(
        *(probe(check, ctx) for check in checks), probe(http_check(http_server.url("/"), timeout=1), ctx)
    )
    elapsed = time.perf_counter() - start
    *stuck, healthy = results
    assert healthy.success
    assert healthy.duration_s < 0.3
    assert all(r.reason is FailureReason.TIMEOUT for r in stuck)
    assert elapsed < 1 + GRACE


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_connection_is_closed_when_the_probe_gives_up(
    servers: Servers, ctx: ProbeContext, scheme: str
) -> None:
    # http: the request is read, never answered; https: the ClientHello is never answered
    closed = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        closed.set()

    server = await servers.raw(mute)
    result, elapsed = await timed(http_check(f"{scheme}://127.0.0.1:{server.port}/", timeout=0.3), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert ("TLS handshake" if scheme == "https" else "response headers") in result.detail
    assert elapsed < 0.3 + GRACE
    await asyncio.wait_for(closed.wait(), 2)  # the target sees the connection end, not a socket left open
