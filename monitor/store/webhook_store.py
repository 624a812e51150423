"""The store's verbs for webhooks ops configure: add, list, remove, and their health (failing since, disabled).

The admin API will call the same verbs as `tpmon webhook`. A webhook's signing secret is not stored: it is derived
from tpmon's secret and the webhook's random salt (see `notify.tokens.Signer.webhook_secret`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from monitor.errors import NotFound
from monitor.i18n import said
from monitor.store import tables
from monitor.store.store import Clock, Store, utcnow

__all__ = ["Webhook", "Webhooks"]

_W = tables.webhook


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    scopes: tuple[str, ...]
    salt: str
    allow_private: bool
    enabled: bool
    description: str
    created_at: datetime
    failing_since: datetime | None
    disabled_at: datetime | None


def _webhook(r: Any) -> Webhook:
    return Webhook(
        r.id,
        r.url,
        tuple(r.scopes),
        r.salt,
        bool(r.allow_private),
        bool(r.enabled),
        r.description,
        r.created_at,
        r.failing_since,
        r.disabled_at,
    )


class Webhooks:
    """Webhooks in the store; every verb is one transaction. URLs and scopes are checked by the caller."""

    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self.store = store
        self._clock = clock

    def add(self, url: str, scopes: Sequence[str], *, allow_private: bool = False, description: str = "") -> Webhook:
        row = {
            "url": url,
            "scopes": list(scopes),
            "salt": secrets.token_urlsafe(18),
            "allow_private": allow_private,
            "enabled": True,
            "description": description,
            "created_at": self._clock(),
        }
        with self.store._session("add a webhook to", write=True) as connection:
            new_id = connection.execute(insert(_W).returning(_W.c.id), row).scalar_one()
            return _webhook(connection.execute(select(_W).where(_W.c.id == new_id)).one())

    def all(self) -> list[Webhook]:
        with self.store._session("read from") as connection:
            return [_webhook(row) for row in connection.execute(select(_W).order_by(_W.c.id))]

    def get(self, webhook_id: int) -> Webhook:
        with self.store._session("read from") as connection:
            row = connection.execute(select(_W).where(_W.c.id == webhook_id)).first()
        if row is None:
            raise NotFound(said("no webhook {id}", id=webhook_id))
        return _webhook(row)

    def remove(self, webhook_id: int) -> None:
        """Delete a webhook and its pending deliveries; NotFound if there is none."""
        with self.store._session("remove a webhook from", write=True) as connection:
            deliveries = tables.notification_delivery
            connection.execute(delete(deliveries).where(deliveries.c.webhook_id == webhook_id))
            if connection.execute(delete(_W).where(_W.c.id == webhook_id)).rowcount == 0:
                raise NotFound(said("no webhook {id}", id=webhook_id))

    def enable(self, webhook_id: int) -> None:
        with self.store._session("enable a webhook in", write=True) as connection:
            values = {"enabled": True, "disabled_at": None, "failing_since": None}
            if connection.execute(update(_W).where(_W.c.id == webhook_id).values(values)).rowcount == 0:
                raise NotFound(said("no webhook {id}", id=webhook_id))

    def succeeded(self, webhook_id: int) -> None:
        with self.store._session("record a webhook's success in", write=True) as connection:
            connection.execute(update(_W).where(_W.c.id == webhook_id).values(failing_since=None))

    def failed(self, webhook_id: int, disable_after: timedelta) -> bool:
        """Note a failure; disable the webhook (and make its pending deliveries dead letters) once it has been
        failing for `disable_after`. Returns True when this failure disabled it."""
        now = self._clock()
        with self.store._session("record a webhook's failure in", write=True) as connection:
            row = connection.execute(select(_W).where(_W.c.id == webhook_id)).first()
            if row is None or not row.enabled:
                return False
            since = row.failing_since or now
            if now - since < disable_after:
                connection.execute(update(_W).where(_W.c.id == webhook_id).values(failing_since=since))
                return False
            connection.execute(update(_W).where(_W.c.id == webhook_id).values(enabled=False, disabled_at=now))
            deliveries = tables.notification_delivery
            pending = (deliveries.c.webhook_id == webhook_id) & (deliveries.c.state == "pending")
            reason = f"webhook disabled after failing since {since.isoformat()}"
            connection.execute(update(deliveries).where(pending).values(state="failed", last_error=reason))
            return True
