"""The store's verbs for what ops declare: incidents with their updates, and maintenance windows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update

from monitor.config import Settings
from monitor.declared.incidents import (
    Declared,
    Impact,
    Incident,
    IncidentUpdate,
    add_update,
    declared_lifted,
    declared_overrides,
    open_incident,
)
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import (
    MaintenanceWindow,
    Recurrence,
    check_window,
    maintenance_lifted,
    maintenance_overrides,
    skip_occurrence,
)
from monitor.engine.overrides import Overrides
from monitor.errors import IncidentError, NotFound
from monitor.i18n import said
from monitor.models import State
from monitor.notify.events import incident_event, window_event
from monitor.store import tables
from monitor.store.changes import DECLARED, tell
from monitor.store.outbox_rows import insert_events
from monitor.store.store import Clock, Store, utcnow

__all__ = ["RESOLVED", "Also", "Current", "Declarations"]

Row = dict[str, Any]
# Called inside a verb's transaction with (connection, before, after): what must be written with the change
# or not at all (its audit event, an idempotency record), or a last refusal (raise: nothing is written).
Also = Callable[[Connection, Any, Any], None]
RESOLVED = Bilingual("Incident résolu.", "Incident resolved.")  # the message of a resolve given none
_TEXTS = ("message", "practitioner_consigne", "member_consigne")


@dataclass(frozen=True)
class Current:
    """What ops have declared, read at once for a snapshot of the site.

    `open` holds every open incident and `recent` the newest ones, open or resolved, both newest first;
    `newest_id` is the highest incident id stored then: a higher one was stored after this read.
    """

    open: list[Incident]
    recent: list[Incident]
    newest_id: int
    windows: list[MaintenanceWindow]


class Declarations:
    """Incidents and maintenance windows in the store, validated against the running `settings`.

    Every verb is one transaction: a refused input (IncidentError, NotFound) writes nothing. A verb's `also`
    runs inside that transaction, after the change, with what was there before and what is there after.
    """

    def __init__(self, store: Store, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock

    @contextmanager
    def _writing(self, doing: str) -> Iterator[Connection]:
        """A verb's transaction; at its commit, the other instances are told to read the declarations again."""
        with self.store._session(doing, write=True) as connection:
            yield connection
            tell(connection, DECLARED)

    # Incidents

    def open_incident(
        self,
        *,
        title: Bilingual,
        impact: Impact,
        first: IncidentUpdate,
        components: Iterable[str] = (),
        also: Also | None = None,
    ) -> Incident:
        """Validate and store a new incident with its first update; returns it with its id."""
        incident = open_incident(self.settings, title=title, impact=impact, first=first, components=components)
        with self._writing("open an incident in") as connection:
            row = {
                "title_fr": incident.title.fr,
                "title_en": incident.title.en,
                "impact": incident.impact,
                "status": incident.status,
                "components": list(incident.components),
                "created_at": incident.created_at,
                "resolved_at": None,
            }
            new_id = _insert(connection, tables.incident, row)
            connection.execute(
                insert(tables.incident_update), _update_row(new_id, _with_shown_before(connection, first))
            )
            opened = _load(connection, [new_id])[0]
            if also is not None:
                also(connection, None, opened)
            insert_events(connection, [incident_event(opened, opened.updates[-1], "opened")], self._clock())
            return opened

    def update_incident(
        self, incident_id: int, change: IncidentUpdate, *, impact: Impact | None = None, also: Also | None = None
    ) -> Incident:
        """Append an update (a `resolved` one resolves); IncidentError if the lifecycle or an input refuses it."""
        with self._writing("update an incident in") as connection:
            before = _load_one(connection, incident_id)
            after = add_update(before, change, self.settings, impact=impact)
            values = {
                "impact": after.impact,
                "status": after.status,
                "components": list(after.components),
                "resolved_at": after.resolved_at,
            }
            table = tables.incident
            seen = (table.c.id == incident_id) & (table.c.status == before.status) & table.c.resolved_at.is_(None)
            if connection.execute(update(table).where(seen).values(values)).rowcount != 1:
                raise IncidentError("id", said("incident {id} changed meanwhile; look again and retry", id=incident_id))
            connection.execute(
                insert(tables.incident_update), _update_row(incident_id, _with_shown_before(connection, change))
            )
            updated = _load_one(connection, incident_id)
            if also is not None:
                also(connection, before, updated)
            event = incident_event(updated, updated.updates[-1], "updated" if updated.is_open else "resolved")
            insert_events(connection, [event], self._clock())
            return updated

    def resolve_incident(
        self,
        incident_id: int,
        *,
        message: Bilingual | None = None,
        at: datetime | None = None,
        practitioner_consigne: Bilingual | None = None,
        member_consigne: Bilingual | None = None,
        also: Also | None = None,
    ) -> Incident:
        """Resolve: its declared statuses stop counting. IncidentError if already resolved."""
        change = IncidentUpdate(
            at or self._clock(),
            "resolved",
            message or RESOLVED,
            practitioner_consigne or Bilingual(),
            member_consigne or Bilingual(),
        )
        return self.update_incident(incident_id, change, also=also)

    def incident(self, incident_id: int) -> Incident:
        """One incident with its updates; NotFound if there is none with this id."""
        with self.store._session("read from") as connection:
            return _load_one(connection, incident_id)

    def incidents(self, *, open_only: bool = False, limit: int | None = 50, offset: int = 0) -> list[Incident]:
        """Incidents newest first (open ones only if asked), each with its updates."""
        table = tables.incident
        query = select(table.c.id).order_by(table.c.created_at.desc(), table.c.id.desc()).offset(offset).limit(limit)
        if open_only:
            query = query.where(table.c.resolved_at.is_(None))
        with self.store._session("read from") as connection:
            return _load(connection, list(connection.execute(query).scalars()))

    def current(self, *, recent: int = 50) -> Current:
        """The open incidents, the `recent` newest ones and the windows not cancelled, as one read.

        The incidents come with their updates from a single statement: an update written meanwhile is in
        both the incident's row and its updates, or in neither.
        """
        table = tables.incident
        newest = select(table.c.id).order_by(table.c.created_at.desc(), table.c.id.desc()).limit(recent)
        highest = select(func.max(table.c.id)).scalar_subquery()
        wanted = select(table.c.id, table.c.created_at, highest).where(
            table.c.resolved_at.is_(None) | table.c.id.in_(newest)
        )
        with self.store._session("read from") as connection:
            rows = connection.execute(wanted).all()
            found = {i.id: i for i in _load_at_once(connection, [row.id for row in rows])}
            windows = [_window_from_row(row) for row in connection.execute(_windows_query(False))]
        order = sorted(rows, key=lambda row: (row.created_at, row.id), reverse=True)  # the newest come first
        recent_ones = [found[row.id] for row in order[:recent] if row.id in found]
        opened = [found[row.id] for row in order if row.id in found and found[row.id].is_open]
        return Current(opened, recent_ones, int(rows[0][2]) if rows else 0, windows)

    # Maintenance windows

    def add_window(self, window: MaintenanceWindow, *, also: Also | None = None) -> MaintenanceWindow:
        """Validate and store a window; returns it with its id."""
        checked = check_window(window, self.settings)
        with self._writing("add a maintenance window to") as connection:
            row = _window_row(checked) | {"created_at": self._clock(), "cancelled": False}
            new_id = _insert(connection, tables.maintenance_window, row)
            added = _window_from_row(_window_one(connection, new_id))
            insert_events(connection, [window_event(added, "announced", row["created_at"])], row["created_at"])
            if also is not None:
                also(connection, None, added)
            return added

    def cancel_window(self, window_id: int, *, also: Also | None = None) -> MaintenanceWindow:
        """Cancel every occurrence of a window; IncidentError if it already is."""
        table = tables.maintenance_window
        with self._writing("cancel a maintenance window in") as connection:
            before = _window_from_row(_window_one(connection, window_id))
            if before.cancelled:
                raise IncidentError("id", said("maintenance window {id} is already cancelled", id=window_id))
            now = self._clock()
            stamp = {"cancelled": True, "cancelled_at": now}
            connection.execute(update(table).where(table.c.id == window_id, ~table.c.cancelled).values(stamp))
            after = _window_from_row(_window_one(connection, window_id))
            insert_events(connection, [window_event(after, "cancelled", now)], now)
            if also is not None:
                also(connection, before, after)
            return after

    def cancel_occurrence(self, window_id: int, day: date, *, also: Also | None = None) -> MaintenanceWindow:
        """Cancel the one occurrence starting on local date `day`; the series goes on. IncidentError naming `date`
        if no occurrence starts that day or it is already cancelled."""
        table = tables.maintenance_window
        with self._writing("cancel a maintenance occurrence in") as connection:
            before = _window_from_row(_window_one(connection, window_id, lock=True))
            after = skip_occurrence(before, day)
            skipped = [d.isoformat() for d in after.skipped]
            seen = (table.c.id == window_id) & ~table.c.cancelled
            connection.execute(update(table).where(seen).values(skipped=skipped))
            found = _window_from_row(_window_one(connection, window_id))
            if also is not None:
                also(connection, before, found)
            return found

    def window(self, window_id: int) -> MaintenanceWindow:
        with self.store._session("read from") as connection:
            return _window_from_row(_window_one(connection, window_id))

    def windows(self, *, include_cancelled: bool = False) -> list[MaintenanceWindow]:
        """Maintenance windows by start, oldest first (cancelled ones only if asked)."""
        with self.store._session("read from") as connection:
            return [_window_from_row(row) for row in connection.execute(_windows_query(include_cancelled))]

    def overrides(self, now: datetime) -> Overrides:
        """What the status engine applies now: open incidents' declared statuses and running maintenance, and
        when the latest resolved incidents and ended windows stopped counting."""
        declared = declared_overrides(self.incidents(open_only=True, limit=None))
        windows = self.windows()
        lifted = {**declared_lifted(self.incidents(limit=50)), **maintenance_lifted(windows, now)}
        return Overrides(declared=declared, maintenance=maintenance_overrides(windows, now), lifted=lifted)


