"""Statuspage v2-compatible JSON (`/api/v2/…`): existing Statuspage consumers read tpmon unchanged.

Networks are component *groups* (`group: true`, `components`: their lines' ids) and lines their
*components* (`group_id`: the network's id). Ids are tpmon's stable component keys (`network:viamedis`,
`line:viamedis/optique`); an incident's id is its number, a maintenance occurrence's id is its window and
start (`maintenance-3-20240212T1200Z`). Timestamps are Europe/Paris with milliseconds and offset, as
Statuspage writes them (`2024-02-12T13:00:00.000+01:00`). Texts are French, English with `?lang=en`.

States map to Statuspage's five; tpmon's own state, progress, source and since stay in `tpmon_*` fields:
operational → operational, degraded → degraded_performance, partial and recovering → partial_outage,
down → major_outage, maintenance → under_maintenance.

**unknown → partial_outage.** Statuspage has no "unknown". `operational` would break our rule "never green
when unknown"; `major_outage` would claim an outage nobody saw. `degraded_performance` is not enough either:
it says the service works, only slowly (tpmon counts degraded as up), which is exactly what we do not know.
`partial_outage` tells a consumer "do not count on it", sits where unknown sits in tpmon's severity order
(above degraded, with recovering), and `tpmon_state: "unknown"` says why.

The page indicator follows the worst component: none (all operational), maintenance (only maintenance
besides operational, as a real Statuspage page answers during a maintenance), minor (degraded, partial,
unknown, recovering), major (an outage), critical (every line of every network down at once).

Every answer comes from the site's snapshot in memory (states, open and recent incidents, maintenance at one
instant), as the page does: they never contradict it, and answer even when the database does not.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..declared.incidents import Incident
from ..declared.maintenance import MaintenanceWindow
from ..i18n import N_, Lang, translate
from ..snapshot import Snapshot
from .board_view import Cell, NetworkView, board_view
from .fragments import Fragments
from .json_bytes import EncodedJSON, dumps, joined, spliced
from .page_cache import public_origin
from .statuspage_incidents import COMPONENT_STATUS, incident_json, iso, maintenances

__all__ = ["COMPONENT_STATUS", "iso", "statuspage_routes"]

DESCRIPTIONS: dict[str, str] = {  # Statuspage's own English descriptions
    "none": N_("All Systems Operational"),
    "maintenance": N_("Service Under Maintenance"),
    "minor": N_("Minor Service Outage"),
    "major": N_("Major Service Outage"),
    "critical": N_("Critical System Outage"),
}
PAGE_ID = "tpmon"


@dataclass(frozen=True)
class Page:
    """What every answer shares: the page object, the components by id, the language and the time."""

    page: dict[str, Any]
    components: list[dict[str, Any]]
    encoded: bytes  # `components` as JSON (a list), encoded once per network's components
    lang: Lang
    now: datetime  # the snapshot's instant: maintenance is running, upcoming or completed as of then
    base: str
    snapshot: Snapshot

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.components}


def _component(cell: Cell, key: str, name: str, position: int, group_id: str | None, fallback: str) -> dict[str, Any]:
    moment = iso(cell.since) if cell.since else fallback
    return {
        "id": key,
        "name": name,
        "status": COMPONENT_STATUS[cell.state],
        "created_at": moment,
        "updated_at": moment,
        "position": position,
        "description": cell.affected or None,  # a line raised by a dependency: for whom it fails
        "showcase": False,
        "start_date": None,
        "group_id": group_id,
        "page_id": PAGE_ID,
        "group": False,
        "only_show_if_degraded": False,
        "tpmon_state": cell.state.value,
        "tpmon_state_label": cell.state_label,
        "tpmon_progress": cell.progress,
        "tpmon_source": cell.source.value,
        "tpmon_since": iso(cell.since) if cell.since else None,
        "tpmon_affected": cell.affected or None,
        "tpmon_scope": cell.scope or None,
    }


def _page(request: Request) -> Page:
    """What the eight documents share, made once per snapshot, language and origin (kept in the page cache's
    pieces while the snapshot is the same object), each network's components once per view of it."""
    services = request.state.services
    snapshot: Snapshot = services.snapshot()
    lang: Lang = "en" if request.query_params.get("lang") == "en" else "fr"
    base = public_origin(request)  # never the Host header as sent: it could be anyone's
    pieces: Fragments = services.pages.pieces
    return pieces.keep(("statuspage", lang, base), (snapshot,), lambda: _made(pieces, snapshot, lang, base))


