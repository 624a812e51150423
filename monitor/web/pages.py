"""The public HTML pages as routes: each builder runs in a thread, its page is cached until what it shows changes."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..errors import StoreError
from .incident_pages import build_incident, build_incidents
from .info_pages import build_accessibility, build_members, build_members_network, build_method
from .network_page import build_line, build_network
from .overview import build_index
from .render import Links, render
from .site import cached, request_lang

if TYPE_CHECKING:
    from ..app import Services

__all__ = ["PAGES", "Builder", "page_routes"]

# (services, lang, links, path parameters) -> the page, or None when what the path names does not exist
Builder = Callable[..., str | None]


# path → builder; the static export walks the same table
PAGES: dict[str, Builder] = {
    "/": build_index,
    "/reseaux/{network}": build_network,
    "/reseaux/{network}/{line}": build_line,
    "/incidents": build_incidents,
    "/incidents/{incident}": build_incident,
    "/assures": build_members,
    "/assures/{network}": build_members_network,
    "/accessibilite": build_accessibility,
    "/methode": build_method,
}
# query parameters passed to the builders that take them (the static export turns `?page=N` into /page/N/)
QUERY = ("page",)


def error_page(request: Request, status: int) -> Response:
    """A 404 or 503 in the visitor's language, with the way back."""
    lang = request_lang(request)
    html = render("error.html", lang, Links(lang), request.url.path, status=status)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def _endpoint(builder: Builder) -> Callable[[Request], Any]:
    reads = [name for name in QUERY if name in inspect.signature(builder).parameters]

    async def page(request: Request) -> Response:
        services: Services = request.state.services
        lang = request_lang(request)
        try:
            query = {name: request.query_params[name] for name in reads if name in request.query_params}
            html = await asyncio.to_thread(builder, services, lang, Links(lang), **request.path_params, **query)
        except StoreError:
            return error_page(request, 503)
        if html is None:
            return error_page(request, 404)
        return HTMLResponse(html, headers={"content-language": lang})

    page.__name__ = getattr(builder, "__name__", "page").lstrip("_")
    return page


def page_routes() -> list[Route]:
    return [Route(path, cached(_endpoint(builder)), methods=["GET", "HEAD"]) for path, builder in PAGES.items()]
