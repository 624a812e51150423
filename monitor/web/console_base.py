"""The console's common ground: who is signed in, CSRF on every form (the sign-in form too, before any session),
the visitor's language, reading a form, and rendering a console page. Pages are server-rendered; no script is
needed (console.js only keeps a slider and its number together)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import NotAllowed, NotFound, StoreError
from ..i18n import Lang
from ..operators.staff_access import Current
from ..staff.sessions import csrf_token, csrf_valid
from ..store import WriteRefused
from .admin_context import AdminContext
from .page_cache import request_lang
from .render import Links, render
from .staff_auth import CSRF_FIELD, context, is_secure, same_origin, session

__all__ = [
    "MAX_FORM",
    "PRE_COOKIE",
    "FormTooLarge",
    "Handler",
    "Visit",
    "csrf_page",
    "csrf_refused",
    "form_of",
    "guard_page",
    "read_form",
    "redirect",
    "refusal_page",
    "signed_in",
    "visit",
    "write_error",
]

Handler = Callable[[Request], Awaitable[Response]]

MAX_FORM = 64 * 1024  # a form is a few texts of at most 5,000 characters each
PRE_COOKIE = "tpmon_presession"  # before sign-in: the sign-in form's CSRF token is derived from it
SECURE_PRE_COOKIE = "__Host-tpmon_presession"  # the same behind HTTPS (Secure, this host only, path /)
LANG_COOKIE = "lang"
NO_STORE = {"Cache-Control": "no-store"}


class FormTooLarge(Exception):
    """A form body over MAX_FORM."""


@dataclass
class Visit:
    """One request to the console: its language, the signed-in staff member (None before sign-in), and the CSRF
    token its forms carry (the session's, or the pre-session cookie's on the sign-in pages)."""

    request: Request
    lang: Lang
    current: Current | None
    csrf: str
    new_pre: str | None = None  # a pre-session value to set as a cookie with this answer

    @property
    def services(self) -> AdminContext:
        return context(self.request)

    @property
    def fr(self) -> bool:
        return self.lang == "fr"

    def say(self, fr: str, en: str) -> str:
        return fr if self.lang == "fr" else en

    def page(self, template: str, *, status: int = 200, **values: Any) -> Response:
        """A console page; never cached (it shows what this account may see), in the visit's language."""
        path = self.request.url.path
        html = render(
            f"console/{template}",
            self.lang,
            Links(self.lang),
            path,
            visit=self,
            current=self.current,
            user=self.current.user if self.current else None,
            csrf=self.csrf,
            csrf_field=CSRF_FIELD,
            **values,
        )
        response = HTMLResponse(html, status_code=status, headers={**NO_STORE, "content-language": self.lang})
        self.finish(response)
        return response

    def finish(self, response: Response) -> None:
        """The cookies this visit sets: the chosen language, and the pre-session value of a sign-in form."""
        chosen = self.request.query_params.get("lang")
        if chosen in ("fr", "en") and self.request.cookies.get(LANG_COOKIE) != chosen:
            response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, path="/", samesite="strict")
        if self.new_pre is not None:
            secure = is_secure(self.request)
            name = SECURE_PRE_COOKIE if secure else PRE_COOKIE
            response.set_cookie(name, self.new_pre, path="/", httponly=True, samesite="strict", secure=secure)


async def visit(request: Request, *, stage: str = "full") -> Visit:
    """The visit of `request`: the live session at `stage` ("full", "enrol", or "none" for the sign-in pages)."""
    lang = request_lang(request)
    current = await session(request, stage="enrol" if stage == "enrol" else "full") if stage != "none" else None
    if current is not None:
        return Visit(request, lang, current, current.csrf)
    pre = _pre_cookie(request)
    new_pre = None
    if not (20 <= len(pre) <= 100 and pre.isascii()):
        pre = new_pre = secrets.token_urlsafe(32)
    return Visit(request, lang, None, csrf_token(pre), new_pre)


def _pre_cookie(request: Request) -> str:
    return request.cookies.get(SECURE_PRE_COOKIE) or request.cookies.get(PRE_COOKIE, "")


