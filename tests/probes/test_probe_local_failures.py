"""A probe that fails because tpmon's own process ran out of file descriptors is INTERNAL, not the target's fault."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Iterator

import pytest

from monitor.models import FailureReason, ProbeResult
from monitor.probes import ProbeContext
from monitor.probes.dns import probe as dns_probe
from monitor.probes.http import probe as http_probe
from monitor.probes.outcome import local_cause
from monitor.probes.tcp import probe as tcp_probe
from monitor.probes.tls import probe as tls_probe

from .probe_targets import HttpServer, dns_check, http_check, reply, tcp_check, tls_check


@contextlib.contextmanager
def no_file_descriptor_left() -> Iterator[None]:
    """Every file descriptor this process may open is taken (a real EMFILE), until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    try:
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                if exc.errno != errno.EMFILE:
                    raise
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def assert_internal(result: ProbeResult) -> None:
    assert not result.success
    assert result.reason is FailureReason.INTERNAL, result
    assert result.detail == "not the target's fault: tpmon lacks a local resource (Too many open files)"


async def test_http_probe_without_file_descriptor_is_internal(http_server: HttpServer, ctx: ProbeContext) -> None:
    http_server.routes["/"] = reply(200, "ok")
    check = http_check(http_server.url("/"))
    assert (await http_probe(check, ctx)).success  # the target itself is fine
    with no_file_descriptor_left():
        result = await http_probe(check, ctx)
    assert_internal(result)
    assert (await http_probe(check, ctx)).success


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_tcp_and_tls_probes_without_file_descriptor_are_internal(
    kind: str, http_server: HttpServer, ctx: ProbeContext
) -> None:
    with no_file_descriptor_left():
        if kind == "tcp":
            result = await tcp_probe(tcp_check("127.0.0.1", http_server.port), ctx)
        else:
            result = await tls_probe(tls_check("127.0.0.1", http_server.port), ctx)
    assert_internal(result)


async def test_a_refused_connection_stays_the_targets_failure(ctx: ProbeContext) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = await tcp_probe(tcp_check("127.0.0.1", port), ctx)
    assert result.reason is FailureReason.CONNECT


async def test_dns_probe_without_file_descriptor_is_never_the_names_fault(ctx: ProbeContext) -> None:
    # glibc cannot open /etc/hosts then, and says "Name or service not known": that is not the name's fault
    with no_file_descriptor_left():
        result = await dns_probe(dns_check("localhost"), ctx)
    assert_internal(result)
    assert (await dns_probe(dns_check("localhost"), ctx)).success
    unknown = await dns_probe(dns_check("tpmon-probe-test.invalid"), ctx)
    assert unknown.reason is FailureReason.DNS  # with descriptors to spare, a failed lookup is the name's


def test_local_cause_walks_the_chain_and_ignores_the_targets_errors() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    assert local_cause(refused) is None
    assert local_cause(None) is None
    emfile = OSError(errno.EMFILE, "Too many open files")
    wrapper = RuntimeError("connect failed")
    wrapper.__cause__ = emfile
    assert local_cause(wrapper) is emfile
    for code in (errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL):
        assert local_cause(OSError(code, os.strerror(code))) is not None
