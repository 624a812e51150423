"""A location's probes leave from its source address (cluster.locations.NAME.source_address): TCP, HTTP on a fresh
connection and HTTP on a kept-alive one, all bound to it; a target of another address family is a clear failure."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from monitor.models import FailureReason
from monitor.probes import ProbeContext, probe_check
from monitor.probes.net import bindable

from .probe_targets import http_check, tcp_check

SOURCE = "127.0.0.3"  # on Linux every address of 127/8 is the loopback's


class Peers:
    """An HTTP/1.0 server on 127.0.0.1 that notes the address each connection came from."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.seen.append(writer.get_extra_info("peername")[0])
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nOK\n")
            await writer.drain()
            await reader.read()  # until the prober closes (a kept-alive client keeps it)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    server = Peers()
    await server.start()
    yield server
    assert server.server is not None
    server.server.close()


async def test_tcp_and_http_probes_connect_from_the_source_address(peers: Peers, ctx: ProbeContext) -> None:
    bound = dataclasses.replace(ctx, source_address=SOURCE)
    url = f"http://127.0.0.1:{peers.port}/"
    results = [
        await probe_check(tcp_check("127.0.0.1", peers.port), bound),
        await probe_check(http_check(url), bound),
        await probe_check(http_check(url, reuse_connection=True), bound),
    ]
    assert [r.success for r in results] == [True, True, True], results
    assert peers.seen == [SOURCE, SOURCE, SOURCE]
    await probe_check(tcp_check("127.0.0.1", peers.port), ctx)  # unbound: the system's address
    assert peers.seen[-1] == "127.0.0.1"


async def test_a_target_of_another_family_than_the_source_fails_as_a_connection(ctx: ProbeContext) -> None:
    bound = dataclasses.replace(ctx, source_address=SOURCE)
    result = await probe_check(tcp_check("::1", 9), bound)
    assert result.reason is FailureReason.CONNECT, result
    assert result.detail == "cannot connect: Address family not supported by protocol"  # from an IPv4 source


def test_an_address_of_another_machine_cannot_be_bound() -> None:
    assert bindable(SOURCE) is None
    assert bindable("192.0.2.20")  # TEST-NET-1: never this machine's
