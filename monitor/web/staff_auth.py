"""Who is asking, on the operators' listener: a machine token (`Authorization: Bearer`) or a staff session (cookie),
with the CSRF and origin checks a cookie needs. The sign-in endpoints and the console use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ..i18n import N_, Text, said
from ..operators.staff_access import Current, Granted
from ..staff.audit import Listener
from ..staff.sessions import COOKIE, SECURE_COOKIE, Stage, csrf_valid, set_cookie_header
from ..staff.tokens import KnownToken
from .admin_context import AdminContext

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "AuthProblem",
    "bearer",
    "clear_session_cookie",
    "client_address",
    "context",
    "csrf_ok",
    "is_secure",
    "same_origin",
    "session",
    "session_id",
    "set_session_cookie",
    "token",
]

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"  # the hidden field of the console's forms
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class AuthProblem(Exception):
    """A request refused before it reaches its handler: `status` (401, 403, 429), a message, and headers."""

    status: int
    message: str  # English (the push API, logs)
    headers: Mapping[str, str]
    reason: str  # for the audit: missing, unknown, revoked, expired, throttled
    prefix: str = ""
    said: Text | None = None  # the message in each language (the admin API says it in the request's)

    @classmethod
    def of(cls, status: int, text: Text, headers: Mapping[str, str], reason: str, prefix: str = "") -> AuthProblem:
        return cls(status, text.render("en"), headers, reason, prefix, text)

    def text(self, lang: str) -> str:
        return self.message if self.said is None else self.said.render(lang)


_VERDICTS = {
    "unknown": N_("authorization: unknown token"),
    "revoked": N_("authorization: this token is revoked"),
    "expired": N_("authorization: this token is expired"),
}


def context(request: Request) -> AdminContext:
    services: AdminContext = request.state.services
    return services


def client_address(request: Request) -> str:
    """The client's address, for the throttles in memory only (never stored, never logged)."""
    return request.client.host if request.client else "unknown"


def bearer(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`; None without one."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="tpmon"' + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}


async def token(request: Request, secret: str | None, listener: Listener) -> KnownToken:
    """The live token `secret` is, or AuthProblem: 401 when missing or wrong, 429 when this address has sent too many
    wrong ones lately (guessing costs time). Refusals are counted for the audit trail by the caller."""
    services = context(request)
    desk, address = services.desk, client_address(request)
    wait = desk.wrong_tokens.blocked(address)
    if wait:
        headers = {"Retry-After": str(int(wait))}
        throttled = said("too many refused tokens from this address; retry later")
        raise AuthProblem.of(429, throttled, headers, "throttled")
    if not secret:
        raise AuthProblem.of(401, said("authorization: a Bearer token is required"), _challenge(), "missing")
    found = await desk.tokens.lookup(secret, services.clock())
    if found.token is None:
        desk.wrong_tokens.fail(address)
        verdict = _VERDICTS.get(found.verdict, _VERDICTS["unknown"])
        raise AuthProblem.of(401, said(verdict), _challenge("invalid_token"), found.verdict, found.prefix)
    desk.tokens.used(found.token, services.clock())
    return found.token


# Sessions (the console and the sign-in endpoints)


def is_secure(request: Request) -> bool:
    """Whether the session cookie must be Secure: always if configured so, else when the request came over HTTPS
    (uvicorn takes the scheme from X-Forwarded-Proto when the proxy is trusted)."""
    return context(request).settings.admin.secure_cookies == "always" or request.url.scheme == "https"


def session_id(request: Request) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)


async def session(request: Request, *, stage: Stage = "full") -> Current | None:
    """The live staff session of this request's cookie at `stage`, or None."""
    access = context(request).desk.access
    return await asyncio.to_thread(access.current, session_id(request), stage=stage)


def set_session_cookie(response: Response, request: Request, granted: Granted) -> None:
    lifetime = int(context(request).settings.admin.session_lifetime)
    name, value = set_cookie_header(granted.session_id, secure=is_secure(request), max_age=lifetime)
    response.headers.append(name, value)


def clear_session_cookie(response: Response, request: Request) -> None:
    name, value = set_cookie_header("", secure=is_secure(request), max_age=0)
    response.headers.append(name, value)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (Origin, or Sec-Fetch-Site)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        here = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != here:
            return False
    elif origin == "null":
        return False
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


def csrf_ok(request: Request, current: Current, form_value: str | None = None) -> bool:
    """For a state-changing request on a session: same origin, and the session's CSRF token in the
    `X-CSRF-Token` header or the form's `csrf` field (SameSite=Strict is the first wall, this the second)."""
    if request.method not in UNSAFE:
        return True
    given = request.headers.get(CSRF_HEADER) or form_value
    return same_origin(request) and csrf_valid(current.session_id, given)
