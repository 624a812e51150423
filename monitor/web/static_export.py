"""The static export: every public page in French and English, and every feed, badge, JSON document and static
file exactly as the app serves it, written as plain files that any static web server or CDN can serve.

Pages are rendered by the PAGES builders with exported links (`/…/index.html`, English under `/en/`, paged lists
at `/incidents/page/2/`); everything else is fetched from the app in-process. tpmon's own API paths that do not
end in `.json` are written as `<path>.json` (`/api/v1/status` → `/api/v1/status.json`), so that a server types
them by extension. Before the export replaces the previous one, every same-origin link of every page must lead
to a file of the export.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import StoreError
from ..i18n import LANGS, format_decimal, literal, said
from ..store.declaration_store import Declarations
from .export_folder import ExportError, check_target, staging, swap_in, write_marker
from .feeds import feed_routes
from .page_routes import PAGES, Builder
from .render import Links, render
from .site_context import SiteContext
from .statuspage_json import statuspage_routes

__all__ = [
    "API_PATHS",
    "ExportReport",
    "Inventory",
    "Site",
    "Unit",
    "broken_links",
    "broken_links_in",
    "check_target",
    "collect_site",
    "expand",
    "export_client",
    "export_site",
    "origin_of",
    "units",
    "write_unit",
]

API_PATHS = (
    "/api/v1/status",
    "/api/v1/networks",
    "/api/v1/networks/{network}",
    "/api/v1/networks/{network}/lines/{line}",
    "/api/v1/checks",
    "/api/v1/incidents",
    "/api/v1/incidents/{id}",
    "/api/v1/maintenance",
    "/api/v1/openapi.json",
)
BADGES = "/badge/{network}/{line}.svg"
MAX_PAGES = 10_000  # of one paged list: past it, a builder that never says "no such page" is a bug
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_REFERENCES = {"a": "href", "area": "href", "link": "href", "script": "src", "img": "src", "iframe": "src"}


@dataclass(frozen=True)
class Inventory:
    """What addresses are enumerated from: the config's networks with the lines each offers, the store's incidents."""

    lines: Mapping[str, tuple[str, ...]]
    incidents: tuple[int, ...]

    @classmethod
    def read(cls, services: SiteContext) -> Inventory:
        """Blocking: reads every incident id from the store."""
        settings = services.settings
        found = Declarations(services.store, settings, clock=services.clock).incidents(limit=None)
        lines = {name: network.lines for name, network in settings.networks.items()}
        return cls(lines, tuple(incident.id for incident in found if incident.id is not None))

    def values(self, name: str, chosen: Mapping[str, str], pattern: str) -> tuple[str, ...]:
        """Every value of the path parameter `name`, given the parameters already chosen on its left."""
        if name == "network":
            return tuple(self.lines)
        if name == "line" and "network" in chosen:
            return self.lines[chosen["network"]]
        if name in ("incident", "id"):
            return tuple(str(number) for number in self.incidents)
        raise ExportError(  # a bug of tpmon, not of its user: said in English
            f"the export cannot list the values of {{{name}}} in {pattern}; teach monitor/web/static_export.py"
        )


def expand(pattern: str, inventory: Inventory) -> list[tuple[str, dict[str, str]]]:
    """Every address of a route `pattern`, with its path parameters; ExportError for a parameter it cannot list."""
    choices: list[dict[str, str]] = [{}]
    for name in _PARAM.findall(pattern):
        choices = [{**chosen, name: value} for chosen in choices for value in inventory.values(name, chosen, pattern)]
    return [(_fill(pattern, params), params) for params in choices]


def _fill(pattern: str, params: Mapping[str, str]) -> str:
    return _PARAM.sub(lambda match: params[match.group(1)], pattern)


def origin_of(base_url: str) -> str:
    """`https://etat.example.fr` from the address the export will be served at; ExportError if it has a path."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ExportError(
            said(
                "base URL {url!r}: give the origin the export will be served at, e.g. https://etat.example.fr "
                "(the site's links start at the root)",
                url=base_url,
            )
        )
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Site:
    """The export being made, in memory: file (relative to the export's root) → bytes; never outside its root."""

    bodies: dict[str, bytes] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return len(self.bodies)

    @property
    def size(self) -> int:
        return sum(len(body) for body in self.bodies.values())

    def write(self, address: str, body: bytes) -> None:
        relative = posixpath.normpath(address.lstrip("/"))
        if relative.startswith("..") or relative in ("", "."):
            raise ExportError(said("the export cannot write {address!r}", address=address))
        self.bodies[relative] = body

    def save(self, root: Path) -> None:
        """Blocking: every file under `root` (a new, empty folder)."""
        for relative, body in self.bodies.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)


