"""Staff sign-in on the operators' listener, as JSON (or a form): open a session with password and TOTP code,
read it, end it, and enrol the second factor. The console (`console_pages`) signs in through the same `StaffAccess`.

One refusal for every failure (unknown account, wrong password or code, disabled or locked account); 429 when
this client address has failed too often. The session lives in an HttpOnly, SameSite=Strict cookie; changes
need the session's CSRF token (`X-CSRF-Token`) and the same origin.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..i18n import said
from ..operators.staff_access import REFUSED, Current, Granted, Refused
from ..staff.sessions import Stage
from . import admin_models as am
from .admin_api import Refused as Refusal
from .admin_api import error, guarded, json_body, validation_refusal
from .staff_auth import (
    clear_session_cookie,
    client_address,
    context,
    csrf_ok,
    same_origin,
    session,
    set_session_cookie,
)

__all__ = ["enrol", "enrolment", "sign_in", "sign_out", "whoami"]

REFUSAL = f"{REFUSED['fr']} / {REFUSED['en']}"
NO_SESSION = "no session: sign in first / aucune session : connectez-vous d'abord"


def _session_answer(name: str, current: Current | Granted, stage: Stage) -> am.SessionAnswer:
    user = current.user
    return am.SessionAnswer(
        name=name,
        role=user.role,
        networks=list(user.networks),
        stage=stage,
        csrf_token=current.csrf,
        expires_at=current.expires_at,
    )


def _json(model: am.Out, status: int = 200) -> Response:
    return JSONResponse(model.model_dump(mode="json"), status_code=status, headers={"Cache-Control": "no-store"})


def _refused(outcome: Refused) -> Response:
    """401 said in both languages (one answer for every failure), or 429 in the request's language (`guarded`)."""
    if outcome.retry_after:
        wait = str(max(1, int(outcome.retry_after)))
        raise Refusal(
            429, said("too many refused sign-ins from this address; retry later"), None, {"Retry-After": wait}
        )
    return error(401, REFUSAL)


async def _credentials(request: Request) -> am.SignInIn:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return (await json_body(request, am.SignInIn))[0]
    raw = await request.body()
    form = dict(parse_qsl(raw[:4096].decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return am.SignInIn.model_validate({k: v for k, v in form.items() if k in ("name", "password", "code")})
    except ValidationError as exc:
        raise validation_refusal(exc) from None


@guarded
async def sign_in(request: Request) -> Response:
    if not same_origin(request):
        raise Refusal(403, "origin: sign in from the console's own pages", "origin")
    credentials = await _credentials(request)
    access = context(request).desk.access
    outcome = await asyncio.to_thread(
        access.sign_in, credentials.name, credentials.password, credentials.code, client_address(request), "admin"
    )
    if isinstance(outcome, Refused):
        return _refused(outcome)
    response = _json(_session_answer(outcome.user.name, outcome, outcome.stage))
    set_session_cookie(response, request, outcome)
    return response


async def _current(request: Request) -> tuple[Current, Stage]:
    stages: tuple[Stage, ...] = ("full", "enrol")
    for stage in stages:
        found = await session(request, stage=stage)
        if found is not None:
            return found, stage
    raise Refusal(401, NO_SESSION, "session")


@guarded
async def whoami(request: Request) -> Response:
    current, stage = await _current(request)
    return _json(_session_answer(current.user.name, current, stage))


@guarded
async def sign_out(request: Request) -> Response:
    current, _ = await _current(request)
    if not csrf_ok(request, current):
        raise Refusal(403, "csrf: send this session's CSRF token as X-CSRF-Token", "csrf")
    await asyncio.to_thread(context(request).desk.access.sign_out, current, "admin")
    response = _json(am.SignedOut(signed_out=True))
    clear_session_cookie(response, request)
    return response


@guarded
async def enrolment(request: Request) -> Response:
    current = await session(request, stage="enrol")
    if current is None:
        raise Refusal(401, NO_SESSION, "session")
    secret, uri = context(request).desk.access.enrolment(current)
    return _json(am.EnrolmentAnswer(secret=secret, provisioning_uri=uri))


@guarded
async def enrol(request: Request) -> Response:
    current = await session(request, stage="enrol")
    if current is None:
        raise Refusal(401, NO_SESSION, "session")
    if not csrf_ok(request, current):
        raise Refusal(403, "csrf: send this session's CSRF token as X-CSRF-Token", "csrf")
    body, _ = await json_body(request, am.EnrolIn)
    access = context(request).desk.access
    outcome = await asyncio.to_thread(access.enrol, current, body.code, client_address(request), "admin")
    if isinstance(outcome, Refused):
        return _refused(outcome)
    response = _json(_session_answer(outcome.user.name, outcome, "full"))
    set_session_cookie(response, request, outcome)
    return response
