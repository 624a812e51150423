"""The store's verbs: one short transaction per batch written, newest-first reads, ping and size — each under a
deadline."""

from __future__ import annotations

import logging
import math
import sys
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Select,
    Table,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.sql.elements import ColumnClause

from monitor.engine.quorum import LOCATED
from monitor.errors import StoreError
from monitor.i18n import Text, said
from monitor.i18n import literal as as_is
from monitor.models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, State, Transition
from monitor.notify.events import line_events
from monitor.store import rows, tables
from monitor.store.changes import MEMORIES, STATUSES, tell
from monitor.store.database import CONNECT_TIMEOUT, describe, is_memory, make_engine, mask, upgrade
from monitor.store.deadlines import Watchdog
from monitor.store.outbox_rows import insert_events

__all__ = ["DEADLINE", "Batch", "Store", "WriteRefused", "new_uid"]

log = logging.getLogger("tpmon.store")

T = TypeVar("T")
Clock = Callable[[], datetime]

DEADLINE = 5.0  # seconds: a write or ping not done by then is aborted and fails (StoreError); a read gets twice
MIGRATION_DEADLINE = 600.0  # seconds for the schema upgrade at start (an index on a big table)


def utcnow() -> datetime:
    return datetime.now(UTC)


class WriteRefused(StoreError):
    """The database is up but refused the data of a write (a constraint or an invalid value)."""


def new_uid() -> str:
    """A transition's unique write key: written twice (a replayed journal, a write in doubt), it is kept once."""
    return uuid.uuid4().hex


@dataclass
class Batch:
    """What one write transaction carries; statuses and memories are keyed by `ComponentRef.key`.

    `uids[i]` is the write key of `transitions[i]` (see `keys()`). `segment` names the
    journal segment the batch replays: written with it in the same transaction, and skipped if already there.
    """

    results: list[ProbeResult] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    statuses: dict[str, ComponentStatus] = field(default_factory=dict)
    memories: dict[str, CheckMemory] = field(default_factory=dict)
    uids: list[str] = field(default_factory=list)
    segment: str | None = None

    def keys(self) -> list[str]:
        """`uids`, completed with fresh keys for transitions added without one (kept: a retry reuses them)."""
        missing = len(self.transitions) - len(self.uids)
        if missing:
            self.uids = self.uids[: len(self.transitions)] + [new_uid() for _ in range(max(0, missing))]
        return self.uids

    @property
    def empty(self) -> bool:
        return not (self.results or self.transitions or self.statuses or self.memories or self.segment)


