"""What is told to whom: scopes (everything, a network, a network × domain), the lines an event affects, and
whether a line's change is news to its subscribers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..config.texts import TextError
from ..i18n import Lang, said, translate
from ..models import ComponentRef, State
from .events import Event

__all__ = [
    "EVERYTHING",
    "LineNews",
    "Told",
    "affected_lines",
    "line_news",
    "matching_scopes",
    "parse_scope",
    "scope_label",
]

EVERYTHING = "*"
_STEP = 0.01  # a recovery progress smaller than this is not a new step (as the engine says)


def parse_scope(text: str, settings: Settings) -> str:
    """`*`, `viamedis` or `viamedis/optique`, checked against the config; ValueError saying why."""
    text = text.strip()
    if text == EVERYTHING:
        return text
    network, sep, line = text.partition("/")
    found = settings.networks.get(network)
    if found is None:
        raise TextError(said("unknown network {network!r}", network=network))
    if not sep:
        return network
    if line not in found.lines:
        lines = ", ".join(found.lines)
        raise TextError(
            said("{network!r} has no domain {line!r} (its domains: {lines})", network=network, line=line, lines=lines)
        )
    return f"{network}/{line}"


def scope_label(scope: str, settings: Settings, lang: Lang) -> str:
    """`Viamedis — Optique`, `Viamedis (tous les domaines)` or `Tous les réseaux et domaines`, in `lang`."""
    if scope == EVERYTHING:
        return translate(lang, "Every network and domain")
    network, _, line = scope.partition("/")
    found = settings.networks.get(network)
    name = found.name if found is not None else network
    if not line:
        return translate(lang, "%(network)s (every domain)") % {"network": name}
    definition = settings.lines.get(line)
    return f"{name} — {getattr(definition.label, lang) if definition is not None else line}"


def _flow_lines(settings: Settings, network: str, flow: str) -> set[str]:
    """The lines that need `flow` of `network`: its own lines that require it or list it as optional, and the
    lines of the networks that depend on it."""
    lines: set[str] = set()
    found = settings.networks.get(network)
    if found is not None:
        for line in found.lines:
            required, optional = found.requirements(line, settings.lines)
            if flow in optional or any(flow in group.split("|") for group in required):
                lines.add(f"{network}/{line}")
    for name, other in settings.networks.items():
        for dep in other.depends_on:
            if (dep.network, dep.flow) == (network, flow):
                lines.update(f"{name}/{line}" for line in (dep.lines or other.lines))
    return lines


def affected_lines(event: Event, settings: Settings) -> set[str]:
    """The lines (`network/line`) an event is about, as the running config knows them."""
    lines: set[str] = set()
    for key in event.components:
        try:
            ref = ComponentRef.parse(key)
        except ValueError:
            continue
        network = settings.networks.get(ref.network)
        if network is None:
            continue
        if ref.kind == "network":
            lines.update(f"{ref.network}/{line}" for line in network.lines)
        elif ref.kind == "line" and ref.name in network.lines:
            lines.add(f"{ref.network}/{ref.name}")
        elif ref.kind in ("flow", "check"):
            lines |= _flow_lines(settings, ref.network, ref.name)
    return lines


def matching_scopes(lines: Iterable[str]) -> set[str]:
    """Every scope a subscriber may follow to hear about `lines`: everything, their networks, themselves."""
    scopes = {EVERYTHING}
    for line in lines:
        scopes.add(line)
        scopes.add(line.partition("/")[0])
    return scopes


@dataclass(frozen=True)
class Told:
    """The last state of a line told to its subscribers."""

    state: State
    progress: float = 0.0


@dataclass(frozen=True)
class LineNews:
    """A change of a line worth telling: from what was last told to what it is now."""

    previous: State
    state: State
    progress: float


def line_news(payload: Mapping[str, Any], told: Told | None) -> LineNews | None:
    """Whether a line's transition is news, given what was last told (None: nothing yet).

    Unknown is never told (it says that tpmon has no fresh signal, not that the service changed); a line that comes
    back from unknown to the state last told is no news. With nothing told yet, a line was taken as working, unless
    the transition itself says what it was.
    """
    state = State(payload["state"])
    progress = float(payload.get("progress", 0.0))
    if state is State.UNKNOWN:
        return None
    if told is None:
        previous = State(payload.get("previous", "unknown"))
        told = Told(State.OPERATIONAL if previous is State.UNKNOWN else previous, 1.0)
    if state is told.state and (state is not State.RECOVERING or abs(progress - told.progress) < _STEP):
        return None
    return LineNews(told.state, state, progress)
