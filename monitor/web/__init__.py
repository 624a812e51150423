"""Starlette routes: the public pages, the JSON APIs, feeds and badges, health and readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import StoreError
from .api import api_routes
from .badges import badge
from .feeds import feed_routes
from .pages import page_routes
from .site import cached
from .statuspage import statuspage_routes

if TYPE_CHECKING:
    from ..app import Services

__all__ = ["routes"]


def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    services = _services(request)
    problems: list[str] = []
    try:
        await asyncio.to_thread(services.store.ping)
    except StoreError:
        problems.append("database unreachable")
    if not services.scheduler.running:
        problems.append("scheduler not running")
    body: dict[str, Any] = {"ready": not problems, "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


async def metrics(request: Request) -> Response:
    # rendering 1,000 checks' series takes 0.3–0.9 s of CPU: off the loop, so probes due meanwhile start on time
    body = await asyncio.to_thread(generate_latest, _services(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route | Mount]:
    return [
        *api_routes(),
        *(Route(path, cached(endpoint), methods=["GET", "HEAD"]) for path, endpoint in statuspage_routes()),
        *(Route(path, cached(endpoint), methods=["GET", "HEAD"]) for path, endpoint in feed_routes()),
        Route("/badge/{network}/{line}.svg", cached(badge), methods=["GET", "HEAD"]),
        *page_routes(),  # after the feeds: /reseaux/{network}/feed.atom is not a line
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ]
