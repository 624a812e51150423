"""The store writer's journal: what could not reach the database, on local disk until it can.

One append-only file of JSON lines, fsynced after each segment. A segment is what one spill held (results,
transitions with their write keys, statuses, check memories) between a begin line and an end line: a segment
cut short by a crash has no end line and is cut off when the journal is next opened. Segments are written to
the database in order, each in one transaction with its id (`journal_segment`), so a segment written twice —
a crash between the commit and the file's truncation — is written once. When every segment is written, the
file is truncated. Only one process uses a journal at a time (an exclusive lock on the file).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.errors import StoreError
from monitor.i18n import literal, said
from monitor.models import ComponentRef
from monitor.store import rows, tables
from monitor.store.database import is_memory, mask, private_dir, private_file, sqlite_path
from monitor.store.store import Batch
from monitor.store.tables import UTCDateTime

__all__ = ["ENV_VAR", "MAX_RESULTS", "Journal", "Segment", "journal_path"]

log = logging.getLogger(__name__)

ENV_VAR = "TPMON_JOURNAL"
PG_DEFAULT = Path("var/tpmon.journal.jsonl")
MAX_RESULTS = 200_000  # raw results the journal keeps at most (about 60 MB); transitions have no limit
SEGMENT_RESULTS = 1_000  # raw results per segment at most: each is written back in one short transaction


def journal_path(url: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """`$TPMON_JOURNAL`; else beside a SQLite file (`tpmon.db` → `tpmon.journal.jsonl`), else
    `var/tpmon.journal.jsonl`; None for an in-memory SQLite (nothing outlives the process there)."""
    given = environ.get(ENV_VAR, "").strip()
    if given:
        return Path(given)
    try:
        parsed = make_url(url)
    except ArgumentError:
        return PG_DEFAULT
    if parsed.get_backend_name() == "sqlite" and is_memory(parsed):
        return None
    path = sqlite_path(parsed)
    return path.with_name(f"{path.stem}.journal.jsonl") if path is not None else PG_DEFAULT


@dataclass(frozen=True)
class Segment:
    """Where one complete segment lies in the file, and what it holds."""

    id: str
    offset: int
    length: int
    results: int
    transitions: int


def _datetime_columns(table: Table) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, UTCDateTime))


_KINDS = {  # record key → the table whose row it is, for its date columns
    "r": _datetime_columns(tables.probe_result),
    "t": _datetime_columns(tables.transition),
    "s": _datetime_columns(tables.component_status),
    "m": _datetime_columns(tables.check_memory),
}


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal a {type(value).__name__}")


def _decode(kind: str, row: dict[str, Any]) -> SimpleNamespace:
    for name in _KINDS[kind] & row.keys():
        if row[name] is not None:
            row[name] = datetime.fromisoformat(row[name])
    return SimpleNamespace(**row)


def _lines(segment: str, batch: Batch, database: str) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    yield {"segment": segment, "at": now.isoformat(), "database": database}
    count = 0
    for result in batch.results:
        count += 1
        yield {"r": rows.result_row(result, 0), "check": result.check.key}  # ids are the database's: the key
    for transition, uid in zip(batch.transitions, batch.keys(), strict=True):
        count += 1
        yield {"t": rows.transition_row(transition), "uid": uid}
    for key, status in batch.statuses.items():
        count += 1
        yield {"s": rows.status_row(key, status, now)}
    for key, memory in batch.memories.items():
        count += 1
        yield {"m": rows.memory_row(key, memory, now)}
    yield {"end": segment, "records": count}


def _parse(data: bytes) -> Batch:
    """The batch of one segment's bytes (begin line … end line); ValueError if they are not one."""
    lines = data.decode("utf-8").splitlines()
    head, *records, tail = (json.loads(line) for line in lines)
    if "segment" not in head or tail.get("end") != head["segment"] or tail.get("records") != len(records):
        raise ValueError("not a complete segment")
    batch = Batch(segment=str(head["segment"]))
    try:
        _records_into(batch, records)
    except (KeyError, AttributeError, TypeError) as exc:  # a record of another tpmon version: not this batch
        raise ValueError(f"a record tpmon cannot read: {exc!r}") from exc
    return batch


def _records_into(batch: Batch, records: list[dict[str, Any]]) -> None:
    for record in records:
        if "r" in record:
            check = ComponentRef.parse(str(record["check"]))
            batch.results.append(rows.result_from_row(_decode("r", record["r"]), check))
        elif "t" in record:
            batch.transitions.append(rows.transition_from_row(_decode("t", record["t"])))
            batch.uids.append(str(record["uid"]))
        elif "s" in record:
            status = rows.status_from_row(_decode("s", record["s"]))
            batch.statuses[status.ref.key] = status
        elif "m" in record:
            row = _decode("m", record["m"])
            batch.memories[row.check_key] = rows.memory_from_row(row)
        else:
            raise ValueError(f"unknown record {sorted(record)}")


