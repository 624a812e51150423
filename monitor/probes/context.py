"""What every probe shares: the context it runs in (clients, clock, secrets' environment) and the Probe type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import httpx

from ..config.model import CheckBase, ProbeCheck
from ..models import ComponentRef, ProbeResult
from .clients import HttpClients

__all__ = ["Probe", "ProbeContext", "ref_of", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may use: the shared HTTP client(s), the clock, the environment for ${VAR} secrets.

    `http` is the default client (system CAs, keep-alive disabled), normally `clients.get()`: the HTTP
    probe builds its requests with it (its default headers) and sends them on connections of its own.
    `clients` supplies the cached SSL contexts, the keep-alive clients (`reuse_connection`) and the HTTP
    probe's request templates; without it, HTTP checks with `tls_verify: false`, `ca_file` or
    `reuse_connection` fail with INTERNAL, and the HTTP probe builds its request at every probe.
    """

    network: str
    http: httpx.AsyncClient  # shared, keep-alive disabled: builds the HTTP probe's requests
    user_agent: str
    environ: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    clients: HttpClients | None = None
    source_address: str | None = None  # the local address probes connect from (its location's); None: any


CheckKind_contra = TypeVar("CheckKind_contra", bound=ProbeCheck, contravariant=True)


class Probe(Protocol[CheckKind_contra]):
    """A probe of one kind of check: measures the target within the check's timeout and returns a ProbeResult."""

    def __call__(self, check: CheckKind_contra, ctx: ProbeContext, /) -> Awaitable[ProbeResult]: ...


def ref_of(check: CheckBase, ctx: ProbeContext) -> ComponentRef:
    return ComponentRef.for_check(ctx.network, check.flow, check.name)