def csrf_refused(request: Request, current: Current | None, form: Mapping[str, str]) -> bool:
    """Whether a form post must be refused: another origin, or not this session's (or pre-session's) token."""
    if not same_origin(request):
        return True
    given = form.get(CSRF_FIELD)
    if current is not None:
        return not csrf_valid(current.session_id, given)
    pre = _pre_cookie(request)
    return not (pre and csrf_valid(pre, given))


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form as a dict (the last value of a repeated field); FormTooLarge past MAX_FORM."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            raise FormTooLarge
        chunks.append(chunk)
    if kind != "application/x-www-form-urlencoded":
        return {}
    raw = b"".join(chunks).decode("utf-8", "replace")
    return dict(parse_qsl(raw, keep_blank_values=True, max_num_fields=400))


def refusal_page(v: Visit, status: int, title: str, detail: str) -> Response:
    return v.page("refused.html", status=status, title=title, detail=detail)


def write_error(v: Visit, exc: Exception) -> Response:
    """A write refused by the domain or the store, as a page that says why."""
    if isinstance(exc, NotAllowed):
        return refusal_page(v, 403, v.say("Action non autorisée", "Not allowed"), exc.text(v.lang))
    if isinstance(exc, NotFound):
        return refusal_page(v, 404, v.say("Introuvable", "Not found"), exc.text(v.lang))
    if isinstance(exc, WriteRefused):
        return refusal_page(
            v, 409, v.say("Modification concurrente", "Concurrent change"),
            v.say("Une autre modification est passée entre-temps : rechargez la page et recommencez.",
                  "Another change went through meanwhile: reload the page and try again."),
        )  # fmt: skip
    return refusal_page(
        v, 503, v.say("Base de données indisponible", "Database unavailable"),
        v.say("La base de données ne répond pas ; réessayez dans un instant.",
              "The database does not answer; retry shortly."),
    )  # fmt: skip


def guard_page(handler: Callable[[Visit], Awaitable[Response]], *, admin: bool = False) -> Handler:
    """A page for signed-in staff: without a session, to the sign-in page; a form post needs this session's CSRF
    token and the same origin (403 otherwise); `admin` pages refuse other roles."""

    async def endpoint(request: Request) -> Response:
        v = await visit(request)
        try:
            if v.current is None:
                if await session(request, stage="enrol") is not None:
                    return redirect("/connexion/second-facteur")  # the second factor first
                wanted = request.url.path if request.method == "GET" else "/"
                return redirect("/connexion" + (f"?suite={wanted}" if wanted not in ("/", "") else ""))
            if admin and not v.current.principal.is_admin:
                return refusal_page(
                    v, 403, v.say("Réservé aux administrateurs", "Admins only"),
                    v.say("Votre compte ne gère ni les comptes ni les jetons.",
                          "Your account does not manage accounts or tokens."),
                )  # fmt: skip
            if request.method == "POST":
                try:
                    form = await read_form(request)
                except FormTooLarge:
                    return refusal_page(v, 413, v.say("Formulaire trop long", "Form too long"), "64 KiB max.")
                if csrf_refused(request, v.current, form):
                    return csrf_page(v)
                request.state.form = form
            return await handler(v)
        except (NotAllowed, NotFound, WriteRefused, StoreError) as exc:
            return write_error(v, exc)

    return endpoint


def csrf_page(v: Visit) -> Response:
    return refusal_page(
        v, 403, v.say("Formulaire refusé", "Form refused"),
        v.say("Ce formulaire a expiré ou ne vient pas de la console (jeton anti-falsification absent ou faux). "
              "Rechargez la page et recommencez.",
              "This form has expired or does not come from the console (anti-forgery token missing or wrong). "
              "Reload the page and try again."),
    )  # fmt: skip


def signed_in(v: Visit) -> Current:
    assert v.current is not None  # guard_page let it through
    return v.current


def form_of(v: Visit) -> dict[str, str]:
    found: dict[str, str] = getattr(v.request.state, "form", {})
    return found


def redirect(path: str) -> Response:
    """After a form post: 303 to the page that shows the result (a reload never posts twice)."""
    return RedirectResponse(path, status_code=303, headers=NO_STORE)