@dataclass(frozen=True)
class ExportReport:
    target: Path
    files: int
    size: int
    seconds: float

    def __str__(self) -> str:
        return self.text("en")

    def text(self, lang: str) -> str:
        """What the export did, in `lang` (the command line's language)."""
        done = said(
            "exported {files} files ({size} bytes) to {target} in {seconds} s",
            files=self.files,
            size=format_decimal(self.size, "fr") if lang == "fr" else format(self.size, ","),
            target=self.target,
            seconds=format(self.seconds, ".1f").replace(".", "," if lang == "fr" else "."),
        )
        return done.render(lang)


@dataclass(frozen=True)
class Unit:
    """One step of an export: a page (in every language, and every page of a paged list), or one file asked of the
    app (a feed, a badge, a JSON document, a stylesheet), or the 404 page."""

    kind: Literal["page", "file", "error"]
    pattern: str
    address: str
    params: tuple[tuple[str, str], ...] = ()
    file: str = ""  # a file asked of the app: the file written

    @property
    def network(self) -> str | None:
        """The network whose state this unit shows alone (None: several, or none)."""
        return dict(self.params).get("network")

    @property
    def incident(self) -> bool:
        """A page or document of one incident."""
        return any(name in ("incident", "id") for name, _ in self.params)


def units(inventory: Inventory) -> list[Unit]:
    """Every unit of the export, pages first."""
    found = [
        Unit("page", pattern, address, tuple(params.items()))
        for pattern in PAGES
        for address, params in expand(pattern, inventory)
    ]
    found.append(Unit("error", "/404.html", "/404.html", file="/404.html"))
    patterns = [path for path, _ in statuspage_routes()] + list(API_PATHS) + [path for path, _ in feed_routes()]
    for pattern in [*patterns, BADGES]:
        for address, params in expand(pattern, inventory):
            typed = address.endswith(".json") or not address.startswith("/api/")
            file = address if typed else f"{address}.json"
            found.append(Unit("file", pattern, address, tuple(params.items()), file))
    static = resources.files("monitor.web") / "static"
    found += [
        Unit("file", "/static/", f"/static/{entry.name}", file=f"/static/{entry.name}")
        for entry in static.iterdir()
        if entry.is_file()
    ]
    return found


async def write_unit(unit: Unit, services: SiteContext, client: httpx.AsyncClient, site: Site) -> bool:
    """Render or fetch `unit` into `site`; ExportError when a file cannot be had (StoreError: the store failed).
    True when the app could only give its last rendering in time (an `Age` header): not quite the state of now."""
    late = False
    if unit.kind == "file":
        response = await client.get(unit.address)
        if response.status_code != 200:
            raise ExportError(
                said("{address} answered {code}; nothing was replaced", address=unit.address, code=response.status_code)
            )
        late = "age" in response.headers
        site.write(unit.file, response.content)
    elif unit.kind == "error":
        # any address the server does not know: links start at the root, so one page serves every depth; the
        # empty path makes its language switch lead to the home page of the other language, no menu item current
        links = Links("fr", exported=True, checked_at=services.snapshot().checked_at)
        site.write(unit.file, render("error.html", "fr", links, "", status=404).encode("utf-8"))
    else:
        await _render_page(unit, services, site)
    return late


async def _render(services: SiteContext, builder: Builder, address: str, params: dict[str, str], site: Site) -> bool:
    """Write the page at live `address` in every language; False when the builder says it does not exist."""
    checked_at = services.snapshot().checked_at
    for lang in LANGS:
        links = Links(lang, exported=True, checked_at=checked_at)
        html = await services.pages.run(builder, services, lang, links, params)  # the page cache's threads
        if html is None:
            return False
        site.write(links.page(address) + "index.html", html.encode("utf-8"))
    return True


