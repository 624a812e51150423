"""Atom and RSS feeds: one entry per incident update, for everything, per network and per line.

`/feed.atom|.rss`, `/reseaux/{network}/feed.atom|.rss`, `/reseaux/{network}/{line}/feed.atom|.rss`.
The newest updates first, at most LIMIT, of the site's snapshot's recent incidents (what the page and the JSON
tell, at the same instant). A network's feed holds the incidents naming any of its components;
a line's feed those naming the line or its network as a whole. French, English with `?lang=en` (French
wherever ops wrote no English). The XML is built with ElementTree: ops text is never concatenated into
markup; in the `content`/`description` it is the HTML of `text.render` (Markdown, then sanitized), escaped once more
as the text of an element, as Atom's `type="html"` and RSS's `description` expect.

Each entry is one dated update, titled with what it changes when it declares states ("PEC optique indisponibles —
Viamedis · Optique : Réactivation progressive (50 %)"), else with its phase; its consignes are that update's.
An update that changes a declared state
without new consignes says that the earlier ones (dated) are older than this change: a reader never takes
them for current advice.

Ids are stable URNs that do not depend on the language or on the host: `urn:tpmon:feed:line:alpha/optique`,
`urn:tpmon:incident:3:update:7`.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime as rfc822
from typing import Literal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..config import Settings
from ..declared.incidents import Incident, IncidentUpdate
from ..i18n import N_, STATE_LABELS, Lang, format_datetime, format_percent, translate
from ..models import ComponentRef, State
from .affected_text import dependency_scope
from .incident_view import phase_label
from .ops_markdown import render
from .page_cache import public_origin

__all__ = [
    "ATOM",
    "CHANGED",
    "LIMIT",
    "Entry",
    "Scope",
    "atom_feed",
    "changes",
    "entries",
    "feed_routes",
    "rss_feed",
    "scope_of",
]

ATOM = "http://www.w3.org/2005/Atom"
LIMIT = 50  # entries per feed
Kind = Literal["atom", "rss"]
KINDS: tuple[Kind, ...] = ("atom", "rss")
MEDIA = {"atom": "application/atom+xml; charset=utf-8", "rss": "application/rss+xml; charset=utf-8"}
TEXTS: dict[str, str] = {
    "title": N_("Tiers payant status"),
    "all": N_("all networks"),
    "description": N_("Incidents and updates published by operations: %(scope)s"),
    "practitioners": N_("Advice for healthcare professionals"),
    "members": N_("Advice for insured members"),
    "outdated": N_("Earlier advice (%(when)s): older than this change of state, it may no longer apply."),
    "dependents": N_("Also concerns, where it is relied on: %(who)s."),
    "relies": N_("%(what)s relies on it for %(scope)s."),
    "dependent": N_("%(network)s (%(lines)s): %(scope)s"),
}


def _text(key: str, lang: Lang, **values: str) -> str:
    text = translate(lang, TEXTS[key])
    return text % values if values else text


@dataclass(frozen=True)
class Scope:
    """What a feed covers: everything (`key` empty), a network or one of its lines."""

    key: str  # "", "network:alpha" or "line:alpha/optique"
    name: str  # "Alpha · Optique", in the feed's language
    path: str  # the page it stands for
    network: str = ""
    line: str = ""
    # who an incident of a network concerns beyond it, in words, by that network (DESIGN §2: every surface
    # says the scope); `also`: the networks this scope relies on, whose incidents it carries too
    notes: Mapping[str, str] = field(default_factory=dict)
    also: frozenset[str] = frozenset()

    def covers(self, components: Iterable[str]) -> bool:
        if not self.key:
            return True
        if not self.line:  # a network: any of its components
            return any(_network_of(key) == self.network for key in components)
        return bool({self.key, f"network:{self.network}"} & set(components))


def _network_of(key: str) -> str:
    try:
        return ComponentRef.parse(key).network
    except ValueError:
        return ""


def _dependents(settings: Settings, upstream: str | None, lang: Lang) -> dict[str, str]:
    """For each network others rely on (or `upstream` only): who its incidents concern there, in words."""
    found: dict[str, list[str]] = {}
    for network in settings.networks.values():
        for dep in network.depends_on:
            if upstream is not None and dep.network != upstream:
                continue
            lines = ", ".join(getattr(settings.lines[line].label, lang) for line in (dep.lines or network.lines))
            who = _text(
                "dependent", lang, network=network.name, lines=lines, scope=dependency_scope(settings, dep, lang)
            )
            found.setdefault(dep.network, []).append(who)
    return {name: _text("dependents", lang, who=translate(lang, "; ").join(who)) for name, who in found.items()}


def _relies(settings: Settings, network: str, line: str | None, lang: Lang) -> dict[str, str]:
    """For each network `network` (its `line`) relies on: for whom, in words."""
    found: dict[str, str] = {}
    config = settings.networks[network]
    for dep in config.depends_on:
        if line is not None and not dep.covers(line):
            continue
        what = config.name if line is None else f"{config.name} · {getattr(settings.lines[line].label, lang)}"
        found.setdefault(dep.network, _text("relies", lang, what=what, scope=dependency_scope(settings, dep, lang)))
    return found


def scope_of(settings: Settings, network: str | None, line: str | None, lang: Lang) -> Scope | None:
    """The scope named by the path, None when the network or line is unknown."""
    if network is None:
        return Scope("", _text("all", lang), "/", notes=_dependents(settings, None, lang))
    found = settings.networks.get(network)
    if found is None:
        return None
    if line is None:
        notes = {**_dependents(settings, network, lang), **_relies(settings, network, None, lang)}
        also = frozenset(_relies(settings, network, None, lang))
        return Scope(f"network:{network}", found.name, f"/reseaux/{network}", network, notes=notes, also=also)
    if line not in found.lines:
        return None
    label: str = getattr(settings.lines[line].label, lang)
    relies = _relies(settings, network, line, lang)
    path = f"/reseaux/{network}/{line}"
    return Scope(f"line:{network}/{line}", f"{found.name} · {label}", path, network, line, relies, frozenset(relies))


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    updated: datetime
    link: str
    html: str


def _html(
    message: str, practitioners: str, members: str, lang: Lang, notes: Iterable[str] = (), outdated: str = ""
) -> str:
    parts = [str(render(message))]
    parts += [f'<p class="affected">{html.escape(note)}</p>' for note in notes]  # config text: escaped
    for key, text in (("practitioners", practitioners), ("members", members)):
        if text.strip():
            parts.append(f"<h3>{_text(key, lang)}</h3>{render(text)}")  # our own heading, then escaped text
    if outdated:
        parts.append(f"<p><strong>{outdated}</strong></p>")  # our own sentence, dates only
    return "".join(parts)


def _outdates(incident: Incident, position: int, lang: Lang) -> str:
    """The note of an update that changes a declared state and gives no consigne while earlier ones stand."""
    update = incident.updates[position]
    if update.practitioner_consigne or update.member_consigne or update.status == "resolved":
        return ""
    before = incident.updates[:position]
    declared = {key: d.state for u in before for key, d in u.statuses.items()}
    if not any(declared.get(key) is not d.state for key, d in update.statuses.items()):
        return ""
    given = [u for u in before if u.practitioner_consigne or u.member_consigne]
    if not given:
        return ""
    when = ", ".join(dict.fromkeys(format_datetime(u.at, lang) for u in _latest_each(given)))
    return _text("outdated", lang, when=when)


def _latest_each(given: list[IncidentUpdate]) -> list[IncidentUpdate]:
    """The updates that gave the latest practitioners' and members' consignes, oldest first."""
    pro = next((u for u in reversed(given) if u.practitioner_consigne), None)
    members = next((u for u in reversed(given) if u.member_consigne), None)
    return sorted({id(u): u for u in (pro, members) if u is not None}.values(), key=lambda u: u.at)


CHANGED = N_("%(component)s: %(state)s")  # an entry's title: what its update declares


def _component(settings: Settings | None, key: str, lang: Lang) -> str:
    """`Viamedis · Optique` for `line:viamedis/optique`; what the config no longer knows keeps its id."""
    try:
        ref = ComponentRef.parse(key)
    except ValueError:
        return key
    network = settings.networks.get(ref.network) if settings else None
    name = network.name if network else ref.network
    if not ref.name:
        return name
    labels = (settings.lines if ref.kind == "line" else settings.flows) if settings else {}
    known = labels.get(ref.name)
    return f"{name} · {getattr(known.label, lang) if known else ref.name}"


def changes(update: IncidentUpdate, settings: Settings | None, lang: Lang) -> str:
    """What an update declares, in words ("Viamedis · Optique : Réactivation progressive (50 %)"); '' if nothing."""
    said = []
    for key, declared in update.statuses.items():
        state = STATE_LABELS[declared.state][lang]
        if declared.state is State.RECOVERING and declared.progress is not None:
            state += f" ({format_percent(declared.progress, lang, 0)})"
        said.append(translate(lang, CHANGED) % {"component": _component(settings, key, lang), "state": state})
    return translate(lang, "; ").join(said)


def entries(
    incidents: Iterable[Incident], scope: Scope, lang: Lang, base: str, settings: Settings | None = None
) -> list[Entry]:
    """One entry per update of the incidents `scope` covers, newest first, at most LIMIT; each titled with what it
    changes (the components' names from `settings`), else with its phase."""
    found: list[tuple[tuple[datetime, int, int], Entry]] = []
    for incident in incidents:
        touched = {_network_of(key) for key in incident.components}
        if not scope.covers(incident.components) and not touched & scope.also:
            continue
        notes = [scope.notes[name] for name in sorted(touched) if name in scope.notes]
        number = incident.id or 0
        title = incident.title.pick(lang)
        for position, update in enumerate(incident.updates):
            ident = update.id if update.id is not None else position
            entry = Entry(
                id=f"urn:tpmon:incident:{number}:update:{ident}",
                title=f"{title} — {changes(update, settings, lang) or phase_label(update.status, lang)}",
                updated=update.at,
                link=f"{base}/incidents/{number}",
                html=_html(
                    update.message.pick(lang),
                    update.practitioner_consigne.pick(lang),
                    update.member_consigne.pick(lang),
                    lang,
                    notes,
                    _outdates(incident, position, lang),
                ),
            )
            found.append(((update.at, number, position), entry))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [entry for _, entry in found[:LIMIT]]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _title(scope: Scope, lang: Lang) -> str:
    return f"{_text('title', lang)} — {scope.name}"


def atom_feed(scope: Scope, items: list[Entry], lang: Lang, base: str, self_url: str, now: datetime) -> bytes:
    """An Atom 1.0 document (RFC 4287) with every required element."""
    feed = ET.Element("feed", {"xmlns": ATOM, "{http://www.w3.org/XML/1998/namespace}lang": lang})
    _sub(feed, "id", f"urn:tpmon:feed:{scope.key or 'all'}")
    _sub(feed, "title", _title(scope, lang))
    _sub(feed, "subtitle", _text("description", lang, scope=scope.name))
    _sub(feed, "updated", _stamp(max((e.updated for e in items), default=now)))
    _sub(_sub(feed, "author"), "name", "tpmon")
    _sub(feed, "link", rel="self", type=MEDIA["atom"].split(";")[0], href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=f"{base}{scope.path}")
    for item in items:
        entry = _sub(feed, "entry")
        _sub(entry, "id", item.id)
        _sub(entry, "title", item.title)
        _sub(entry, "updated", _stamp(item.updated))
        _sub(entry, "published", _stamp(item.updated))
        _sub(entry, "link", rel="alternate", type="text/html", href=item.link)
        _sub(entry, "content", item.html, type="html")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


def rss_feed(scope: Scope, items: list[Entry], lang: Lang, base: str, self_url: str, now: datetime) -> bytes:
    """An RSS 2.0 document; pubDate in RFC 822 (GMT)."""
    rss = ET.Element("rss", {"version": "2.0", "xmlns:atom": ATOM})
    channel = _sub(rss, "channel")
    _sub(channel, "title", _title(scope, lang))
    _sub(channel, "link", f"{base}{scope.path}")
    _sub(channel, "description", _text("description", lang, scope=scope.name))
    _sub(channel, "language", "fr-FR" if lang == "fr" else "en")
    _sub(channel, "lastBuildDate", rfc822(max((e.updated for e in items), default=now).astimezone(UTC), usegmt=True))
    _sub(channel, "atom:link", rel="self", type=MEDIA["rss"].split(";")[0], href=self_url)
    for item in items:
        element = _sub(channel, "item")
        _sub(element, "title", item.title)
        _sub(element, "link", item.link)
        _sub(element, "guid", item.id, isPermaLink="false")
        _sub(element, "pubDate", rfc822(item.updated.astimezone(UTC), usegmt=True))
        _sub(element, "description", item.html)
    document: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return document


def _endpoint(kind: Kind) -> Callable[[Request], Awaitable[Response]]:
    build = atom_feed if kind == "atom" else rss_feed

    async def answer(request: Request) -> Response:
        services = request.state.services
        lang: Lang = "en" if request.query_params.get("lang") == "en" else "fr"
        snapshot = services.snapshot()
        scope = scope_of(snapshot.settings, request.path_params.get("network"), request.path_params.get("line"), lang)
        if scope is None:
            return PlainTextResponse("Réseau ou ligne inconnu / unknown network or line", status_code=404)
        incidents = snapshot.recent_incidents  # the newest incidents, as the page and the JSON tell them now
        base = public_origin(request)  # never the Host header as sent: it could be anyone's
        self_url = f"{base}{request.url.path}" + ("?lang=en" if lang == "en" else "")
        found = entries(incidents, scope, lang, base, snapshot.settings)
        body = build(scope, found, lang, base, self_url, services.clock())
        return Response(body, headers={"Content-Type": MEDIA[kind], "Cache-Control": "max-age=60"})

    return answer


def feed_routes() -> list[tuple[str, Callable[[Request], Awaitable[Response]]]]:
    """(path, endpoint) of the six feeds."""
    prefixes = ("", "/reseaux/{network}", "/reseaux/{network}/{line}")
    return [(f"{prefix}/feed.{kind}", _endpoint(kind)) for prefix in prefixes for kind in KINDS]
