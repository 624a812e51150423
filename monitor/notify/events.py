"""What is worth telling, as outbox events: a line's transition, an incident's update, a maintenance announced.

Built from the change that causes them and written in the same transaction (the store does it); read back as
`Event` by the senders. Each carries a snapshot of what it tells, so a message says what was true when it happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..declared.incidents import Incident, IncidentUpdate
from ..declared.inputs import Bilingual
from ..declared.maintenance import MaintenanceWindow
from ..models import Transition

__all__ = ["Event", "EventKind", "NewEvent", "incident_event", "line_events", "window_event"]

EventKind = Literal["line", "incident", "maintenance"]
IncidentPhase = Literal["opened", "updated", "resolved"]
WindowPhase = Literal["announced", "cancelled"]


@dataclass(frozen=True)
class NewEvent:
    """An event to write into the outbox; `dedupe_key` makes the same fact written twice one event."""

    kind: EventKind
    dedupe_key: str
    components: tuple[str, ...]
    payload: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class Event:
    """An event as read back from the outbox."""

    id: int
    kind: EventKind
    at: datetime
    components: tuple[str, ...]
    payload: Mapping[str, Any] = field(default_factory=dict)


def _texts(text: Bilingual) -> dict[str, str]:
    return {"fr": text.fr, "en": text.en}


def line_events(transitions: Iterable[Transition]) -> list[NewEvent]:
    """One event per transition of a line (network × domain); checks, flows and networks are not told."""
    found = []
    for transition in transitions:
        if transition.ref.kind != "line":
            continue
        key = transition.ref.key
        payload = {
            "line": f"{transition.ref.network}/{transition.ref.name}",
            "previous": transition.previous.value,
            "state": transition.state.value,
            "progress": round(transition.progress, 4),
            "source": transition.source.value,
        }
        dedupe = f"{key}|{transition.at.isoformat()}|{transition.state.value}|{payload['progress']}"
        found.append(NewEvent("line", dedupe, (key,), payload, transition.at))
    return found


def incident_event(incident: Incident, update: IncidentUpdate, phase: IncidentPhase) -> NewEvent:
    """An incident opened, updated or resolved, with the update's message and consignes."""
    statuses = {key: {"state": d.state.value, "progress": d.progress} for key, d in update.statuses.items()}
    payload = {
        "incident": incident.id,
        "phase": phase,
        "status": update.status,
        "impact": incident.impact,
        "title": _texts(incident.title),
        "message": _texts(update.message),
        "practitioner_consigne": _texts(update.practitioner_consigne),
        "member_consigne": _texts(update.member_consigne),
        "statuses": statuses,
    }
    dedupe = f"incident:{incident.id}:{update.id}:{phase}"
    return NewEvent("incident", dedupe, tuple(incident.components), payload, update.at)


def window_event(window: MaintenanceWindow, phase: WindowPhase, at: datetime) -> NewEvent:
    """A maintenance window announced or cancelled (its start and end are the lines' own transitions)."""
    payload = {
        "window": window.id,
        "phase": phase,
        "title": _texts(window.title),
        "start_local": window.start.isoformat(),
        "duration_s": window.duration.total_seconds(),
        "recurrence": window.recurrence.describe(),
    }
    return NewEvent("maintenance", f"maintenance:{window.id}:{phase}", tuple(window.components), payload, at)
