"""Partners' pushes over HTTP: tpmon's own `POST /api/v1/push/{network}/{flow}/{check}`, and the request shapes of
Uptime Kuma's push URL and Gatus' external endpoints, so that scripts written for them work unchanged.

The token is the only way in (Bearer, or Kuma's URL); it must be scoped to the check. Accepted signals are
committed to the store's push inbox (grouped, `operators.push_intake`) before the answer, and every instance's
board folds them in. Refusals are counted and audited; each token has its own rate. Served on the operators'
listener, and on the public one only when `admin.push_on_public` is true.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..config import PushCheck, Settings
from ..errors import NotFound, StoreError
from ..i18n import literal
from ..models import ComponentRef
from ..push_signals import PushError, validate_signal
from ..staff.audit import Listener
from ..staff.tokens import KnownToken
from ..store.signal_store import DETAIL_PATTERN, NewSignal, StoredSignal
from . import admin_models as am
from .admin_api import Refused, error, json_body, validation_refusal
from .staff_auth import AuthProblem, bearer, context, token

__all__ = ["gatus_key", "gatus_push", "kuma_push", "push", "short_code"]

MAX_LATENCY_MS = 86_400_000  # a day, as Uptime Kuma bounds its ping
_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


KUMA_LIMITS = {"status": 40, "msg": 200, "ping": 40}  # characters of each query parameter (as documented)
GATUS_LIMITS = {"error": 200, "duration": 40}


def _too_long(query: Mapping[str, str], limits: Mapping[str, int]) -> str | None:
    return next((name for name, limit in limits.items() if len(query.get(name, "")) > limit), None)


class PushRefused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers or {}


def short_code(message: str) -> tuple[str, bool]:
    """The detail kept of a partner's message: the message itself if, lowercased, it is a short code (≤ 40 of a-z 0-9
    _ . -), else nothing — free text may hold anything, personal data included, and is never stored."""
    code = message.strip().lower()
    if not code:
        return "", True
    return (code, True) if DETAIL_PATTERN.fullmatch(code) else ("", False)


def _gate(request: Request, listener: Listener) -> None:
    """On the public listener the push routes exist only when the operator opened them: a 404 as for any path."""
    if listener == "public" and not context(request).settings.admin.push_on_public:
        raise HTTPException(404)


async def _authenticate(request: Request, listener: Listener, secret: str | None) -> KnownToken:
    """The live token of the request, or PushRefused (401, or 429 for an address sending wrong ones); counted."""
    services = context(request)
    try:
        return await token(request, secret, listener)
    except AuthProblem as exc:
        services.desk.refusals.note(listener, f"push:{exc.reason}", exc.prefix, "", services.clock())
        raise PushRefused(exc.status, exc.message, "authorization", dict(exc.headers)) from None


async def _accept(
    request: Request,
    listener: Listener,
    known: KnownToken,
    choose: Callable[[KnownToken, Settings], ComponentRef],
    state: str,
    detail: str,
    latency_s: float | None,
) -> StoredSignal:
    """Find the check, check the token's scope and rate, validate, and write the signal."""
    services = context(request)
    desk, now, settings = services.desk, services.clock(), services.settings

    def refused(reason: str, prefix: str, target: str) -> None:
        desk.refusals.note(listener, f"push:{reason}", prefix, target, now)

    try:
        ref = choose(known, settings)
    except PushRefused:
        refused("no-such-check", known.prefix, "")
        raise
    if not known.principal.may_push(ref):
        refused("not-allowed", known.prefix, ref.key)
        raise PushRefused(403, f"this token may not push for {ref.key.removeprefix('check:')}")
    wait = desk.push_rate.take(known.prefix)
    if wait:
        refused("rate-limited", known.prefix, ref.key)
        retry = str(max(1, math.ceil(wait)))
        raise PushRefused(
            429, f"more than {settings.admin.push_per_minute} pushes a minute", None, {"Retry-After": retry}
        )
    try:
        signal = validate_signal(settings, ref.key.removeprefix("check:"), state, detail)
    except NotFound as exc:
        raise PushRefused(404, str(exc), "check") from None
    except PushError as exc:
        raise PushRefused(422, str(exc), exc.field) from None
    author = f"token:{known.prefix}"
    return await desk.intake.accept(NewSignal(signal.check, signal.state, signal.detail, author, latency_s))


def _check_of(network: str, flow: str, check: str) -> Callable[[KnownToken, Settings], ComponentRef]:
    return lambda known, settings: ComponentRef.for_check(network, flow, check)


# tpmon's own


def _push_endpoint(listener: Listener) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        _gate(request, listener)
        try:
            return await _push(request, listener)
        except PushRefused as exc:
            return error(exc.status, exc.message, exc.field, exc.headers)
        except Refused as exc:
            return error(exc.status, exc.error, exc.field, exc.headers)
        except StoreError:
            return error(503, "the database is unreachable; try again shortly", None, {"Retry-After": "5"})

    return endpoint


async def _push(request: Request, listener: Listener) -> Response:
    params = request.path_params
    known = await _authenticate(request, listener, bearer(request))
    query = {k: v for k, v in request.query_params.items() if k in am.PushIn.model_fields}
    body, _ = await json_body(request, am.PushIn, optional=True)
    if query and body != am.PushIn():
        both = literal("give the state, message and latency as a JSON body or as query parameters, not both")
        raise Refused(400, both, "body")  # the push API speaks English to machines (README)
    if query:
        try:
            body = am.PushQuery.model_validate(query)
        except ValidationError as exc:
            raise validation_refusal(exc) from None
    detail, kept = short_code(body.message)
    latency = body.latency_ms / 1000 if body.latency_ms is not None else None
    choose = _check_of(params["network"], params["flow"], params["check"])
    stored = await _accept(request, listener, known, choose, body.state, detail, latency)
    answer = am.PushAnswer(
        check=stored.check.key,
        state=stored.state,
        received_at=stored.received_at,
        detail=stored.detail,
        message_kept=kept,
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=202, headers={"Cache-Control": "no-store"})