class Store:
    """The database behind tpmon (SQLite or PostgreSQL); synchronous and safe to call from threads.

    Every operation has a deadline (`deadline` seconds for a write or a ping, twice that for a read, unless the
    caller says otherwise): a database that does not answer in time gets its connection aborted, and the call
    fails with a StoreError instead of blocking its thread.
    """

    def __init__(self, engine: Engine, *, clock: Clock = utcnow, deadline: float = DEADLINE) -> None:
        self.engine = engine
        self.deadline = deadline  # writes and pings
        self.read_deadline = 2 * deadline  # reads build pages and figures: slower under load, never unbounded
        self._clock = clock
        self._where = mask(engine.url)
        # An in-memory SQLite is one connection shared by all threads: serialize its use.
        self._guard: AbstractContextManager[Any] = threading.Lock() if is_memory(engine.url) else nullcontext()
        self._watchdog = Watchdog()
        event.listen(engine, "connect", _fresh)
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", lambda dbapi_connection, _record: self._watchdog.detach(dbapi_connection))
        self._check_ids: dict[str, int] = {}  # probe_check: key → id, only of rows committed
        # Values of results written that were out of their column's range, clamped to it (rows.stored_row), by
        # column: counted once a batch is committed.
        self.clamped: Counter[str] = Counter()

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, clock: Clock = utcnow, deadline: float = DEADLINE) -> Store:
        """Connect to `url` (and upgrade its schema); StoreError with one line if it cannot."""
        try:  # a connection attempt is out of the watchdog's reach: its own timeout is the deadline, at most
            engine = make_engine(url, connect_timeout=min(CONNECT_TIMEOUT, math.ceil(deadline)))
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(
                said("invalid database URL {url}: {reason}", url=mask(url), reason=as_is(describe(exc, url)))
            ) from exc
        store = cls(engine, clock=clock, deadline=deadline)
        try:
            store.ping()
            if migrate:
                with store._watchdog.operation(MIGRATION_DEADLINE, "migrate the database"), store._guard:
                    upgrade(engine)
        except StoreError:
            store.close()
            raise
        except SQLAlchemyError as exc:
            store.close()
            reason = as_is(describe(exc, url))
            raise StoreError(
                said("cannot migrate the database {url}: {reason}", url=store._where, reason=reason)
            ) from exc
        return store

    def close(self) -> None:
        self._watchdog.close()
        self.engine.dispose()

    def abort_operations(self) -> int:
        """Abort every operation under way (they fail with StoreError); for a shutdown that cannot wait."""
        return self._watchdog.abort_all()

    def _checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Pool checkout: put the connection under the operation's deadline, then ping it if it is not new."""
        op = self._watchdog.attach(dbapi_connection)
        if record.info.pop("tpmon_fresh", False) or self.engine.dialect.name == "sqlite":
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if op is not None and op.late:
                raise StoreError(_no_answer(op.doing, self._where, op.seconds)) from None
            raise DisconnectionError(f"stale connection: {describe(exc)}") from exc  # the pool reconnects

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _session(self, doing: str, *, write: bool = False, deadline: float | None = None) -> Iterator[Connection]:
        """A connection (in a transaction if `write`) for one operation that must end within `deadline` s."""
        seconds = deadline if deadline is not None else self.deadline if write else self.read_deadline
        with self._watchdog.operation(seconds, doing) as op:
            try:
                with self._guard, self.engine.begin() if write else self.engine.connect() as connection:
                    yield connection
            except SQLAlchemyError as exc:
                if op.late:
                    raise StoreError(_no_answer(doing, self._where, seconds)) from exc
                # Bind errors (StatementError) and constraint/data errors: retrying the same rows cannot help.
                refused = isinstance(exc, IntegrityError | DataError) or (
                    isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
                )
                error = WriteRefused if write and refused else StoreError
                reason = as_is(describe(exc, self.engine.url))
                raise error(
                    said("cannot {doing} {where}: {reason}", doing=doing, where=self._where, reason=reason)
                ) from exc

    def write(self, batch: Batch, *, deadline: float | None = None) -> bool:
        """Write a batch in one short transaction: all of it or, on StoreError, nothing.

        Transitions are kept once per write key; a journal segment already written is skipped whole (False).
        """
        if batch.empty:
            return True
        now = self._clock()
        ids = self._ids_of({result.check.key for result in batch.results}) if batch.results else {}
        clamped: Counter[str] = Counter()
        with self._session("write to", write=True, deadline=deadline) as connection:
            if batch.segment is not None:
                marks = tables.journal_segment
                if connection.execute(select(marks.c.segment).where(marks.c.segment == batch.segment)).first():
                    return False
                connection.execute(insert(marks), {"segment": batch.segment, "applied_at": now})
            if batch.results:
                results = [rows.stored_row(r, ids[r.check.key], clamped) for r in batch.results]
                connection.execute(insert(tables.probe_result), results)
            if batch.transitions:
                written = _append_all(connection, batch.transitions, batch.keys())
                insert_events(connection, line_events(written), now)  # the outbox, same transaction
            if batch.statuses:
                statuses = [rows.status_row(k, s, now) for k, s in sorted(batch.statuses.items())]  # lock order
                _upsert(connection, tables.component_status, statuses)
                derived = [key for key in batch.statuses if not key.startswith("check:")]
                if derived:
                    tell(connection, STATUSES, derived)  # the other instances show them as the leader derived them
            if batch.memories:
                memories = [rows.memory_row(k, m, now) for k, m in sorted(batch.memories.items())]  # lock order
                _upsert(connection, tables.check_memory, memories)
                # the other instances follow those whose state changed at once (PostgreSQL; the rest at their
                # heartbeats): a result like the last one costs them nothing. A location's own memory of a check
                # (`check:…@lyon`, several locations) is told at each result: its writer judges how fresh it is
                changed = {t.ref.key for t in batch.transitions if t.ref.key in batch.memories}
                changed.update(key for key in batch.memories if LOCATED in key)
                if changed:
                    tell(connection, MEMORIES, changed)
        if clamped:
            self.clamped.update(clamped)
            log.warning(
                "%d out-of-range result values clamped to their column's bounds: %s",
                clamped.total(),
                ", ".join(f"{column} ×{count}" for column, count in sorted(clamped.items())),
            )
        return True

    def _ids_of(self, keys: set[str]) -> dict[str, int]:
        """The `probe_check` id of each check key, registering the new ones in a transaction of their own
        (committed before a batch uses them, so that no cached id ever names a row rolled back)."""
        missing = sorted(key for key in keys if key not in self._check_ids)  # two writers lock keys in one order
        if missing:
            table = tables.probe_check
            with self._session("write to", write=True) as connection:
                dialect = connection.dialect.name
                if dialect in ("postgresql", "sqlite"):
                    statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
                    connection.execute(
                        statement.on_conflict_do_nothing(index_elements=["key"]), [{"key": k} for k in missing]
                    )
                else:  # other backends: not supported by tpmon, kept correct rather than fast
                    known = set(connection.execute(select(table.c.key).where(table.c.key.in_(missing))).scalars())
                    if len(known) < len(missing):
                        connection.execute(insert(table), [{"key": k} for k in missing if k not in known])
                query = select(table.c.key, table.c.id).where(table.c.key.in_(missing))
                # the keys as the caller's (interned, see ComponentRef.key), not the database's copies
                found = {sys.intern(key): check_id for key, check_id in connection.execute(query)}
            self._check_ids.update(found)
        return {key: self._check_ids[key] for key in keys}

    def load_statuses(self, keys: Collection[str] | None = None) -> dict[str, ComponentStatus]:
        """Every stored component status (or those of `keys`), by component key."""
        query = select(tables.component_status)
        if keys is not None:
            query = query.where(tables.component_status.c.component_key.in_(list(keys)))
        found = self._read(query, rows.status_from_row)
        return {status.ref.key: status for status in found}

    def load_memories(self, keys: Collection[str] | None = None) -> dict[str, CheckMemory]:
        """Every stored check memory (or those of `keys`), by check key."""
        query = select(tables.check_memory)
        if keys is not None:
            query = query.where(tables.check_memory.c.check_key.in_(list(keys)))
        found = self._read(query, lambda row: (row.check_key, rows.memory_from_row(row)))
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

    def transitions_of_kind(
        self, kind: str, *, since: datetime, known: dict[int, Transition], limit: int = 20000
    ) -> list[Transition]:
        """`transitions(since=since, kind=kind, limit=limit)`, reading whole only the rows not in `known` (by their id):
        the ids in the window are listed, and the rows `known` lacks read in one query. `known` is left holding the
        window's transitions alone (a transition is never changed once stored; one pruned is no longer listed). The
        publication reads every line's last 30 days after each change: mostly the same rows, each made a Transition
        again (~2/3 of the read's cost)."""
        table = tables.transition
        where = (table.c.component_key.startswith(f"{kind}:", autoescape=True), table.c.at >= since)
        if not known:  # nothing kept: the rows whole at once
            query = select(table).where(*where).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
            pairs = self._read(query, lambda row: (row.id, rows.transition_from_row(row)))
            known.update(pairs)
            return [transition for _, transition in pairs]
        listed = select(table.c.id).where(*where).order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)
        ids: list[int] = self._read(listed, lambda row: row.id)
        missing = [found for found in ids if found not in known]
        for start in range(0, len(missing), 500):  # a bounded IN list
            chunk = select(table).where(table.c.id.in_(missing[start : start + 500]))
            known.update(self._read(chunk, lambda row: (row.id, rows.transition_from_row(row))))
        kept = {found: known[found] for found in ids if found in known}
        known.clear()
        known.update(kept)
        return list(kept.values())

    def transitions_known(
        self, ref: ComponentRef, *, known: dict[int, Transition], limit: int = 1000
    ) -> list[Transition]:
        """`transitions(ref, limit=limit)`, reading whole only the rows not in `known` (by id), which it adds: a
        line's page reads its last transitions after each change of its network, mostly the same rows."""
        table = tables.transition
        listed = (
            select(table.c.id)
            .where(table.c.component_key == ref.key)
            .order_by(table.c.at.desc(), table.c.id.desc())
            .limit(limit)
        )
        ids: list[int] = self._read(listed, lambda row: row.id)
        missing = [found for found in ids if found not in known]
        if missing:
            chunk = select(table).where(table.c.id.in_(missing))  # at most `limit`
            known.update(self._read(chunk, lambda row: (row.id, rows.transition_from_row(row))))
        return [known[found] for found in ids if found in known]

    def first_transitions(self, keys: Iterable[str]) -> dict[str, datetime]:
        """When the first stored transition of each of these components began: tpmon's first sight of it (its
        first start, or the start of a replayed history). A component without any transition is absent."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        table = tables.transition
        query = (
            select(table.c.component_key, func.min(table.c.at))
            .where(table.c.component_key.in_(wanted))
            .group_by(table.c.component_key)
        )
        return {key: at for key, at in self._read(query, tuple) if at is not None}

    def results(self, check: ComponentRef, *, since: datetime | None = None, limit: int = 1000) -> list[ProbeResult]:
        """Raw results of `check` started at or after `since`, newest first."""
        table = tables.probe_result
        check_id = select(tables.probe_check.c.id).where(tables.probe_check.c.key == check.key).scalar_subquery()
        # the results of one µs (there is no id): by their place in the table, the last written first — on
        # PostgreSQL, once pruning and VACUUM have freed space, a later row may take an earlier place
        written: ColumnClause[Any] = literal_column("ctid" if self.engine.dialect.name == "postgresql" else "rowid")
        query = (
            select(table)
            .where(table.c.check_id == check_id)
            .order_by(table.c.started_us.desc(), written.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(table.c.started_us >= rows.micros(since))
        return self._read(query, lambda row: rows.result_from_stored(row, check))

    def last_results(self, checks: Iterable[ComponentRef]) -> dict[str, ProbeResult]:
        """The last result of each of `checks` (as `results(check, limit=1)`), by check key, in one read: a check
        without any result is absent. Each check's latest start found by the index (check_id, started_us)."""
        wanted = {check.key: check for check in checks}
        if not wanted:
            return {}
        table, known = tables.probe_result, tables.probe_check
        newest = table.alias("newest")
        latest = select(func.max(newest.c.started_us)).where(newest.c.check_id == table.c.check_id).scalar_subquery()
        place = "ctid" if self.engine.dialect.name == "postgresql" else "rowid"
        written: ColumnClause[Any] = literal_column(f"probe_result.{place}")
        query = (
            select(table, known.c.key.label("check_key"))
            .join(known, known.c.id == table.c.check_id)
            .where(known.c.key.in_(sorted(wanted)), table.c.started_us == latest)
            .order_by(known.c.key, written.desc())  # the results of one µs: the last written first, as `results`
        )
        found: dict[str, ProbeResult] = {}
        for key, result in self._read(query, lambda row: (row.check_key, row)):
            if key not in found:
                found[key] = rows.result_from_stored(result, wanted[key])
        return found

    def _read(self, query: Select[Any], convert: Callable[[Any], T]) -> list[T]:
        with self._session("read from") as connection:
            return [convert(row) for row in connection.execute(query)]

    @contextmanager
    def bounded(self, seconds: float, doing: str, held: Connection | None = None) -> Iterator[None]:
        """Statements outside the store's own operations (a session lock's, held across heartbeats) under a deadline:
        past it, the connection they use — `held`, or one checked out within — is aborted and they fail with a
        SQLAlchemy error, instead of blocking forever on a database that hangs."""
        with self._watchdog.operation(seconds, doing):
            if held is not None:
                self._watchdog.attach(held.connection.dbapi_connection)
            yield

    def ping(self, *, deadline: float | None = None) -> None:
        """StoreError if the database cannot be reached, or does not answer within the (write) deadline."""
        with self._session("reach the database", deadline=deadline or self.deadline) as connection:
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


