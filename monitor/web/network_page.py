"""A network's page (lines with 90-day bars, latency chart, dependencies) and a line's page (checks, history)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..config import Network, Settings
from ..i18n import Lang
from ..incidents import Incident
from ..models import ComponentRef, ProbeResult, Transition
from ..store.latency import latency_by_hour
from .bars import LineBars, line_bars
from .declarations import IncidentView, declarations_view
from .overview import line_episodes
from .render import Links, render
from .svg import Series, latency_chart, legend_marker
from .view import Cell, NetworkView, board_view

if TYPE_CHECKING:
    from ..app import Services

__all__ = ["build_line", "build_network"]

CHART_HOURS = 24
HISTORY_LIMIT = 50


@dataclass(frozen=True)
class DependencyView:
    """`lines` of `network` rely on `on_network`'s `flow`, which is in `state` now."""

    network: str
    network_name: str
    lines: list[str]
    on_network: str
    on_network_name: str
    flow_label: str
    state: Cell | None


@dataclass(frozen=True)
class CheckView:
    cell: Cell
    name: str
    kind: str
    flow_label: str
    last_at: datetime | None
    last: ProbeResult | None


def _dependencies(settings: Settings, views: dict[str, NetworkView], name: str, lang: Lang) -> list[DependencyView]:
    """What this network relies on, and which networks rely on it."""
    found = []
    for owner, network in settings.networks.items():
        for dep in network.depends_on:
            if name not in (owner, dep.network):
                continue
            lines = [getattr(settings.lines[line].label, lang) for line in (dep.lines or network.lines)]
            flow_cell = next((c for c in views[dep.network].flows if c.id == dep.flow), None)
            found.append(
                DependencyView(
                    owner,
                    network.name,
                    lines,
                    dep.network,
                    settings.networks[dep.network].name,
                    getattr(settings.flows[dep.flow].label, lang),
                    flow_cell,
                )
            )
    return found


def _touches(incident: Incident, network: str, line: str | None = None) -> bool:
    for key in incident.components:
        ref = ComponentRef.parse(key)
        if ref.network == network and (line is None or ref.kind != "line" or ref.name == line):
            return True
    return False


def _incidents(services: Services, network: str, line: str | None, lang: Lang) -> list[IncidentView]:
    mine = [i for i in services.open_incidents if _touches(i, network, line)]
    return declarations_view(mine, [], services.clock(), lang).incidents


def _chart(services: Services, network: Network, name: str, lang: Lang, now: datetime) -> dict[str, object]:
    refs = {ComponentRef.for_check(name, c.flow, c.name).key: c for c in network.checks if c.kind != "push"}
    start = now - timedelta(hours=CHART_HOURS)
    hours = latency_by_hour(services.store, refs, start)
    flows = services.settings.flows
    series = [
        Series(
            f"{refs[key].description or refs[key].name} ({getattr(flows[refs[key].flow].label, lang)})",
            [(h.start + timedelta(minutes=30), h.mean_s * 1000) for h in found],
        )
        for key, found in hours.items()
    ]
    fr = lang == "fr"
    title = (
        f"Temps de réponse moyen par heure, {CHART_HOURS} dernières heures"
        if fr
        else (f"Mean response time per hour, last {CHART_HOURS} hours")
    )
    desc = (
        "Une courbe par sonde ; les mêmes valeurs figurent dans le tableau qui suit."
        if fr
        else "One line per check; the same values are in the table that follows."
    )
    svg = latency_chart(series, start, now, title, desc, f"latency-{name}") if series else None
    legend = [(legend_marker(i), s.label) for i, s in enumerate(series)]
    rows = [(s.label, found) for s, found in zip(series, hours.values(), strict=True)]
    return {"svg": svg, "legend": legend, "rows": rows, "title": title}


def build_network(services: Services, lang: Lang, links: Links, network: str) -> str | None:
    """`/reseaux/{network}`: blocking (reads roll-ups, latency, transitions)."""
    settings, now = services.settings, services.clock()
    config = settings.networks.get(network)
    if config is None:
        return None
    views = {v.id: v for v in board_view(settings, services.board, lang).networks}
    view = views[network]
    bars: dict[str, LineBars] = {
        line: line_bars(services.store, ComponentRef("line", network, line).key, now) for line in config.lines
    }
    return render(
        "network.html",
        lang,
        links,
        f"/reseaux/{network}",
        network=view,
        config=config,
        bars=bars,
        chart=_chart(services, config, network, lang, now),
        dependencies=_dependencies(settings, views, network, lang),
        incidents=_incidents(services, network, None, lang),
        timelines=line_episodes(services, lang, network),
        now=now,
    )


def _checks(services: Services, view: NetworkView, config: Network, line: str, lang: Lang) -> list[CheckView]:
    """The checks of the flows `line` relies on, with their last result (never a URL: it may hold a secret)."""
    required, optional = config.requirements(line, services.settings.lines)
    flows = {f for group in required for f in group.split("|")} | set(optional)
    cells = {c.id: c for c in view.checks}
    found = []
    for check in config.checks:
        if check.flow not in flows:
            continue
        ref = ComponentRef.for_check(view.id, check.flow, check.name)
        memory = services.board.memory(ref.key)
        last = services.store.results(ref, limit=1) if check.kind != "push" else []
        found.append(
            CheckView(
                cells[check.name],
                check.name,
                check.kind,
                getattr(services.settings.flows[check.flow].label, lang),
                memory.last_result_at if memory else None,
                last[0] if last else None,
            )
        )
    return found


def build_line(services: Services, lang: Lang, links: Links, network: str, line: str) -> str | None:
    """`/reseaux/{network}/{line}`: blocking (reads the line's transitions, roll-ups, last results)."""
    settings, now = services.settings, services.clock()
    config = settings.networks.get(network)
    if config is None or line not in config.lines:
        return None
    views = {v.id: v for v in board_view(settings, services.board, lang).networks}
    view = views[network]
    ref = ComponentRef("line", network, line)
    required, optional = config.requirements(line, settings.lines)
    flow_cells = {c.id: c for c in view.flows}
    transitions: list[Transition] = services.store.transitions(ref, limit=HISTORY_LIMIT)
    return render(
        "line.html",
        lang,
        links,
        f"/reseaux/{network}/{line}",
        network=view,
        config=config,
        line=line,
        cell=view.lines[line],
        required=[[flow_cells[f] for f in group.split("|") if f in flow_cells] for group in required],
        optional=[flow_cells[f] for f in optional if f in flow_cells],
        checks=_checks(services, view, config, line, lang),
        transitions=transitions,
        bars=line_bars(services.store, ref.key, now),
        dependencies=[d for d in _dependencies(settings, views, network, lang) if d.network == network],
        incidents=_incidents(services, network, line, lang),
        timelines=line_episodes(services, lang, network, line),
        now=now,
    )
