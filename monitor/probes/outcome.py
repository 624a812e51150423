"""The stopwatch every probe runs under, and the ProbeResult it builds."""

from __future__ import annotations

import errno
import os
import socket
import time
from datetime import datetime

from ..config import ProbeCheck
from ..models import FailureReason, ProbeResult
from .context import ProbeContext, ref_of

__all__ = ["LOCAL_ERRNOS", "MAX_DETAIL", "Stopwatch", "clip", "local_cause", "os_detail"]

MAX_DETAIL = 200
# The prober's own machine ran out of something (file descriptors, buffers, memory, source ports): the target is
# not to blame, so such a failure is INTERNAL, which the engine never counts against the target.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})


def clip(detail: str) -> str:
    """`detail` cut to MAX_DETAIL characters."""
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"


def os_detail(exc: BaseException) -> str:
    """The OS's words for the first OSError in `exc`'s chain, without its address or file name."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.strerror:
            return seen.strerror
        if isinstance(seen, OSError) and seen.errno and seen.errno > 0:
            return os.strerror(seen.errno)  # asyncio's own strerror quotes the address
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def local_cause(exc: BaseException | None) -> OSError | None:
    """The error saying that the prober itself lacked a resource when `exc` happened, if it did.

    Either an OSError of LOCAL_ERRNOS in `exc`'s chain, or, for a failed name lookup (whose error never carries
    errno: glibc says "Name or service not known" when it cannot even open /etc/hosts), the error of opening a
    socket now, when that fails for a local reason.
    """
    seen, lookup = exc, False
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            lookup = True
        elif isinstance(seen, OSError) and seen.errno in LOCAL_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    if lookup:
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
        except OSError as spare:
            return spare if spare.errno in LOCAL_ERRNOS else None
    return None


class Stopwatch:
    """Starts timing one probe when built; `ok` and `failed` stop it and build the result."""

    def __init__(self, check: ProbeCheck, ctx: ProbeContext) -> None:
        self.ref = ref_of(check, ctx)
        self.timeout: float = check.timeout
        self.degraded_after: float | None = check.degraded_after
        self.started_at: datetime = ctx.clock()
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the probe started."""
        return time.perf_counter() - self._start

    def ok(
        self,
        *,
        phases: dict[str, float] | None = None,
        status_code: int | None = None,
        cert_expiry: datetime | None = None,
        chain_expiry: datetime | None = None,
    ) -> ProbeResult:
        """A success; `slow` when it took longer than the check's `degraded_after`."""
        duration = self.elapsed()
        return ProbeResult(
            check=self.ref,
            started_at=self.started_at,
            duration_s=duration,
            success=True,
            status_code=status_code,
            phases=phases or {},
            cert_expiry=cert_expiry,
            chain_expiry=chain_expiry,
            slow=self.degraded_after is not None and duration > self.degraded_after,
        )

    def failed(
        self,
        reason: FailureReason,
        detail: str,
        *,
        phases: dict[str, float] | None = None,
        status_code: int | None = None,
        cert_expiry: datetime | None = None,
        chain_expiry: datetime | None = None,
        cause: BaseException | None = None,
    ) -> ProbeResult:
        """A failure for `reason`; `detail` must hold no secret and is clipped to MAX_DETAIL.

        With the exception that caused it: when that says the prober's own machine lacked a resource
        (LOCAL_ERRNOS), the failure is INTERNAL whatever `reason` was, and its detail says so.
        """
        local = local_cause(cause)
        if local is not None:
            reason = FailureReason.INTERNAL
            detail = f"not the target's fault: tpmon lacks a local resource ({os.strerror(local.errno or 0)})"
        return ProbeResult(
            check=self.ref,
            started_at=self.started_at,
            duration_s=self.elapsed(),
            success=False,
            reason=reason,
            detail=clip(detail),
            status_code=status_code,
            phases=phases or {},
            cert_expiry=cert_expiry,
            chain_expiry=chain_expiry,
        )

    def timed_out(self, where: str = "", *, phases: dict[str, float] | None = None) -> ProbeResult:
        """A TIMEOUT failure: the check's timeout ran out (`where`: what it was doing then)."""
        detail = f"no answer within {self.timeout:g} s" + (f" {where}" if where else "")
        return self.failed(FailureReason.TIMEOUT, detail, phases=phases)
