"""Telling the other instances what was just written, in the transaction that wrote it (PostgreSQL NOTIFY).

The notification goes out at commit, never for a transaction rolled back, and only to the instances of this schema
(the channel is named after it). A payload is a kind and the keys concerned: `m:check:a/pec/c01,…` (check
memories), `s:…` (the derived statuses the leader wrote), `d:` (what ops declare); `m:*` when the keys would not
fit in one notification (8,000 bytes).
On SQLite (one instance per file) nothing is told.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

__all__ = ["CHANNEL", "DECLARED", "EVERYTHING", "MEMORIES", "STATUSES", "parse", "tell"]

CHANNEL = "'tpmon_' || md5(current_schema())"  # SQL: the channel of this schema's instances
MEMORIES = "m"
STATUSES = "s"  # the derived statuses the leader wrote
DECLARED = "d"
EVERYTHING = "*"
MAX_PAYLOAD = 7_900  # bytes; PostgreSQL refuses 8,000 and more


def tell(connection: Connection, kind: str, keys: Iterable[str] = ()) -> None:
    """Notify the instances of this schema, at the commit of `connection`'s transaction (PostgreSQL only)."""
    if connection.dialect.name != "postgresql":
        return
    payload = f"{kind}:{','.join(keys)}"
    if len(payload.encode()) > MAX_PAYLOAD:
        payload = f"{kind}:{EVERYTHING}"
    connection.execute(text(f"SELECT pg_notify({CHANNEL}, :payload)"), {"payload": payload})


def parse(payload: str) -> tuple[str, frozenset[str] | None]:
    """(kind, keys) of a payload; keys None for all of them."""
    kind, _, rest = payload.partition(":")
    if rest == EVERYTHING:
        return kind, None
    return kind, frozenset(key for key in rest.split(",") if key)
