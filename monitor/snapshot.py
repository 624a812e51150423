"""One snapshot of everything the site tells: every component's state, the open and the recent incidents, the
maintenance windows and those running, as they were at one instant.

The page, /api/v1, the Statuspage JSON, the feeds, the badges and /metrics all read the same snapshot, so none
can contradict another (DESIGN §2, "one truth"). It is immutable: a surface rendered in a thread reads one
consistent picture while the board moves on. The composition root takes a new one whenever the board changes
and at every tick (what ops declared, read from the store, applied to the board at `at`). Taking one copies no
status: `statuses` is the board's own immutable map (`board.Statuses`), which each change of the board replaces
for what it changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import Settings
from .declared.incidents import Incident
from .declared.maintenance import MaintenanceWindow, Occurrence, upcoming
from .models import ComponentRef, ComponentStatus

__all__ = ["RECENT_INCIDENTS", "Snapshot"]

RECENT_INCIDENTS = 50  # the newest incidents a snapshot holds, open or resolved: what the feeds and lists show


@dataclass(frozen=True)
class Snapshot:
    """States, incidents and maintenance at one instant.

    `at` is when the declarations were applied to the states (the last tick): the maintenance `running` then
    is exactly what made components `maintenance`. `newest_incident` is the highest incident id read then: a
    higher one was stored after the snapshot and no surface shows it before the next one.
    """

    settings: Settings
    at: datetime
    statuses: Mapping[str, ComponentStatus]
    checked_at: datetime | None = None  # when the last probe result arrived
    open_incidents: tuple[Incident, ...] = ()  # newest first
    recent_incidents: tuple[Incident, ...] = ()  # newest first, open or resolved, at most RECENT_INCIDENTS
    newest_incident: int = 0
    windows: tuple[MaintenanceWindow, ...] = ()  # not cancelled, by start
    running: tuple[Occurrence, ...] = ()  # the windows' occurrences running at `at`, by start
    board_version: int = 0
    declared_version: int = 0
    _incidents: Mapping[int, Incident] = field(init=False, default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = {i.id: i for i in self.recent_incidents if i.id is not None}
        known.update({i.id: i for i in self.open_incidents if i.id is not None})
        object.__setattr__(self, "_incidents", known)

    def get(self, ref: ComponentRef | str) -> ComponentStatus | None:
        """A component's status, as the board had it for this snapshot."""
        return self.statuses.get(ref if isinstance(ref, str) else ref.key)

    def incident(self, number: int) -> Incident | None:
        """An open or recent incident as this snapshot knows it; None when it holds no such incident."""
        return self._incidents.get(number)

    def shows(self, number: int) -> bool:
        """Whether incident `number` was stored by the time of this snapshot (a later one is not shown yet)."""
        return number <= self.newest_incident

    def as_known(self, stored: Iterable[Incident]) -> list[Incident]:
        """Incidents read from the store (history), as this snapshot tells them: the snapshot's copy of those it
        holds (an update stored since is not shown before the next snapshot), none stored after it."""
        return [self._incidents.get(i.id, i) if i.id is not None else i for i in stored if self.shows(i.id or 0)]

    def upcoming(self, horizon: timedelta) -> list[Occurrence]:
        """Occurrences starting after `at` and within `horizon`, soonest first."""
        return upcoming(self.windows, self.at, horizon)

    def last_change(self, keys: Iterable[str]) -> datetime | None:
        """The latest start of the current state among these components (None when none has one)."""
        moments = [status.since for key in keys if (status := self.statuses.get(key)) and status.since]
        return max(moments, default=None)
