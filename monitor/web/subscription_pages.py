"""E-mail subscriptions as plain forms (no script needed): `/abonnement` (ask, per scope), `/abonnement/confirmer`
(double opt-in), `/abonnement/desinscription` (one click, RFC 8058 POST) and `/confidentialite` (the privacy notice).

A link in an e-mail only shows a button: the change is a POST, so that a mail scanner following links changes
nothing. The answer to a request is the same whether the address was known or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..i18n import Lang
from ..notify.scopes import EVERYTHING, scope_label
from .page_cache import request_lang
from .render import Links, render

__all__ = ["SubscriptionService", "subscription_routes"]

MAX_FORM = 4096  # bytes: an address and a scope


class SubscriptionService(Protocol):
    """What the pages ask of the subscription desk (`delivery.subscription_desk.SubscriptionDesk`)."""

    def scope(self, network: str | None, line: str | None) -> str: ...

    def ask(self, address: str, scopes: Sequence[str], lang: str, client: str) -> Literal["sent", "throttled"]: ...

    def confirm(self, token: str) -> tuple[str, ...] | None: ...

    def check_unsubscribe(self, token: str) -> bool: ...

    def unsubscribe(self, token: str) -> bool: ...

    def valid_address(self, address: str) -> bool: ...


class _Context(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def subscriptions(self) -> SubscriptionService | None: ...


def _context(request: Request) -> _Context:
    services: _Context = request.state.services
    return services


def _page(request: Request, template: str, code: int = 200, **context: Any) -> Response:
    lang = request_lang(request)
    settings = _context(request).settings
    links = Links(lang, subscribe=True)
    html = render(template, lang, links, request.url.path, notifications=settings.notifications, **context)
    headers = {"cache-control": "no-store", "content-language": lang}
    return HTMLResponse(html, status_code=code, headers=headers)


def _choices(settings: Settings, lang: Lang) -> list[tuple[str, list[tuple[str, str]]]]:
    """The scopes a visitor may pick, grouped by network: (group label, [(value, label)])."""
    groups = [("", [(EVERYTHING, scope_label(EVERYTHING, settings, lang))])]
    for name, network in settings.networks.items():
        options = [(name, scope_label(name, settings, lang))]
        options += [(f"{name}/{line}", scope_label(f"{name}/{line}", settings, lang)) for line in network.lines]
        groups.append((network.name, options))
    return groups


async def _form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form (what these pages post); anything else, or too long, reads as empty."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _not_offered(request: Request) -> Response:
    return _page(request, "error.html", 404, status=404)


async def subscribe_page(request: Request) -> Response:
    """GET: the form for one scope (`?reseau=…&domaine=…`, nothing: everything). POST: ask for it."""
    context = _context(request)
    desk = context.subscriptions
    if desk is None:
        return _not_offered(request)
    lang = request_lang(request)
    settings = context.settings
    if request.method in ("GET", "HEAD"):
        params = request.query_params
        try:
            scope = desk.scope(params.get("reseau") or None, params.get("domaine") or None)
        except ValueError:
            return _page(request, "error.html", 404, status=404)
        return _page(request, "abonnement.html", scope=scope, choices=_choices(settings, lang), mode="form")
    form = await _form(request)
    address = form.get("adresse", "").strip()
    try:
        network, _, line = form.get("perimetre", EVERYTHING).partition("/")
        scope = desk.scope(None if network == EVERYTHING else network or None, line or None)
    except ValueError:
        scope = EVERYTHING
        return _page(request, "abonnement.html", 400, scope=scope, choices=_choices(settings, lang), mode="form",
                     error="scope", address=address)  # fmt: skip
    if not desk.valid_address(address):
        return _page(request, "abonnement.html", 400, scope=scope, choices=_choices(settings, lang), mode="form",
                     error="address", address=address)  # fmt: skip
    client = request.client.host if request.client else "unknown"
    answer = await asyncio.to_thread(desk.ask, address, [scope], lang, client)
    if answer == "throttled":
        return _page(request, "abonnement.html", 429, mode="throttled", scope=scope)
    return _page(request, "abonnement.html", mode="asked", scope=scope, scope_name=scope_label(scope, settings, lang))


async def confirm_page(request: Request) -> Response:
    """GET: a button to confirm. POST: confirm (the token is in the form)."""
    desk = _context(request).subscriptions
    if desk is None:
        return _not_offered(request)
    if request.method in ("GET", "HEAD"):
        token = request.query_params.get("t", "")
        return _page(request, "abonnement.html", mode="confirm", token=token)
    token = (await _form(request)).get("t", "") or request.query_params.get("t", "")
    scopes = await asyncio.to_thread(desk.confirm, token)
    if scopes is None:
        return _page(request, "abonnement.html", 400, mode="invalid")
    lang = request_lang(request)
    names = [scope_label(scope, _context(request).settings, lang) for scope in scopes]
    return _page(request, "abonnement.html", mode="confirmed", names=names)


async def unsubscribe_page(request: Request) -> Response:
    """GET: a button to unsubscribe. POST: unsubscribe at once — also the one-click POST of RFC 8058, whose body
    is `List-Unsubscribe=One-Click` and whose token is in the address."""
    desk = _context(request).subscriptions
    if desk is None:
        return _not_offered(request)
    token = request.query_params.get("t", "")
    if request.method in ("GET", "HEAD"):
        valid = desk.check_unsubscribe(token)
        return _page(
            request, "abonnement.html", 200 if valid else 400, mode="leave" if valid else "invalid", token=token
        )
    token = token or (await _form(request)).get("t", "")
    if not await asyncio.to_thread(desk.unsubscribe, token):
        return _page(request, "abonnement.html", 400, mode="invalid")
    return _page(request, "abonnement.html", mode="left")


async def privacy_page(request: Request) -> Response:
    """The privacy notice: purpose, data kept, retention, controller, rights."""
    context = _context(request)
    if context.subscriptions is None or context.settings.notifications is None:
        return _not_offered(request)
    notifications = context.settings.notifications
    days = round(notifications.confirm_within / 86400, 1)
    return _page(request, "confidentialite.html", confirm_days=f"{days:g}")


def subscription_routes() -> list[Route]:
    return [
        Route("/abonnement", subscribe_page, methods=["GET", "HEAD", "POST"]),
        Route("/abonnement/confirmer", confirm_page, methods=["GET", "HEAD", "POST"]),
        Route("/abonnement/desinscription", unsubscribe_page, methods=["GET", "HEAD", "POST"]),
        Route("/confidentialite", privacy_page, methods=["GET", "HEAD"]),
    ]
