"""Incidents and maintenance occurrences as Statuspage v2 objects (see statuspage.py for the conventions).

Consignes stay in extra fields: `tpmon_practitioner_consigne` and `tpmon_member_consigne` on an incident
(the latest given, as the page shows them, with `…_at`, when it was written, and `…_standing`: current, or
outdated when older than the last change of state of the incident's components, or withdrawn once resolved)
and on each update (what that update gave, dated by the update). An update's `old_status` is what its component
was shown as just before it (from the incident itself, else recorded when the update was stored). Every component key
an incident or a window names is kept in `tpmon_components`; `components` lists those that are Statuspage
components here (networks and lines; flows are not components of the page).

A maintenance window has no update history: each occurrence gets one update, dated from its start, whose
status is the occurrence's (scheduled, in_progress, completed). Dates derive from the occurrence only, so
the same occurrence always answers the same object.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..declared.incidents import Incident, current_consignes
from ..declared.maintenance import MaintenanceWindow, Occurrence, occurrences
from ..i18n import PARIS, Lang
from ..models import State

__all__ = ["COMPONENT_STATUS", "incident_json", "iso", "maintenances"]

Components = dict[str, dict[str, Any]]
PAST = timedelta(days=30)  # completed occurrences still listed by scheduled-maintenances.json
AHEAD = timedelta(days=90)  # how far ahead upcoming occurrences are listed
LIMIT = 50


COMPONENT_STATUS: dict[State, str] = {
    State.OPERATIONAL: "operational",
    State.DEGRADED: "degraded_performance",
    State.PARTIAL: "partial_outage",
    State.RECOVERING: "partial_outage",
    State.UNKNOWN: "partial_outage",  # never green when unknown: see statuspage.py's docstring
    State.MAINTENANCE: "under_maintenance",
    State.DOWN: "major_outage",
}


def iso(moment: datetime) -> str:
    """`2024-02-12T13:00:00.000+01:00`: Europe/Paris, milliseconds, offset."""
    return moment.astimezone(PARIS).isoformat(timespec="milliseconds")


def _status_of(state: State) -> str:
    return COMPONENT_STATUS[state]


def _listed(keys: Iterable[str], components: Components) -> list[dict[str, Any]]:
    return [components[key] for key in keys if key in components]


def incident_json(
    incident: Incident,
    components: Components,
    lang: Lang,
    base: str,
    page_id: str,
    shown: datetime | None = None,
) -> dict[str, Any]:
    """`shown`: the latest start of the current state among the incident's components, to date its consignes."""
    ident = str(incident.id)
    updates: list[dict[str, Any]] = []
    declared: dict[str, State] = {}
    for update in incident.updates:
        affected = []
        for key, status in update.statuses.items():
            # what was shown before: the incident's own earlier declaration, else what the component showed when
            # the update was stored; unknown (partial_outage, never green) only when neither is known
            before = declared.get(key) or update.shown_before.get(key, State.UNKNOWN)
            declared[key] = status.state
            if key not in components:  # a flow is no Statuspage component: a code to nothing would mislead
                continue
            affected.append(
                {
                    "code": key,
                    "name": components[key]["name"],
                    "old_status": _status_of(before),
                    "new_status": _status_of(status.state),
                    "tpmon_state": status.state.value,
                    "tpmon_progress": status.progress,
                }
            )
        at = iso(update.at)
        updates.append(
            {
                "id": f"{ident}-{update.id}",
                "status": update.status,
                "body": update.message.pick(lang),
                "incident_id": ident,
                "created_at": at,
                "updated_at": at,
                "display_at": at,
                "affected_components": affected,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
                "tpmon_practitioner_consigne": update.practitioner_consigne.pick(lang) or None,
                "tpmon_member_consigne": update.member_consigne.pick(lang) or None,
            }
        )
    updates.reverse()  # Statuspage lists the newest update first
    latest = incident.updates[-1]
    practitioners, members = current_consignes(incident, shown)
    monitoring = next((u.at for u in incident.updates if u.status == "monitoring"), None)
    return {
        "id": ident,
        "name": incident.title.pick(lang),
        "status": incident.status,
        "created_at": iso(incident.created_at),
        "updated_at": iso(latest.at),
        "monitoring_at": iso(monitoring) if monitoring else None,
        "resolved_at": iso(incident.resolved_at) if incident.resolved_at else None,
        "impact": incident.impact,
        "shortlink": f"{base}/incidents/{ident}",
        "started_at": iso(incident.created_at),
        "page_id": page_id,
        "incident_updates": updates,
        "components": _listed(incident.components, components),
        "reminder_intervals": None,  # real pages send it on incidents, null in every real document seen
        "tpmon_components": list(incident.components),
        "tpmon_practitioner_consigne": practitioners.text.pick(lang) if practitioners else None,
        "tpmon_practitioner_consigne_at": iso(practitioners.at) if practitioners else None,
        "tpmon_practitioner_consigne_standing": practitioners.standing if practitioners else None,
        "tpmon_member_consigne": members.text.pick(lang) if members else None,
        "tpmon_member_consigne_at": iso(members.at) if members else None,
        "tpmon_member_consigne_standing": members.standing if members else None,
    }


