"""The store's verbs for idempotency keys: the answer of a write, kept with it, replayed to a retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from monitor.store import tables
from monitor.store.store import Store

__all__ = ["Remembered", "prune_idempotency", "recall", "remember"]


@dataclass(frozen=True)
class Remembered:
    fingerprint: str
    status: int
    body: dict[str, Any]
    created_at: datetime


def remember(
    connection: Connection, principal: str, key: str, fingerprint: str, status: int, body: dict[str, Any], at: datetime
) -> None:
    """Keep the answer inside the write's transaction. A second write with the same key (a concurrent retry)
    fails on the primary key and rolls its whole transaction back: it never creates a second incident."""
    row = {"principal": principal, "key": key, "fingerprint": fingerprint, "status": status, "body": body}
    connection.execute(insert(tables.idempotency_key), {**row, "created_at": at})


def recall(store: Store, principal: str, key: str) -> Remembered | None:
    table = tables.idempotency_key
    query = select(table).where(table.c.principal == principal, table.c.key == key)
    found = store._read(query, lambda r: Remembered(r.fingerprint, int(r.status), dict(r.body), r.created_at))
    return found[0] if found else None


def prune_idempotency(store: Store, before: datetime) -> int:
    table = tables.idempotency_key
    with store._session("prune idempotency keys in", write=True) as connection:
        deleted = connection.execute(delete(table).where(table.c.created_at < before))
    return int(deleted.rowcount or 0)
