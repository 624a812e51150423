"""The rows of the live instances (table `instance`) and the one leader, on PostgreSQL; blocking calls, for a thread.

Heartbeats and joins are dated by the database's clock (`clock_timestamp()`), so that every instance judges
them on one clock. The leader holds a session advisory lock on a connection of its own, for as long as that
connection lives: the database ends it when the process dies (kill -9 included), and another instance takes
the lead at its next heartbeat. The lock is named after the schema, so that two tpmon sharing one server in
two schemas each have their own leader.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.i18n import literal, said
from monitor.store import Store, tables
from monitor.store.database import describe

from .ownership import Member

__all__ = ["LEADER_LOCK", "Leadership", "Members", "Reading"]

log = logging.getLogger("tpmon.cluster")

LEADER_LOCK = 0x7470_6D6F  # "tpmo": with the hash of the schema, the key of the leader's advisory lock
FORGET_AFTER = 10  # heartbeats: a row this old is a dead instance's, deleted by whoever beats next


@dataclass(frozen=True)
class Reading:
    """What one heartbeat read: the database's clock and the rows of every location."""

    at: datetime
    members: tuple[Member, ...]
    local: datetime | None = None  # this process's clock when the database's read `at` (the middle of that statement)


class Members:
    """One instance's row: written at every heartbeat, deleted when it stops."""

    def __init__(self, store: Store, instance: str, location: str, heartbeat: float, *, host: str, pid: int) -> None:
        self.store, self.instance, self.location, self.heartbeat = store, instance, location, heartbeat
        self.host, self.pid = host, pid

    def beat(self) -> Reading:
        """Write this instance's heartbeat (its row again if it was forgotten), read every location's rows."""
        row = tables.instance.c
        try:
            with self.store.bounded(self.heartbeat, "write the heartbeat"), self.store.engine.begin() as connection:
                deadline = func.set_config("statement_timeout", str(int(self.heartbeat * 1000)), True)
                sent = time.time()
                now: datetime = connection.execute(select(func.clock_timestamp(), deadline)).one()[0]
                local = datetime.fromtimestamp((sent + time.time()) / 2, UTC)  # within half that round trip
                mine = update(tables.instance).where(row.id == self.instance)
                done = connection.execute(mine.values(heartbeat_at=now))
                if done.rowcount == 0:
                    connection.execute(
                        insert(tables.instance).values(
                            id=self.instance,
                            location=self.location,
                            host=self.host[:200],
                            pid=self.pid,
                            joined_at=now,
                            heartbeat_at=now,
                        )
                    )
                forgotten = now - timedelta(seconds=self.heartbeat * FORGET_AFTER)
                found = connection.execute(select(row.id, row.joined_at, row.heartbeat_at, row.location)).all()
                if any(r.heartbeat_at < forgotten for r in found):  # only then: a statement less per heartbeat
                    connection.execute(delete(tables.instance).where(row.heartbeat_at < forgotten))
                    found = [r for r in found if r.heartbeat_at >= forgotten]
        except SQLAlchemyError as exc:
            raise StoreError(
                said("heartbeat not written: {reason}", reason=literal(describe(exc, self.store.engine.url)))
            ) from exc
        return Reading(now, tuple(Member(r.id, r.joined_at, r.heartbeat_at, r.location) for r in found), local)

    def leave(self) -> None:
        """Delete this instance's row: the others take its share at their next heartbeat."""
        try:
            with self.store.bounded(self.heartbeat, "leave"), self.store.engine.begin() as connection:
                _deadline(connection, self.heartbeat)
                connection.execute(delete(tables.instance).where(tables.instance.c.id == self.instance))
        except SQLAlchemyError as exc:
            log.warning("instance row not deleted (the others wait two heartbeats): %s", describe(exc))


RELEASE_WITHIN = 1.0  # seconds: a stop does not wait longer for a database that hangs to free the lock


class Leadership:
    """The session advisory lock of the leader: housekeeping, notifications and the derived states' writes."""

    def __init__(self, store: Store, heartbeat: float) -> None:
        self.store, self.heartbeat = store, heartbeat
        self._held: Connection | None = None

    @property
    def leading(self) -> bool:
        return self._held is not None

    def hold(self) -> bool:
        """Keep the lock (its connection still answers) or try to take it; True while this instance leads."""
        if self._held is not None:
            try:
                with self.store.bounded(self.heartbeat, "keep the lead", self._held):
                    self._held.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError as exc:
                log.warning("leadership lost, its connection failed: %s", describe(exc))
                self.release()
                return False
        try:
            with self.store.bounded(self.heartbeat, "reach the database"):
                connection = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            log.warning("leadership not tried, the database is unreachable: %s", describe(exc))
            return False
        try:
            with self.store.bounded(self.heartbeat, "take the lead", connection):
                connection.execute(
                    text("SELECT set_config('statement_timeout', :ms, false)"), {"ms": str(int(self.heartbeat * 1000))}
                )
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))"), {"key": LEADER_LOCK}
                ).scalar_one()
        except SQLAlchemyError as exc:
            log.warning("leadership not tried: %s", describe(exc))
            connection.invalidate()
            connection.close()
            return False
        if not taken:
            connection.close()
            return False
        self._held = connection
        log.info("this instance leads: housekeeping, notifications, derived states")
        return True

    def release(self) -> None:
        """Let the lock go: unlocked at once when the database answers (dropping the session alone frees it only
        once the server notices: a successor trying at once could miss it), and the connection discarded."""
        held, self._held = self._held, None
        if held is not None:
            # unreachable or hung: the lock goes with the session
            with contextlib.suppress(SQLAlchemyError), self.store.bounded(RELEASE_WITHIN, "let the lead go", held):
                held.execute(text("SELECT pg_advisory_unlock(:key, hashtext(current_schema()))"), {"key": LEADER_LOCK})
            try:
                held.invalidate()
                held.close()
            except SQLAlchemyError:
                pass


def _deadline(connection: Connection, heartbeat: float) -> None:
    """A heartbeat's statements never wait longer than a heartbeat."""
    connection.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(int(heartbeat * 1000))})
