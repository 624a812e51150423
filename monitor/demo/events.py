"""Posting the scenario's declared parts through the code paths of `tpmon incident`, `maintenance` and `push`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Settings
from ..declared.incidents import IncidentUpdate, declare
from ..declared.inputs import Bilingual
from ..declared.maintenance import MaintenanceWindow
from ..models import ComponentRef
from ..store import Store
from ..store.declaration_store import Declarations
from ..store.signal_store import StoredSignal, add_signal
from .scenario import Event

__all__ = ["FICTIONAL", "Poster"]

PARIS = ZoneInfo("Europe/Paris")
FICTIONAL = Bilingual(
    fr="*Scénario de démonstration — horodatage fictif.*",
    en="*Demo scenario — fictional timestamp.*",
)
SOURCED = Bilingual(
    fr="*Scénario de démonstration — date rapportée par des sources publiques (presse, CNIL).*",
    en="*Demo scenario — date reported by public sources (trade press, CNIL).*",
)


def _text(raw: Any, label: Bilingual | None = None) -> Bilingual:
    if not raw:
        return Bilingual()
    fr, en = str(raw.get("fr", "")), str(raw.get("en", ""))
    if label is not None:
        fr, en = f"{fr}\n\n{label.fr}", f"{en}\n\n{label.en}" if en else ""
    return Bilingual(fr=fr, en=en)


class Poster:
    """Posts events as ops and partners would; remembers which stored incident each scenario incident is."""

    def __init__(self, store: Store, settings: Settings, declarations: Declarations) -> None:
        self.store = store
        self.settings = settings
        self.declarations = declarations
        self.incidents: dict[str, int] = {}  # scenario id → stored id

    def post(self, event: Event) -> bool:
        """Post every declared part of `event`; True if declarations changed (overrides to refresh)."""
        for flow, state in event.push.items():
            self.push(flow, state, event.at)
        changed = False
        if event.incident is not None:
            self._incident(event.incident, event)
            changed = True
        if event.maintenance is not None:
            self._maintenance(event.maintenance)
            changed = True
        return changed

    def push(self, flow: str, state: str, at: datetime) -> list[StoredSignal]:
        """What the operator's system reports for each push check of `network/flow`; the stored signals."""
        network, _, flow_name = flow.partition("/")
        return [
            add_signal(
                self.store, ComponentRef.for_check(network, flow_name, check.name), state, "demo", received_at=at
            )
            for check in self.settings.networks[network].checks
            if check.kind == "push" and check.flow == flow_name
        ]

    def _incident(self, spec: Mapping[str, Any], event: Event) -> None:
        label = FICTIONAL if event.fictional else SOURCED
        statuses = {}
        for key, value in (spec.get("statuses") or {}).items():
            state, progress = (value[0], float(value[1])) if isinstance(value, list) else (value, None)
            statuses[key] = declare(state, progress, key=key)
        update = IncidentUpdate(
            at=event.at,
            status=spec.get("status", "resolved"),
            message=_text(spec.get("message"), label),
            practitioner_consigne=_text(spec.get("consigne_pro")),
            member_consigne=_text(spec.get("consigne_member")),
            statuses=statuses,
        )
        action = spec["action"]
        if action == "open":
            components = sorted({*statuses, *(spec.get("components") or [])})
            title = _text(spec["title"])
            stored = self.declarations.open_incident(
                title=title, impact=spec["impact"], first=update, components=components
            )
            assert stored.id is not None
            self.incidents[spec["id"]] = stored.id
        elif action == "update":
            self.declarations.update_incident(self.incidents[spec["id"]], update)
        else:
            self.declarations.resolve_incident(self.incidents[spec["id"]], message=update.message, at=event.at)

    def _maintenance(self, spec: Mapping[str, Any]) -> None:
        start = datetime.fromisoformat(str(spec["start"]))
        end = datetime.fromisoformat(str(spec["end"]))
        window = MaintenanceWindow(
            id=None,
            title=_text(spec["title"]),
            components=tuple(spec["components"]),
            start=start.astimezone(PARIS).replace(tzinfo=None),
            duration=end - start,
        )
        self.declarations.add_window(window)
