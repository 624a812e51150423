"""The TCP and DNS probes against loopback servers and the system resolver."""

from __future__ import annotations

import asyncio
import time

from monitor.models import FailureReason
from monitor.probes import ProbeContext
from monitor.probes.dns import probe as dns_probe
from monitor.probes.http import probe as http_probe
from monitor.probes.tcp import probe as tcp_probe

from .probe_targets import Servers, dns_check, http_check, tcp_check


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def test_tcp_connects(servers: Servers, ctx: ProbeContext) -> None:
    server = await servers.raw(accept)
    result = await tcp_probe(tcp_check("127.0.0.1", server.port), ctx)
    assert result.success, result
    assert set(result.phases) == {"resolve", "connect"}
    assert 0 < result.phases["connect"] < result.duration_s < 0.5
    assert server.connections == 1


async def test_tcp_refused(servers: Servers, ctx: ProbeContext) -> None:
    server = await servers.raw(accept)
    port = server.port
    await server.stop()
    servers.started.remove(server)
    result = await tcp_probe(tcp_check("127.0.0.1", port), ctx)
    assert result.reason is FailureReason.CONNECT
    assert result.detail == "cannot connect: Connection refused"


async def test_tcp_unresolvable(ctx: ProbeContext) -> None:
    result = await tcp_probe(tcp_check("tpmon-probe-test.invalid", 443), ctx)
    assert result.reason is FailureReason.DNS
    assert result.detail.startswith("cannot resolve: ")


async def test_tcp_connect_hangs(full_backlog: int, ctx: ProbeContext) -> None:
    start = time.perf_counter()
    result = await tcp_probe(tcp_check("127.0.0.1", full_backlog, timeout=0.3), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert result.detail == "no answer within 0.3 s while connecting"
    assert time.perf_counter() - start < 0.3 + 0.5


async def test_http_connect_hangs(full_backlog: int, ctx: ProbeContext) -> None:
    start = time.perf_counter()
    result = await http_probe(http_check(f"http://127.0.0.1:{full_backlog}/", timeout=0.3), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert result.detail == "no answer within 0.3 s while connecting"
    assert time.perf_counter() - start < 0.3 + 0.5


async def test_dns_localhost(ctx: ProbeContext) -> None:
    result = await dns_probe(dns_check("localhost", family="ipv4", expect_addresses=["127.0.0.1"]), ctx)
    assert result.success, result
    assert 0 <= result.phases["resolve"] <= result.duration_s
    assert (await dns_probe(dns_check("localhost"), ctx)).success


async def test_dns_numeric_addresses_compare_by_value(ctx: ProbeContext) -> None:
    result = await dns_probe(dns_check("127.0.0.1", expect_addresses=["127.000.0.1"]), ctx)
    assert result.reason is FailureReason.ASSERTION  # not an address: compared as text, and it differs
    assert (await dns_probe(dns_check("::1", family="ipv6", expect_addresses=["0:0::1"]), ctx)).success


async def test_dns_missing_expected_address(ctx: ProbeContext) -> None:
    result = await dns_probe(dns_check("localhost", family="ipv4", expect_addresses=["10.9.9.9"]), ctx)
    assert result.reason is FailureReason.ASSERTION
    assert result.detail.endswith("missing expected 10.9.9.9")


async def test_dns_unknown_name(ctx: ProbeContext) -> None:
    result = await dns_probe(dns_check("tpmon-probe-test.invalid"), ctx)
    assert result.reason is FailureReason.DNS
    assert result.detail.startswith("cannot resolve: ")
    invalid = await dns_probe(dns_check("a" * 300 + ".example"), ctx)
    assert invalid.reason is FailureReason.DNS
