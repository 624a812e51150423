"""What the other instances write, as they tell it (PostgreSQL LISTEN): the board follows the store within a second.

The store tells, at the commit of each write, the check memories it wrote and that ops declared something
(`store/changes.py`). A thread listens on a connection of its own and hands each notification to the event loop,
where the keys told are gathered and read in one query, then followed by the board; declarations are read again.
A connection lost (or a notification missed) is made good by following everything once it listens again; the
heartbeat's full reading stays the last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.store import Store
from monitor.store.changes import CHANNEL, DECLARED, MEMORIES, STATUSES, parse
from monitor.store.database import describe, make_engine

__all__ = ["Follower"]

log = logging.getLogger("tpmon.cluster")

WAIT = 0.5  # seconds a listening thread waits for notifications before it looks whether it must stop
RETRY = 1.0  # seconds between two attempts to listen again


class Follower:
    """Owned by the app's lifespan on PostgreSQL: `start` on the event loop, `stop` at shutdown."""

    def __init__(
        self,
        store: Store,
        *,
        memories: Callable[[frozenset[str] | None], Awaitable[None]],
        statuses: Callable[[frozenset[str]], Awaitable[None]],
        declared: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self._memories, self._statuses, self._declared = memories, statuses, declared
        self._keys: set[str] = set()
        self._derived: set[str] = set()
        self._everything = False
        self._declarations = False
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = threading.Event()  # set while the thread listens (tests wait on it)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._drain(), name="tpmon-follower")
        self._thread = threading.Thread(target=self._listen, args=(loop,), name="tpmon-listen", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, WAIT * 4)

    # --- on the event loop -------------------------------------------------------------------------------------
    def told(self, payload: str) -> None:
        kind, keys = parse(payload)
        if kind == MEMORIES:
            if keys is None:
                self._everything = True
            else:
                self._keys |= keys
        elif kind == STATUSES:
            if keys is None:
                self._everything = True
            else:
                self._derived |= keys
        elif kind == DECLARED:
            self._declarations = True
        else:
            return
        self._wake.set()

    def _all(self) -> None:
        self._everything = self._declarations = True
        self._wake.set()

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            keys, derived = self._keys, self._derived
            everything, declarations = self._everything, self._declarations
            self._keys, self._derived, self._everything, self._declarations = set(), set(), False, False
            try:
                if everything or keys:
                    await self._memories(None if everything else frozenset(keys))
                if derived:
                    await self._statuses(frozenset(derived))
                if declarations:
                    await self._declared()
            except Exception:  # a bug must not end the following: the heartbeat's reading goes on anyway
                log.exception("the store's changes not followed")

    # --- in the listening thread -------------------------------------------------------------------------------
    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        engine = make_engine(self.store.engine.url)
        try:
            while not self._stop.is_set():
                try:
                    self._session(engine, loop)
                except (SQLAlchemyError, OSError, RuntimeError) as exc:
                    log.warning("not listening to the store's changes: %s", describe(exc))
                except Exception as exc:  # psycopg's own errors (a connection lost while waiting)
                    log.warning("not listening to the store's changes: %s", type(exc).__name__)
                self.listening.clear()
                self._stop.wait(RETRY)
        finally:
            engine.dispose()

    def _session(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        raw = engine.raw_connection()
        try:
            connection: Any = raw.driver_connection  # psycopg's: LISTEN and its notifies()
            connection.rollback()
            connection.autocommit = True
            name = connection.execute(f"SELECT {CHANNEL}").fetchone()[0]
            connection.execute(f'LISTEN "{name}"')
            self.listening.set()
            loop.call_soon_threadsafe(self._all)  # what was told while not listening: everything, once
            while not self._stop.is_set():
                for notification in connection.notifies(timeout=WAIT):
                    loop.call_soon_threadsafe(self.told, notification.payload)
        finally:
            with contextlib.suppress(Exception):
                raw.invalidate()
