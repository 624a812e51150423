"""History verbs of the store: roll transitions up into hourly and daily availability, read it, prune raw results."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.availability import HOUR, Period, Rollup, Window, period_start, rollups, window_parts
from monitor.models import ComponentRef, State
from monitor.store import tables
from monitor.store.rows import micros
from monitor.store.store import Store

__all__ = ["HOUSEKEEPING_DEADLINE", "RollupRun", "availability_over", "prune_results", "roll_up", "rollups_of"]

# Seconds for each transaction of a roll-up or a prune: a first backfill computes months of history per
# component, slower on a loaded machine; bounded all the same, and PostgreSQL ends a statement after 15 s.
HOUSEKEEPING_DEADLINE = 120.0

_T = tables.transition
_R = tables.availability_rollup
_KEY = ("component_key", "period", "start")


@dataclass(frozen=True)
class RollupRun:
    """What one `roll_up` did: rollups upserted, and the highest transition id that existed when it began."""

    rows: int
    through_id: int | None


@dataclass(frozen=True)
class _Step:
    previous: State
    state: State
    at: datetime


def roll_up(
    store: Store,
    components: Iterable[ComponentRef | str],
    now: datetime,
    *,
    since: datetime | None = None,
    after_id: int | None = None,
    chunk: int = 500,
    stop: threading.Event | None = None,
) -> RollupRun:
    """Recompute (upsert, idempotent) the hourly and daily rollups of `components` up to `now`.

    From `since` when given (a backfill, e.g. the demo's virtual clock). Otherwise each component resumes
    from its last stored hour, at least the previous hour, and earlier if a transition written after
    `after_id` (the `through_id` of the previous run) is dated before: outages are dated retroactively and
    the store writer may write late. A component never rolled up is rolled up from its first transition.
    One component at a time: a short read, then writes of at most `chunk` rows per transaction, so the
    store writer never waits long and a first backfill of years of history does not fill the memory.
    When `stop` is set (a shutdown), it returns after the component under way, with no `through_id`.
    """
    keys = sorted({c if isinstance(c, str) else c.key for c in components})
    # The store package's own sessions: errors become StoreError, an in-memory SQLite is serialized.
    with store._session("read transitions from", deadline=HOUSEKEEPING_DEADLINE) as connection:
        through_id = connection.execute(select(func.max(_T.c.id))).scalar_one_or_none()
        late: dict[str, datetime] = {}
        if after_id is not None:
            query = select(_T.c.component_key, func.min(_T.c.at)).where(_T.c.id > after_id).group_by(_T.c.component_key)
            late = {key: at for key, at in connection.execute(query)}
    written = 0
    for key in keys:
        if stop is not None and stop.is_set():
            return RollupRun(written, None)
        with store._session("read transitions from", deadline=HOUSEKEEPING_DEADLINE) as connection:
            start = since if since is not None else _resume(connection, key, now)
            if start is not None and key in late:
                start = min(start, late[key])
            found = _rollups_of(connection, key, start, now)
        for first in range(0, len(found), max(1, chunk)):
            with store._session("write rollups to", write=True, deadline=HOUSEKEEPING_DEADLINE) as connection:
                _upsert(connection, [_row(rollup, now) for rollup in found[first : first + chunk]])
        written += len(found)
    return RollupRun(written, through_id)


def _resume(connection: Connection, key: str, now: datetime) -> datetime | None:
    """Where a periodic run starts for `key`: its last stored hour, at least the previous hour; None if never."""
    query = select(func.max(_R.c.start)).where(_R.c.component_key == key, _R.c.period == "hour")
    latest: datetime | None = connection.execute(query).scalar_one_or_none()
    if latest is None:
        return None
    return min(latest, period_start("hour", now) - HOUR)


def _rollups_of(connection: Connection, key: str, start: datetime | None, now: datetime) -> list[Rollup]:
    day = period_start("day", start) if start is not None else None
    before: State | None = None
    if day is not None:
        query = (
            select(_T.c.state)
            .where(_T.c.component_key == key, _T.c.at < day)
            .order_by(_T.c.at.desc(), _T.c.id.desc())
            .limit(1)
        )
        last = connection.execute(query).scalar_one_or_none()
        before = State(last) if last is not None else None
    query = select(_T.c.previous, _T.c.state, _T.c.at).where(_T.c.component_key == key, _T.c.at < now)
    if day is not None:
        query = query.where(_T.c.at >= day)
    steps = [_Step(State(p), State(s), at) for p, s, at in connection.execute(query.order_by(_T.c.at, _T.c.id))]
    if before is not None and start is not None:
        hours, days = period_start("hour", start), period_start("day", start)
    elif steps:  # the component's history begins inside the range, with its first transition
        before, origin = steps[0].previous, steps[0].at
        hours = origin if start is None else max(period_start("hour", start), origin)
        days = origin if start is None else max(period_start("day", start), origin)
    else:
        return []
    return rollups(key, steps, before, "hour", hours, now) + rollups(key, steps, before, "day", days, now)


def _row(rollup: Rollup, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {"component_key": rollup.component_key, "period": rollup.period, "start": rollup.start}
    row.update({f"{state.value}_s": rollup.seconds.get(state, 0.0) for state in State})
    row["updated_at"] = now
    return row


def _upsert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        statement = (postgresql if dialect == "postgresql" else sqlite).insert(_R)
        updates = {c.name: statement.excluded[c.name] for c in _R.columns if c.name not in _KEY}
        connection.execute(statement.on_conflict_do_update(index_elements=list(_KEY), set_=updates), rows)
        return
    for row in rows:  # other backends: not supported by tpmon, kept correct rather than fast
        connection.execute(delete(_R).where(*(_R.c[name] == row[name] for name in _KEY)))
    connection.execute(insert(_R), rows)


def _rollup(row: Any) -> Rollup:
    mapping: Mapping[str, Any] = row._mapping
    seconds = {state: float(mapping[f"{state.value}_s"]) for state in State}
    return Rollup(mapping["component_key"], mapping["period"], mapping["start"], seconds)


def rollups_of(
    store: Store, component: ComponentRef | str, period: Period, since: datetime, until: datetime
) -> list[Rollup]:
    """The stored rollups of `component` for `period` starting in [since, until), oldest first."""
    key = component if isinstance(component, str) else component.key
    query = (
        select(_R)
        .where(_R.c.component_key == key, _R.c.period == period, _R.c.start >= since, _R.c.start < until)
        .order_by(_R.c.start)
    )
    return store._read(query, _rollup)


def availability_over(store: Store, component: ComponentRef | str, window_end: datetime, days: int) -> Window:
    """Seconds per state (so availability and coverage) of the `days` × 24 hours ending with `window_end`'s hour.

    Summed from whole Paris days in the middle and hours at the edges: seconds are summed, never ratios.
    """
    key = component if isinstance(component, str) else component.key
    start, end, parts = window_parts(window_end, days)
    found = [rollup for period, since, until in parts for rollup in rollups_of(store, key, period, since, until)]
    return Window.summing(key, start, end, found)


def prune_results(
    store: Store,
    now: datetime,
    retention_days: int,
    *,
    batch_size: int = 500,
    pause: float = 0.0,
    stop: threading.Event | None = None,
) -> int:
    """Delete raw probe results started more than `retention_days` before `now`; returns how many.

    Check by check (the results' only index starts with the check), in batches of `batch_size`, each its own
    short transaction (the starts of the oldest `batch_size` selected, then the results up to the last of them
    deleted: the results have no id), with `pause` seconds between batches so the store
    writer gets the database. Transitions and rollups stay. When `stop` is set (a shutdown), it returns after
    the batch under way.
    """
    table = tables.probe_result
    cutoff = micros(now - timedelta(days=retention_days))
    with store._session("prune results in") as connection:
        checks = list(connection.execute(select(tables.probe_check.c.id).order_by(tables.probe_check.c.id)).scalars())
    deleted = 0
    for check_id in checks:
        while True:
            with store._session("prune results in", write=True, deadline=HOUSEKEEPING_DEADLINE) as connection:
                old = (table.c.check_id == check_id, table.c.started_us < cutoff)
                query = select(table.c.started_us).where(*old).order_by(table.c.started_us).limit(batch_size)
                starts = list(connection.execute(query).scalars())
                if starts:  # up to the last start of the batch (with the results of that same µs past the batch)
                    done = connection.execute(delete(table).where(*old, table.c.started_us <= starts[-1]))
                    deleted += done.rowcount
            if stop is not None and stop.is_set():
                return deleted
            if len(starts) < batch_size:
                break
            if pause > 0:
                time.sleep(pause)
    return deleted
