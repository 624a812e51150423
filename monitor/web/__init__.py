"""Starlette routes: the first status page, the board as JSON, health and readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import StoreError
from ..i18n import STATE_ICONS, format_datetime, format_short, pick_lang
from ..store.declarations import Declarations
from .api import api_routes
from .badges import badge
from .declarations import declarations_view
from .feeds import feed_routes
from .statuspage import statuspage_routes
from .view import board_view

if TYPE_CHECKING:
    from ..app import Services

__all__ = ["routes"]

_templates = Environment(
    loader=PackageLoader("monitor.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals.update(icons=STATE_ICONS, format_datetime=format_datetime, format_short=format_short)


def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


async def index(request: Request) -> Response:
    services = _services(request)
    lang = pick_lang(
        request.query_params.get("lang"), request.cookies.get("lang"), request.headers.get("accept-language")
    )
    view = board_view(services.settings, services.board, lang)
    declarations = Declarations(services.store, services.settings)
    try:
        incidents, windows = await asyncio.to_thread(
            lambda: (declarations.incidents(open_only=True, limit=None), declarations.windows())
        )
    except StoreError:  # the board is in memory: the page still answers, without the declarations
        incidents, windows = [], []
    declared = declarations_view(incidents, windows, services.clock(), lang)
    html = _templates.get_template("index.html").render(view=view, declared=declared, lang=lang)
    response = HTMLResponse(html)
    if request.query_params.get("lang") == lang:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


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
        Route("/", index),
        *api_routes(),
        *(Route(path, endpoint, methods=["GET"]) for path, endpoint in statuspage_routes()),
        *(Route(path, endpoint, methods=["GET"]) for path, endpoint in feed_routes()),
        Route("/badge/{network}/{line}.svg", badge, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ]
