"""The stopwatch every probe runs under, and the ProbeResult it builds."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from ..config import ProbeCheck
from ..models import FailureReason, ProbeResult
from .context import ProbeContext, ref_of

__all__ = ["MAX_DETAIL", "Stopwatch", "clip", "os_detail"]

MAX_DETAIL = 200


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
    ) -> ProbeResult:
        """A failure for `reason`; `detail` must hold no secret and is clipped to MAX_DETAIL."""
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
