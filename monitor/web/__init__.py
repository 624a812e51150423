"""Starlette routes: the public pages, the JSON APIs, feeds and badges, health and readiness, metrics; and the
operators' listener's (`admin_routes`)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..exposition import CONTENT_TYPE
from .admin_routes import admin_routes, public_push_routes
from .api_v1 import api_routes
from .badges import badge
from .feeds import feed_routes
from .page_cache import cached
from .page_routes import html_routes
from .site_context import SiteContext
from .statuspage_json import statuspage_routes
from .subscription_pages import subscription_routes

__all__ = ["admin_routes", "routes"]


def _services(request: Request) -> SiteContext:
    services: SiteContext = request.state.services
    return services


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    problems = await asyncio.to_thread(_services(request).readiness_problems)
    body: dict[str, Any] = {"ready": not problems, "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


async def metrics(request: Request) -> Response:
    # rendered on the event loop, which gets it back after every millisecond of work, and sent in slices: a
    # thread would keep the GIL for most of the render and hold up every probe due meanwhile
    return StreamingResponse(_services(request).metrics_exposition(), media_type=CONTENT_TYPE)


async def not_found(request: Request) -> Response:
    """Last route: any other path, whatever the method, is a 404 — the public listener writes nothing, and a 405
    would hint at a path (say, the operators' POST /api/v1/incidents) that this listener does not serve."""
    raise HTTPException(404)


def routes() -> list[Route | Mount]:
    return [
        *public_push_routes(),  # 404 unless the operator opens pushes on the public listener
        *api_routes(),
        # documents with absolute URLs: their public origin is part of their key (never a hostile Host)
        *(
            Route(path, cached(endpoint, absolute=True), methods=["GET", "HEAD"])
            for path, endpoint in statuspage_routes()
        ),
        *(Route(path, cached(endpoint, absolute=True), methods=["GET", "HEAD"]) for path, endpoint in feed_routes()),
        Route("/badge/{network}/{line}.svg", cached(badge), methods=["GET", "HEAD"]),
        *html_routes(),  # after the feeds: /reseaux/{network}/feed.atom is not a line
        *subscription_routes(),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
        Route("/{path:path}", not_found, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    ]
