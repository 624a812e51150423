"""The incident history (`/incidents`, 20 a page) and one incident with its updates (`/incidents/{incident}`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from ..config import Settings
from ..declared.incidents import AUDIENCES, Audience, Consigne, Incident, IncidentUpdate, consigne_history
from ..declared.inputs import Bilingual
from ..errors import NotFound
from ..i18n import N_, STATE_LABELS, Lang, translate
from ..models import ComponentRef, State
from ..snapshot import Snapshot
from ..store.declaration_store import Declarations
from .incident_view import ConsigneView, consigne_view, phase_label
from .ops_markdown import render as render_text
from .render import Links, PageArgs, render, render_main
from .site_context import SiteContext

__all__ = [
    "IMPACT_LABELS",
    "PER_PAGE",
    "build_incident",
    "build_incidents",
    "component_name",
    "format_duration",
    "preview_incident",
]

PER_PAGE = 20
_PAGE = re.compile(r"[1-9][0-9]{0,5}")  # 1-based, canonical: `01`, `0`, `-1`, `abc`, `2.0` name no page
_ID = re.compile(r"[1-9][0-9]{0,11}")
IMPACT_LABELS: dict[str, str] = {
    "none": N_("Notice"),
    "minor": N_("Minor"),
    "major": N_("Major"),
    "critical": N_("Critical"),
}


@dataclass(frozen=True)
class Text:
    """An ops text as shown; `lang` is set when it is the French text shown on the English page."""

    html: Markup
    lang: Lang | None


@dataclass(frozen=True)
class Component:
    """An affected component by its names (never its key), with the page that shows it when there is one."""

    name: str
    href: str | None


@dataclass(frozen=True)
class Badge:
    """A state as shown: icon and word (templates add ` : 50 %` when recovering with a progress)."""

    state: State
    label: str
    progress: float | None


@dataclass(frozen=True)
class IncidentSummary:
    id: int
    title: Text
    impact: str
    open: bool
    phase: str
    started: datetime
    resolved: datetime | None
    duration: str
    components: list[Component]


@dataclass(frozen=True)
class UpdateView:
    at: datetime
    phase: str
    message: Text
    practitioners: ConsigneView | None  # dated, with what it is worth now (current, outdated, replaced, withdrawn)
    members: ConsigneView | None
    statuses: list[tuple[Component, Badge]]


def format_duration(span: timedelta, lang: Lang) -> str:
    """`45 s`, `2 min 30 s`, `2 h 05 min`, `3 j 4 h` (en: `3 d 4 h`): two units at most, rounded down."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    nbsp = "\u00a0"
    if days:
        whole = translate(lang, "%(days)s\u00a0d") % {"days": days}  # `j` in French
        return f"{whole} {hours}{nbsp}h" if hours else whole
    if hours:
        return f"{hours}{nbsp}h {mins:02d}{nbsp}min" if mins else f"{hours}{nbsp}h"
    if mins:
        return f"{mins}{nbsp}min {secs}{nbsp}s" if secs else f"{mins}{nbsp}min"
    return f"{secs}{nbsp}s"


def _text(text: Bilingual, lang: Lang) -> Text:
    return Text(render_text(text.pick(lang)), "fr" if text.falls_back(lang) else None)


def component_name(settings: Settings, key: str, links: Links) -> Component:
    """`Viamedis — Optique` for `line:viamedis/optique`; a network or a flow the config no longer has keeps its id."""
    lang = links.lang
    try:
        ref = ComponentRef.parse(key)
    except ValueError:
        return Component(key.partition(":")[2] or key, None)
    network = settings.networks.get(ref.network)
    network_name = network.name if network else ref.network
    if ref.kind == "network" or not ref.name:
        return Component(network_name, links.page(f"/reseaux/{ref.network}") if network else None)
    labels = settings.lines if ref.kind == "line" else settings.flows
    known = labels.get(ref.name)
    label = getattr(known.label, lang) if known else ref.name
    has_page = network is not None and (ref.kind != "line" or ref.name in network.lines)
    target = f"/reseaux/{ref.network}/{ref.name}" if ref.kind == "line" else f"/reseaux/{ref.network}"
    return Component(f"{network_name} — {label}", links.page(target) if has_page else None)


def _badge(state: State, progress: float | None, lang: Lang) -> Badge:
    return Badge(state, STATE_LABELS[state][lang], progress if state is State.RECOVERING else None)


