"""Conversions between the shared dataclasses and the rows of the store's tables."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
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
    "PHASES",
    "REASON_CODES",
    "STREAKS",
    "from_micros",
    "memory_from_row",
    "memory_row",
    "micros",
    "result_from_row",
    "result_from_stored",
    "result_row",
    "status_from_row",
    "status_row",
    "stored_row",
    "transition_from_row",
    "transition_row",
]

Row = dict[str, Any]
STREAKS = ("fails", "oks", "fasts", "bads")
PHASES = ("resolve", "connect", "tls", "processing", "transfer")  # each its column `<phase>_us`
_PHASE_COLUMNS = tuple((name, f"{name}_us") for name in PHASES)

# The code of each failure reason in `probe_result.reason`: stable forever (migration 0030 holds a copy);
# a new reason gets the next free number.
REASON_CODES: dict[FailureReason, int] = {
    FailureReason.TIMEOUT: 1,
    FailureReason.DNS: 2,
    FailureReason.CONNECT: 3,
    FailureReason.TLS: 4,
    FailureReason.HTTP_STATUS: 5,
    FailureReason.BODY: 6,
    FailureReason.ASSERTION: 7,
    FailureReason.PROTOCOL: 8,
    FailureReason.TOO_MANY_REDIRECTS: 9,
    FailureReason.CERTIFICATE_EXPIRY: 10,
    FailureReason.INTERNAL: 11,
    FailureReason.REPORTED: 12,
    FailureReason.NO_HEARTBEAT: 13,
}
_REASONS = {code: reason for reason, code in REASON_CODES.items()}  # an unknown code (a newer tpmon's) reads None
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)


def micros(when: datetime) -> int:
    """µs since the Unix epoch of `when` (a naive datetime is taken as UTC, as `tables.UTCDateTime` does)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The aware UTC datetime `value` µs after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=value)


def _seconds(when: datetime | None) -> int | None:
    """Whole seconds since the Unix epoch: a certificate's dates have no fraction (RFC 5280, 4.1.2.5)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _SECOND


def _duration(seconds: float) -> int | None:
    """A duration in µs; None (refused by the NOT NULL duration, absent for a phase) when not a number."""
    scaled = seconds * 1_000_000
    return round(scaled) if math.isfinite(scaled) else None


def result_row(result: ProbeResult, check_id: int) -> Row:
    """The record of `result`, whose check key has the id `check_id` in `probe_check`, as the journal keeps it
    (the `probe_result` row of migration 0030: absolute certificate dates, no bounds; `stored_row` narrows it);
    a phase outside `PHASES` is not kept."""
    phases = result.phases
    reason = result.reason
    return {
        "check_id": check_id,
        "started_us": micros(result.started_at),
        "duration_us": _duration(result.duration_s),
        "success": result.success,
        "slow": result.slow,
        "reason": None if reason is None else REASON_CODES.get(reason),
        "detail": result.detail,
        "status_code": result.status_code,
        **{column: (None if name not in phases else _duration(phases[name])) for name, column in _PHASE_COLUMNS},
        "cert_expiry_s": _seconds(result.cert_expiry),
        "chain_expiry_s": _seconds(result.chain_expiry),
    }


def result_from_row(row: Any, check: ComponentRef) -> ProbeResult:
    """The result of a `result_row` record of `check`."""
    cert, chain = row.cert_expiry_s, row.chain_expiry_s
    return ProbeResult(
        check=check,
        started_at=from_micros(row.started_us),
        duration_s=math.inf if row.duration_us is None else row.duration_us / 1_000_000,  # as _duration wrote it
        success=row.success,
        reason=None if row.reason is None else _REASONS.get(row.reason),
        detail=row.detail,
        status_code=row.status_code,
        phases={
            name: value / 1_000_000 for name, column in _PHASE_COLUMNS if (value := getattr(row, column)) is not None
        },
        cert_expiry=None if cert is None else _EPOCH + timedelta(seconds=cert),
        chain_expiry=None if chain is None else _EPOCH + timedelta(seconds=chain),
        slow=row.slow,
    )


# The bounds of the narrow columns of `probe_result` (migration 0035).
_INT4 = (-(2**31), 2**31 - 1)
_INT2 = (-(2**15), 2**15 - 1)
_EXPIRIES = (("cert_expiry_s", "cert_expires_in_s"), ("chain_expiry_s", "chain_expires_in_s"))


def _fit(value: int | None, bounds: tuple[int, int], column: str, clamped: Counter[str]) -> int | None:
    """`value` within `bounds`: one outside is brought to the nearest bound and counted under `column` (never
    wrapped by the database, never a refused batch)."""
    if value is None:
        return None
    low, high = bounds
    if low <= value <= high:
        return value
    clamped[column] += 1
    return low if value < low else high


def stored_row(result: ProbeResult, check_id: int, clamped: Counter[str]) -> Row:
    """The `probe_result` row of `result` (`result_row` narrowed): durations and phases in an int4 of µs (35 min),
    the status code in an int2, the certificate dates in an int4 of seconds after the start's second (68 years),
    an empty detail as NULL. A value outside its column is clamped and counted in `clamped` by column."""
    started = micros(result.started_at)
    second = started // 1_000_000
    phases = result.phases
    reason = result.reason
    cert, chain = _seconds(result.cert_expiry), _seconds(result.chain_expiry)
    return {
        "check_id": check_id,
        "started_us": started,
        "duration_us": _fit(_duration(result.duration_s), _INT4, "duration_us", clamped),
        "success": result.success,
        "slow": result.slow,
        "reason": None if reason is None else REASON_CODES.get(reason),
        "detail": result.detail or None,
        "status_code": _fit(result.status_code, _INT2, "status_code", clamped),
        **{
            column: None if name not in phases else _fit(_duration(phases[name]), _INT4, column, clamped)
            for name, column in _PHASE_COLUMNS
        },
        "cert_expires_in_s": None if cert is None else _fit(cert - second, _INT4, "cert_expires_in_s", clamped),
        "chain_expires_in_s": None if chain is None else _fit(chain - second, _INT4, "chain_expires_in_s", clamped),
    }


def result_from_stored(row: Any, check: ComponentRef) -> ProbeResult:
    """The result of a `probe_result` row of `check` (`stored_row` undone)."""
    second = row.started_us // 1_000_000
    logical = SimpleNamespace(**row._mapping)
    for absolute, relative in _EXPIRIES:
        value = getattr(logical, relative)
        setattr(logical, absolute, None if value is None else second + value)
    logical.detail = logical.detail or ""
    return result_from_row(logical, check)


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
