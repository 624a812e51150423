"""The HTTP probe's conditions, each passing and failing, against a real loopback server."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest

from monitor.models import FailureReason
from monitor.probes import ProbeContext
from monitor.probes.http import probe

from .probe_targets import HttpServer, Request, Servers, http_check, reply


@pytest.mark.parametrize(
    ("status", "accepted", "success"),
    [(200, ["2xx"], True), (204, [204], True), (302, ["2xx", "3xx"], True), (503, ["2xx"], False), (404, [200], False)],
)
async def test_status_condition(
    http_server: HttpServer, ctx: ProbeContext, status: int, accepted: list[Any], success: bool
) -> None:
    http_server.routes["/"] = reply(status, "x")
    check = http_check(http_server.url("/"), follow_redirects=False, conditions={"status": accepted})
    result = await probe(check, ctx)
    assert result.success is success
    assert result.status_code == status
    if not success:
        assert result.reason is FailureReason.HTTP_STATUS
        assert result.detail.startswith(f"status {status}, expected")


BODY = "<h1>Service en maintenance</h1> version 4.2"
DOC = {"status": "ok", "items": [{"id": 7, "up": True}], "count": 1}


@pytest.mark.parametrize(
    ("conditions", "reason", "detail"),
    [
        ({"body_contains": "version"}, None, ""),
        ({"body_contains": ["version", "absent"]}, FailureReason.BODY, "body does not contain 'absent'"),
        ({"body_not_contains": "erreur"}, None, ""),
        ({"body_not_contains": "maintenance"}, FailureReason.BODY, "body contains 'maintenance'"),
        ({"body_matches": r"version \d+\.\d+"}, None, ""),
        ({"body_matches": r"^ok$"}, FailureReason.BODY, "body does not match '^ok$'"),
        ({"body_not_matches": r"erreur \d+"}, None, ""),
        ({"body_not_matches": r"maint\w+"}, FailureReason.BODY, "body matches 'maint\\\\w+'"),
        ({"headers": [{"name": "X-Version"}]}, None, ""),
        ({"headers": [{"name": "x-version", "equals": "4.2"}]}, None, ""),
        ({"headers": [{"name": "X-Missing"}]}, FailureReason.ASSERTION, "header 'X-Missing' missing"),
        (
            {"headers": [{"name": "X-Version", "equals": "5.0"}]},
            FailureReason.ASSERTION,
            "header 'X-Version' has an unexpected value",
        ),
        ({"max_latency": "5s"}, None, ""),
        ({"max_latency": "1ms"}, FailureReason.ASSERTION, "max_latency is 0.001 s"),
    ],
)
async def test_text_conditions(
    http_server: HttpServer, ctx: ProbeContext, conditions: dict[str, Any], reason: FailureReason | None, detail: str
) -> None:
    http_server.routes["/"] = reply(200, BODY, {"X-Version": "4.2", "Content-Type": "text/html; charset=utf-8"})
    result = await probe(http_check(http_server.url("/"), conditions=conditions), ctx)
    assert result.reason is reason, result
    assert result.success is (reason is None)
    assert detail in result.detail
    assert "4.2" not in result.detail  # the header's actual value is never echoed


@pytest.mark.parametrize(
    ("assertions", "detail"),
    [
        ([{"path": "$.status", "equals": "ok"}, {"path": "$.items[0].id", "equals": 7}], ""),
        ([{"path": "$.items[0].up", "equals": True}, {"path": "$.count", "equals": 1}], ""),
        ([{"path": "$.status", "equals": "down"}], 'json $.status is not "down"'),
        ([{"path": "$.items[0].up", "equals": 1}], "json $.items[0].up is not 1"),
        ([{"path": "$.items[3].id", "equals": 7}], "json $.items[3].id missing"),
        ([{"path": "$.nope.deeper", "equals": 1}], "json $.nope.deeper missing"),
    ],
)
async def test_json_conditions(
    http_server: HttpServer, ctx: ProbeContext, assertions: list[dict[str, Any]], detail: str
) -> None:
    http_server.routes["/"] = reply(200, json.dumps(DOC), {"Content-Type": "application/json"})
    result = await probe(http_check(http_server.url("/"), conditions={"json": assertions}), ctx)
    assert result.success is (detail == ""), result
    if detail:
        assert result.reason is FailureReason.ASSERTION
        assert result.detail == detail


async def test_json_condition_on_a_non_json_body(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, BODY)
    result = await probe(http_check(http_server.url("/"), conditions={"json": [{"path": "$.a", "equals": 1}]}), ctx)
    assert result.reason is FailureReason.ASSERTION
    assert "not JSON" in result.detail


@pytest.mark.parametrize(
    ("kind", "days", "success"), [("good", 30, True), ("expiring", 30, False), ("expiring", 4, True)]
)
async def test_cert_valid_days(
    servers: Servers,
    tls_contexts: dict[str, ssl.SSLContext],
    ctx: ProbeContext,
    ca_file: str,
    kind: str,
    days: int,
    success: bool,
) -> None:
    server = await servers.http(tls_contexts[kind])
    server.routes["/"] = reply(200, "ok")
    check = http_check(server.url("/"), ca_file=ca_file, conditions={"cert_valid_days": days})
    result = await probe(check, ctx)
    assert result.success is success, result
    if not success:
        assert result.reason is FailureReason.CERTIFICATE_EXPIRY
        assert result.detail == "certificate expires in 5 days (cert_valid_days 30)"


async def test_cert_valid_days_on_plain_http_fails(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, "ok")
    result = await probe(http_check(http_server.url("/"), conditions={"cert_valid_days": 10}), ctx)
    assert result.reason is FailureReason.CERTIFICATE_EXPIRY


async def test_degraded_after_marks_slow_success(http_server: HttpServer, ctx: ProbeContext) -> None:
    async def late(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.02)  # the target is slow (a probe on loopback takes well under 1 ms)
        await reply(200, "ok")(request, reader, writer)

    http_server.routes["/"] = late
    fast = await probe(http_check(http_server.url("/"), degraded_after="10s"), ctx)
    slow = await probe(http_check(http_server.url("/"), degraded_after="10ms"), ctx)
    assert fast.success
    assert not fast.slow
    assert slow.success
    assert slow.slow
