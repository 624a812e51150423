"""A line's page (`/reseaux/{network}/{line}`): the answer in words, what the line requires, its checks and history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Network
from ..i18n import Lang, translate
from ..models import ComponentRef, ProbeResult, Transition
from .affected_text import dependency_scope
from .availability_bars import day_bars, kept_bars
from .board_view import Cell, NetworkView, board_view, first_sights
from .home_page import line_episodes, line_history
from .incident_view import IncidentView
from .network_page import dependencies, open_incidents
from .render import Links, PageArgs, render
from .site_context import SiteContext

__all__ = ["build_line"]

HISTORY_LIMIT = 50


@dataclass(frozen=True)
class UpstreamIncidents:
    """The open incidents of a network this line depends on, and for whom (its scope, in words)."""

    name: str
    scope: str
    incidents: list[IncidentView]


def _upstream(services: SiteContext, config: Network, line: str, lang: Lang) -> list[UpstreamIncidents]:
    """For each network this line relies on: its open incidents (their messages and consignes)."""
    found: dict[str, UpstreamIncidents] = {}
    for dep in config.depends_on:
        if not dep.covers(line) or dep.network in found:
            continue
        incidents = open_incidents(services, dep.network, None, lang)
        if incidents:
            name = services.settings.networks[dep.network].name
            found[dep.network] = UpstreamIncidents(name, dependency_scope(services.settings, dep, lang), incidents)
    return list(found.values())


@dataclass(frozen=True)
class CheckView:
    cell: Cell
    name: str
    kind: str
    flow_label: str
    last_at: datetime | None
    last: ProbeResult | None
    note: str = ""  # several locations: those that see it down while its verdict is not down


def location_note(detail: str, lang: Lang) -> str:
    """What a check's detail says of its locations, in words ("" if nothing): a failure seen from a minority of
    them (the check is not down), or a split with no quorum (the check is unknown)."""
    kind, _, places = detail.partition(":")
    names = ", ".join(places.split(","))
    if kind == "down_from" and places:
        return translate(lang, "unreachable from %(places)s only") % {"places": names}
    if kind == "no_quorum" and places:
        return translate(lang, "locations disagree: unreachable from %(places)s, reachable from the others") % {
            "places": names
        }
    return ""


def _checks(services: SiteContext, view: NetworkView, config: Network, line: str, lang: Lang) -> list[CheckView]:
    """The checks of the flows `line` relies on, with their last result (never a URL: it may hold a secret)."""
    required, optional = config.requirements(line, services.settings.lines)
    flows = {f for group in required for f in group.split("|")} | set(optional)
    cells = {c.id: c for c in view.checks}
    probed = [ComponentRef.for_check(view.id, c.flow, c.name) for c in config.checks if c.kind != "push"]
    seen = tuple(memory.last_result_at if (memory := services.board.memory(r.key)) else None for r in probed)

    def complete(found: dict[str, ProbeResult]) -> bool:  # the writer had stored every result the board has seen
        return all(
            at is None or (r.key in found and found[r.key].started_at >= at) for r, at in zip(probed, seen, strict=True)
        )

    # the network's last results in one read, shared by its line pages and both languages while neither what
    # pages show (the stamp) nor any of its checks' last result changes
    latest = services.pages.reuse(
        ("last results", view.id, seen), lambda: services.store.last_results(probed), keep=complete
    )
    found = []
    for check in config.checks:
        if check.flow not in flows:
            continue
        ref = ComponentRef.for_check(view.id, check.flow, check.name)
        memory = services.board.memory(ref.key)
        last = latest.get(ref.key) if check.kind != "push" else None
        found.append(
            CheckView(
                cells[check.name],
                check.name,
                check.kind,
                getattr(services.settings.flows[check.flow].label, lang),
                memory.last_result_at if memory else None,
                last,
                location_note(cells[check.name].detail, lang),
            )
        )
    return found


def build_line(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str | None:
    """`/reseaux/{network}/{line}`: blocking (reads the line's transitions, roll-ups, last results)."""
    network, line = args["network"], args["line"]
    snapshot, now = services.snapshot(), services.clock()
    settings = snapshot.settings
    config = settings.networks.get(network)
    if config is None or line not in config.lines:
        return None
    sights = first_sights(services.store, settings, store_up=services.store_up)
    views = {v.id: v for v in board_view(settings, snapshot, lang, sights).networks}
    view = views[network]
    ref = ComponentRef("line", network, line)
    required, optional = config.requirements(line, settings.lines)
    flow_cells = {c.id: c for c in view.flows}
    transitions: list[Transition] = services.pages.reuse(
        ("transitions", ref.key, HISTORY_LIMIT), lambda: line_history(services.store, ref, HISTORY_LIMIT)
    )
    bars = kept_bars(services.pages, services.store, ref.key, now)
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
        bars=bars,
        bars_html=day_bars(services.pages, bars, view.lines[line].label, lang),
        dependencies=[d for d in dependencies(settings, views, network, lang) if d.network == network],
        incidents=open_incidents(services, network, line, lang),
        upstream_incidents=_upstream(services, config, line, lang),
        timelines=line_episodes(services, lang, network, line),
        now=now,
    )
