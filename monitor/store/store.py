"""The store's verbs: one short transaction per batch written, newest-first reads, ping and size."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, Select, Table, delete, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)

from monitor.errors import StoreError
from monitor.models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, Transition
from monitor.notify.events import line_events
from monitor.store import rows, tables
from monitor.store.database import describe, is_memory, make_engine, mask, upgrade
from monitor.store.outbox_rows import insert_events

__all__ = ["Batch", "Store", "WriteRefused"]

T = TypeVar("T")
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class WriteRefused(StoreError):
    """The database is up but refused the data of a write (a constraint or an invalid value)."""


@dataclass
class Batch:
    """What one write transaction carries; statuses and memories are keyed by `ComponentRef.key`."""

    results: list[ProbeResult] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    statuses: dict[str, ComponentStatus] = field(default_factory=dict)
    memories: dict[str, CheckMemory] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.results or self.transitions or self.statuses or self.memories)


class Store:
    """The database behind tpmon (SQLite or PostgreSQL); synchronous and safe to call from threads."""

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        self.engine = engine
        self._clock = clock
        self._where = mask(engine.url)
        # An in-memory SQLite is one connection shared by all threads: serialize its use.
        self._guard: AbstractContextManager[Any] = threading.Lock() if is_memory(engine.url) else nullcontext()

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, clock: Clock = utcnow) -> Store:
        """Connect to `url` (and upgrade its schema); StoreError with one line if it cannot."""
        try:
            engine = make_engine(url)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(f"invalid database URL {mask(url)}: {describe(exc, url)}") from exc
        store = cls(engine, clock=clock)
        try:
            store.ping()
            if migrate:
                with store._guard:
                    upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"cannot migrate the database {store._where}: {describe(exc, url)}") from exc
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _session(self, doing: str, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self._guard, self.engine.begin() if write else self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            # Bind errors (StatementError) and constraint/data errors: retrying the same rows cannot help.
            refused = isinstance(exc, IntegrityError | DataError) or (
                isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
            )
            error = WriteRefused if write and refused else StoreError
            raise error(f"cannot {doing} {self._where}: {describe(exc, self.engine.url)}") from exc

    def write(self, batch: Batch) -> None:
        """Write a batch in one short transaction: all of it or, on StoreError, nothing."""
        if batch.empty:
            return
        now = self._clock()
        with self._session("write to", write=True) as connection:
            if batch.results:
                connection.execute(insert(tables.probe_result), [rows.result_row(r) for r in batch.results])
            if batch.transitions:
                transitions = [rows.transition_row(t) for t in batch.transitions]
                connection.execute(insert(tables.transition), transitions)
                insert_events(connection, line_events(batch.transitions), now)  # the outbox, same transaction
            if batch.statuses:
                statuses = [rows.status_row(k, s, now) for k, s in batch.statuses.items()]
                _upsert(connection, tables.component_status, statuses)
            if batch.memories:
                memories = [rows.memory_row(k, m, now) for k, m in batch.memories.items()]
                _upsert(connection, tables.check_memory, memories)

    def load_statuses(self) -> dict[str, ComponentStatus]:
        """Every stored component status, by component key."""
        found = self._read(select(tables.component_status), rows.status_from_row)
        return {status.ref.key: status for status in found}

    def load_memories(self) -> dict[str, CheckMemory]:
        """Every stored check memory, by check key."""
        found = self._read(select(tables.check_memory), lambda row: (row.check_key, rows.memory_from_row(row)))
        return dict(found)

    def transitions(
        self,
        ref: ComponentRef | None = None,
        *,
        since: datetime | None = None,
        limit: int = 1000,
        kind: str | None = None,
    ) -> list[Transition]:
        """Transitions (of `ref`, or of every component, or of every component of `kind`) at or after `since`,
        newest first."""
        table = tables.transition
        query = select(table).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        if ref is not None:
            query = query.where(table.c.component_key == ref.key)
        if kind is not None:
            query = query.where(table.c.component_key.startswith(f"{kind}:", autoescape=True))
        if since is not None:
            query = query.where(table.c.at >= since)
        return self._read(query, rows.transition_from_row)

    def results(self, check: ComponentRef, *, since: datetime | None = None, limit: int = 1000) -> list[ProbeResult]:
        """Raw results of `check` started at or after `since`, newest first."""
        table = tables.probe_result
        query = (
            select(table)
            .where(table.c.check_key == check.key)
            .order_by(table.c.started_at.desc(), table.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(table.c.started_at >= since)
        return self._read(query, rows.result_from_row)

    def _read(self, query: Select[Any], convert: Callable[[Any], T]) -> list[T]:
        with self._session("read from") as connection:
            return [convert(row) for row in connection.execute(query)]

    def ping(self) -> None:
        """StoreError if the database cannot be reached (for /readyz)."""
        with self._session("reach the database") as connection:
            connection.execute(text("SELECT 1"))

    def size_bytes(self) -> int | None:
        """The database's size in bytes (SQLite pages, pg_database_size), None on other backends."""
        with self._session("measure") as connection:
            name = connection.dialect.name
            if name == "sqlite":
                pages = connection.execute(text("PRAGMA page_count")).scalar_one()
                page_size = connection.execute(text("PRAGMA page_size")).scalar_one()
                return int(pages) * int(page_size)
            if name == "postgresql":
                size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                return int(size)
        return None

    def __repr__(self) -> str:
        return f"Store({self._where!r})"


def _upsert(connection: Connection, table: Table, values: list[dict[str, Any]]) -> None:
    """Insert rows or replace those with the same primary key (several writers may share the database)."""
    key = next(iter(table.primary_key.columns)).name
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name != key}
        connection.execute(statement.on_conflict_do_update(index_elements=[key], set_=updates), values)
        return
    connection.execute(delete(table).where(table.c[key].in_([v[key] for v in values])))
    connection.execute(insert(table), values)
