"""Probes: one module per kind; `PROBES[kind](check, ctx)` measures a target and returns a ProbeResult.

A failing target is data (a failed ProbeResult with a `FailureReason`), never an exception, and a
probe always returns within its check's timeout (plus a small grace), whatever the target does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..config import Check
from ..models import ComponentRef, FailureReason, ProbeResult
from . import dns, http, tcp, tls
from .context import Probe, ProbeContext, ref_of, utc_now
from .net import SOURCE_ADDRESS
from .starvation import watch

__all__ = ["PROBES", "Probe", "ProbeContext", "probe_check", "ref_of", "utc_now"]

log = logging.getLogger("tpmon.runner")

# by `kind:`; each probe takes its own kind of check (HttpCheck for "http"…), hence Any for the mapping as a whole
PROBES: Mapping[str, Probe[Any]] = {"http": http.probe, "tcp": tcp.probe, "tls": tls.probe, "dns": dns.probe}


async def probe_check(check: Check, ctx: ProbeContext) -> ProbeResult:
    """Probe `check` once; a probe that raises (a bug: a failing target is data) is a failed result, INTERNAL, and
    so is a timeout while this process was starved (`starvation`): neither says anything of the target."""
    source = SOURCE_ADDRESS.set(ctx.source_address)  # the connections of this probe leave from it
    loop_watch, started = watch(), time.monotonic()
    try:
        result: ProbeResult = await PROBES[check.kind](check, ctx)
        timeout: float | None = getattr(check, "timeout", None)  # a push check has none (and is never probed)
        if result.reason is FailureReason.TIMEOUT and timeout is not None:
            ended = time.monotonic()
            if loop_watch.starved(started, ended, timeout):
                late = loop_watch.worst(started, ended)
                result = dataclasses.replace(
                    result, reason=FailureReason.INTERNAL, detail=f"{result.detail}; tpmon itself {late:.1f} s late"
                )
    except Exception as exc:  # a probe bug must not kill the scheduler; the target is not to blame
        log.exception("probe %s/%s/%s crashed", ctx.network, check.flow, check.name)
        ref = ComponentRef.for_check(ctx.network, check.flow, check.name)
        result = ProbeResult(ref, ctx.clock(), 0.0, False, FailureReason.INTERNAL, type(exc).__name__)
    finally:
        SOURCE_ADDRESS.reset(source)
    return result
