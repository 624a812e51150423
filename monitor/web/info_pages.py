"""Pages in plain words: for insured members (`/assures`, `/assures/{network}`), the accessibility statement and
the method (how states and availability are computed, from the running config)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ..config import Network, Settings
from ..history import FORMULA, UNKNOWN_RULE, WINDOWS
from ..i18n import Lang
from ..incidents import Incident
from ..models import ComponentRef, State
from .declarations import IncidentView, declarations_view
from .incident_pages import format_duration
from .render import Links, render
from .view import Cell, board_view

if TYPE_CHECKING:
    from ..app import Services

__all__ = ["ANSWERS", "answer_for", "build_accessibility", "build_members", "build_members_network", "build_method"]


@dataclass(frozen=True)
class Answer:
    """What a member can expect on one line: a word with its icon, and a `state` for the colour (never alone)."""

    key: str
    icon: str
    state: State
    words: dict[Lang, str]


ANSWERS: dict[str, Answer] = {
    a.key: a
    for a in (
        Answer("available", "✓", State.OPERATIONAL, {"fr": "Tiers payant disponible", "en": "Tiers payant available"}),
        Answer("upfront", "✕", State.DOWN, {"fr": "Avance de frais probable", "en": "You will probably pay upfront"}),
        Answer(
            "recovering",
            "↻",
            State.RECOVERING,
            {
                "fr": "Réactivation en cours : possible selon le professionnel",
                "en": "Reactivation under way: possible depending on the practitioner",
            },
        ),
        Answer("uncertain", "?", State.UNKNOWN, {"fr": "Incertain", "en": "Uncertain"}),
    )
}
_BY_STATE = {
    State.OPERATIONAL: "available",
    State.DEGRADED: "available",
    State.DOWN: "upfront",
    State.PARTIAL: "upfront",
    State.RECOVERING: "recovering",
    State.UNKNOWN: "uncertain",
    State.MAINTENANCE: "uncertain",
}
_ORDER = ("upfront", "recovering", "uncertain", "available")
# precedence, highest first (DESIGN §2)
_SOURCES = ("maintenance", "declared", "dependency", "signals", "unknown")


def answer_for(state: State) -> Answer:
    """The member's answer for a line in `state`."""
    return ANSWERS[_BY_STATE[state]]


@dataclass(frozen=True)
class LineAnswer:
    cell: Cell
    answer: Answer


def _touches(incident: Incident, network: str) -> bool:
    """An incident about this network, or a notice for everyone (no component named)."""
    if not incident.components:
        return incident.impact == "none"
    return any(ComponentRef.parse(key).network == network for key in incident.components)


def build_members(services: Services, lang: Lang, links: Links) -> str:
    """`/assures`: which network is on your card? One link per network (a path: the static export follows it)."""
    networks = sorted(services.settings.networks.items(), key=lambda item: item[1].name.casefold())
    views = {v.id: v for v in board_view(services.settings, services.board, lang).networks}
    troubled = {
        name: [cell.label for cell in views[name].lines.values() if answer_for(cell.state).key != "available"]
        for name, _ in networks
    }
    statuses = {name: views[name].status for name, _ in networks}
    return render(
        "assures.html", lang, links, "/assures", networks=networks, statuses=statuses, troubled=troubled, network=None
    )


def build_members_network(services: Services, lang: Lang, links: Links, network: str) -> str | None:
    """`/assures/{network}`: per line, will a member pay upfront; what to do; the open incidents' consignes."""
    settings = services.settings
    config = settings.networks.get(network)
    if config is None:
        return None
    view = next(v for v in board_view(settings, services.board, lang).networks if v.id == network)
    lines = [LineAnswer(cell, answer_for(cell.state)) for cell in view.lines.values()]
    lines.sort(key=lambda item: _ORDER.index(item.answer.key))  # what a member must know first, first
    mine = [i for i in services.open_incidents if _touches(i, network)]
    incidents: list[IncidentView] = declarations_view(mine, [], services.clock(), lang).incidents
    return render(
        "assures.html",
        lang,
        links,
        f"/assures/{network}",
        network=view,
        config=config,
        lines=lines,
        incidents=incidents,
        now=services.clock(),
    )


def build_accessibility(services: Services, lang: Lang, links: Links) -> str:
    """`/accessibilite`: the accessibility statement (RGAA 4.1 style)."""
    return render("accessibilite.html", lang, links, "/accessibilite")


def _requirements(settings: Settings, lang: Lang) -> list[tuple[str, list[str], list[str]]]:
    """Each line of the taxonomy with the flows it requires ("a or b") and its optional flows, by label."""

    def label(flow: str) -> str:
        found = settings.flows.get(flow)
        return getattr(found.label, lang) if found else flow

    joiner = " ou " if lang == "fr" else " or "
    return [
        (
            getattr(line.label, lang),
            [joiner.join(label(f) for f in group.split("|")) for group in line.requires],
            [label(f) for f in line.optional],
        )
        for line in settings.lines.values()
    ]


def _dependencies(settings: Settings, lang: Lang) -> list[tuple[Network, Network, str, list[str]]]:
    found = []
    for network in settings.networks.values():
        for dep in network.depends_on:
            flow = settings.flows.get(dep.flow)
            lines = [getattr(settings.lines[line].label, lang) for line in (dep.lines or network.lines)]
            upstream = settings.networks[dep.network]
            found.append((network, upstream, getattr(flow.label, lang) if flow else dep.flow, lines))
    return found


def build_method(services: Services, lang: Lang, links: Links) -> str:
    """`/methode`: how states and availability are computed, with the running config's values."""
    settings = services.settings
    defaults = settings.defaults
    return render(
        "methode.html",
        lang,
        links,
        "/methode",
        states=list(State),
        sources=_SOURCES,
        failure_threshold=defaults.failure_threshold,
        success_threshold=defaults.success_threshold,
        interval=format_duration(timedelta(seconds=defaults.interval), lang),
        stale_after=settings.stale_after_intervals,
        stabilization=format_duration(timedelta(seconds=settings.stabilization), lang),
        requirements=_requirements(settings, lang),
        dependencies=_dependencies(settings, lang),
        formula=FORMULA[lang],
        unknown_rule=UNKNOWN_RULE[lang],
        windows=WINDOWS,
    )
