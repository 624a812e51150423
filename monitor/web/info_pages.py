"""The accessibility statement (`/accessibilite`) and the method (`/methode`: how states and availability are
computed, with the running config's values)."""

from __future__ import annotations

from datetime import timedelta

from ..availability import FORMULA, UNKNOWN_RULE, WINDOWS
from ..config import Network, Settings
from ..i18n import Lang, translate
from ..models import State
from .incident_pages import format_duration
from .render import Links, PageArgs, render
from .site_context import SiteContext

__all__ = ["build_accessibility", "build_method"]

_SOURCES = ("maintenance", "declared", "dependency", "signals", "unknown")


def build_accessibility(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str:
    """`/accessibilite`: the accessibility statement (RGAA 4.1 style)."""
    return render("accessibilite.html", lang, links, "/accessibilite")


def _requirements(settings: Settings, lang: Lang) -> list[tuple[str, list[str], list[str]]]:
    """Each line of the taxonomy with the flows it requires ("a or b") and its optional flows, by label."""

    def label(flow: str) -> str:
        found = settings.flows.get(flow)
        return getattr(found.label, lang) if found else flow

    joiner = translate(lang, " or ")
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


def build_method(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str:
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
        quorum=settings.cluster.quorum,
        locations=sorted({settings.cluster.location, *settings.cluster.locations} - {"default"}),
    )
