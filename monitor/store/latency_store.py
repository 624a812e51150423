"""Probe latency by hour, summed in the database (a network's day of raw results never crosses the wire)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Integer, case, cast, func, select

from monitor.store import tables
from monitor.store.rows import micros
from monitor.store.store import Store

__all__ = ["HourLatency", "latency_by_hour"]

_R = tables.probe_result
_C = tables.probe_check


@dataclass(frozen=True)
class HourLatency:
    """One check's results started in one UTC hour: mean and worst duration, how many, how many failed; and the mean
    and worst duration of the successful ones alone (None when none succeeded): a failed probe's duration (a refused
    connection, a timeout) is not a response time."""

    start: datetime
    mean_s: float
    max_s: float
    count: int
    failures: int
    ok_mean_s: float | None = None
    ok_max_s: float | None = None


_HOUR_US = 3_600_000_000


def latency_by_hour(store: Store, check_keys: Iterable[str], since: datetime) -> dict[str, list[HourLatency]]:
    """Per check key, its hours since `since` (oldest first); a check without results is absent."""
    keys = sorted(set(check_keys))
    if not keys:
        return {}
    # integer µs since the epoch, so the hour is an integer division (floor: the times are positive)
    bucket = (_R.c.started_us // _HOUR_US).label("hour")
    ok_duration = case((_R.c.success, _R.c.duration_us))  # NULL for a failure: avg and max leave it out
    query = (
        select(
            _C.c.key,
            bucket,
            func.avg(_R.c.duration_us),
            func.max(_R.c.duration_us),
            func.count(),
            func.sum(cast(~_R.c.success, Integer)),
            func.avg(ok_duration),
            func.max(ok_duration),
        )
        .select_from(_R.join(_C, _R.c.check_id == _C.c.id))
        .where(_C.c.key.in_(keys), _R.c.started_us >= micros(since))
        .group_by(_C.c.key, bucket)
        .order_by(_C.c.key, bucket)
    )
    found: dict[str, list[HourLatency]] = {}
    for key, hour, mean, worst, count, failures, ok_mean, ok_worst in store._read(query, tuple):
        start = datetime.fromtimestamp(int(hour) * 3600, UTC)
        hour_latency = HourLatency(
            start,
            float(mean) / 1e6,
            int(worst) / 1e6,
            int(count),
            int(failures or 0),
            None if ok_mean is None else float(ok_mean) / 1e6,
            None if ok_worst is None else int(ok_worst) / 1e6,
        )
        found.setdefault(key, []).append(hour_latency)
    return found
