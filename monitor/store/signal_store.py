"""The store's verbs for push signals: add one, read the inbox after a cursor, place a cursor, prune."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from monitor.models import ComponentRef
from monitor.store import tables
from monitor.store.store import Store, WriteRefused

__all__ = [
    "DETAIL_PATTERN",
    "PUSH_STATES",
    "NewSignal",
    "StoredSignal",
    "add_signal",
    "add_signals",
    "last_signals",
    "prune_signals",
    "signal_cursor",
    "signals_after",
    "signals_of",
]

PUSH_STATES = ("operational", "degraded", "down")
# No free text from the public: a detail is a short code, safe to store, show and use as a label.
DETAIL_PATTERN = re.compile(r"[a-z0-9_.-]{0,40}")


@dataclass(frozen=True)
class StoredSignal:
    """One row of the inbox: `id` orders the inbox; `received_at` is when the signal was accepted."""

    id: int
    check: ComponentRef
    received_at: datetime
    state: str
    detail: str = ""
    author: str = ""  # token:PREFIX or cli:OSUSER
    latency_s: float | None = None  # what the partner measured, if it said


@dataclass(frozen=True)
class NewSignal:
    """A validated signal about to be appended."""

    check: ComponentRef
    state: str
    detail: str = ""
    author: str = ""
    latency_s: float | None = None


def _refused(signal: NewSignal) -> bool:
    latency = signal.latency_s
    return (
        signal.check.kind != "check"
        or signal.state not in PUSH_STATES
        or not DETAIL_PATTERN.fullmatch(signal.detail)
        or (latency is not None and not (math.isfinite(latency) and 0 <= latency <= 86400))
    )


def add_signal(
    store: Store,
    check: ComponentRef,
    state: str,
    detail: str = "",
    *,
    received_at: datetime | None = None,
    author: str = "",
    latency_s: float | None = None,
) -> StoredSignal:
    """Append a signal to the inbox (received now by the store's clock unless told); returns it with its id.

    WriteRefused for a state or detail outside the allowed set: the edges validate first, this is the last guard.
    """
    return add_signals(store, [NewSignal(check, state, detail, author, latency_s)], received_at=received_at)[0]


def add_signals(
    store: Store, signals: Sequence[NewSignal], *, received_at: datetime | None = None
) -> list[StoredSignal]:
    """Append several signals in one transaction (all or none), in order; returns them with their ids."""
    if any(_refused(signal) for signal in signals):
        raise WriteRefused("refused a push signal: a check, a state among operational/degraded/down and a short code")
    if not signals:
        return []
    at = received_at or store._clock()
    rows = [
        {
            "check_key": s.check.key,
            "received_at": at,
            "state": s.state,
            "detail": s.detail,
            "author": s.author[:80],
            "latency_s": s.latency_s,
        }
        for s in signals
    ]
    table = tables.push_signal
    with store._session("add a push signal to", write=True) as connection:
        ids = connection.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars()
        found = [int(i) for i in ids]
    return [
        StoredSignal(new_id, s.check, at, s.state, s.detail, s.author[:80], s.latency_s)
        for new_id, s in zip(found, signals, strict=True)
    ]


def signals_after(
    store: Store, last_id: int, limit: int = 500, *, received_before: datetime | None = None
) -> list[StoredSignal]:
    """Signals with an id above `last_id`, oldest id first, at most `limit`.

    `received_before` leaves out the freshest ones: on PostgreSQL ids are taken before commit, so a row
    may become visible after a higher id; reading only rows a few seconds old lets a cursor skip none.
    """
    table = tables.push_signal
    query = select(table).where(table.c.id > last_id).order_by(table.c.id).limit(limit)
    if received_before is not None:
        query = query.where(table.c.received_at < received_before)
    return store._read(query, _signal)


def signals_of(store: Store, check_keys: list[str], received_after: datetime, limit: int = 500) -> list[StoredSignal]:
    """Signals of `check_keys` received after `received_after`, oldest first, whatever their id: what a check
    heard before its deadline, read when the deadline comes (the cursor of `signals_after` lags a few seconds)."""
    table = tables.push_signal
    query = (
        select(table)
        .where(table.c.check_key.in_(check_keys), table.c.received_at > received_after)
        .order_by(table.c.received_at, table.c.id)
        .limit(limit)
    )
    return store._read(query, _signal)


def signal_cursor(store: Store, since: datetime) -> int:
    """A cursor just before the first signal received at or after `since` (the newest id if none is)."""
    table = tables.push_signal
    with store._session("read from") as connection:
        first = connection.execute(select(func.min(table.c.id)).where(table.c.received_at >= since)).scalar()
        if first is not None:
            return int(first) - 1
        newest = connection.execute(select(func.max(table.c.id))).scalar()
    return int(newest or 0)


def prune_signals(store: Store, received_before: datetime, batch: int = 1000) -> int:
    """Delete at most `batch` signals received before `received_before`, oldest first; returns how many.

    Call it until it returns 0: each call is one short transaction, so writers are never held long.
    """
    table = tables.push_signal
    oldest = select(table.c.id).where(table.c.received_at < received_before).order_by(table.c.id).limit(batch)
    with store._session("prune push signals in", write=True) as connection:
        deleted = connection.execute(delete(table).where(table.c.id.in_(oldest)))
    return int(deleted.rowcount or 0)


def _signal(row: Any) -> StoredSignal:
    return StoredSignal(
        int(row.id),
        ComponentRef.parse(row.check_key),
        row.received_at,
        row.state,
        row.detail,
        row.author,
        row.latency_s,
    )


def last_signals(store: Store, check_keys: list[str]) -> dict[str, StoredSignal]:
    """The newest signal of each of `check_keys` that has one (the console's push checks page); one small query a
    check, walking the `received_at` index from the newest."""
    table = tables.push_signal
    found: dict[str, StoredSignal] = {}
    for key in check_keys:
        query = select(table).where(table.c.check_key == key).order_by(table.c.received_at.desc()).limit(1)
        for signal in store._read(query, _signal):
            found[key] = signal
    return found
