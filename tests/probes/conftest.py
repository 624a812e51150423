"""Fixtures of the probe tests: loopback servers (see probe_targets), a test CA and its certificates, contexts."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from monitor.probes import ProbeContext
from monitor.probes.clients import HttpClients

from .probe_targets import ENVIRON, USER_AGENT, HttpServer, Servers, server_context


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    started = Servers()
    yield started
    for server in started.started:
        await server.stop()


@pytest.fixture
async def http_server(servers: Servers) -> HttpServer:
    return await servers.http()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def tls_contexts(ca: trustme.CA) -> dict[str, ssl.SSLContext]:
    """Server contexts by kind: good, expired, expiring (in 5 days), wrong_host, self_signed."""
    now = dt.datetime.now(dt.UTC)
    self_signed = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with ca.cert_pem.tempfile() as cert, ca.private_key_pem.tempfile() as key:
        self_signed.load_cert_chain(cert, key)
    return {
        "good": server_context(ca.issue_cert("127.0.0.1", "localhost")),
        "expired": server_context(
            ca.issue_cert("127.0.0.1", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
        ),
        "expiring": server_context(ca.issue_cert("127.0.0.1", not_after=now + dt.timedelta(days=5, hours=1))),
        "wrong_host": server_context(ca.issue_cert("wrong.example")),
        "self_signed": self_signed,
    }


@pytest.fixture
async def https_server(servers: Servers, tls_contexts: dict[str, ssl.SSLContext]) -> HttpServer:
    return await servers.http(tls_contexts["good"])


@pytest.fixture
async def clients() -> AsyncIterator[HttpClients]:
    async with HttpClients(timeout=5.0) as built:
        yield built


@pytest.fixture
def ctx(clients: HttpClients) -> ProbeContext:
    return ProbeContext(network="testnet", http=clients.get(), user_agent=USER_AGENT, environ=ENVIRON, clients=clients)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: a connection attempt to it hangs (the SYN is dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, listener]:
        sock.close()
