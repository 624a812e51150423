"""A network's page (`/reseaux/{network}`): its lines with 90-day bars, latency chart, dependencies both ways."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Network, Settings
from ..declared.incidents import Incident
from ..i18n import Lang, translate
from ..models import ComponentRef
from ..store.latency_store import latency_by_hour
from .affected_text import dependency_scope
from .availability_bars import day_bars, kept_bars
from .board_view import Cell, NetworkView, board_view, first_sights
from .home_page import line_episodes
from .incident_view import IncidentView, declarations_view
from .latency_chart import Hour, Series, failure_sample, latency_chart, line_sample
from .render import Links, PageArgs, render
from .site_context import SiteContext

__all__ = ["DependencyView", "build_network", "dependencies", "open_incidents"]

CHART_HOURS = 24


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
    scope: str = ""  # who it concerns, in words


def dependencies(settings: Settings, views: dict[str, NetworkView], name: str, lang: Lang) -> list[DependencyView]:
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
                    dependency_scope(settings, dep, lang),
                )
            )
    return found


def _touches(incident: Incident, network: str, line: str | None = None) -> bool:
    for key in incident.components:
        ref = ComponentRef.parse(key)
        if ref.network == network and (line is None or ref.kind != "line" or ref.name == line):
            return True
    return False


def open_incidents(services: SiteContext, network: str, line: str | None, lang: Lang) -> list[IncidentView]:
    snapshot = services.snapshot()
    mine = [i for i in snapshot.open_incidents if _touches(i, network, line)]
    return declarations_view(snapshot, lang, mine).incidents


def _chart(services: SiteContext, network: Network, name: str, lang: Lang, now: datetime) -> dict[str, object]:
    """One small chart per check that has results (each on its own scale), and their hours for the table."""
    refs = {ComponentRef.for_check(name, c.flow, c.name).key: c for c in network.checks if c.kind != "push"}
    start = now - timedelta(hours=CHART_HOURS)
    hours = services.pages.reuse(("latency", name), lambda: latency_by_hour(services.store, refs, start))
    flows = services.settings.flows
    charts = []
    for index, (key, found) in enumerate(hours.items()):
        check, flow = refs[key].title(lang), getattr(flows[refs[key].flow].label, lang)
        label = f"{check} ({flow})"
        series = Series(
            label, [Hour(h.start, None if h.ok_mean_s is None else h.ok_mean_s * 1000, h.failures) for h in found]
        )
        chart = latency_chart(series, start, now, lang, f"latency-{name}-{index}")
        charts.append({"label": label, "check": check, "flow": flow, "svg": chart, "hours": found})
    title = translate(lang, "Response time per hour, last %(hours)s hours") % {"hours": CHART_HOURS}
    return {"charts": charts, "title": title, "line_sample": line_sample(), "failure_sample": failure_sample()}


def build_network(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str | None:
    """`/reseaux/{network}`: blocking (reads roll-ups, latency, transitions)."""
    network = args["network"]
    snapshot, now = services.snapshot(), services.clock()
    settings = snapshot.settings
    config = settings.networks.get(network)
    if config is None:
        return None
    sights = first_sights(services.store, settings, store_up=services.store_up)
    views = {v.id: v for v in board_view(settings, snapshot, lang, sights).networks}
    view = views[network]
    keys = {line: ComponentRef("line", network, line).key for line in config.lines}
    # the same as its line pages', in either language: read once while the roll-ups hold, rendered once per language
    bars = {line: kept_bars(services.pages, services.store, key, now) for line, key in keys.items()}
    bars_html = {line: day_bars(services.pages, bars[line], view.lines[line].label, lang) for line in bars}
    return render(
        "network.html",
        lang,
        links,
        f"/reseaux/{network}",
        network=view,
        config=config,
        bars=bars,
        bars_html=bars_html,
        chart=_chart(services, config, network, lang, now),
        dependencies=dependencies(settings, views, network, lang),
        incidents=open_incidents(services, network, None, lang),
        timelines=line_episodes(services, lang, network),
        now=now,
    )
