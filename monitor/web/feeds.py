"""Atom and RSS feeds: one entry per incident update, for everything, per network and per line.

`/feed.atom|.rss`, `/reseaux/{network}/feed.atom|.rss`, `/reseaux/{network}/{line}/feed.atom|.rss`.
The newest updates first, at most LIMIT. A network's feed holds the incidents naming any of its components;
a line's feed those naming the line or its network as a whole. French, English with `?lang=en` (French
wherever ops wrote no English). The XML is built with ElementTree: ops text is never concatenated into
markup; in the `content`/`description` it is the HTML of `text.render` (Markdown, then sanitized), escaped once more
as the text of an element, as Atom's `type="html"` and RSS's `description` expect.

Ids are stable URNs that do not depend on the language or on the host: `urn:tpmon:feed:line:alpha/optique`,
`urn:tpmon:incident:3:update:7`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime as rfc822
from typing import Literal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..config import Settings
from ..declared.incidents import Incident
from ..errors import StoreError
from ..i18n import Lang
from ..models import ComponentRef
from ..store.declaration_store import Declarations
from .incident_view import PHASES
from .ops_markdown import render
from .page_cache import public_origin

__all__ = ["ATOM", "LIMIT", "Entry", "Scope", "atom_feed", "entries", "feed_routes", "rss_feed", "scope_of"]

ATOM = "http://www.w3.org/2005/Atom"
LIMIT = 50  # entries per feed
Kind = Literal["atom", "rss"]
KINDS: tuple[Kind, ...] = ("atom", "rss")
MEDIA = {"atom": "application/atom+xml; charset=utf-8", "rss": "application/rss+xml; charset=utf-8"}
TEXTS: dict[str, dict[Lang, str]] = {
    "title": {"fr": "État du tiers payant", "en": "Tiers payant status"},
    "all": {"fr": "tous les réseaux", "en": "all networks"},
    "description": {
        "fr": "Incidents et mises à jour publiés par l'exploitation : {scope}",
        "en": "Incidents and updates published by operations: {scope}",
    },
    "practitioners": {"fr": "Consigne aux professionnels de santé", "en": "Advice for healthcare professionals"},
    "members": {"fr": "Consigne aux assurés", "en": "Advice for insured members"},
}


@dataclass(frozen=True)
class Scope:
    """What a feed covers: everything (`key` empty), a network or one of its lines."""

    key: str  # "", "network:alpha" or "line:alpha/optique"
    name: str  # "Alpha · Optique", in the feed's language
    path: str  # the page it stands for
    network: str = ""
    line: str = ""

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


def scope_of(settings: Settings, network: str | None, line: str | None, lang: Lang) -> Scope | None:
    """The scope named by the path, None when the network or line is unknown."""
    if network is None:
        return Scope("", TEXTS["all"][lang], "/")
    found = settings.networks.get(network)
    if found is None:
        return None
    if line is None:
        return Scope(f"network:{network}", found.name, f"/reseaux/{network}", network)
    if line not in found.lines:
        return None
    label: str = getattr(settings.lines[line].label, lang)
    return Scope(f"line:{network}/{line}", f"{found.name} · {label}", f"/reseaux/{network}/{line}", network, line)


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    updated: datetime
    link: str
    html: str


def _html(message: str, practitioners: str, members: str, lang: Lang) -> str:
    parts = [str(render(message))]
    for key, text in (("practitioners", practitioners), ("members", members)):
        if text.strip():
            parts.append(f"<h3>{TEXTS[key][lang]}</h3>{render(text)}")  # our own heading, then escaped text
    return "".join(parts)


def entries(incidents: Iterable[Incident], scope: Scope, lang: Lang, base: str) -> list[Entry]:
    """One entry per update of the incidents `scope` covers, newest first, at most LIMIT."""
    found: list[tuple[tuple[datetime, int, int], Entry]] = []
    for incident in incidents:
        if not scope.covers(incident.components):
            continue
        number = incident.id or 0
        title = incident.title.pick(lang)
        for position, update in enumerate(incident.updates):
            ident = update.id if update.id is not None else position
            entry = Entry(
                id=f"urn:tpmon:incident:{number}:update:{ident}",
                title=f"{title} — {PHASES[update.status][lang]}",
                updated=update.at,
                link=f"{base}/incidents/{number}",
                html=_html(
                    update.message.pick(lang),
                    update.practitioner_consigne.pick(lang),
                    update.member_consigne.pick(lang),
                    lang,
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
    return f"{TEXTS['title'][lang]} — {scope.name}"


def atom_feed(scope: Scope, items: list[Entry], lang: Lang, base: str, self_url: str, now: datetime) -> bytes:
    """An Atom 1.0 document (RFC 4287) with every required element."""
    feed = ET.Element("feed", {"xmlns": ATOM, "{http://www.w3.org/XML/1998/namespace}lang": lang})
    _sub(feed, "id", f"urn:tpmon:feed:{scope.key or 'all'}")
    _sub(feed, "title", _title(scope, lang))
    _sub(feed, "subtitle", TEXTS["description"][lang].format(scope=scope.name))
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
    _sub(channel, "description", TEXTS["description"][lang].format(scope=scope.name))
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
        scope = scope_of(services.settings, request.path_params.get("network"), request.path_params.get("line"), lang)
        if scope is None:
            return PlainTextResponse("Réseau ou ligne inconnu / unknown network or line", status_code=404)
        declarations = Declarations(services.store, services.settings)
        try:
            incidents = await services.pages.run(declarations.incidents, limit=LIMIT)
        except StoreError:
            text = "La base de données est injoignable ; réessayez / the database is unreachable; try again shortly"
            return PlainTextResponse(text, status_code=503, headers={"Retry-After": "30"})
        base = public_origin(request)  # never the Host header as sent: it could be anyone's
        self_url = f"{base}{request.url.path}" + ("?lang=en" if lang == "en" else "")
        body = build(scope, entries(incidents, scope, lang, base), lang, base, self_url, services.clock())
        return Response(body, headers={"Content-Type": MEDIA[kind], "Cache-Control": "max-age=60"})

    return answer


def feed_routes() -> list[tuple[str, Callable[[Request], Awaitable[Response]]]]:
    """(path, endpoint) of the six feeds."""
    prefixes = ("", "/reseaux/{network}", "/reseaux/{network}/{line}")
    return [(f"{prefix}/feed.{kind}", _endpoint(kind)) for prefix in prefixes for kind in KINDS]
