"""What the simulator would answer a check at a given time, as a ProbeResult: used to replay history fast.

The live demo probes the simulator for real; the weeks before it are replayed through the same board,
status engine and store, with results derived from the same scenario the simulator reads.
"""

from __future__ import annotations

from datetime import datetime

from ..config import Check
from ..models import ComponentRef, FailureReason, ProbeResult
from .scenario import Scenario
from .simulator import SLOW_SECONDS

__all__ = ["expected_result"]

_FAST = 0.05


def expected_result(scenario: Scenario, network: str, check: Check, at: datetime) -> ProbeResult:
    """The result a real probe of `check` would get from the simulator at virtual time `at`."""
    ref = ComponentRef.for_check(network, check.flow, check.name)
    url = getattr(check, "url", "")
    endpoint = f"{network}/{url.rsplit('/', 1)[-1]}" if url else f"{network}/{check.name}"
    mode = scenario.mode(endpoint, at)
    if mode == "down":
        return ProbeResult(ref, at, _FAST, False, FailureReason.HTTP_STATUS, "status 503", status_code=503)
    if mode == "banner":
        body_ok = not getattr(getattr(check, "conditions", None), "body_not_contains", ())
        if body_ok:
            return ProbeResult(ref, at, _FAST, True, status_code=200)
        detail = "body contains 'Maintenance en cours'"
        return ProbeResult(ref, at, _FAST, False, FailureReason.BODY, detail, status_code=200)
    if mode == "reset":
        return ProbeResult(ref, at, _FAST, False, FailureReason.CONNECT, "connection reset")
    if mode == "slow":
        slow = check.degraded_after is not None and check.degraded_after < SLOW_SECONDS
        return ProbeResult(ref, at, SLOW_SECONDS, True, status_code=200, slow=slow)
    return ProbeResult(ref, at, _FAST, True, status_code=200)