def _fresh(_dbapi_connection: Any, record: Any) -> None:
    """Pool connect: a connection just opened needs no ping at its first checkout."""
    record.info["tpmon_fresh"] = True


_CHAIN_RACES = 5  # times a component's transitions of one batch find its chain extended by another writer meanwhile
_IN_LIST = 5_000  # keys per `IN (…)` of the chain reads


@dataclass(frozen=True)
class _End:
    """The last transition of a component's chain: what the next one follows."""

    id: int
    state: str
    at: datetime


def _append_all(connection: Connection, transitions: list[Transition], uids: list[str]) -> list[Transition]:
    """Append `transitions` at the end of their components' stored chains, in a few statements: those written, in
    batch order, each with the `previous` its stored chain gave it.

    A transition is left out if its write key is already stored, or if it repeats the state its chain ends in
    (another writer wrote that fact; a recovery's step at another time is kept). The chains' ends are read in one
    query, then each round inserts the next transition of every component in one multi-row INSERT, in the order
    of the components (two writers lock index entries in the same order: no deadlock). A row refused by the unique
    index on (component, after_id) — another writer appended after the same transition, perhaps waited for until
    it committed — is "someone already wrote it": its chain's end is read again and the chain goes on from there;
    a component found extended meanwhile `_CHAIN_RACES` times in one batch keeps its stored chain (logged).

    A writer whose view lags (an instance that took a component over before the last writes of the one before it
    landed) continues the chain where it is instead of forking it; logged, it is a late view, not a new fact.
    """
    chains = _Chains(connection, transitions, uids)
    stale = sorted(chains.queues)  # components whose chain's end is to be read
    while True:
        if stale:
            chains.reread(stale)
        heads = chains.heads()
        if not heads:
            return chains.written()
        stale = chains.settle(heads, chains.insert(heads))


