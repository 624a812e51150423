"""What the operators' listener reads, as a Protocol: the web layer depends on this, never on the composition root.

`app.Services` satisfies it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ..config import Settings
from ..declared.incidents import Incident
from ..operators.desk import Desk
from ..snapshot import Snapshot
from ..store import Store

__all__ = ["AdminContext"]


class AdminContext(Protocol):
    """The running config, the store, the clock, the operators' desk, and a way to show a write at once."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def desk(self) -> Desk: ...

    @property
    def open_incidents(self) -> list[Incident]: ...

    def snapshot(self) -> Snapshot:
        """The states, incidents and maintenance every surface tells, at one instant (the console shows it too)."""
        ...

    async def refresh_overrides(self) -> None:
        """Re-read what ops declared and apply it to the board now (not at the next tick)."""
        ...
