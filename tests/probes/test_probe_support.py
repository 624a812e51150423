"""The probe registry, the client cache and the certificate helpers."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import trustme

from monitor.config import DnsCheck, HttpCheck, TcpCheck, TlsCheck
from monitor.probes import PROBES, Probe, ProbeContext, dns, http, tcp, tls
from monitor.probes.certs import expiry_problem, not_after
from monitor.probes.clients import HttpClients
from monitor.probes.conditions import MISSING, json_lookup
from monitor.probes.outcome import MAX_DETAIL, clip

from .probe_targets import HttpServer, Servers, dns_check, http_check, reply, tcp_check, tls_check


async def test_probes_dispatch_every_kind(
    servers: Servers, http_server: HttpServer, tls_contexts: dict[str, ssl.SSLContext], ctx: ProbeContext
) -> None:
    expected: dict[str, Probe[Any]] = {"http": http.probe, "tcp": tcp.probe, "tls": tls.probe, "dns": dns.probe}
    assert expected == PROBES
    http_server.routes["/"] = reply(200, "ok")
    tls_server = await servers.http(tls_contexts["good"])
    checks: list[HttpCheck | TcpCheck | TlsCheck | DnsCheck] = [
        http_check(http_server.url("/")),
        tcp_check("127.0.0.1", http_server.port),
        tls_check("127.0.0.1", tls_server.port, tls_verify=False),
        dns_check("localhost"),
    ]
    for check in checks:
        result = await PROBES[check.kind](check, ctx)
        assert result.success, (check.kind, result)
        assert result.check.key == f"check:testnet/pec/{check.name}"


async def test_clients_are_cached_per_setting(ca_file: str) -> None:
    async with HttpClients() as clients:
        default = clients.get()
        assert clients.get() is default
        assert clients.get(verify=False) is clients.get(verify=False, ca_file=ca_file)
        assert clients.get(ca_file=ca_file) not in (default, clients.get(verify=False))
        assert clients.get(keep_alive=True) is not default
        assert clients.ssl_context(ca_file=ca_file) is clients.ssl_context(ca_file=ca_file)
    assert default.is_closed


def test_not_after_reads_der(ca: trustme.CA) -> None:
    when = datetime(2031, 5, 17, 12, 30, tzinfo=UTC)
    cert = ca.issue_cert("example.test", not_after=when)
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    assert not_after(der) == when
    assert not_after(b"\x30\x03\x02\x01") is None
    assert not_after(b"") is None


def test_expiry_problem() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert expiry_problem(now + timedelta(days=40), 30, now) is None
    assert expiry_problem(now + timedelta(days=40), None, now) is None
    assert expiry_problem(now - timedelta(days=2), 30, now) == "certificate expired 2 days ago"
    assert expiry_problem(None, 30, now) == "no TLS certificate to check"


def test_json_lookup() -> None:
    document = {"a": {"b": [{"c": 1}, {"c": None}]}, "x.y": 2}
    assert json_lookup(document, "$.a.b[0].c") == 1
    assert json_lookup(document, "$.a.b[1].c") is None
    assert json_lookup(document, "$") is document
    assert json_lookup(document, "$.a.b[2].c") is MISSING
    assert json_lookup(document, "$.a[0]") is MISSING
    assert json_lookup(document, "$.nope") is MISSING
    assert json_lookup(document, "$.a.b.c") is MISSING


def test_clip() -> None:
    assert clip("short") == "short"
    assert len(clip("x" * 500)) == MAX_DETAIL
