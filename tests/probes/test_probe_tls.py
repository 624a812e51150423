"""The TLS probe against loopback TLS servers with good, expired, misnamed and self-signed certificates."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from monitor.models import FailureReason
from monitor.probes import ProbeContext
from monitor.probes.certs import _chain, expiries, not_after
from monitor.probes.tls import probe

from .probe_targets import Servers, server_context, tls_check


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def test_valid_certificate(
    servers: Servers, tls_contexts: dict[str, ssl.SSLContext], ctx: ProbeContext, ca_file: str
) -> None:
    server = await servers.raw(greet, tls_contexts["good"])
    result = await probe(tls_check("127.0.0.1", server.port, ca_file=ca_file, cert_valid_days=30), ctx)
    assert result.success, result
    assert set(result.phases) == {"resolve", "connect", "tls"}
    assert 0 < result.phases["tls"] < result.duration_s
    now = datetime.now(UTC)
    assert result.cert_expiry is not None
    assert result.chain_expiry is not None
    assert now + timedelta(days=30) < result.chain_expiry <= result.cert_expiry


async def test_server_name_is_used_for_sni_and_verification(
    servers: Servers, tls_contexts: dict[str, ssl.SSLContext], ctx: ProbeContext, ca_file: str
) -> None:
    server = await servers.raw(greet, tls_contexts["wrong_host"])
    check = tls_check("127.0.0.1", server.port, ca_file=ca_file, server_name="wrong.example")
    assert (await probe(check, ctx)).success


async def test_expiring_certificate(
    servers: Servers, tls_contexts: dict[str, ssl.SSLContext], ctx: ProbeContext, ca_file: str
) -> None:
    server = await servers.raw(greet, tls_contexts["expiring"])
    result = await probe(tls_check("127.0.0.1", server.port, ca_file=ca_file, cert_valid_days=30), ctx)
    assert result.reason is FailureReason.CERTIFICATE_EXPIRY
    assert result.detail == "certificate expires in 5 days (cert_valid_days 30)"
    assert result.cert_expiry is not None


@pytest.mark.parametrize(
    ("kind", "trust", "detail"),
    [
        ("self_signed", False, "certificate verify failed: self-signed certificate"),
        ("good", False, "certificate verify failed: unable to get local issuer certificate"),
        ("expired", True, "certificate verify failed: certificate has expired"),
        ("wrong_host", True, "certificate verify failed: IP address mismatch"),
    ],
)
async def test_bad_certificates(
    servers: Servers,
    tls_contexts: dict[str, ssl.SSLContext],
    ctx: ProbeContext,
    ca_file: str,
    kind: str,
    trust: bool,
    detail: str,
) -> None:
    server = await servers.raw(greet, tls_contexts[kind])
    result = await probe(tls_check("127.0.0.1", server.port, ca_file=ca_file if trust else None), ctx)
    assert result.reason is FailureReason.TLS, result
    assert result.detail == detail
    unverified = await probe(tls_check("127.0.0.1", server.port, tls_verify=False), ctx)
    assert unverified.success, unverified
    assert unverified.cert_expiry is not None


async def test_not_tls_at_all(servers: Servers, ctx: ProbeContext) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await servers.raw(plain)
    result = await probe(tls_check("127.0.0.1", server.port), ctx)
    assert result.reason is FailureReason.TLS
    assert result.detail.startswith("TLS handshake failed: ")


async def test_silent_server_times_out_in_the_handshake(servers: Servers, ctx: ProbeContext) -> None:
    server = await servers.raw(greet)
    start = time.perf_counter()
    result = await probe(tls_check("127.0.0.1", server.port, timeout=0.3), ctx)
    assert result.reason is FailureReason.TIMEOUT
    assert result.detail == "no answer within 0.3 s in the TLS handshake"
    assert time.perf_counter() - start < 0.3 + 0.5


async def test_refused_and_bad_ca_file(servers: Servers, ctx: ProbeContext) -> None:
    server = await servers.raw(greet)
    port = server.port
    await server.stop()
    servers.started.remove(server)
    assert (await probe(tls_check("127.0.0.1", port), ctx)).reason is FailureReason.CONNECT
    missing = await probe(tls_check("127.0.0.1", port, ca_file="/nonexistent.pem"), ctx)
    assert missing.reason is FailureReason.INTERNAL
    bare = ProbeContext(network="testnet", http=ctx.http, user_agent="x")
    assert (await probe(tls_check("tpmon-probe-test.invalid", port), bare)).reason is FailureReason.DNS


@pytest.mark.parametrize("verify", [True, False])
async def test_the_whole_chain_is_read_as_der(servers: Servers, ca: trustme.CA, ca_file: str, verify: bool) -> None:
    """Leaf, intermediate and (verified) root, as DER: public API on Python 3.13, the private `_sslobj` before."""
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("127.0.0.1")
    server = await servers.raw(greet, server_context(leaf))
    presented = [ssl.PEM_cert_to_DER_cert(pem.bytes().decode()) for pem in leaf.cert_chain_pems]
    client = ssl.create_default_context(cafile=ca_file if verify else None)
    if not verify:  # and the root unknown: only the presented chain can be had
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        chain = list(_chain(ssl_object))
        root = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
        assert chain == ([*presented, root] if verify else presented)
        dates = [not_after(der) for der in chain]
        assert None not in dates
        assert expiries(ssl_object) == (dates[0], min(d for d in dates if d is not None))
    finally:
        writer.close()
        await writer.wait_closed()
