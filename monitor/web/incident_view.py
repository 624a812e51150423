"""Open incidents (with their latest update and dated consignes) and maintenance, as the page shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup

from ..declared.incidents import Consigne, Incident, current_consignes
from ..declared.inputs import Bilingual
from ..i18n import N_, Lang, format_datetime, translate
from ..snapshot import Snapshot
from .ops_markdown import render

__all__ = ["ConsigneView", "DeclarationsView", "consigne_view", "declarations_view", "phase_label"]

PHASES: dict[str, str] = {
    "investigating": N_("Investigating"),
    "identified": N_("Identified"),
    "monitoring": N_("Monitoring"),
    "resolved": N_("Resolved"),
}


def phase_label(phase: str, lang: Lang) -> str:
    """An incident's phase in words: `Cause identifiée` / `Identified`."""
    return translate(lang, PHASES[phase])


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
class ConsigneView:
    """A consigne as shown: its text, and a sentence that dates it and says whether it still stands."""

    html: Markup
    standing: str  # current, outdated, replaced or withdrawn: the class of its block
    note: str  # "Consigne du …", then why it may no longer apply
    at: datetime

    def __bool__(self) -> bool:
        return bool(self.html)


def consigne_view(consigne: Consigne | None, lang: Lang) -> ConsigneView | None:
    """The consigne dated in words: current, or outdated (older than the last change of state), replaced,
    withdrawn (incident resolved). None when there is none."""
    if consigne is None:
        return None
    when = format_datetime(consigne.at, lang)
    if consigne.standing == "outdated":
        note = translate(
            lang, "Advice of %(when)s, older than the last change of state (%(changed)s): it may no longer apply."
        ) % {"when": when, "changed": format_datetime(consigne.changed, lang)}
    elif consigne.standing == "replaced":
        note = translate(lang, "Advice of %(when)s, replaced by the advice of %(later)s.") % {
            "when": when,
            "later": format_datetime(consigne.replaced_at, lang),
        }
    elif consigne.standing == "withdrawn":
        note = translate(lang, "Advice of %(when)s. Advice withdrawn: the incident is resolved.") % {"when": when}
    else:
        note = translate(lang, "Advice of %(when)s.") % {"when": when}
    return ConsigneView(_block(consigne.text, lang), consigne.standing, note, consigne.at)


@dataclass(frozen=True)
class IncidentView:
    id: int
    title: Markup
    notice: bool  # impact none: an information for everyone (e.g. the phishing alert), not an outage
    phase: str
    updated_at: datetime
    message: Markup
    practitioners: ConsigneView | None
    members: ConsigneView | None


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


def _incident(incident: Incident, lang: Lang, snapshot: Snapshot) -> IncidentView:
    latest = incident.updates[-1]
    # the latest consigne of each audience, dated, and outdated when older than its components' last change
    pro, members = current_consignes(incident, snapshot.last_change(incident.components))
    return IncidentView(
        id=incident.id or 0,
        title=_line(incident.title, lang),
        notice=incident.impact == "none",
        phase=phase_label(latest.status, lang),
        updated_at=latest.at,
        message=_block(latest.message, lang),
        practitioners=consigne_view(pro, lang),
        members=consigne_view(members, lang),
    )


def declarations_view(snapshot: Snapshot, lang: Lang, incidents: list[Incident] | None = None) -> DeclarationsView:
    """The snapshot's open incidents (or those of `incidents`), its running maintenance and the upcoming one."""
    chosen = snapshot.open_incidents if incidents is None else incidents
    shown = [_incident(i, lang, snapshot) for i in chosen if i.is_open]
    running = [(o, True) for o in snapshot.running]
    soon = [(o, False) for o in snapshot.upcoming(UPCOMING)]
    maintenance = [
        MaintenanceView(_line(o.window.title, lang), o.start, o.end, is_running, o.window.components)
        for o, is_running in running + soon
    ]
    # notices first (they concern everyone), then the most recently updated incident first
    ordered = sorted(shown, key=lambda i: (not i.notice, -i.updated_at.timestamp()))
    return DeclarationsView(ordered, maintenance)
