"""The HTTP probe against real loopback servers: phases, redirects, secrets, certificates, clients."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from datetime import UTC, datetime

import trustme

from monitor.models import FailureReason
from monitor.probes import ProbeContext
from monitor.probes.clients import Shared
from monitor.probes.http import probe

from .probe_targets import (
    SECRET,
    USER_AGENT,
    HttpServer,
    Request,
    Servers,
    http_check,
    reply,
    response_head,
    server_context,
)


async def test_success_sets_status_phases_and_user_agent(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, "hello")
    result = await probe(http_check(http_server.url("/")), ctx)
    assert result.success, result
    assert result.reason is None
    assert result.status_code == 200
    assert result.check.key == "check:testnet/pec/portail"
    assert result.started_at.tzinfo is not None
    assert 0 < result.duration_s < 1
    assert set(result.phases) == {"resolve", "connect", "tls", "processing", "transfer"}
    assert result.phases["resolve"] == 0.0
    assert 0 < result.phases["connect"] < result.duration_s
    assert result.phases["tls"] == 0.0
    assert 0 < result.phases["processing"] < result.duration_s
    assert sum(result.phases.values()) <= result.duration_s
    assert result.cert_expiry is None
    assert http_server.requests[0].headers["user-agent"] == USER_AGENT


async def test_https_phases_and_certificate_dates(https_server: HttpServer, ctx: ProbeContext, ca_file: str) -> None:
    https_server.routes["/"] = reply(200, "hello")
    result = await probe(http_check(https_server.url("/"), ca_file=ca_file), ctx)
    assert result.success, result
    assert 0 < result.phases["tls"] < result.duration_s
    assert 0 < result.phases["connect"] < result.duration_s
    now = datetime.now(UTC)
    assert result.cert_expiry is not None
    assert result.chain_expiry is not None
    assert now < result.chain_expiry <= result.cert_expiry


async def test_each_probe_opens_a_fresh_connection(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, "hello")
    for _ in range(3):
        assert (await probe(http_check(http_server.url("/")), ctx)).success
    assert http_server.connections == 3


async def test_secrets_are_expanded_and_never_shown(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/api"] = reply(500, f"denied for {SECRET}")
    check = http_check(
        "http://${TPMON_TEST_HOST}:" + str(http_server.port) + "/api?key=${TPMON_TEST_TOKEN}",
        method="POST",
        headers={"Authorization": "Bearer ${TPMON_TEST_TOKEN}"},
        body='{"token": "${TPMON_TEST_TOKEN}"}',
        conditions={"body_contains": SECRET[:6]},
    )
    result = await probe(check, ctx)
    request = http_server.requests[0]
    assert request.target == f"/api?key={SECRET}"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body == f'{{"token": "{SECRET}"}}'.encode()
    assert result.reason is FailureReason.HTTP_STATUS
    assert SECRET not in result.detail
    assert SECRET not in repr(result)
    assert "key=" not in repr(result)


async def test_unset_variable_is_an_internal_failure(ctx: ProbeContext) -> None:
    result = await probe(http_check("http://127.0.0.1:9/?k=${TPMON_NOT_SET}"), ctx)
    assert result.reason is FailureReason.INTERNAL
    assert result.detail == "environment variable TPMON_NOT_SET is not set"


async def test_header_value_with_newline_fails_without_echoing_it(http_server: HttpServer, ctx: ProbeContext) -> None:
    bad = ProbeContext(network="testnet", http=ctx.http, user_agent=USER_AGENT, environ={"V": f"{SECRET}\r\nX: y"})
    result = await probe(http_check(http_server.url("/"), headers={"X-Key": "${V}"}), bad)
    assert result.reason is FailureReason.INTERNAL
    assert SECRET not in repr(result)


async def test_redirects_are_followed_with_their_cookies(http_server: HttpServer, ctx: ProbeContext) -> None:
    async def login(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(302, headers={"Location": "/home", "Set-Cookie": "session=abc; Path=/"})(request, reader, writer)

    async def home(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ok = request.headers.get("cookie") == "session=abc"
        await reply(200 if ok else 401, "home")(request, reader, writer)

    http_server.routes |= {"/": login, "/home": home}
    result = await probe(http_check(http_server.url("/"), conditions={"status": ["2xx"]}), ctx)
    assert result.success, result
    assert result.status_code == 200
    assert [r.path for r in http_server.requests] == ["/", "/home"]
    not_followed = await probe(http_check(http_server.url("/"), follow_redirects=False), ctx)
    assert not_followed.success
    assert not_followed.status_code == 302
    # the shared client kept no cookie from the first probe
    assert "cookie" not in http_server.requests[-1].headers


async def test_head_and_zero_body_bytes(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, "ok")
    assert (await probe(http_check(http_server.url("/"), method="HEAD"), ctx)).success
    assert http_server.requests[-1].method == "HEAD"
    result = await probe(http_check(http_server.url("/"), max_body_bytes=0, conditions={"body_contains": "ok"}), ctx)
    assert result.reason is FailureReason.BODY


async def test_without_client_cache_special_tls_settings_are_internal(
    http_server: HttpServer, ctx: ProbeContext
) -> None:
    bare = ProbeContext(network="testnet", http=ctx.http, user_agent=USER_AGENT)
    result = await probe(http_check(http_server.url("/"), tls_verify=False), bare)
    assert result.reason is FailureReason.INTERNAL
    missing = await probe(http_check(http_server.url("/"), ca_file="/nonexistent/ca.pem"), ctx)
    assert missing.reason is FailureReason.INTERNAL
    assert missing.detail.startswith("cannot load ca_file")


async def test_reuse_connection_keeps_the_connection(http_server: HttpServer, ctx: ProbeContext) -> None:
    seen: list[int] = []

    async def keep(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # answer on the same connection for as long as the client keeps it
        while True:
            seen.append(id(writer))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request, or EOF (ends the handler)

    http_server.routes["/"] = keep
    check = http_check(http_server.url("/"), reuse_connection=True)
    for _ in range(2):
        assert (await probe(check, ctx)).success
    assert http_server.connections == 1
    assert len(seen) == 2


async def test_the_request_is_prepared_once_per_check_and_environment(
    http_server: HttpServer, ctx: ProbeContext
) -> None:
    http_server.routes |= {"/a": reply(200, "a"), "/b": reply(200, "b")}
    check = http_check(http_server.url("/a"), headers={"Authorization": "Bearer ${TPMON_TEST_TOKEN}"})
    for _ in range(2):
        assert (await probe(check, ctx)).success
    assert ctx.clients is not None
    assert len(ctx.clients.templates) == 1
    # a reloaded configuration brings a new check object: its own URL, never the old template's
    assert (await probe(http_check(http_server.url("/b")), ctx)).success
    # another environment: the variables are expanded anew
    other = ProbeContext("testnet", ctx.http, USER_AGENT, {"TPMON_TEST_TOKEN": "t2"}, clients=ctx.clients)
    assert (await probe(check, other)).success
    assert [(r.path, r.headers.get("authorization")) for r in http_server.requests] == [
        ("/a", f"Bearer {SECRET}"),
        ("/a", f"Bearer {SECRET}"),
        ("/b", None),
        ("/a", "Bearer t2"),
    ]
    assert http_server.connections == 4


async def test_checks_sending_equal_headers_share_them_and_each_sends_its_own(
    http_server: HttpServer, ctx: ProbeContext
) -> None:
    http_server.routes |= {"/a": reply(200, "a"), "/b": reply(200, "b")}
    first = http_check(http_server.url("/a"), headers={"Authorization": "Bearer ${TPMON_TEST_TOKEN}"})
    second = http_check(http_server.url("/b"), headers={"X-Other": "2"}).model_copy(update={"name": "autre"})
    for check in (first, second, first, second):
        assert (await probe(check, ctx)).success
    assert [(r.path, r.headers.get("authorization"), r.headers.get("x-other")) for r in http_server.requests] == [
        ("/a", f"Bearer {SECRET}", None),
        ("/b", None, "2"),
        ("/a", f"Bearer {SECRET}", None),
        ("/b", None, "2"),
    ]
    assert all(r.headers["user-agent"] == USER_AGENT for r in http_server.requests)
    assert ctx.clients is not None
    a, b = (ctx.clients.templates[("testnet", "pec", name)].first for name in ("portail", "autre"))
    common = {pair for pair in a.headers if pair in b.headers}
    assert {name for name, _ in common} >= {b"Host", b"Accept", b"User-Agent"}
    # one object for every equal header, method and address: in the request and in what h11 sends
    assert all(pair in common or not any(pair is other for other in b.headers) for pair in a.headers)
    for pair in common:
        assert sum(pair is other for other in b.headers) == 1, (pair, a.headers, b.headers)
    assert a.method is b.method and a.literal is b.literal is not None
    assert isinstance(a.address, str) and a.address.endswith("/a")  # its text: httpx's parsed URL is ≈ 0.3 kB more
    assert a.head is not None and b.head is not None
    shared = [item for item in a.head.headers._full_items if item in b.head.headers._full_items]
    assert len(shared) == len(common)
    assert all(any(item is other for other in b.head.headers._full_items) for item in shared)


def test_shared_values_are_one_object_each_and_start_afresh_past_the_limit() -> None:
    def accept() -> tuple[bytes, bytes]:  # a new tuple at every call (a literal would be one constant)
        return (b"Accept", bytes(bytearray(b"*/*")))

    shared = Shared(limit=2)
    one = shared(accept())
    assert accept() is not one
    assert shared(accept()) is one
    shared((b"Host", b"a"))
    assert len(shared) == 2
    three = shared((b"Host", b"b"))  # past the limit: a new table, which holds this one only
    assert len(shared) == 1
    assert shared((b"Host", b"b")) is three
    assert shared(accept()) is not one


async def test_a_host_name_is_resolved_and_timed(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, "ok")
    result = await probe(http_check(http_server.url("/", "localhost")), ctx)
    assert result.success, result
    assert 0 < result.phases["resolve"] < result.duration_s
    assert 0 < result.phases["connect"] < result.duration_s


async def test_redirects_change_method_and_headers_as_httpx_does(http_server: HttpServer, ctx: ProbeContext) -> None:
    port = http_server.port
    http_server.routes |= {
        "/see-other": reply(303, headers={"Location": "/form"}),
        "/form": reply(302, headers={"Location": f"http://localhost:{port}/elsewhere"}),
        "/elsewhere": reply(200, "done"),
        "/temporary": reply(307, headers={"Location": "/kept"}),
        "/kept": reply(200, "kept"),
    }
    headers = {"Authorization": "Bearer ${TPMON_TEST_TOKEN}"}
    posted = await probe(http_check(http_server.url("/see-other"), method="POST", body="x=1", headers=headers), ctx)
    assert posted.success, posted
    see_other, form, elsewhere = http_server.requests
    assert (see_other.method, see_other.body, see_other.headers["content-length"]) == ("POST", b"x=1", "3")
    # 303: GET without a body; same origin: Authorization kept
    assert (form.method, form.body, "content-length" in form.headers) == ("GET", b"", False)
    assert form.headers["authorization"] == f"Bearer {SECRET}"
    # to another host: Authorization dropped, Host updated
    assert "authorization" not in elsewhere.headers
    assert elsewhere.headers["host"] == f"localhost:{port}"
    kept = await probe(http_check(http_server.url("/temporary"), method="POST", body="y=2"), ctx)
    assert kept.success, kept
    assert [(r.method, r.body) for r in http_server.requests[3:]] == [("POST", b"y=2"), ("POST", b"y=2")]


async def test_a_redirect_to_https_is_timed_and_its_certificate_read(
    http_server: HttpServer, https_server: HttpServer, ctx: ProbeContext, ca_file: str
) -> None:
    http_server.routes["/"] = reply(302, headers={"Location": https_server.url("/secure")})
    https_server.routes["/secure"] = reply(200, "secure")
    result = await probe(http_check(http_server.url("/"), ca_file=ca_file), ctx)
    assert result.success, result
    assert result.cert_expiry is not None
    assert 0 < result.phases["tls"] < result.duration_s
    assert [r.path for r in https_server.requests] == ["/secure"]


async def test_a_url_that_expands_to_another_scheme_is_internal(ctx: ProbeContext) -> None:
    odd = ProbeContext("testnet", ctx.http, USER_AGENT, {"TARGET": "ftp://127.0.0.1/file"}, clients=ctx.clients)
    result = await probe(http_check("${TARGET}"), odd)
    assert result.reason is FailureReason.INTERNAL
    assert result.detail == "the request could not be sent (URL scheme or header)"


async def test_https_offers_http_1_1_by_alpn(
    servers: Servers, tls_contexts: dict[str, ssl.SSLContext], ca: trustme.CA, ctx: ProbeContext, ca_file: str
) -> None:
    offered: list[str | None] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        offered.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response_head(200, length=2) + b"ok")
        await writer.drain()

    context = server_context(ca.issue_cert("127.0.0.1"))
    context.set_alpn_protocols(["h2", "http/1.1"])
    server = await servers.raw(answer, context)
    result = await probe(http_check(f"https://127.0.0.1:{server.port}/", ca_file=ca_file), ctx)
    assert result.success, result
    assert offered == ["http/1.1"]


async def test_compressed_and_chunked_bodies_are_decoded(http_server: HttpServer, ctx: ProbeContext) -> None:
    text = "Connexion " * 200
    packed = gzip.compress(text.encode())

    async def zipped(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(200, packed, headers={"Content-Encoding": "gzip"})(request, reader, writer)

    async def chunked(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(200, {"Transfer-Encoding": "chunked"}, length=None))
        for part in (b"Conne", b"xion", b""):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        await writer.drain()

    http_server.routes |= {"/zip": zipped, "/chunks": chunked}
    for path in ("/zip", "/chunks"):
        result = await probe(http_check(http_server.url(path), conditions={"body_contains": "Connexion"}), ctx)
        assert result.success, (path, result)
    assert "gzip" in http_server.requests[0].headers["accept-encoding"]
    cut = await probe(http_check(http_server.url("/zip"), max_body_bytes=100, conditions={"body_contains": "xyz"}), ctx)
    assert cut.reason is FailureReason.BODY  # the decoded body, cut at max_body_bytes
