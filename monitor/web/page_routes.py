"""The public HTML pages as routes: each builder runs on the page cache's threads, its page is cached until what it
shows changes (and served late from there, with its age, when it cannot be built again in time)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..errors import StoreError
from ..i18n import Lang
from .home_page import FILTER, build_index
from .incident_pages import build_incident, build_incidents
from .info_pages import build_accessibility, build_method
from .line_page import build_line
from .member_pages import build_members, build_members_network
from .network_page import build_network
from .page_cache import cached, request_lang
from .render import Links, PageArgs, render
from .site_context import SiteContext

__all__ = ["PAGES", "Builder", "Page", "html_routes"]

# (site, lang, links, path parameters and `page`) -> the page, or None when what the path names does not exist
Builder = Callable[[SiteContext, Lang, Links, PageArgs], str | None]


@dataclass(frozen=True)
class Page:
    """A public page: its builder, whether it is a list paged by `?page=N` (the export writes /page/N/), and the
    query parameters it reads (a filter; the builder answers None, a 404 never cached, for a value it does not know)."""

    build: Builder
    paged: bool = False
    query: tuple[str, ...] = ()


# path → builder; the static export walks the same table
PAGES: dict[str, Page] = {
    "/": Page(build_index, query=(FILTER,)),
    "/reseaux/{network}": Page(build_network),
    "/reseaux/{network}/{line}": Page(build_line),
    "/incidents": Page(build_incidents, paged=True),
    "/incidents/{incident}": Page(build_incident),
    "/assures": Page(build_members),
    "/assures/{network}": Page(build_members_network),
    "/accessibilite": Page(build_accessibility),
    "/methode": Page(build_method),
}


def error_page(request: Request, status: int) -> Response:
    """A 404 or 503 in the visitor's language, with the way back."""
    lang = request_lang(request)
    html = render("error.html", lang, Links(lang), request.url.path, status=status)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def _endpoint(page: Page) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        services: SiteContext = request.state.services
        lang = request_lang(request)
        args = dict(request.path_params)
        if page.paged and "page" in request.query_params:
            args["page"] = request.query_params["page"]
        args.update({name: request.query_params[name] for name in page.query if name in request.query_params})
        try:
            links = Links(lang, subscribe=getattr(services, "subscriptions", None) is not None)
            html = await services.pages.run(page.build, services, lang, links, args)
        except StoreError:
            return error_page(request, 503)
        if html is None:
            return error_page(request, 404)
        return HTMLResponse(html, headers={"content-language": lang})

    endpoint.__name__ = page.build.__name__.removeprefix("build_")
    return endpoint


def html_routes() -> list[Route]:
    return [
        Route(path, cached(_endpoint(page), params=_reads(page)), methods=["GET", "HEAD"])
        for path, page in PAGES.items()
    ]


def _reads(page: Page) -> tuple[str, ...]:
    """The query parameters a page's cache key holds: the ones it reads (any other names the same page)."""
    return (("page",) if page.paged else ()) + page.query