class _Chains:
    """`_append_all`'s state: each component's transitions still to write, its chain's known end, what was written."""

    def __init__(self, connection: Connection, transitions: list[Transition], uids: list[str]) -> None:
        self.connection = connection
        self.queues: dict[str, deque[tuple[int, Transition, str]]] = {}
        stored = _stored_uids(connection, uids)
        for index, (transition, uid) in enumerate(zip(transitions, uids, strict=True)):
            if uid not in stored:
                self.queues.setdefault(transition.ref.key, deque()).append((index, transition, uid))
        self.ends: dict[str, _End] = {}
        self.races: Counter[str] = Counter()
        self.done: dict[int, Transition] = {}
        table = tables.transition
        dialect = connection.dialect.name
        statement = (postgresql if dialect == "postgresql" else sqlite).insert(table).on_conflict_do_nothing()
        self.statement = statement.returning(table.c.uid, table.c.id)

    def reread(self, keys: list[str]) -> None:
        """Read the ends of these components' chains; drop a head whose write key is stored (written meanwhile)."""
        self.ends.update(_chain_ends(self.connection, keys))
        queued = [key for key in keys if self.queues.get(key)]
        stored = _stored_uids(self.connection, [self.queues[key][0][2] for key in queued])
        for key in queued:
            if self.queues[key][0][2] in stored:
                self.queues[key].popleft()

    def heads(self) -> list[tuple[dict[str, Any], int, Transition]]:
        """The next row of each component's chain, in the order of the components; facts already stored skipped."""
        found = []
        for key in sorted(self.queues):
            queue, end = self.queues[key], self.ends.get(key)
            while queue and end is not None and _repeats(queue[0][1], end):
                queue.popleft()  # the fact is stored already
            if not queue:
                del self.queues[key]
                continue
            index, transition, uid = queue[0]
            row = rows.transition_row(transition) | {"uid": uid, "after_id": 0}
            if end is not None:
                row |= {"previous": end.state, "after_id": end.id}
            found.append((row, index, transition))
        return found

    def insert(self, heads: list[tuple[dict[str, Any], int, Transition]]) -> dict[str, int]:
        """Insert the heads in one statement (paged by SQLAlchemy): the id of each inserted, by write key."""
        inserted = self.connection.execute(self.statement, [row for row, _, _ in heads])
        return {uid: row_id for uid, row_id in inserted if uid is not None}

    def settle(self, heads: list[tuple[dict[str, Any], int, Transition]], inserted: dict[str, int]) -> list[str]:
        """Move the chains on past the heads inserted; the components whose head was refused, to read again."""
        stale = []
        for row, index, transition in heads:
            key, row_id = row["component_key"], inserted.get(row["uid"])
            if row_id is None:  # another writer appended after the same transition, or wrote this one
                self.races[key] += 1
                if self.races[key] > _CHAIN_RACES:
                    log.error(
                        "%s: its chain was extended by another writer %d times during one write; %d transitions of "
                        "this instance left out, the stored chain kept", key, _CHAIN_RACES, len(self.queues[key]),
                    )  # fmt: skip
                    del self.queues[key]
                else:
                    stale.append(key)
                continue
            self.queues[key].popleft()
            self.ends[key] = _End(row_id, transition.state.value, transition.at)
            if row["previous"] != transition.previous.value:
                log.warning(
                    "%s %s → %s written after %s, where its stored chain ends (this instance's view lagged)",
                    key, transition.previous, transition.state, row["previous"],
                )  # fmt: skip
            self.done[index] = replace(transition, previous=State(row["previous"]))
        return stale

    def written(self) -> list[Transition]:
        return [self.done[index] for index in sorted(self.done)]