push = _push_endpoint


# Uptime Kuma: GET or POST /api/push/<token>?status=up|down&msg=OK&ping=12 → {"ok": true}


def _kuma(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = {"ok": True} if message is None else {"ok": False, "msg": message}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def _kuma_check(known: KnownToken, settings: Settings) -> ComponentRef:
    scope = known.only_check
    if scope is None:
        raise PushRefused(400, "this token covers more than one check: use one scoped to push:NETWORK/FLOW/CHECK")
    return ComponentRef.for_check(scope.network, scope.flow, scope.check)


def kuma_push(listener: Listener) -> Callable[[Request], Awaitable[Response]]:
    """Uptime Kuma's push URL: the token in the path; `status` up (anything else is down, as Kuma reads it),
    `msg` (kept only as a short code), `ping` in milliseconds."""

    async def endpoint(request: Request) -> Response:
        _gate(request, listener)
        query = request.query_params
        too_long = _too_long(query, KUMA_LIMITS)
        if too_long:
            return _kuma(400, f"{too_long}: at most {KUMA_LIMITS[too_long]} characters")
        ping = query.get("ping", "")
        latency: float | None = None
        if ping.strip():
            try:
                value = float(ping)
            except ValueError:
                return _kuma(400, f"Invalid ping value: {ping[:40]!r} is not a valid number")
            if not (math.isfinite(value) and 0 <= value <= MAX_LATENCY_MS):
                return _kuma(400, f"Invalid ping value: must be between 0 and {MAX_LATENCY_MS} ms")
            latency = value / 1000
        state = "operational" if query.get("status", "up") == "up" else "down"
        detail, _ = short_code(query.get("msg", "OK"))
        try:
            known = await _authenticate(request, listener, request.path_params["token"])
            await _accept(request, listener, known, _kuma_check, state, detail, latency)
        except PushRefused as exc:
            status = 404 if exc.status == 401 else exc.status  # Kuma: "Monitor not found or not active."
            return _kuma(status, exc.message, exc.headers)
        except StoreError:
            return _kuma(503, "the database is unreachable; try again shortly", {"Retry-After": "5"})
        return _kuma(200)

    return endpoint


# Gatus: POST /api/v1/endpoints/<group>_<name>/external?success=true&error=…&duration=1.5s, Bearer token → 200 ""


def _sanitize(text: str) -> str:
    text = text.strip().lower()
    for character in "/_.,# +&":
        text = text.replace(character, "-")
    return text


def gatus_key(network: str, check: str) -> str:
    """The key Gatus gives an external endpoint named `check` in group `network` (its `group_name`, sanitized)."""
    return f"{_sanitize(network)}_{_sanitize(check)}"


def go_duration(text: str) -> float:
    """A Go duration (`1.5s`, `150ms`, `1m30s`) in seconds; ValueError otherwise."""
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = _GO_DURATION.match(text, position)
        if match is None:
            raise ValueError(f"time: invalid duration {text[:40]!r}")
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if not text or not math.isfinite(total):
        raise ValueError(f"time: invalid duration {text[:40]!r}")
    return total


def _gatus_check(key: str) -> Callable[[KnownToken, Settings], ComponentRef]:
    def choose(known: KnownToken, settings: Settings) -> ComponentRef:
        matching = [
            ComponentRef.for_check(n, c.flow, c.name)
            for n, c in settings.checks()
            if isinstance(c, PushCheck) and gatus_key(n, c.name) == key
        ]
        allowed = [ref for ref in matching if known.principal.may_push(ref)]
        if len(allowed) == 1:
            return allowed[0]
        if not matching:
            raise PushRefused(404, "not found")
        raise PushRefused(401, "invalid token")  # Gatus: a token that is not this endpoint's

    return choose


def gatus_push(listener: Listener) -> Callable[[Request], Awaitable[Response]]:
    """Gatus' external endpoint: `success` true/false (required), `error` (kept only as a short code, when not
    successful), `duration` (a Go duration); answers as Gatus does (text, 200 empty on success)."""

    async def endpoint(request: Request) -> Response:
        _gate(request, listener)
        query = request.query_params
        success = query.get("success")
        too_long = _too_long(query, GATUS_LIMITS)
        if too_long:
            return PlainTextResponse(f"{too_long}: at most {GATUS_LIMITS[too_long]} characters", 400)
        if success not in ("true", "false"):
            return PlainTextResponse("missing or invalid success query parameter", 400)
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return PlainTextResponse("invalid Authorization header", 401)
        secret = header.removeprefix("Bearer ").strip()
        if not secret:
            return PlainTextResponse("bearer token must not be empty", 401)
        latency = None
        if query.get("duration"):
            try:
                latency = go_duration(query["duration"])
            except ValueError as exc:
                return PlainTextResponse(f"invalid duration: {exc}", 400)
            if latency > MAX_LATENCY_MS / 1000:
                return PlainTextResponse("invalid duration: longer than a day", 400)
        detail = short_code(query.get("error", ""))[0] if success == "false" else ""
        state = "operational" if success == "true" else "down"
        key = request.path_params["key"]
        try:
            known = await _authenticate(request, listener, secret)
            await _accept(request, listener, known, _gatus_check(key), state, detail, latency)
        except PushRefused as exc:
            return PlainTextResponse(exc.message, exc.status, headers=exc.headers)
        except StoreError:
            return PlainTextResponse("the database is unreachable", 503, headers={"Retry-After": "5"})
        return PlainTextResponse("", 200)

    return endpoint
