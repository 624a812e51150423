"""SQLite takes one `tpmon serve`: an OS file lock beside the database, held for the life of the process.

Two instances on one SQLite file would probe every check twice and write every state change twice. The second
one refuses to start, in one line, before it touches the database. The lock is the kernel's (`flock`): it goes
with the process however it ends (kill -9 included), so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.errors import MonitorError
from monitor.i18n import literal, said

__all__ = ["lock_path", "single_instance"]


def lock_path(url: str) -> Path | None:
    """The lock file of a SQLite file database (`<file>.lock`); None for PostgreSQL or an in-memory SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # Store.open names the bad URL
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        database = database[5:].partition("?")[0]
    return Path(database).absolute().with_name(Path(database).name + ".lock")


@contextlib.contextmanager
def single_instance(url: str) -> Iterator[Path | None]:
    """Hold the lock of the SQLite file at `url` while the block runs (nothing for other databases).

    MonitorError in one line when another process holds it.
    """
    path = lock_path(url)
    if path is None:
        yield None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        cannot = said("cannot open the lock file {path}: {reason}", path=path, reason=literal(exc.strerror or str(exc)))
        raise MonitorError(cannot) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            taken = said(
                "another tpmon serve already runs on {database}{who}: SQLite takes one instance; "
                "use PostgreSQL ($TPMON_DATABASE_URL) to run several",
                database=path.with_suffix(""),
                who=who,
            )
            raise MonitorError(taken) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
