"""What the public site reads, as a Protocol: the web layer depends on this, never on the composition root.

`app.SiteContext` satisfies it; a test or the static export may hand any object that does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Protocol

from ..board import Board
from ..config import Settings
from ..declared.incidents import Incident
from ..declared.maintenance import MaintenanceWindow
from ..snapshot import Snapshot
from ..store import Store
from .page_cache import PageCache

__all__ = ["SiteContext"]


class SiteContext(Protocol):
    """The running config, the snapshot of what the site tells, the board (check memories), the store (history
    only), the page cache, the metrics."""

    @property
    def settings(self) -> Settings: ...

    @property
    def board(self) -> Board: ...

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def snapshot(self) -> Snapshot:
        """States, open and recent incidents, maintenance, at one instant: what every surface shows."""
        ...

    @property
    def open_incidents(self) -> list[Incident]:
        """The snapshot's open incidents."""
        ...

    @property
    def windows(self) -> list[MaintenanceWindow]:
        """The snapshot's maintenance windows."""
        ...

    @property
    def pages(self) -> PageCache: ...

    def metrics_exposition(self) -> AsyncIterator[bytes]:
        """The /metrics page (Prometheus text format) in pieces, from the same snapshot as the pages."""
        ...

    @property
    def store_up(self) -> bool:
        """False while the store refuses or misses writes: pages then serve what they have, without waiting."""
        ...

    def readiness_problems(self) -> list[str]:
        """Why the instance should not receive traffic; empty when ready. Answered from memory, never waits."""
        ...
