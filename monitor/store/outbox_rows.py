"""Events into the outbox, inside the transaction of the change that causes them (the caller's connection)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, insert
from sqlalchemy.dialects import postgresql, sqlite

from monitor.notify.events import NewEvent
from monitor.store import tables

__all__ = ["insert_events"]


def insert_events(connection: Connection, events: Iterable[NewEvent], now: datetime) -> None:
    """Write `events`, skipping any whose `dedupe_key` is already there (the same fact written twice)."""
    values = [
        {
            "kind": event.kind,
            "dedupe_key": event.dedupe_key,
            "components": list(event.components),
            "payload": dict(event.payload),
            "at": event.at,
            "created_at": now,
            "dispatched_at": None,
        }
        for event in sorted(events, key=lambda event: event.dedupe_key)  # two writers lock keys in one order
    ]
    if not values:
        return
    table = tables.notification_event
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        connection.execute(statement.on_conflict_do_nothing(index_elements=["dedupe_key"]), values)
        return
    connection.execute(insert(table), values)
