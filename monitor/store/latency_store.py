"""Probe latency by hour, summed in the database (a network's day of raw results never crosses the wire)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, cast, func, select

from monitor.store import tables
from monitor.store.store import Store

__all__ = ["HourLatency", "latency_by_hour"]

_R = tables.probe_result


@dataclass(frozen=True)
class HourLatency:
    """One check's results started in one UTC hour: mean and worst duration, how many, how many failed."""

    start: datetime
    mean_s: float
    max_s: float
    count: int
    failures: int


def _hour_bucket(dialect: str) -> Any:
    """The hour number since the epoch of `started_at`, in the backend's own SQL."""
    if dialect == "sqlite":
        # Stored as naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff`. strftime rounds to the millisecond (10:59:59.9999
        # would count in 11:00), so the fraction is cut first; and `//`, since SQLAlchemy's `/` divides as reals.
        return cast(func.strftime("%s", func.substr(_R.c.started_at, 1, 19)), Integer) // 3600
    return func.floor(func.extract("epoch", _R.c.started_at) / 3600)


def latency_by_hour(store: Store, check_keys: Iterable[str], since: datetime) -> dict[str, list[HourLatency]]:
    """Per check key, its hours since `since` (oldest first); a check without results is absent."""
    keys = sorted(set(check_keys))
    if not keys:
        return {}
    with store._session("read from") as connection:
        bucket = _hour_bucket(connection.dialect.name).label("hour")
        query = (
            select(
                _R.c.check_key,
                bucket,
                func.avg(_R.c.duration_s),
                func.max(_R.c.duration_s),
                func.count(),
                func.sum(cast(~_R.c.success, Integer)),
            )
            .where(_R.c.check_key.in_(keys), _R.c.started_at >= since)
            .group_by(_R.c.check_key, bucket)
            .order_by(_R.c.check_key, bucket)
        )
        found: dict[str, list[HourLatency]] = {}
        for key, hour, mean, worst, count, failures in connection.execute(query):
            start = datetime.fromtimestamp(int(hour) * 3600, UTC)
            hour_latency = HourLatency(start, float(mean), float(worst), int(count), int(failures or 0))
            found.setdefault(key, []).append(hour_latency)
        return found