def _insert(connection: Connection, table: Table, row: Row) -> int:
    new_id: int = connection.execute(insert(table).returning(table.c.id), row).scalar_one()
    return new_id


def _with_shown_before(connection: Connection, change: IncidentUpdate) -> IncidentUpdate:
    """`change` with the state each component it declares was shown in just before it (its last transition
    then), for Statuspage's `old_status`; unknown when it has none."""
    table = tables.transition
    before: dict[str, State] = {}
    for key in change.statuses:
        query = (
            select(table.c.state)
            .where(table.c.component_key == key, table.c.at <= change.at)
            .order_by(table.c.at.desc(), table.c.recorded_at.desc(), table.c.id.desc())
            .limit(1)
        )
        found = connection.execute(query).scalar_one_or_none()
        before[key] = State(found) if found in {s.value for s in State} else State.UNKNOWN
    return replace(change, shown_before=before)


def _update_row(incident_id: int, change: IncidentUpdate) -> Row:
    texts = {f"{name}_{lang}": getattr(getattr(change, name), lang) for name in _TEXTS for lang in ("fr", "en")}
    statuses: dict[str, dict[str, Any]] = {
        key: {"state": d.state.value, "progress": d.progress} for key, d in change.statuses.items()
    }
    for key, state in change.shown_before.items():
        if key in statuses:
            statuses[key]["previous"] = state.value
    return {"incident_id": incident_id, "at": change.at, "status": change.status, "statuses": statuses, **texts}


