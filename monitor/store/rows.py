"""Conversions between the shared dataclasses and the rows of the store's tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.models import (
    CheckMemory,
    ComponentRef,
    ComponentStatus,
    FailureReason,
    ProbeResult,
    Source,
    State,
    Streak,
    Transition,
)

__all__ = [
    "STREAKS",
    "memory_from_row",
    "memory_row",
    "result_from_row",
    "result_row",
    "status_from_row",
    "status_row",
    "transition_from_row",
    "transition_row",
]

Row = dict[str, Any]
STREAKS = ("fails", "oks", "fasts", "bads")


def result_row(result: ProbeResult) -> Row:
    return {
        "check_key": result.check.key,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "success": result.success,
        "reason": result.reason.value if result.reason is not None else None,
        "detail": result.detail,
        "status_code": result.status_code,
        "phases": dict(result.phases),
        "cert_expiry": result.cert_expiry,
        "chain_expiry": result.chain_expiry,
        "slow": result.slow,
    }


def result_from_row(row: Any) -> ProbeResult:
    return ProbeResult(
        check=ComponentRef.parse(row.check_key),
        started_at=row.started_at,
        duration_s=row.duration_s,
        success=row.success,
        reason=FailureReason(row.reason) if row.reason is not None else None,
        detail=row.detail,
        status_code=row.status_code,
        phases={str(phase): float(seconds) for phase, seconds in (row.phases or {}).items()},
        cert_expiry=row.cert_expiry,
        chain_expiry=row.chain_expiry,
        slow=row.slow,
    )


def transition_row(transition: Transition) -> Row:
    return {
        "component_key": transition.ref.key,
        "previous": transition.previous.value,
        "state": transition.state.value,
        "at": transition.at,
        "recorded_at": transition.recorded_at,
        "source": transition.source.value,
        "progress": transition.progress,
        "detail": transition.detail,
    }


def transition_from_row(row: Any) -> Transition:
    return Transition(
        ref=ComponentRef.parse(row.component_key),
        previous=State(row.previous),
        state=State(row.state),
        at=row.at,
        recorded_at=row.recorded_at,
        source=Source(row.source),
        progress=row.progress,
        detail=row.detail,
    )


def status_row(key: str, status: ComponentStatus, now: datetime) -> Row:
    return {
        "component_key": key,
        "state": status.state.value,
        "since": status.since,
        "source": status.source.value,
        "raw": status.raw.value,
        "progress": status.progress,
        "stable_since": status.stable_since,
        "changed_at": status.changed_at,
        "detail": status.detail,
        "updated_at": now,
    }


def status_from_row(row: Any) -> ComponentStatus:
    return ComponentStatus(
        ref=ComponentRef.parse(row.component_key),
        state=State(row.state),
        since=row.since,
        source=Source(row.source),
        raw=State(row.raw),
        progress=row.progress,
        stable_since=row.stable_since,
        changed_at=row.changed_at,
        detail=row.detail,
    )


def memory_row(key: str, memory: CheckMemory, now: datetime) -> Row:
    row: Row = {
        "check_key": key,
        "state": memory.state.value,
        "since": memory.since,
        "last_result_at": memory.last_result_at,
        "updated_at": now,
    }
    for name in STREAKS:
        streak: Streak = getattr(memory, name)
        row[f"{name}_count"] = streak.count
        row[f"{name}_since"] = streak.since
    return row


def memory_from_row(row: Any) -> CheckMemory:
    streaks = {name: Streak(getattr(row, f"{name}_count"), getattr(row, f"{name}_since")) for name in STREAKS}
    return CheckMemory(
        state=State(row.state),
        since=row.since,
        last_result_at=row.last_result_at,
        fails=streaks["fails"],
        oks=streaks["oks"],
        fasts=streaks["fasts"],
        bads=streaks["bads"],
    )
