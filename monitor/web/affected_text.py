"""A line's trouble in words (DESIGN §1–2), one place for every surface: for whom a dependency fails it ("Indisponible
pour les assurés dont le tiers payant est géré par Viamedis"), which flow is at fault and what that means at the
counter ("vérification des droits en ligne indisponible"), what a practitioner does meanwhile ("utilisez
l'attestation papier…"), and what a reactivation percentage means ("environ 1 prise en charge sur 2 aboutit ; en
cas de refus, réessayez plus tard ou faites une facture acquittée").

The words of each flow come from the config (`flows:` of the taxonomy, `flow_texts:` of a network); the sentences
around them from the catalogs.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ..config import Dependency, FlowTexts, Network, Settings
from ..config.model import Label
from ..i18n import N_, STATE_LABELS, Lang, format_percent, translate, translate_plural, typeset
from ..models import SEVERITY, ComponentRef, ComponentStatus, Source, State

__all__ = [
    "AFFECTED",
    "THROUGH",
    "Explanation",
    "StatusLookup",
    "dependency_scope",
    "explain",
    "raised_by",
    "reactivation",
]


class StatusLookup(Protocol):
    """Where a component's status is read: the board, or the site's snapshot of it."""

    def get(self, ref: ComponentRef | str) -> ComponentStatus | None: ...


class Explanation(NamedTuple):
    """A line's trouble in words, in one language; empty strings where there is nothing to say."""

    affected: str  # raised by a dependency: its state for whom ("Indisponible pour les assurés dont …")
    scope: str  # that dependency's scope alone ("assurés dont le tiers payant est géré par Viamedis")
    cause: str  # which flow is at fault, and what it means at the counter
    action: str  # what a practitioner does meanwhile, in one line
    meaning: str  # while recovering: what its percentage means at the counter, and what to do on a refusal


NOTHING = Explanation("", "", "", "", "")

# Who a line raised by a dependency fails, in words (DESIGN §2): "Indisponible pour les assurés dont …".
AFFECTED = N_("%(state)s for %(scope)s")
THROUGH = N_("members whose tiers payant goes through %(name)s")  # a dependency without `scope:`
# A flow at fault, in general words (a flow's own `when_down` says what its outage means at the counter)
FLOW_STATES: dict[State, str] = {
    State.DOWN: N_("%(flow)s: unavailable"),
    State.PARTIAL: N_("%(flow)s: some requests fail"),
    State.DEGRADED: N_("%(flow)s: slow or with errors"),
    State.RECOVERING: N_("%(flow)s: coming back (%(progress)s)"),
    State.MAINTENANCE: N_("%(flow)s: maintenance"),
    State.UNKNOWN: N_("%(flow)s: no recent signal"),
}
_ADVISED = (State.DOWN, State.PARTIAL, State.RECOVERING, State.MAINTENANCE)  # a workaround is worth giving
_NO_FLOW: dict[State, str] = {  # the line's trouble when no flow it needs is at fault
    State.MAINTENANCE: N_("planned maintenance in progress"),
    State.UNKNOWN: N_("no recent signal: we do not know whether it works"),
}
_DECLARED = N_("state declared by operations")


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


def _words(label: Label | None, lang: Lang) -> str:
    return typeset(getattr(label, lang), lang) if label is not None else ""


def _fraction(share: float) -> tuple[int, int]:
    """`share` as n in d with d ≤ 10, the nearest (the smaller d on a tie): 0.5 → 1 in 2, 0.75 → 3 in 4."""
    candidates = [(abs(n / d - share), d, n) for d in range(2, 11) for n in range(1, d)]
    _, d, n = min(candidates)
    return n, d


def reactivation(share: float, texts: FlowTexts, lang: Lang) -> str:
    """What a reactivation at `share` means at the counter, with what to do when a request is refused:
    "environ 1 prise en charge sur 2 aboutit ; en cas de refus, réessayez plus tard ou …"."""
    unit, units = _words(texts.unit, lang), _words(texts.units, lang)
    if not (unit and units):
        said = translate(lang, "about %(share)s of requests go through") % {"share": format_percent(share, lang, 0)}
    elif share < 0.05:
        said = translate(lang, "very few %(units)s go through yet") % {"units": units}
    elif share > 0.95:
        said = translate(lang, "almost all %(units)s go through") % {"units": units}
    else:
        n, d = _fraction(share)
        said = translate_plural(
            lang, "about %(n)s %(unit)s in %(d)s goes through", "about %(n)s %(units)s in %(d)s go through", n
        ) % {"n": n, "d": d, "unit": unit, "units": units}
    refused = _words(texts.when_refused, lang)
    return translate(lang, "%(said)s; %(refused)s") % {"said": said, "refused": refused} if refused else said


