"""Helpers shared by the incident, maintenance and declarations tests: a small config and builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from test_status_support import make_settings, network, tcp

from monitor.declared.incidents import Declared, Impact, Incident, IncidentUpdate, Phase, open_incident
from monitor.declared.inputs import Bilingual
from monitor.models import State

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # 12/02/2024 13:00 in Paris: the portals reopen
HOUR = timedelta(hours=1)
CHECKS = (tcp("portail_ps"), tcp("pec"), tcp("facturation"), tcp("droits"))
SETTINGS = make_settings(
    {
        "viamedis": network(*CHECKS, lines=("pharmacie", "optique", "audio")),
        "almerys": network(*CHECKS, lines=("pharmacie", "optique")),
    },
    stabilization="30m",
)
OPTIQUE = "line:viamedis/optique"
AUDIO = "line:viamedis/audio"
PEC = "flow:viamedis/pec"
PORTAIL = "flow:viamedis/portail_ps"

CONFIG_YAML = """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique, audio]
  almerys:
    name: Almerys
    kind: operateur
    lines: [pharmacie, optique]
"""


def text(fr: str = "PEC impossibles", en: str = "") -> Bilingual:
    return Bilingual(fr, en)


def update(
    at: datetime = T0,
    status: Phase = "investigating",
    message: str = "Prises en charge impossibles",
    *,
    message_en: str = "",
    statuses: dict[str, State | Declared] | None = None,
    **fields: Any,
) -> IncidentUpdate:
    declared = {k: v if isinstance(v, Declared) else Declared(v) for k, v in (statuses or {}).items()}
    return IncidentUpdate(at, status, Bilingual(message, message_en), statuses=declared, **fields)


def incident(
    *statuses: tuple[str, State | Declared], title: str = "Cyberattaque", impact: Impact = "major", id: int = 1
) -> Incident:
    """An open incident (with an id, as if stored) whose first update declares `statuses`."""
    opened = open_incident(SETTINGS, title=Bilingual(title), impact=impact, first=update(statuses=dict(statuses)))
    return Incident(id, opened.title, opened.impact, opened.created_at, opened.components, opened.updates)