async def _render_page(unit: Unit, services: SiteContext, site: Site) -> None:
    page, address, params = PAGES[unit.pattern], unit.address, dict(unit.params)
    # a list paged by `?page=N`: its pages are rendered until one does not exist
    if not await _render(services, page.build, address, params, site) or not page.paged:
        return
    for number in range(2, MAX_PAGES):
        if not await _render(services, page.build, f"{address}?page={number}", {**params, "page": str(number)}, site):
            return
    raise ExportError(  # a bug of tpmon, not of its user: said in English
        f"{address} still has a page {MAX_PAGES}; its builder never ends"
    )


def export_client(app: ASGIApp, state: Mapping[str, Any], origin: str) -> httpx.AsyncClient:
    """A client of `app` in-process, as a server that ran its lifespan (`state`) and is served at `origin`: the
    feeds' and JSON documents' absolute URLs start with it."""
    transport = httpx.ASGITransport(app=_with_state(app, {**state, "public_origin": origin}))
    # the files as they are: asking for gzip (httpx's default) had each compressed by the app, then decompressed
    return httpx.AsyncClient(transport=transport, base_url=origin, headers={"Accept-Encoding": "identity"})


def _with_state(app: ASGIApp, state: Mapping[str, Any]) -> ASGIApp:
    """`app` with the lifespan's state in every request, as a server that ran the lifespan passes it."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    return serve


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = _REFERENCES.get(tag)
        self.found += [value for name, value in attrs if name == wanted and value]


def broken_links(root: Path, origin: str) -> list[str]:
    """`page → link` for every same-origin link or source of an exported page that the export does not hold."""
    files = {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
    pages = {page.relative_to(root).as_posix(): page.read_bytes() for page in sorted(root.rglob("*.html"))}
    return _broken(pages, files, origin)


def broken_links_in(site: Site, origin: str) -> list[str]:
    """`broken_links` of an export still in memory."""
    pages = {relative: body for relative, body in sorted(site.bodies.items()) if relative.endswith(".html")}
    return _broken(pages, set(site.bodies), origin)


def _broken(pages: Mapping[str, bytes], files: set[str], origin: str) -> list[str]:
    broken = []
    for relative, body in pages.items():
        address = "/" + relative
        parser = _References()
        parser.feed(body.decode("utf-8"))
        parser.close()
        for reference in parser.found:
            target = urlsplit(urljoin(origin + address, reference))
            if target.scheme not in ("http", "https") or f"{target.scheme}://{target.netloc}" != origin:
                continue  # another site, mailto:, tel:
            if target.query or not _holds(files, unquote(target.path)):  # a static server ignores the query
                broken.append(f"{address} → {reference}")
    return broken


def _holds(files: set[str], address: str) -> bool:
    relative = posixpath.normpath(address.lstrip("/") or ".")
    if relative.startswith(".."):
        return False
    index = "index.html" if relative == "." else f"{relative}/index.html"
    if address.endswith("/"):
        return index in files
    return relative in files or index in files  # a folder: static servers redirect to `…/`


async def collect_site(app: ASGIApp, state: Mapping[str, Any], services: SiteContext, origin: str) -> Site:
    """Every file of the export of `app` (whose lifespan runs, `state` its state), in memory, `origin` the
    address it will be served at. Pages render on the page cache's threads, one at a time."""
    site = Site()
    inventory = await services.pages.run(Inventory.read, services)
    async with export_client(app, state, origin) as client:
        for unit in units(inventory):
            await write_unit(unit, services, client, site)
    return site


async def export_site(app: Starlette, target: Path, *, base_url: str) -> ExportReport:
    """Write the public site of `app` at `target` (the app's lifespan runs here; `schedule=False`: no probe).

    The files are written beside `target`, then swapped in; the previous export is kept on any error.
    """
    started = time.monotonic()
    origin = origin_of(base_url)
    target = check_target(target)
    try:
        async with app.router.lifespan_context(app) as state:
            assert state is not None, "create_app's lifespan yields the services"
            services: SiteContext = state["services"]
            site = await collect_site(app, state, services, origin)
            broken = broken_links_in(site, origin)
            if broken:
                raise ExportError(
                    said(
                        "{count} link(s) of the export lead nowhere, first {first}; nothing was replaced",
                        count=len(broken),
                        first=broken[0],
                    )
                )
            with staging(target) as root:
                site.save(root)
                write_marker(root, site.files, site.size)
                swap_in(root, check_target(target))
    except StoreError as exc:
        raise ExportError(said("cannot read the store: {problem}", problem=exc.said or literal(str(exc)))) from None
    return ExportReport(target, site.files, site.size, time.monotonic() - started)
