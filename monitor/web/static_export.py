"""The static export: every public page in French and English, and every feed, badge, JSON document and static
file exactly as the app serves it, written as plain files that any static web server or CDN can serve.

Pages are rendered by the PAGES builders with exported links (`/…/index.html`, English under `/en/`, paged lists
at `/incidents/page/2/`); everything else is fetched from the app in-process. tpmon's own API paths that do not
end in `.json` are written as `<path>.json` (`/api/v1/status` → `/api/v1/status.json`), so that a server types
them by extension. Before the export replaces the previous one, every same-origin link of every page must lead
to a file of the export.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import StoreError
from ..i18n import LANGS
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
    "broken_links",
    "check_target",
    "expand",
    "export_site",
    "origin_of",
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
        raise ExportError(
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
            f"base URL {base_url!r}: give the origin the export will be served at, e.g. https://etat.example.fr "
            "(the site's links start at the root)"
        )
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Site:
    """The export folder being written: counts files and bytes, never writes outside its root."""

    root: Path
    files: int = 0
    size: int = 0

    def write(self, address: str, body: bytes) -> None:
        relative = posixpath.normpath(address.lstrip("/"))
        if relative.startswith("..") or relative in ("", "."):
            raise ExportError(f"the export cannot write {address!r}")
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        self.files += 1
        self.size += len(body)


@dataclass(frozen=True)
class ExportReport:
    target: Path
    files: int
    size: int
    seconds: float

    def __str__(self) -> str:
        return f"exported {self.files} files ({self.size:,} bytes) to {self.target} in {self.seconds:.1f} s"


async def _render(services: SiteContext, builder: Builder, address: str, params: dict[str, str], site: Site) -> bool:
    """Write the page at live `address` in every language; False when the builder says it does not exist."""
    checked_at = services.snapshot().checked_at
    for lang in LANGS:
        links = Links(lang, exported=True, checked_at=checked_at)
        html = await asyncio.to_thread(builder, services, lang, links, params)
        if html is None:
            return False
        site.write(links.page(address) + "index.html", html.encode("utf-8"))
    return True


async def _render_pages(services: SiteContext, inventory: Inventory, site: Site) -> None:
    for pattern, page in PAGES.items():
        # a list paged by `?page=N`: its pages are rendered until one does not exist
        builder, paged = page.build, page.paged
        for address, params in expand(pattern, inventory):
            if not await _render(services, builder, address, params, site) or not paged:
                continue
            for number in range(2, MAX_PAGES):
                if not await _render(
                    services, builder, f"{address}?page={number}", {**params, "page": str(number)}, site
                ):
                    break
            else:
                raise ExportError(f"{address} still has a page {MAX_PAGES}; its builder never ends")
    # any address the server does not know: links start at the root, so one page serves every depth; the
    # empty path makes its language switch lead to the home page of the other language, and no menu item current
    checked_at = services.snapshot().checked_at
    site.write(
        "/404.html",
        render("error.html", "fr", Links("fr", exported=True, checked_at=checked_at), "", status=404).encode("utf-8"),
    )


def _file_addresses(inventory: Inventory) -> list[tuple[str, str]]:
    """(address fetched from the app, address of the file written) of every resource that is not a page."""
    patterns = [path for path, _ in statuspage_routes()] + list(API_PATHS) + [path for path, _ in feed_routes()]
    found = []
    for pattern in [*patterns, BADGES]:
        for address, _ in expand(pattern, inventory):
            typed = address.endswith(".json") or not address.startswith("/api/")
            found.append((address, address if typed else f"{address}.json"))
    static = resources.files("monitor.web") / "static"
    found += [(f"/static/{entry.name}", f"/static/{entry.name}") for entry in static.iterdir() if entry.is_file()]
    return found


async def _fetch_files(client: httpx.AsyncClient, inventory: Inventory, site: Site) -> None:
    for address, file in _file_addresses(inventory):
        response = await client.get(address)
        if response.status_code != 200:
            raise ExportError(f"{address} answered {response.status_code}; nothing was replaced")
        site.write(file, response.content)


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
    broken = []
    for page in sorted(root.rglob("*.html")):
        address = "/" + page.relative_to(root).as_posix()
        parser = _References()
        parser.feed(page.read_text(encoding="utf-8"))
        parser.close()
        for reference in parser.found:
            target = urlsplit(urljoin(origin + address, reference))
            if target.scheme not in ("http", "https") or f"{target.scheme}://{target.netloc}" != origin:
                continue  # another site, mailto:, tel:
            if target.query or not _holds(root, unquote(target.path)):  # a static server ignores the query
                broken.append(f"{address} → {reference}")
    return broken


def _holds(root: Path, address: str) -> bool:
    relative = posixpath.normpath(address.lstrip("/") or ".")
    if relative.startswith(".."):
        return False
    path = root / relative
    if address.endswith("/"):
        return (path / "index.html").is_file()
    return path.is_file() or (path / "index.html").is_file()  # a folder: static servers redirect to `…/`


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
            with staging(target) as root:
                site = Site(root)
                inventory = await asyncio.to_thread(Inventory.read, services)
                await _render_pages(services, inventory, site)
                # the feeds' and JSON documents' absolute URLs start with the origin the export will be served at
                transport = httpx.ASGITransport(app=_with_state(app, {**state, "public_origin": origin}))
                async with httpx.AsyncClient(transport=transport, base_url=origin) as client:
                    await _fetch_files(client, inventory, site)
                broken = broken_links(root, origin)
                if broken:
                    raise ExportError(
                        f"{len(broken)} link(s) of the export lead nowhere, first {broken[0]}; nothing was replaced"
                    )
                write_marker(root, site.files, site.size)
                swap_in(root, check_target(target))
    except StoreError as exc:
        raise ExportError(f"cannot read the store: {exc}") from None
    return ExportReport(target, site.files, site.size, time.monotonic() - started)
