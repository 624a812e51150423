"""The store's verbs for machine tokens: create (digest only), list, revoke, read the live ones, note their use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from monitor.errors import NotFound, StaffError
from monitor.i18n import said
from monitor.store import tables
from monitor.store.store import Store

Also = Callable[[Connection, Any, Any], None]  # as Declarations': (connection, before, after) in the transaction

__all__ = ["StoredToken", "create_token", "note_uses", "revoke_token", "tokens", "tokens_by_digest"]


@dataclass(frozen=True)
class StoredToken:
    """A token as listed: never its secret nor its digest."""

    id: int
    prefix: str
    label: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def shown(self) -> dict[str, Any]:
        def stamp(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "prefix": self.prefix,
            "label": self.label,
            "scopes": list(self.scopes),
            "created_at": stamp(self.created_at),
            "created_by": self.created_by,
            "expires_at": stamp(self.expires_at),
            "last_used_at": stamp(self.last_used_at),
            "revoked_at": stamp(self.revoked_at),
        }


def _token(row: Any) -> StoredToken:
    return StoredToken(
        int(row.id),
        row.prefix,
        row.label,
        tuple(row.scopes or ()),
        row.created_at,
        row.created_by,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


def create_token(
    store: Store,
    *,
    digest: str,
    prefix: str,
    label: str,
    scopes: Sequence[str],
    created_by: str,
    expires_at: datetime | None,
    also: Also | None = None,
) -> StoredToken:
    """Store a new token's digest and facts; the secret itself is shown once by the caller and never kept."""
    table, now = tables.api_token, store._clock()
    row = {
        "digest": digest,
        "prefix": prefix,
        "label": label,
        "scopes": list(scopes),
        "created_at": now,
        "created_by": created_by,
        "expires_at": expires_at,
    }
    with store._session("add a token to", write=True) as connection:
        new_id = connection.execute(insert(table).returning(table.c.id), row).scalar_one()
        created = _token(connection.execute(select(table).where(table.c.id == new_id)).one())
        if also is not None:
            also(connection, None, created)
        return created


def tokens(store: Store, *, include_revoked: bool = False) -> list[StoredToken]:
    table = tables.api_token
    query = select(table).order_by(table.c.created_at, table.c.id)
    if not include_revoked:
        query = query.where(table.c.revoked_at.is_(None))
    return store._read(query, _token)


def tokens_by_digest(store: Store) -> list[tuple[str, StoredToken]]:
    """(digest, token) of every token, revoked and expired ones too (so that a refusal can say why)."""
    table = tables.api_token
    return store._read(select(table).order_by(table.c.id), lambda row: (row.digest, _token(row)))


def revoke_token(store: Store, which: str, *, also: Also | None = None) -> StoredToken:
    """Revoke the token whose id or public prefix is `which`; NotFound, or StaffError if already revoked."""
    table, now = tables.api_token, store._clock()
    by_id = which.isascii() and which.isdigit() and len(which) <= 19  # an id the database can hold
    chosen = table.c.id == int(which) if by_id else table.c.prefix == which
    with store._session("revoke a token in", write=True) as connection:
        found = [_token(row) for row in connection.execute(select(table).where(chosen))]
        if not found:
            raise NotFound(
                said("token: no token {which!r} (give its id or its prefix, as `tpmon token list` shows)", which=which)
            )
        if len(found) > 1:
            raise StaffError(
                "token", said("{count} tokens share the prefix {which!r}: give the id", count=len(found), which=which)
            )
        before = found[0]
        if before.revoked_at is not None:
            raise StaffError(
                "token", said("token {id} ({prefix}) is already revoked", id=before.id, prefix=before.prefix)
            )
        connection.execute(update(table).where(table.c.id == before.id).values(revoked_at=now))
        after = _token(connection.execute(select(table).where(table.c.id == before.id)).one())
        if also is not None:
            also(connection, before, after)
        return after


def note_uses(store: Store, uses: Mapping[int, datetime]) -> None:
    """Record when tokens were last used (only ever moving forward)."""
    if not uses:
        return
    table = tables.api_token
    with store._session("note token uses in", write=True) as connection:
        for token_id, at in uses.items():
            later = (table.c.id == token_id) & or_(table.c.last_used_at.is_(None), table.c.last_used_at < at)
            connection.execute(update(table).where(later).values(last_used_at=at))