class Journal:
    """An open journal file (locked); see the module's docstring. Safe to call from several threads."""

    def __init__(self, path: Path, descriptor: int, database: str, max_results: int) -> None:
        self.path = path
        self.database = database
        self.max_results = max_results
        self.segment_results = SEGMENT_RESULTS
        self._fd = descriptor
        self._lock = threading.Lock()
        self._pending: list[Segment] = []
        self._size = 0
        self.replayed_results = 0  # written to the database from this journal since it was opened
        self.replayed_transitions = 0

    @classmethod
    def open(cls, path: Path, *, database: str = "", max_results: int = MAX_RESULTS) -> Journal:
        """Open (create 0600, its folder 0700) and lock `path`, and index its complete segments.

        StoreError in one line if it cannot be opened or another process holds it.
        """
        try:
            private_dir(path.parent)
            private_file(path)
            descriptor = os.open(path, os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            reason = literal(exc.strerror or str(exc))
            raise StoreError(said("cannot open the journal {path}: {reason}", path=path, reason=reason)) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            in_use = said(
                "the journal {path} is in use by another tpmon; stop it or set {variable}", path=path, variable=ENV_VAR
            )
            raise StoreError(in_use) from None
        journal = cls(path, descriptor, mask(database) if database else "", max(0, max_results))
        try:
            journal._scan()
        except OSError as exc:
            journal.close()
            reason = literal(exc.strerror or str(exc))
            raise StoreError(said("cannot read the journal {path}: {reason}", path=path, reason=reason)) from None
        return journal

    def _scan(self) -> None:
        """Index the complete segments; cut a torn tail off; keep a copy of a file with unreadable segments."""
        with open(self._fd, "rb", closefd=False) as file:
            file.seek(0)
            data = file.read()
        offset, start, good_end, bad = 0, None, 0, 0
        for line in data.splitlines(keepends=True):
            end = offset + len(line)
            try:
                record = json.loads(line) if line.endswith(b"\n") else None
            except ValueError:
                record = None
            if isinstance(record, dict) and "segment" in record:
                start = offset
            elif isinstance(record, dict) and "end" in record and start is not None:
                try:
                    batch = _parse(data[start:end])
                except (ValueError, KeyError, TypeError):
                    bad += 1
                else:
                    assert batch.segment is not None
                    segment = Segment(batch.segment, start, end - start, len(batch.results), len(batch.transitions))
                    self._pending.append(segment)
                start, good_end = None, end
            offset = end
        if bad:
            copy = self.path.with_name(f"{self.path.name}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            shutil.copyfile(self.path, copy)
            log.error("journal %s: %d unreadable segments skipped; the file is kept as %s", self.path, bad, copy)
        if good_end < len(data):  # a spill cut short by a crash: never acknowledged, cut it off
            log.warning("journal %s: an unfinished segment (%d bytes) cut off", self.path, len(data) - good_end)
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)
        self._size = good_end
        if self._pending:
            log.warning(
                "journal %s holds %d segments (%d results, %d transitions) not yet in the database",
                self.path,
                len(self._pending),
                self.pending_results,
                sum(s.transitions for s in self._pending),
            )

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def pending_results(self) -> int:
        return sum(segment.results for segment in self._pending)

    def pending(self) -> list[Segment]:
        """The segments not yet written to the database, oldest first."""
        with self._lock:
            return list(self._pending)

    def room_for_results(self) -> int:
        return max(0, self.max_results - self.pending_results)

    def append(self, batch: Batch) -> list[Segment]:
        """Write `batch` as segments of at most `segment_results` results (the first also holds its transitions,
        statuses and memories) and fsync them; OSError (the file unchanged) if it cannot."""
        size = max(1, self.segment_results)
        parts = [Batch(batch.results[first : first + size]) for first in range(size, len(batch.results), size)]
        head = Batch(batch.results[:size], batch.transitions, batch.statuses, batch.memories, batch.keys())
        found: list[Segment] = []
        encoded = b""
        for part in (head, *parts):
            segment = uuid.uuid4().hex
            data = "".join(json.dumps(line, default=_encode) + "\n" for line in _lines(segment, part, self.database))
            chunk = data.encode("utf-8")
            found.append(Segment(segment, len(encoded), len(chunk), len(part.results), len(part.transitions)))
            encoded += chunk
        with self._lock:
            before = self._size
            try:
                view = memoryview(encoded)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                os.fsync(self._fd)
            except OSError:
                try:  # leave no torn segment behind (a full disk can still shrink a file)
                    os.ftruncate(self._fd, before)
                except OSError:
                    log.exception("journal %s: cannot cut a failed segment off", self.path)
                raise
            if before == 0:
                _fsync_folder(self.path.parent)  # the file's name must survive a power loss too
            found = [replace(segment, offset=before + segment.offset) for segment in found]
            self._pending.extend(found)
            self._size = before + len(encoded)
            return found

    def load(self, segment: Segment) -> Batch:
        """The batch a segment holds, with its id (`Batch.segment`); ValueError if it cannot be read back."""
        data = os.pread(self._fd, segment.length, segment.offset)
        return _parse(data)

    def written(self, segment: Segment) -> None:
        """The segment is in the database: forget it; truncate the file once no segment is left."""
        self.skip(segment)
        self.replayed_results += segment.results
        self.replayed_transitions += segment.transitions

    def skip(self, segment: Segment) -> None:
        """Forget a segment (written, or unreadable); truncate the file once no segment is left."""
        with self._lock:
            self._pending = [s for s in self._pending if s.id != segment.id]
            if not self._pending and self._size:
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)
                self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)  # the lock goes with it
                self._fd = -1

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, {len(self._pending)} segments pending)"


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
