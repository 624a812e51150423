"""The store's verbs for e-mail subscribers: ask (double opt-in), confirm, unsubscribe, and the data controller's
count, export and delete. An address is the only personal data kept; deleting it deletes its scopes and its
pending messages too (foreign keys cascade)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from monitor.store import tables
from monitor.store.store import Clock, Store, utcnow

__all__ = ["SubscriberRecord", "Subscribers", "normalize_address"]

_S = tables.subscriber
_SUB = tables.subscription


def normalize_address(address: str) -> str:
    """The form an address is kept and compared in: trimmed, lower-cased."""
    return address.strip().lower()


@dataclass(frozen=True)
class SubscriberRecord:
    """All that is kept about one address (what an access request under the GDPR gets)."""

    id: int
    address: str
    created_at: datetime
    confirmed_at: datetime | None
    scopes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "created_at": self.created_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "scopes": list(self.scopes),
        }


class Subscribers:
    """Subscribers in the store; every verb is one transaction."""

    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self.store = store
        self._clock = clock

    def request(self, address: str, scopes: Sequence[str], lang: str) -> int:
        """Keep `address` (unconfirmed if new) and queue a confirmation e-mail for `scopes`; returns its id.

        The same for a known address as for a new one: the answer never tells whether it was known.
        """
        address, now = normalize_address(address), self._clock()
        with self.store._session("record a subscription request in", write=True) as connection:
            found = connection.execute(select(_S.c.id).where(_S.c.address == address)).scalar()
            if found is None:
                row = {"address": address, "created_at": now, "confirmed_at": None}
                found = connection.execute(insert(_S).returning(_S.c.id), row).scalar_one()
            confirmation = {
                "channel": "email",
                "kind": "confirm",
                "subscriber_id": found,
                "payload": {"scopes": list(scopes), "lang": lang},
                "state": "pending",
                "attempts": 0,
                "due_at": now,
                "next_at": now,
                "last_error": "",
                "created_at": now,
            }
            connection.execute(insert(tables.notification_delivery), confirmation)
            return int(found)

    def confirm(self, subscriber: int, owns: Callable[[str], bool], scopes: Sequence[str]) -> bool:
        """Confirm `subscriber` and add `scopes`, if it still exists and `owns` recognizes its address."""
        now = self._clock()
        with self.store._session("confirm a subscription in", write=True) as connection:
            row = connection.execute(select(_S).where(_S.c.id == subscriber)).first()
            if row is None or not owns(row.address):
                return False
            if row.confirmed_at is None:
                connection.execute(update(_S).where(_S.c.id == subscriber).values(confirmed_at=now))
            known = set(connection.execute(select(_SUB.c.scope).where(_SUB.c.subscriber_id == subscriber)).scalars())
            new = [
                {"subscriber_id": subscriber, "scope": scope} for scope in dict.fromkeys(scopes) if scope not in known
            ]
            if new:
                connection.execute(insert(_SUB), new)
            return True

    def unsubscribe(self, subscriber: int, owns: Callable[[str], bool]) -> bool:
        """Delete the subscriber (address, scopes, pending messages) if `owns` recognizes its address."""
        with self.store._session("unsubscribe in", write=True) as connection:
            row = connection.execute(select(_S).where(_S.c.id == subscriber)).first()
            if row is None or not owns(row.address):
                return False
            _delete(connection, [subscriber])
            return True

    def delete_address(self, address: str) -> bool:
        """Erase everything kept about `address`; False if it was not there."""
        with self.store._session("delete a subscriber in", write=True) as connection:
            found = connection.execute(select(_S.c.id).where(_S.c.address == normalize_address(address))).scalar()
            if found is None:
                return False
            _delete(connection, [int(found)])
            return True

    def records(self, address: str | None = None) -> list[SubscriberRecord]:
        """What is kept about `address` (or about everyone), oldest first."""
        query = select(_S).order_by(_S.c.id)
        if address is not None:
            query = query.where(_S.c.address == normalize_address(address))
        with self.store._session("read from") as connection:
            rows = list(connection.execute(query))
            scopes: dict[int, list[str]] = {row.id: [] for row in rows}
            if rows:
                chosen = select(_SUB).where(_SUB.c.subscriber_id.in_(list(scopes))).order_by(_SUB.c.scope)
                for sub in connection.execute(chosen):
                    scopes[sub.subscriber_id].append(sub.scope)
        return [SubscriberRecord(r.id, r.address, r.created_at, r.confirmed_at, tuple(scopes[r.id])) for r in rows]

    def counts(self) -> dict[str, Any]:
        """Confirmed and unconfirmed addresses, and confirmed subscribers by scope."""
        with self.store._session("read from") as connection:
            confirmed = _S.c.confirmed_at.is_not(None)
            total = connection.execute(select(func.count()).select_from(_S).where(confirmed)).scalar_one()
            waiting = connection.execute(select(func.count()).select_from(_S).where(~confirmed)).scalar_one()
            query = (
                select(_SUB.c.scope, func.count())
                .join(_S, _S.c.id == _SUB.c.subscriber_id)
                .where(confirmed)
                .group_by(_SUB.c.scope)
                .order_by(_SUB.c.scope)
            )
            by_scope = {scope: count for scope, count in connection.execute(query)}
        return {"confirmed": total, "unconfirmed": waiting, "by_scope": by_scope}

    def prune_unconfirmed(self, older_than: timedelta) -> int:
        """Delete addresses never confirmed within `older_than` (their link has expired)."""
        cutoff = self._clock() - older_than
        with self.store._session("prune unconfirmed subscribers in", write=True) as connection:
            stale = _S.c.confirmed_at.is_(None) & (_S.c.created_at < cutoff)
            ids = [int(i) for i in connection.execute(select(_S.c.id).where(stale)).scalars()]
            _delete(connection, ids)
            return len(ids)


def _delete(connection: Connection, ids: list[int]) -> None:
    """Delete subscribers and what refers to them (explicitly too: SQLite's cascade needs foreign_keys=ON)."""
    if not ids:
        return
    connection.execute(
        delete(tables.notification_delivery).where(tables.notification_delivery.c.subscriber_id.in_(ids))
    )
    connection.execute(delete(_SUB).where(_SUB.c.subscriber_id.in_(ids)))
    connection.execute(delete(_S).where(_S.c.id.in_(ids)))