def _update_from_row(row: Any) -> IncidentUpdate:
    texts = {name: Bilingual(getattr(row, f"{name}_fr"), getattr(row, f"{name}_en")) for name in _TEXTS}
    statuses: Mapping[str, Declared] = {
        key: Declared(State(value["state"]), value.get("progress")) for key, value in row.statuses.items()
    }
    before = {key: State(value["previous"]) for key, value in row.statuses.items() if value.get("previous")}
    return IncidentUpdate(row.at, row.status, statuses=statuses, id=row.id, shown_before=before, **texts)


def _load(connection: Connection, ids: list[int]) -> list[Incident]:
    """The incidents of `ids` with their updates, in the order of `ids`."""
    if not ids:
        return []
    found = {row.id: row for row in connection.execute(select(tables.incident).where(tables.incident.c.id.in_(ids)))}
    table = tables.incident_update
    updates: dict[int, list[IncidentUpdate]] = {i: [] for i in ids}
    query = select(table).where(table.c.incident_id.in_(ids)).order_by(table.c.at, table.c.id)
    for row in connection.execute(query):
        updates[row.incident_id].append(_update_from_row(row))
    return [
        Incident(
            row.id,
            Bilingual(row.title_fr, row.title_en),
            row.impact,
            row.created_at,
            tuple(row.components),
            tuple(updates[row.id]),
            row.resolved_at,
        )
        for row in (found[i] for i in ids if i in found)
    ]


