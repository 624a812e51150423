"""Starlette routes: the public pages, the JSON APIs, feeds and badges, health and readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..exposition import CONTENT_TYPE
from .api_v1 import api_routes
from .badges import badge
from .feeds import feed_routes
from .page_cache import cached
from .page_routes import html_routes
from .site_context import SiteContext
from .statuspage_json import statuspage_routes

__all__ = ["routes"]


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
    # rendered on the event loop, which gets it back every few milliseconds, and sent family by family: a
    # thread would keep the GIL for most of the render and hold up every probe due meanwhile
    return StreamingResponse(_services(request).metrics_exposition(), media_type=CONTENT_TYPE)


def routes() -> list[Route | Mount]:
    return [
        *api_routes(),
        *(Route(path, cached(endpoint), methods=["GET", "HEAD"]) for path, endpoint in statuspage_routes()),
        *(Route(path, cached(endpoint), methods=["GET", "HEAD"]) for path, endpoint in feed_routes()),
        Route("/badge/{network}/{line}.svg", cached(badge), methods=["GET", "HEAD"]),
        *html_routes(),  # after the feeds: /reseaux/{network}/feed.atom is not a line
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ]
