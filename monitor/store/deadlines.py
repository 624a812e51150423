"""A deadline on every database operation: past it, the connection the operation uses is aborted from outside.

A hung PostgreSQL (it accepts, then never answers) leaves a driver blocked on a socket forever: neither
`statement_timeout` (the server never sees the query) nor TCP keepalive (the peer's kernel still answers) ends
it. The watchdog does: one daemon thread that, when an operation outlives its deadline, shuts the socket of its
connection down (PostgreSQL) or interrupts it (SQLite), so the blocked call fails at once with an error and the
thread that made it is free again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Operation", "Watchdog", "abort_connection"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Operation:
    """One operation under way: what it does, until when, on which DBAPI connection (once checked out)."""

    doing: str
    deadline: float  # on the watchdog's clock
    seconds: float
    connection: Any = None
    late: bool = False  # the watchdog aborted it
    thread: int = field(default_factory=threading.get_ident)


def abort_connection(dbapi_connection: Any) -> bool:
    """Make whatever blocks on `dbapi_connection` fail now; True if something was done.

    sqlite3 has `interrupt()`; psycopg (and other libpq drivers) expose their socket by `fileno()`: shutting it
    down wakes the waiting thread with "server closed the connection" and the pool discards the connection.
    """
    interrupt = getattr(dbapi_connection, "interrupt", None)
    if callable(interrupt):
        try:
            interrupt()
        except Exception:  # closed meanwhile
            return False
        return True
    fileno = getattr(dbapi_connection, "fileno", None)
    if not callable(fileno):
        return False
    try:
        duplicate = os.dup(fileno())
    except Exception:  # closed meanwhile
        return False
    try:
        with socket.socket(fileno=duplicate) as sock:  # closes only the duplicate
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True


class Watchdog:
    """Tracks the operations under way (per thread, nested ones stacked) and aborts the late ones.

    `operation()` wraps one database operation; `attach()` (from the pool's checkout event) records the
    connection it got. The thread starts with the first operation and sleeps until the earliest deadline.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Condition()
        self._running: list[Operation] = []
        self._local = threading.local()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def operation(self, seconds: float, doing: str) -> Iterator[Operation]:
        op = Operation(doing, self._clock() + seconds, seconds)
        stack: list[Operation] = self._stack()
        with self._lock:
            self._running.append(op)
            self._start()
            self._lock.notify()
        stack.append(op)
        try:
            yield op
        finally:
            stack.pop()
            with self._lock:
                self._running.remove(op)
                op.connection = None

    def current(self) -> Operation | None:
        """The innermost operation of the calling thread, if any."""
        stack = self._stack()
        return stack[-1] if stack else None

    def attach(self, dbapi_connection: Any) -> Operation | None:
        """Record that the calling thread's current operation uses `dbapi_connection`; aborted at once if late."""
        op = self.current()
        if op is None:
            return None
        with self._lock:
            op.connection = dbapi_connection
            if op.late or self._clock() >= op.deadline:
                op.late = True
                abort_connection(dbapi_connection)
        return op

    def detach(self, dbapi_connection: Any) -> None:
        """The connection went back to the pool: whatever happens to its operation now, leave it alone."""
        with self._lock:
            for op in self._running:
                if op.connection is dbapi_connection:
                    op.connection = None

    def abort_all(self) -> int:
        """Abort every operation under way now (at shutdown); how many had a connection to abort."""
        with self._lock:
            aborted = 0
            for op in self._running:
                op.late = True
                if op.connection is not None and abort_connection(op.connection):
                    aborted += 1
            return aborted

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(1)

    def _stack(self) -> list[Operation]:
        stack: list[Operation] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._watch, name="tpmon-store-watchdog", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        with self._lock:
            while not self._closed:
                now = self._clock()
                for op in self._running:
                    if not op.late and now >= op.deadline:
                        op.late = True
                        if op.connection is not None:
                            abort_connection(op.connection)
                        log.warning("no answer from the database within %g s (%s): aborted", op.seconds, op.doing)
                # a late operation still connecting is aborted by attach() when it gets its connection
                pending = [op.deadline for op in self._running if not op.late]
                self._lock.wait(min(pending) - now if pending else None)