def _repeats(transition: Transition, end: _End) -> bool:
    """`transition` says again what its chain's end says (a recovery's step at another time says something new)."""
    return end.state == transition.state.value and not (
        transition.state == State.RECOVERING and end.at != transition.at
    )


def _chain_ends(connection: Connection, keys: list[str]) -> dict[str, _End]:
    """The last transition of each of these components' stored chains (the highest `after_id`: its unique index);
    a component without any is absent."""
    table = tables.transition
    later = table.alias("later")
    found: dict[str, _End] = {}
    for start in range(0, len(keys), _IN_LIST):
        query = select(table.c.component_key, table.c.id, table.c.state, table.c.at).where(
            table.c.component_key.in_(keys[start : start + _IN_LIST]),
            ~select(later.c.id)
            .where(later.c.component_key == table.c.component_key, later.c.after_id > table.c.after_id)
            .exists(),
        )
        found.update((key, _End(row_id, state, at)) for key, row_id, state, at in connection.execute(query))
    return found


def _stored_uids(connection: Connection, uids: list[str]) -> set[str]:
    """Those of these write keys already stored."""
    table, found = tables.transition, set[str]()
    for start in range(0, len(uids), _IN_LIST):
        query = select(table.c.uid).where(table.c.uid.in_(uids[start : start + _IN_LIST]))
        found.update(connection.execute(query).scalars())
    return found


def _insert_new(connection: Connection, table: Table, unique: str) -> Insert:
    """INSERT that skips rows whose `unique` column is already taken (PostgreSQL, SQLite)."""
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        skipping: Insert = statement.on_conflict_do_nothing(index_elements=[unique])
        return skipping
    return insert(table)


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


def _no_answer(doing: str, where: str, seconds: float) -> Text:
    """An operation the database did not answer in time. `doing` ("write to", "read from"…) is said in English
    only, quoted in the French (« reach the database »): the operations' verbs are not in the catalogs."""
    return said("cannot {doing} {where}: no answer within {seconds:g} s", doing=doing, where=where, seconds=seconds)
