"""Pages for insured members, in plain words: `/assures` (which network is on your card?) and `/assures/{network}`
(per line: will you pay upfront, what to do, the open incidents' consignes)."""

from __future__ import annotations

from dataclasses import dataclass

from ..declared.incidents import Incident
from ..i18n import N_, Lang, translate
from ..models import ComponentRef, State
from .board_view import Cell, board_view, first_sights
from .incident_view import IncidentView, declarations_view
from .render import Links, PageArgs, render
from .site_context import SiteContext

__all__ = ["ANSWERS", "answer_for", "build_members", "build_members_network"]


@dataclass(frozen=True)
class Answer:
    """What a member can expect on one line: a word with its icon, and a `state` for the colour (never alone)."""

    key: str
    icon: str
    state: State
    message: str  # in English, as in the catalogs

    def words(self, lang: Lang) -> str:
        return translate(lang, self.message)


ANSWERS: dict[str, Answer] = {
    a.key: a
    for a in (
        Answer("available", "✓", State.OPERATIONAL, N_("Tiers payant available")),
        Answer("upfront", "✕", State.DOWN, N_("You will probably pay upfront")),
        Answer(
            "recovering", "↻", State.RECOVERING, N_("Reactivation under way: possible depending on the practitioner")
        ),
        Answer("uncertain", "?", State.UNKNOWN, N_("Uncertain")),
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


def build_members(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str:
    """`/assures`: which network is on your card? One link per network (a path: the static export follows it)."""
    snapshot = services.snapshot()
    networks = sorted(snapshot.settings.networks.items(), key=lambda item: item[1].name.casefold())
    views = {v.id: v for v in board_view(snapshot.settings, snapshot, lang).networks}
    troubled = {
        name: [cell.label for cell in views[name].lines.values() if answer_for(cell.state).key != "available"]
        for name, _ in networks
    }
    statuses = {name: views[name].status for name, _ in networks}
    return render(
        "assures.html", lang, links, "/assures", networks=networks, statuses=statuses, troubled=troubled, network=None
    )


def build_members_network(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str | None:
    """`/assures/{network}`: per line, will a member pay upfront; what to do; the open incidents' consignes."""
    network = args["network"]
    snapshot = services.snapshot()
    settings = snapshot.settings
    config = settings.networks.get(network)
    if config is None:
        return None
    sights = first_sights(services.store, settings, store_up=services.store_up)
    view = next(v for v in board_view(settings, snapshot, lang, sights).networks if v.id == network)
    lines = [LineAnswer(cell, answer_for(cell.state)) for cell in view.lines.values()]
    lines.sort(key=lambda item: _ORDER.index(item.answer.key))  # what a member must know first, first
    mine = [i for i in snapshot.open_incidents if _touches(i, network)]
    incidents: list[IncidentView] = declarations_view(snapshot, lang, mine).incidents
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
