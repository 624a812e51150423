"""The store's verbs for what ops declare: incidents with their updates, and maintenance windows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update

from monitor.config import Settings
from monitor.declared.incidents import (
    Declared,
    Impact,
    Incident,
    IncidentUpdate,
    add_update,
    declared_overrides,
    open_incident,
)
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow, Recurrence, check_window, maintenance_overrides
from monitor.engine.overrides import Overrides
from monitor.errors import IncidentError, NotFound
from monitor.models import State
from monitor.notify.events import incident_event, window_event
from monitor.store import tables
from monitor.store.outbox_rows import insert_events
from monitor.store.store import Clock, Store, utcnow

__all__ = ["RESOLVED", "Declarations"]

Row = dict[str, Any]
RESOLVED = Bilingual("Incident résolu.", "Incident resolved.")  # the message of a resolve given none
_TEXTS = ("message", "practitioner_consigne", "member_consigne")


class Declarations:
    """Incidents and maintenance windows in the store, validated against the running `settings`.

    Every verb is one transaction: a refused input (IncidentError, NotFound) writes nothing.
    """

    def __init__(self, store: Store, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock

    # Incidents

    def open_incident(
        self, *, title: Bilingual, impact: Impact, first: IncidentUpdate, components: Iterable[str] = ()
    ) -> Incident:
        """Validate and store a new incident with its first update; returns it with its id."""
        incident = open_incident(self.settings, title=title, impact=impact, first=first, components=components)
        with self.store._session("open an incident in", write=True) as connection:
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
            connection.execute(insert(tables.incident_update), _update_row(new_id, first))
            opened = _load(connection, [new_id])[0]
            insert_events(connection, [incident_event(opened, opened.updates[-1], "opened")], self._clock())
            return opened

    def update_incident(self, incident_id: int, change: IncidentUpdate, *, impact: Impact | None = None) -> Incident:
        """Append an update (a `resolved` one resolves); IncidentError if the lifecycle or an input refuses it."""
        with self.store._session("update an incident in", write=True) as connection:
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
                raise IncidentError("id", f"incident {incident_id} changed meanwhile; look again and retry")
            connection.execute(insert(tables.incident_update), _update_row(incident_id, change))
            updated = _load_one(connection, incident_id)
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
    ) -> Incident:
        """Resolve: its declared statuses stop counting. IncidentError if already resolved."""
        change = IncidentUpdate(
            at or self._clock(),
            "resolved",
            message or RESOLVED,
            practitioner_consigne or Bilingual(),
            member_consigne or Bilingual(),
        )
        return self.update_incident(incident_id, change)

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

    # Maintenance windows

    def add_window(self, window: MaintenanceWindow) -> MaintenanceWindow:
        """Validate and store a window; returns it with its id."""
        checked = check_window(window, self.settings)
        with self.store._session("add a maintenance window to", write=True) as connection:
            row = _window_row(checked) | {"created_at": self._clock(), "cancelled": False}
            new_id = _insert(connection, tables.maintenance_window, row)
            added = _window_from_row(_window_one(connection, new_id))
            insert_events(connection, [window_event(added, "announced", row["created_at"])], row["created_at"])
            return added

    def cancel_window(self, window_id: int) -> MaintenanceWindow:
        """Cancel every occurrence of a window; IncidentError if it already is."""
        table = tables.maintenance_window
        with self.store._session("cancel a maintenance window in", write=True) as connection:
            if _window_one(connection, window_id).cancelled:
                raise IncidentError("id", f"maintenance window {window_id} is already cancelled")
            now = self._clock()
            stamp = {"cancelled": True, "cancelled_at": now}
            connection.execute(update(table).where(table.c.id == window_id, ~table.c.cancelled).values(stamp))
            cancelled = _window_from_row(_window_one(connection, window_id))
            insert_events(connection, [window_event(cancelled, "cancelled", now)], now)
            return cancelled

    def window(self, window_id: int) -> MaintenanceWindow:
        with self.store._session("read from") as connection:
            return _window_from_row(_window_one(connection, window_id))

    def windows(self, *, include_cancelled: bool = False) -> list[MaintenanceWindow]:
        """Maintenance windows by start, oldest first (cancelled ones only if asked)."""
        table = tables.maintenance_window
        query = select(table).order_by(table.c.start_local, table.c.id)
        if not include_cancelled:
            query = query.where(~table.c.cancelled)
        with self.store._session("read from") as connection:
            return [_window_from_row(row) for row in connection.execute(query)]

    def overrides(self, now: datetime) -> Overrides:
        """What the status engine applies now: open incidents' declared statuses and running maintenance."""
        declared = declared_overrides(self.incidents(open_only=True, limit=None))
        return Overrides(declared=declared, maintenance=maintenance_overrides(self.windows(), now))


def _insert(connection: Connection, table: Table, row: Row) -> int:
    new_id: int = connection.execute(insert(table).returning(table.c.id), row).scalar_one()
    return new_id


def _update_row(incident_id: int, change: IncidentUpdate) -> Row:
    texts = {f"{name}_{lang}": getattr(getattr(change, name), lang) for name in _TEXTS for lang in ("fr", "en")}
    statuses = {key: {"state": d.state.value, "progress": d.progress} for key, d in change.statuses.items()}
    return {"incident_id": incident_id, "at": change.at, "status": change.status, "statuses": statuses, **texts}


def _update_from_row(row: Any) -> IncidentUpdate:
    texts = {name: Bilingual(getattr(row, f"{name}_fr"), getattr(row, f"{name}_en")) for name in _TEXTS}
    statuses: Mapping[str, Declared] = {
        key: Declared(State(value["state"]), value.get("progress")) for key, value in row.statuses.items()
    }
    return IncidentUpdate(row.at, row.status, statuses=statuses, id=row.id, **texts)


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


def _load_one(connection: Connection, incident_id: int) -> Incident:
    found = _load(connection, [incident_id])
    if not found:
        raise NotFound(f"no incident {incident_id}")
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
    }


def _window_one(connection: Connection, window_id: int) -> Any:
    row = connection.execute(select(tables.maintenance_window).where(tables.maintenance_window.c.id == window_id))
    found = row.first()
    if found is None:
        raise NotFound(f"no maintenance window {window_id}")
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
    )