def _summary(incident: Incident, settings: Settings, links: Links, now: datetime) -> IncidentSummary:
    lang = links.lang
    end = incident.resolved_at or now
    span = format_duration(end - incident.created_at, lang)
    duration = span if incident.resolved_at else translate(lang, "ongoing for %(span)s") % {"span": span}
    return IncidentSummary(
        id=incident.id or 0,
        title=Text(Markup.escape(incident.title.pick(lang)), "fr" if incident.title.falls_back(lang) else None),
        impact=translate(lang, IMPACT_LABELS[incident.impact]),
        open=incident.is_open,
        phase=phase_label(incident.status, lang),
        started=incident.created_at,
        resolved=incident.resolved_at,
        duration=duration,
        components=[component_name(settings, key, links) for key in incident.components],
    )


def _update(
    update: IncidentUpdate, settings: Settings, links: Links, consignes: dict[Audience, Iterator[Consigne]]
) -> UpdateView:
    """One update as shown; `consignes` gives, in update order, the standing of each consigne given."""
    lang = links.lang
    pro, members = (next(consignes[a]) if getattr(update, a) else None for a in AUDIENCES)
    return UpdateView(
        at=update.at,
        phase=phase_label(update.status, lang),
        message=_text(update.message, lang),
        practitioners=consigne_view(pro, lang),
        members=consigne_view(members, lang),
        statuses=[
            (component_name(settings, key, links), _badge(declared.state, declared.progress, lang))
            for key, declared in update.statuses.items()
        ],
    )


def build_incidents(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str | None:
    """`/incidents?page=N`: newest first, PER_PAGE a page; a page that is not a number or is past the end: None."""
    page = args.get("page")
    if page is not None and not _PAGE.fullmatch(page):
        return None
    number = int(page) if page else 1
    declarations = Declarations(services.store, services.settings)
    # history from the store, told as the site's snapshot tells it (none newer than it, its copy of the recent)
    found = services.snapshot().as_known(declarations.incidents(limit=PER_PAGE + 1, offset=(number - 1) * PER_PAGE))
    if number > 1 and not found:
        return None
    now = services.clock()
    shown = [_summary(incident, services.settings, links, now) for incident in found[:PER_PAGE]]
    path = "/incidents" if number == 1 else f"/incidents?page={number}"
    return render(
        "incidents.html",
        lang,
        links,
        path,
        incidents=shown,
        number=number,
        first=(number - 1) * PER_PAGE + 1,
        previous=None if number == 1 else ("/incidents" if number == 2 else f"/incidents?page={number - 1}"),
        next=f"/incidents?page={number + 1}" if len(found) > PER_PAGE else None,
    )


def build_incident(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str | None:
    """`/incidents/{incident}`: the incident with its updates, newest first; an unknown or non-integer id: None."""
    incident = args["incident"]
    if not _ID.fullmatch(incident):
        return None
    snapshot = services.snapshot()
    settings, number = snapshot.settings, int(incident)
    if not snapshot.shows(number):  # stored after the snapshot: shown with the next one, as everywhere
        return None
    try:
        found = snapshot.incident(number) or Declarations(services.store, settings).incident(number)
    except NotFound:
        return None
    now = services.clock()
    return render(
        "incident.html", lang, links, f"/incidents/{found.id}", **_incident_context(snapshot, found, links, now)
    )


def _incident_context(snapshot: Snapshot, found: Incident, links: Links, now: datetime) -> dict[str, Any]:
    settings, lang = snapshot.settings, links.lang
    declared = found.declared() if found.is_open else {}
    shown = snapshot.last_change(found.components)
    consignes = {audience: iter(consigne_history(found, audience, shown)) for audience in AUDIENCES}
    components = []
    for key in found.components:
        status = snapshot.get(key)
        now_state = _badge(status.state, status.progress, lang) if status else _badge(State.UNKNOWN, None, lang)
        said = declared.get(key)
        components.append(
            (
                component_name(settings, key, links),
                _badge(said[0].state, said[0].progress, lang) if said else None,
                said[1] if said else None,
                now_state,
            )
        )
    return {
        "now": now,
        "incident": _summary(found, settings, links, now),
        "components": components,
        "updates": list(reversed([_update(update, settings, links, consignes) for update in found.updates])),
    }


def preview_incident(snapshot: Snapshot, draft: Incident, links: Links, now: datetime) -> Markup:
    """What the public page of `draft` (an incident with a change not stored yet) will show, from the public
    template itself: the console shows it before anything is published."""
    return render_main(
        "incident.html", links.lang, links, "/incidents", **_incident_context(snapshot, draft, links, now)
    )