def _phase(occurrence: Occurrence, now: datetime) -> str:
    if occurrence.end <= now:
        return "completed"
    return "in_progress" if occurrence.start <= now else "scheduled"


def _maintenance_json(
    occurrence: Occurrence, now: datetime, components: Components, lang: Lang, base: str, page_id: str
) -> dict[str, Any]:
    window = occurrence.window
    ident = f"maintenance-{window.id}-{occurrence.start:%Y%m%dT%H%MZ}"
    status = _phase(occurrence, now)
    start, end = iso(occurrence.start), iso(occurrence.end)
    stamp = end if status == "completed" else start
    title = window.title.pick(lang)
    update = {
        "id": f"{ident}-{status}",
        "status": status,
        "body": title,
        "incident_id": ident,
        "created_at": stamp,
        "updated_at": stamp,
        "display_at": stamp,
        "affected_components": [
            {"code": key, "name": c["name"], "old_status": c["status"], "new_status": "under_maintenance"}
            for key, c in ((k, components[k]) for k in window.components if k in components)
        ],
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }
    return {
        "id": ident,
        "name": title,
        "status": status,
        "created_at": start,
        "updated_at": stamp,
        "monitoring_at": None,
        "resolved_at": end if status == "completed" else None,
        "impact": "maintenance",
        "shortlink": f"{base}/",  # the page lists running and upcoming maintenance
        "started_at": start,
        "page_id": page_id,
        "incident_updates": [update],
        "components": _listed(window.components, components),
        "scheduled_for": start,
        "scheduled_until": end,
        "tpmon_components": list(window.components),
        "tpmon_window_id": window.id,
        "tpmon_dst": occurrence.dst or None,
    }


def maintenances(
    windows: list[MaintenanceWindow],
    now: datetime,
    which: str,
    components: Components,
    lang: Lang,
    base: str,
    page_id: str,
) -> list[dict[str, Any]]:
    """`all` (the 50 latest-scheduled of the last 30 days and next 90), `upcoming`, `active`, or `summary`
    (active and upcoming, as Statuspage's summary.json)."""
    found = [o for w in windows for o in occurrences(w, now - PAST, now + AHEAD)]
    wanted = {
        "all": {"completed", "in_progress", "scheduled"},
        "upcoming": {"scheduled"},
        "active": {"in_progress"},
        "summary": {"in_progress", "scheduled"},
    }[which]
    chosen = [o for o in found if _phase(o, now) in wanted]
    if which == "all":
        chosen = sorted(chosen, key=lambda o: (o.start, o.window.id or 0), reverse=True)[:LIMIT]
    else:
        chosen.sort(key=lambda o: (o.start, o.window.id or 0))
    return [_maintenance_json(o, now, components, lang, base, page_id) for o in chosen]