def _flow_words(settings: Settings, network: str, flow: str, status: ComponentStatus | None, lang: Lang) -> str:
    """A flow at fault in words: what its outage means at the counter, else its name and state."""
    state = status.state if status is not None else State.UNKNOWN
    if state is State.DOWN and (said := _words(settings.flow_texts(network, flow).when_down, lang)):
        return said
    progress = format_percent(status.progress if status else 0.0, lang, 0)
    label: str = getattr(settings.flows[flow].label, lang)
    return translate(lang, FLOW_STATES[state]) % {"flow": label, "progress": progress}


def _faults(
    settings: Settings, board: StatusLookup, network: str, groups: tuple[str, ...]
) -> list[list[tuple[str, ComponentStatus | None]]]:
    """The groups of flows that fail (an alternative group `a|b` fails when none of its flows works), the worst
    first; in each, its flows that do not work, in order."""
    failing = []
    for group in groups:
        members = [(flow, board.get(ComponentRef("flow", network, flow))) for flow in group.split("|")]
        states = [status.state if status else State.UNKNOWN for _, status in members]
        best = min(states, key=lambda s: SEVERITY[s])
        if best is not State.OPERATIONAL:
            worst = max(SEVERITY[s] for s in states)
            failing.append(
                (-worst, [(f, s) for (f, s), st in zip(members, states, strict=True) if st is not State.OPERATIONAL])
            )
    return [members for _, members in sorted(failing, key=lambda item: item[0])]


def explain(
    settings: Settings, board: StatusLookup, network: str, line: str, status: ComponentStatus | None, lang: Lang
) -> Explanation:
    """A line's trouble in words: for whom its dependency fails it, which flow is at fault, what to do, and what its
    reactivation percentage means. Nothing for an operational line."""
    if status is None or status.state is State.OPERATIONAL:
        return NOTHING
    config = settings.networks[network]
    dependency = raised_by(config, line, status)
    if dependency is not None:
        upstream = board.get(ComponentRef("flow", dependency.network, dependency.flow)) or status
        label = STATE_LABELS[upstream.state][lang]
        if upstream.state is State.RECOVERING:
            label += f" ({format_percent(upstream.progress, lang, 0)})"
        scope = dependency_scope(settings, dependency, lang)
        texts = settings.flow_texts(dependency.network, dependency.flow)
        affected = translate(lang, AFFECTED) % {"state": label, "scope": scope}
        meaning = reactivation(upstream.progress, texts, lang) if upstream.state is State.RECOVERING else ""
        return Explanation(affected, scope, "", _words(texts.advice, lang), meaning)
    required, optional = config.requirements(line, settings.lines)
    faults = _faults(settings, board, network, required)
    if not faults and status.state is State.DEGRADED:
        faults = [
            [(flow, found)]
            for flow in optional
            if (found := board.get(ComponentRef("flow", network, flow))) and found.state in (State.DOWN, State.PARTIAL)
        ]
    cause = translate(lang, "; ").join(_flow_words(settings, network, f, s, lang) for group in faults for f, s in group)
    action = ""
    if faults:
        flow, found = faults[0][-1]  # of the worst group, its last alternative: the flow the others stand in for
        if found is not None and found.state in _ADVISED:  # a slow flow still works: nothing to do instead
            action = _words(settings.flow_texts(network, flow).advice, lang)
    elif status.state in _NO_FLOW:
        cause = translate(lang, _NO_FLOW[status.state])
    elif status.source is Source.DECLARED:
        cause = translate(lang, _DECLARED)
    meaning = ""
    if status.state is State.RECOVERING:
        recovering = [f for group in faults for f, s in group if s and s.state in (State.RECOVERING, State.PARTIAL)]
        main = recovering[0] if recovering else required[0].split("|")[-1] if required else ""
        if main:
            meaning = reactivation(status.progress, settings.flow_texts(network, main), lang)
    return Explanation("", "", cause, action, meaning)
