"""Where a probe result becomes a check's state: thresholds, retroactive dates, staleness, push deadlines (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import (
    BROKEN,
    CheckMemory,
    ComponentRef,
    ComponentStatus,
    FailureReason,
    ProbeResult,
    Source,
    State,
    Transition,
)

__all__ = ["CheckPolicy", "advance", "check_status", "deadline", "expire"]


@dataclass(frozen=True)
class CheckPolicy:
    failure_threshold: int = 3
    success_threshold: int = 2
    stale_after: float = 180.0  # seconds without a result before the check is unknown (push: down)
    source: Source = Source.PROBE


def advance(
    memory: CheckMemory, result: ProbeResult, policy: CheckPolicy, now: datetime
) -> tuple[CheckMemory, Transition | None]:
    """Fold one result into a check's memory; returns the new memory and the transition, if any.

    Down needs `failure_threshold` consecutive failures and is dated from the first of them; up again
    needs `success_threshold` consecutive successes. A success slower than `degraded_after` (result.slow)
    counts toward degraded with the same thresholds. From unknown, one fresh success is enough.
    An INTERNAL failure (tpmon's own: no file descriptor left, a crash, an unusable setting) says nothing of the
    target: it changes nothing, not even the last result's date, so a check that only gets those goes unknown.
    """
    if result.reason is FailureReason.INTERNAL:
        return memory, None
    at = result.started_at
    fast = result.success and not result.slow
    slow = result.success and result.slow
    fails = memory.fails.extend(at) if not result.success else BROKEN
    oks = memory.oks.extend(at) if result.success else BROKEN
    fasts = memory.fasts.extend(at) if fast else BROKEN
    bads = memory.bads.extend(at) if not fast else BROKEN

    state, since = memory.state, memory.since
    ft, st = policy.failure_threshold, policy.success_threshold
    if fails.count >= ft:
        if memory.state is not State.DOWN:  # a lone success inside an outage must not re-date it
            state, since = State.DOWN, fails.since
    elif memory.state is State.UNKNOWN:
        if fast:
            state, since = State.OPERATIONAL, at
        elif slow:
            state, since = State.DEGRADED, at
    elif memory.state is State.DOWN:
        if oks.count >= st:
            state, since = (State.OPERATIONAL if fasts.count >= st else State.DEGRADED), oks.since
    elif memory.state is State.DEGRADED:
        if fasts.count >= st:
            state, since = State.OPERATIONAL, fasts.since
    elif memory.state is State.OPERATIONAL and bads.count >= ft:
        state, since = State.DEGRADED, bads.since

    new = CheckMemory(state, since, fails, oks, fasts, bads, max(filter(None, (memory.last_result_at, at))))
    if state is memory.state:
        return new, None
    detail = result.reason.value if result.reason else ""
    transition = Transition(result.check, memory.state, state, since or at, now, policy.source, detail=detail)
    return new, transition


def deadline(memory: CheckMemory, policy: CheckPolicy) -> datetime | None:
    """When the check's silence becomes a conclusion: unknown (probe) or down (push); None if it cannot.

    Counted from its last result; a push check that never had one counts from when it was configured (its
    memory's `since` while unknown): a heartbeat that never came is an outage, not a mystery.
    """
    push = policy.source is Source.PUSH
    if memory.state is (State.DOWN if push else State.UNKNOWN):
        return None
    start = memory.last_result_at
    if start is None and push and memory.state is State.UNKNOWN:
        start = memory.since
    return start + timedelta(seconds=policy.stale_after) if start is not None else None


def expire(
    ref: ComponentRef, memory: CheckMemory, policy: CheckPolicy, now: datetime
) -> tuple[CheckMemory, Transition | None]:
    """A check without a result for `stale_after` becomes unknown: a dead prober never leaves green.

    A push check becomes down instead, dated from the deadline: its partner's silence is the signal, also when
    the partner never sent anything since the check was configured.
    """
    due = deadline(memory, policy)
    if due is None or now < due:
        return memory, None
    last = memory.last_result_at
    if policy.source is Source.PUSH:
        new = CheckMemory(State.DOWN, due, last_result_at=last)
        detail = FailureReason.NO_HEARTBEAT.value
        return new, Transition(ref, memory.state, State.DOWN, due, now, Source.PUSH, detail=detail)
    new = CheckMemory(State.UNKNOWN, due, last_result_at=last)
    return new, Transition(ref, memory.state, State.UNKNOWN, due, now, Source.NONE, detail="stale")


def check_status(ref: ComponentRef, memory: CheckMemory, source: Source = Source.PROBE) -> ComponentStatus:
    """The board's view of one check."""
    known = memory.state is not State.UNKNOWN
    return ComponentStatus(
        ref,
        memory.state,
        memory.since,
        source if known else Source.NONE,
        raw=memory.state,
        progress=1.0 if memory.state.is_up else 0.0,
    )
