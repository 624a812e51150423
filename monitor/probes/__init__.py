"""Probes: one module per kind; `PROBES[kind](check, ctx)` measures a target and returns a ProbeResult.

A failing target is data (a failed ProbeResult with a `FailureReason`), never an exception, and a
probe always returns within its check's timeout (plus a small grace), whatever the target does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from ..models import ComponentRef, ProbeResult
from .clients import HttpClients


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may use: the shared HTTP client(s), the clock, the environment for ${VAR} secrets.

    `http` is the default client (system CAs, keep-alive disabled), normally `clients.get()`.
    `clients` supplies the other clients (`tls_verify: false`, `ca_file`, `reuse_connection`) and
    the cached SSL contexts of the TLS probe; without it such HTTP checks fail with INTERNAL.
    """

    network: str
    http: httpx.AsyncClient  # shared, keep-alive disabled: a fresh connection per probe
    user_agent: str
    environ: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    clients: HttpClients | None = None


ProbeFn = Callable[[Any, ProbeContext], Awaitable[ProbeResult]]


def ref_of(check: Any, ctx: ProbeContext) -> ComponentRef:
    return ComponentRef.for_check(ctx.network, check.flow, check.name)


def _registry() -> dict[str, ProbeFn]:
    from . import dns, http, tcp, tls

    return {"http": http.probe, "tcp": tcp.probe, "tls": tls.probe, "dns": dns.probe}


PROBES: Mapping[str, ProbeFn] = _registry()
