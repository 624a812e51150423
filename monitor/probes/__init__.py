"""Probes: one module per kind; `PROBES[kind](check, ctx)` measures a target and returns a ProbeResult.

A failing target is data (a failed ProbeResult with a `FailureReason`), never an exception, and a
probe always returns within its check's timeout (plus a small grace), whatever the target does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import dns, http, tcp, tls
from .context import Probe, ProbeContext, ref_of, utc_now

__all__ = ["PROBES", "Probe", "ProbeContext", "ref_of", "utc_now"]

# by `kind:`; each probe takes its own kind of check (HttpCheck for "http"…), hence Any for the mapping as a whole
PROBES: Mapping[str, Probe[Any]] = {"http": http.probe, "tcp": tcp.probe, "tls": tls.probe, "dns": dns.probe}
