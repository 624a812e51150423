"""The store's verbs for the audit trail: append (inside a write's transaction or alone), read, export, prune.

There is no verb to change an event; the database refuses an UPDATE too (a trigger). Only housekeeping deletes,
by age, past the configured retention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, delete, insert, select

from monitor.staff.audit import AuditEvent, Listener
from monitor.store import tables
from monitor.store.store import Store

__all__ = ["append_event", "audit_events", "export_events", "prune_audit", "record_events"]


def _row(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "actor": event.actor[:200],
        "listener": event.listener,
        "action": event.action[:80],
        "target": event.target[:200],
        "before": event.before,
        "after": event.after,
    }


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        row.at, row.actor, cast(Listener, row.listener), row.action, row.target, row.before, row.after, int(row.id)
    )


def append_event(connection: Connection, event: AuditEvent) -> None:
    """Append inside the caller's transaction: the event exists if and only if the write it describes does."""
    connection.execute(insert(tables.audit_event), _row(event))


def record_events(store: Store, events: Iterable[AuditEvent]) -> None:
    """Append events that go with no other write (refused tokens, sign-ins), in one transaction."""
    rows = [_row(event) for event in events]
    if rows:
        with store._session("append to the audit trail of", write=True) as connection:
            connection.execute(insert(tables.audit_event), rows)


def audit_events(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Events newest first, filtered; `before_id` pages back from an event."""
    table = tables.audit_event
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(table.c.at >= since)
    if until is not None:
        query = query.where(table.c.at < until)
    if actor is not None:
        query = query.where(table.c.actor == actor)
    if action is not None:
        query = query.where(table.c.action.startswith(action, autoescape=True))
    if target is not None:
        query = query.where(table.c.target == target)
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    return store._read(query, _event)


def export_events(
    store: Store, *, since: datetime | None = None, until: datetime | None = None, batch: int = 1000
) -> Iterator[AuditEvent]:
    """Every event in the span, oldest first, read a batch at a time (a long trail never sits in memory)."""
    table = tables.audit_event
    after = 0
    while True:
        query = select(table).where(table.c.id > after).order_by(table.c.id).limit(batch)
        if since is not None:
            query = query.where(table.c.at >= since)
        if until is not None:
            query = query.where(table.c.at < until)
        found = store._read(query, _event)
        yield from found
        if len(found) < batch:
            return
        after = found[-1].id or after


def prune_audit(store: Store, before: datetime, batch: int = 1000) -> int:
    """Delete at most `batch` events older than `before` (the retention), oldest first; returns how many."""
    table = tables.audit_event
    oldest = select(table.c.id).where(table.c.at < before).order_by(table.c.id).limit(batch)
    with store._session("prune the audit trail in", write=True) as connection:
        deleted = connection.execute(delete(table).where(table.c.id.in_(oldest)))
    return int(deleted.rowcount or 0)
