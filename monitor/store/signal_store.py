"""The store's verbs for push signals: add one, read the inbox after a cursor, place a cursor, prune."""

from __future__ import annotations

import re
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
    "StoredSignal",
    "add_signal",
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


def add_signal(
    store: Store, check: ComponentRef, state: str, detail: str = "", *, received_at: datetime | None = None
) -> StoredSignal:
    """Append a signal to the inbox (received now by the store's clock unless told); returns it with its id.

    WriteRefused for a state or detail outside the allowed set: the edges validate first, this is the last guard.
    """
    if check.kind != "check" or state not in PUSH_STATES or not DETAIL_PATTERN.fullmatch(detail):
        raise WriteRefused("refused a push signal: a check, a state among operational/degraded/down and a short code")
    at = received_at or store._clock()
    row = {"check_key": check.key, "received_at": at, "state": state, "detail": detail}
    with store._session("add a push signal to", write=True) as connection:
        inserted = connection.execute(insert(tables.push_signal).values(row))
        key = inserted.inserted_primary_key
        assert key is not None  # an INSERT of one row always has one
        new_id = int(key[0])
    return StoredSignal(new_id, check, at, state, detail)


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
    return StoredSignal(int(row.id), ComponentRef.parse(row.check_key), row.received_at, row.state, row.detail)
