"""Open incidents (with their latest update and consignes) and maintenance, as the page shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup

from ..declared.incidents import Incident
from ..declared.inputs import Bilingual
from ..declared.maintenance import MaintenanceWindow, active, upcoming
from ..i18n import Lang
from .ops_markdown import render

__all__ = ["DeclarationsView", "declarations_view"]

PHASES: dict[str, dict[Lang, str]] = {
    "investigating": {"fr": "Analyse en cours", "en": "Investigating"},
    "identified": {"fr": "Cause identifiée", "en": "Identified"},
    "monitoring": {"fr": "Surveillance", "en": "Monitoring"},
    "resolved": {"fr": "Résolu", "en": "Resolved"},
}
UPCOMING = timedelta(days=7)


def _line(text: Bilingual, lang: Lang) -> Markup:
    """A one-line text, escaped; marked `lang="fr"` on an English page that falls back to French."""
    if text.falls_back(lang):
        return Markup('<span lang="fr">{}</span>').format(text.fr)
    return Markup("{}").format(text.pick(lang))


def _block(text: Bilingual, lang: Lang) -> Markup:
    """An ops text as safe HTML (Markdown, sanitized); marked `lang="fr"` when it falls back to French."""
    html = render(text.pick(lang))
    return Markup('<div lang="fr">{}</div>').format(html) if text.falls_back(lang) and html else html


@dataclass(frozen=True)
class IncidentView:
    id: int
    title: Markup
    notice: bool  # impact none: an information for everyone (e.g. the phishing alert), not an outage
    phase: str
    updated_at: datetime
    message: Markup
    practitioners: Markup
    members: Markup


@dataclass(frozen=True)
class MaintenanceView:
    title: Markup
    start: datetime
    end: datetime
    running: bool
    components: tuple[str, ...]


@dataclass(frozen=True)
class DeclarationsView:
    incidents: list[IncidentView]
    maintenance: list[MaintenanceView]


def _incident(incident: Incident, lang: Lang) -> IncidentView:
    latest = incident.updates[-1]
    # consignes stay until an update replaces them: the latest update that gave one
    pro = next((u.practitioner_consigne for u in reversed(incident.updates) if u.practitioner_consigne), Bilingual())
    members = next((u.member_consigne for u in reversed(incident.updates) if u.member_consigne), Bilingual())
    return IncidentView(
        id=incident.id or 0,
        title=_line(incident.title, lang),
        notice=incident.impact == "none",
        phase=PHASES[latest.status][lang],
        updated_at=latest.at,
        message=_block(latest.message, lang),
        practitioners=_block(pro, lang),
        members=_block(members, lang),
    )


def declarations_view(
    incidents: list[Incident], windows: list[MaintenanceWindow], now: datetime, lang: Lang
) -> DeclarationsView:
    shown = [_incident(i, lang) for i in incidents if i.is_open]
    running = [(o, True) for o in active(windows, now)]
    soon = [(o, False) for o in upcoming(windows, now, UPCOMING)]
    maintenance = [
        MaintenanceView(_line(o.window.title, lang), o.start, o.end, is_running, o.window.components)
        for o, is_running in running + soon
    ]
    # notices first (they concern everyone), then the most recently updated incident first
    ordered = sorted(shown, key=lambda i: (not i.notice, -i.updated_at.timestamp()))
    return DeclarationsView(ordered, maintenance)