def _load_at_once(connection: Connection, ids: list[int]) -> list[Incident]:
    """The incidents of `ids` with their updates, read in one statement (one consistent view), in any order."""
    if not ids:
        return []
    incident, update = tables.incident, tables.incident_update
    query = (
        select(incident, *(c.label(f"u_{c.name}") for c in update.c))
        .join(update, update.c.incident_id == incident.c.id)
        .where(incident.c.id.in_(ids))
        .order_by(incident.c.id, update.c.at, update.c.id)
    )
    heads: dict[int, Any] = {}
    updates: dict[int, list[IncidentUpdate]] = {}
    for row in connection.execute(query):
        heads.setdefault(row.id, row)
        fields = {c.name: getattr(row, f"u_{c.name}") for c in update.c}
        updates.setdefault(row.id, []).append(_update_from_row(_Row(fields)))
    return [
        Incident(
            row.id,
            Bilingual(row.title_fr, row.title_en),
            row.impact,
            row.created_at,
            tuple(row.components),
            tuple(updates[key]),
            row.resolved_at,
        )
        for key, row in heads.items()
    ]


class _Row:
    """Named fields read like a row's attributes."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


def _windows_query(include_cancelled: bool) -> Any:
    table = tables.maintenance_window
    query = select(table).order_by(table.c.start_local, table.c.id)
    return query if include_cancelled else query.where(~table.c.cancelled)


def _load_one(connection: Connection, incident_id: int) -> Incident:
    found = _load(connection, [incident_id])
    if not found:
        raise NotFound(said("no incident {id}", id=incident_id))
    return found[0]


def _recurrence_json(rule: Recurrence) -> Row:
    return {
        "frequency": rule.frequency,
        "weekdays": list(rule.weekdays),
        "month_day": rule.month_day,
        "nth": rule.nth,
        "weekday": rule.weekday,
        "until": rule.until.isoformat() if rule.until else None,
    }


def _window_row(window: MaintenanceWindow) -> Row:
    return {
        "title_fr": window.title.fr,
        "title_en": window.title.en,
        "components": list(window.components),
        "start_local": window.start,
        "duration_s": window.duration.total_seconds(),
        "recurrence": _recurrence_json(window.recurrence),
        "skipped": [day.isoformat() for day in window.skipped],
    }


def _window_one(connection: Connection, window_id: int, *, lock: bool = False) -> Any:
    """The window's row; `lock` holds it until the transaction ends (PostgreSQL; SQLite writes one at a time)."""
    query = select(tables.maintenance_window).where(tables.maintenance_window.c.id == window_id)
    row = connection.execute(query.with_for_update() if lock else query)
    found = row.first()
    if found is None:
        raise NotFound(said("no maintenance window {id}", id=window_id))
    return found


def _window_from_row(row: Any) -> MaintenanceWindow:
    rule = dict(row.recurrence)
    until = date.fromisoformat(rule.pop("until")) if rule.get("until") else None
    rule.pop("until", None)
    recurrence = Recurrence(**{**rule, "weekdays": tuple(rule.get("weekdays", ())), "until": until})
    start = row.start_local.replace(tzinfo=None) if row.start_local.tzinfo else row.start_local
    return MaintenanceWindow(
        row.id,
        Bilingual(row.title_fr, row.title_en),
        tuple(row.components),
        start,
        timedelta(seconds=row.duration_s),
        recurrence,
        bool(row.cancelled),
        tuple(date.fromisoformat(day) for day in row.skipped or ()),
    )