def _made(pieces: Fragments, snapshot: Snapshot, lang: Lang, base: str) -> Page:
    now = snapshot.at
    view = board_view(snapshot.settings, snapshot, lang)
    updated = iso(view.checked_at or now)
    components: list[dict[str, Any]] = []
    encoded: list[bytes] = []
    position = 1
    for network in view.networks:
        # the time of a component with no date is the page's: kept with it only while it is the same string
        undated = (
            updated if network.status.since is None or any(c.since is None for c in network.lines.values()) else None
        )
        made = pieces.keep(
            ("statuspage", network.id, lang, position),
            (network, undated),
            functools.partial(_network_components, network, position, updated),
        )
        components += made
        # its JSON (the inside of a list), encoded once per list of them
        encoded.append(
            pieces.keep(("statuspage json", network.id, lang, position), (made,), functools.partial(_inside, made))
        )
        position += len(made)
    page = {"id": PAGE_ID, "name": "tpmon", "url": base, "time_zone": "Europe/Paris", "updated_at": updated}
    return Page(page, components, joined(encoded), lang, now, base, snapshot)


def _inside(components: list[dict[str, Any]]) -> bytes:
    return dumps(components)[1:-1]


def _network_components(network: NetworkView, position: int, updated: str) -> list[dict[str, Any]]:
    """A network's group and its lines' components, numbered from `position` (shared: never changed)."""
    group_key = f"network:{network.id}"
    group = _component(network.status, group_key, network.name, position, None, updated)
    group["group"] = True
    group["tpmon_kind"] = network.kind
    components = [group]
    position += 1
    for line_id, cell in network.lines.items():
        key = f"line:{network.id}/{line_id}"
        name = f"{network.name} — {cell.label}"
        components.append(_component(cell, key, name, position, group_key, updated))
        group.setdefault("components", []).append(key)
        position += 1
    return components


def _status(page: Page) -> dict[str, str]:
    lines = [c for c in page.components if not c["group"]]
    states = {c["status"] for c in page.components}
    if lines and all(c["status"] == "major_outage" for c in lines):
        indicator = "critical"
    elif "major_outage" in states:
        indicator = "major"
    elif states <= {"operational"}:
        indicator = "none"
    elif states <= {"operational", "under_maintenance"}:
        indicator = "maintenance"
    else:
        indicator = "minor"
    return {"indicator": indicator, "description": translate(page.lang, DESCRIPTIONS[indicator])}


@dataclass(frozen=True)
class Declared:
    incidents: list[Incident]
    windows: list[MaintenanceWindow]


Reader = Callable[[Snapshot], Declared]
Composer = Callable[[Page, Declared], dict[str, Any]]


def _nothing(snapshot: Snapshot) -> Declared:
    return Declared([], [])


def _unresolved(snapshot: Snapshot) -> Declared:
    return Declared(list(snapshot.open_incidents), [])


def _recent(snapshot: Snapshot) -> Declared:
    return Declared(list(snapshot.recent_incidents), [])  # as Statuspage's incidents.json: the 50 latest


def _windows(snapshot: Snapshot) -> Declared:
    return Declared([], list(snapshot.windows))


def _summary_read(snapshot: Snapshot) -> Declared:
    return Declared(list(snapshot.open_incidents), list(snapshot.windows))


def _incidents(page: Page, declared: Declared) -> list[dict[str, Any]]:
    components, snapshot = page.by_id(), page.snapshot
    return [
        incident_json(i, components, page.lang, page.base, PAGE_ID, snapshot.last_change(i.components))
        for i in declared.incidents
    ]


def _maintenances(page: Page, declared: Declared, which: str) -> list[dict[str, Any]]:
    return maintenances(declared.windows, page.now, which, page.by_id(), page.lang, page.base, PAGE_ID)


def _endpoint(read: Reader, compose: Composer) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        page = _page(request)
        content = {"page": page.page, **compose(page, read(page.snapshot))}
        if content.get("components") is not page.components:
            return JSONResponse(content)
        return EncodedJSON(spliced(content, {"components": page.encoded}))  # the components as encoded once

    return answer


def statuspage_routes() -> list[tuple[str, Callable[[Request], Awaitable[Response]]]]:
    """(path, endpoint) of the eight Statuspage v2 answers."""
    return [
        (
            "/api/v2/summary.json",
            _endpoint(
                _summary_read,
                lambda p, d: {
                    "components": p.components,
                    "incidents": _incidents(p, d),
                    "scheduled_maintenances": _maintenances(p, d, "summary"),
                    "status": _status(p),
                },
            ),
        ),
        ("/api/v2/status.json", _endpoint(_nothing, lambda p, d: {"status": _status(p)})),
        ("/api/v2/components.json", _endpoint(_nothing, lambda p, d: {"components": p.components})),
        ("/api/v2/incidents.json", _endpoint(_recent, lambda p, d: {"incidents": _incidents(p, d)})),
        ("/api/v2/incidents/unresolved.json", _endpoint(_unresolved, lambda p, d: {"incidents": _incidents(p, d)})),
        *(
            (
                f"/api/v2/scheduled-maintenances{suffix}.json",
                _endpoint(_windows, _maintenance_composer(which)),
            )
            for suffix, which in (("", "all"), ("/upcoming", "upcoming"), ("/active", "active"))
        ),
    ]


def _maintenance_composer(which: str) -> Composer:
    return lambda p, d: {"scheduled_maintenances": _maintenances(p, d, which)}
