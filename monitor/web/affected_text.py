"""Who a line fails, in words (DESIGN §2): the scope of the dependency that raises it ("Indisponible pour les assurés
dont le tiers payant est géré par Viamedis"), or the optional flow that degrades it. Every surface says the same."""

from __future__ import annotations

from typing import Protocol

from ..config import Dependency, Network, Settings
from ..i18n import N_, STATE_LABELS, Lang, format_percent, translate
from ..models import ComponentRef, ComponentStatus, Source, State

__all__ = ["AFFECTED", "OPTIONAL", "THROUGH", "StatusLookup", "dependency_scope", "explain", "raised_by"]


class StatusLookup(Protocol):
    """Where a component's status is read: the board, or the site's snapshot of it."""

    def get(self, ref: ComponentRef | str) -> ComponentStatus | None: ...


# Who a line raised by a dependency fails, in words (DESIGN §2): "Indisponible pour les assurés dont …".
AFFECTED = N_("%(state)s for %(scope)s")
THROUGH = N_("members whose tiers payant goes through %(name)s")  # a dependency without `scope:`
OPTIONAL = N_("%(flow)s: %(state)s — optional, the line works without it")


def raised_by(network: Network, line: str, status: ComponentStatus | None) -> Dependency | None:
    """The dependency that makes the line what it shows (its source is dependency), if any."""
    if status is None or status.source is not Source.DEPENDENCY:
        return None
    return next((d for d in network.depends_on if d.covers(line) and f"{d.network}/{d.flow}" == status.detail), None)


def dependency_scope(settings: Settings, dependency: Dependency, lang: Lang) -> str:
    """Who the dependency concerns, in `lang`: its `scope`, or the members going through the upstream network."""
    if dependency.scope is not None:
        scope: str = getattr(dependency.scope, lang)
        return scope
    return translate(lang, THROUGH) % {"name": settings.networks[dependency.network].name}


def explain(
    settings: Settings, board: StatusLookup, network: str, line: str, status: ComponentStatus | None, lang: Lang
) -> tuple[str, str, str]:
    """(affected, scope, cause) of a line: for whom its dependency fails it, or which optional flow degrades it."""
    config = settings.networks[network]
    dependency = raised_by(config, line, status)
    if dependency is not None and status is not None:
        upstream = board.get(ComponentRef("flow", dependency.network, dependency.flow)) or status
        label = STATE_LABELS[upstream.state][lang]
        if upstream.state is State.RECOVERING:
            label += f" ({format_percent(upstream.progress, lang, 0)})"
        scope = dependency_scope(settings, dependency, lang)
        return translate(lang, AFFECTED) % {"state": label, "scope": scope}, scope, ""
    if status is not None and status.state is State.DEGRADED and status.detail.startswith(f"{network}/"):
        flow = status.detail.partition("/")[2]
        if flow in config.requirements(line, settings.lines)[1]:
            found = board.get(ComponentRef("flow", network, flow))
            state = STATE_LABELS[found.state if found else State.UNKNOWN][lang]
            return (
                "",
                "",
                translate(lang, OPTIONAL) % {"flow": getattr(settings.flows[flow].label, lang), "state": state},
            )
    return "", "", ""
