"""The write API of the operators' listener, /api/v1: incidents (open, update, resolve), maintenance (add, cancel a
window or one occurrence), and what is declared now. Bearer tokens with scopes; idempotency keys; every write
audited in its own transaction (`operators.audited`); errors name the field as the CLI does.

Routes and the OpenAPI document come from `OPERATIONS` (with the pushes and the sign-in, see `admin_routes`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import parse_duration
from ..config.texts import reason_of
from ..declared.incidents import Declared, Incident, IncidentUpdate, Phase, declare
from ..declared.inputs import Bilingual, check_not_future
from ..declared.maintenance import WEEKDAYS, MaintenanceWindow, Recurrence, check_not_over, occurrences
from ..errors import CODES, FIELD_SEPARATOR, IncidentError, NotAllowed, NotFound, StoreError
from ..i18n import Lang, Text, literal, said
from ..operators.audited import AuditedDeclarations, Idempotency
from ..staff.roles import Principal
from ..store import WriteRefused
from ..store.idempotency_store import Remembered, recall
from . import admin_models as am
from .api_v1_models import MAX_ID, IncidentAnswer, OccurrenceAnswer
from .page_cache import request_lang
from .staff_auth import AuthProblem, bearer, context, csrf_ok, session, session_id, token

__all__ = [
    "MAX_BODY",
    "Refused",
    "error",
    "guarded",
    "json_body",
    "positive_id",
    "window_of",
    "write_principal",
]

MAX_BODY = 256 * 1024
M = TypeVar("M", bound=BaseModel)
UNIONS = {"duration"}  # fields whose type is a union: pydantic adds the member it tried to their location
# Fields of the domain named where the request nests them (a maintenance window's repeat rule).
NESTED = {"weekdays": "recurrence.weekdays", "month_day": "recurrence.month_day", "nth": "recurrence.nth",
          "until": "recurrence.until", "recurrence": "recurrence.frequency"}  # fmt: skip


class Refused(Exception):
    """An answer other than success: a status, the problem (said in each language; a plain text is said as it is),
    the field at fault, headers. `error` is the English text, `field: problem` (logs)."""

    def __init__(
        self, status: int, problem: str | Text, field: str | None = None, headers: dict[str, str] | None = None
    ):
        self.problem = literal(problem) if isinstance(problem, str) else problem
        self.status, self.field, self.headers = status, field, headers or {}
        self.error = self.text("en")
        super().__init__(self.error)

    def text(self, lang: str) -> str:
        """`field: problem` in `lang` (French typography in French)."""
        where = f"{self.field}{FIELD_SEPARATOR.get(lang, ': ')}" if self.field else ""
        return where + self.problem.render(lang)


def _answer(model: BaseModel, status: int, headers: dict[str, str] | None = None) -> Response:
    content = model.model_dump(mode="json", by_alias=True)
    return JSONResponse(content, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def error(
    status: int,
    message: str | Text,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    lang: Lang = "en",
) -> Response:
    """The error document: `error` in `lang` (a plain text as it is), `field`, and `code` (stable, by status)."""
    text = message if isinstance(message, str) else message.render(lang)
    language = {"Content-Language": lang, "Vary": "Accept-Language, Cookie"}
    refusal = am.AdminError(error=text, field=field, code=CODES.get(status, "refused"))
    return _answer(refusal, status, {**language, **(headers or {})})


def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The error translation every write endpoint shares: refusals, domain errors, the store."""

    async def endpoint(request: Request) -> Response:
        lang = request_lang(request)  # as the site and the console choose: ?lang=, cookie, Accept-Language; French
        try:
            return await handler(request)
        except Refused as exc:
            return error(exc.status, exc.text(lang), exc.field, exc.headers, lang=lang)
        except AuthProblem as exc:
            return error(exc.status, exc.text(lang), "authorization", dict(exc.headers), lang=lang)
        except NotAllowed as exc:
            return error(403, exc.text(lang), lang=lang)
        except NotFound as exc:
            return error(404, exc.text(lang), lang=lang)
        except IncidentError as exc:
            field = NESTED.get(exc.field, exc.field)
            if exc.field == "id":  # about the incident or window as it stands: already resolved, changed meanwhile
                return error(409, exc.problem_in(lang), None, lang=lang)
            return error(422, f"{field}{FIELD_SEPARATOR.get(lang, ': ')}{exc.problem_in(lang)}", field, lang=lang)
        except StoreError:
            unreachable = said("the database is unreachable; try again shortly")
            return error(503, unreachable, None, {"Retry-After": "30"}, lang=lang)

    return endpoint


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Refused(400, said("larger than {size} KiB", size=MAX_BODY // 1024), "body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(400, said("larger than {size} KiB", size=MAX_BODY // 1024), "body")
        chunks.append(chunk)
    return b"".join(chunks)


def _field(location: tuple[int | str, ...]) -> str:
    """A pydantic location as the request names it: `statuses[0].state`; a union's member tags are left out."""
    text = ""
    for part in location:
        if text in UNIONS:
            break
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def validation_refusal(exc: ValidationError) -> Refused:
    """The first problem of a pydantic refusal, naming its field as `a.b[0].c`."""
    first = exc.errors(include_url=False)[0]
    field = _field(tuple(first["loc"]))
    message: Text = literal(str(first["msg"]))  # pydantic's own text, in English, for the types not listed here
    if first["type"] == "extra_forbidden":
        message = said("is not a field of this request")
    elif first["type"] == "missing":
        message = said("is required")
    elif first["type"] == "string_pattern_mismatch":
        pattern = am.PATTERNS.get(str((first.get("ctx") or {}).get("pattern")))
        message = said(pattern) if pattern else message
    return Refused(422, message, field)


async def json_body(request: Request, model: type[M], *, optional: bool = False) -> tuple[M, bytes]:
    """The request's JSON body as `model` (strict: a number is not a string), and its bytes (for idempotency)."""
    raw = await _raw_body(request)
    if optional and not raw.strip():
        return model(), raw
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refused(400, said("send application/json"), "content-type")
    try:
        return model.model_validate_json(raw, strict=True), raw
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise Refused(400, said("not valid JSON"), "body") from None
        raise validation_refusal(exc) from None


def positive_id(request: Request, name: str = "id") -> int:
    raw: str = request.path_params[name]
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID):
        raise Refused(400, said("must be an integer between 1 and {max}", max=MAX_ID), name)
    return int(raw)


async def write_principal(request: Request) -> Principal:
    """The token's principal, if it may write somewhere (403 otherwise); refusals counted for the audit. Without a
    Bearer token, a console session may call the API too, with its CSRF token (`X-CSRF-Token`) and from the same
    origin: an editor is held to its networks here as in the console's forms."""
    services = context(request)
    if bearer(request) is None and session_id(request):
        current = await session(request)
        if current is None:
            raise Refused(401, said("ended or expired; sign in again"), "session")
        if not csrf_ok(request, current):
            raise Refused(403, said("send this session's CSRF token as X-CSRF-Token, from the same origin"), "csrf")
        if not current.principal.writes_anywhere:
            raise NotAllowed(said("this account may not write (viewer)"))
        return current.principal
    try:
        known = await token(request, bearer(request), "admin")
    except AuthProblem as exc:
        services.desk.refusals.note("admin", f"write:{exc.reason}", exc.prefix, "", services.clock())
        raise
    principal = known.principal
    if not principal.writes_anywhere:
        services.desk.refusals.note("admin", "write:not-allowed", known.prefix, "", services.clock())
        raise NotAllowed(
            said("this token may not write (its scopes: {scopes})", scopes=", ".join(map(str, known.scopes)))
        )
    return principal


# From requests to the domain


def _text(text: am.TextIn | None) -> Bilingual:
    return Bilingual(text.fr, text.en) if text is not None else Bilingual()


def _statuses(items: list[am.DeclaredIn]) -> dict[str, Declared]:
    return {item.component: declare(item.state, item.progress, key=item.component) for item in items}


def _moment(text: str | None, now: datetime) -> datetime:
    if text is None:
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise IncidentError("at", said("{text!r} is not a date-time", text=text)) from None
    check_not_future("at", moment, now)
    return moment.astimezone(UTC)


def _wall_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise IncidentError("start", said("{text!r} is not a date-time like 2024-03-31T02:30", text=text)) from None


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise IncidentError(name, said("{text!r} is not a date like 2024-12-31", text=text)) from None


def window_of(body: am.MaintenanceIn) -> MaintenanceWindow:
    """A maintenance window from its request body (the API's and the console's); IncidentError naming the field."""
    return _window(body)


def _window(body: am.MaintenanceIn) -> MaintenanceWindow:
    try:
        seconds = parse_duration(body.duration)
    except ValueError as exc:
        raise IncidentError("duration", reason_of(exc)) from None
    rule = body.recurrence
    recurrence = Recurrence(
        rule.frequency,
        tuple(sorted({WEEKDAYS.index(d) for d in rule.weekdays})),
        rule.month_day,
        rule.nth,
        WEEKDAYS.index(rule.weekday) if rule.weekday is not None else None,
        _day(rule.until, "until"),
    )
    start = _wall_time(body.start)
    return MaintenanceWindow(
        None, _text(body.title), tuple(body.components), start, timedelta(seconds=seconds), recurrence
    )


def _window_answer(window: MaintenanceWindow, now: datetime) -> am.WindowAnswer:
    following = [o for o in occurrences(window, now, now + timedelta(days=400)) if o.end > now][:3]
    return am.WindowAnswer.of(window, [OccurrenceAnswer.of(o, running=o.start <= now) for o in following])


# Idempotent writes


def _replay(remembered: Remembered, fingerprint: str) -> Response:
    if remembered.fingerprint != fingerprint:
        raise Refused(422, said("already used for another request"), "Idempotency-Key")
    headers = {"Cache-Control": "no-store", "Idempotent-Replayed": "true"}
    return JSONResponse(remembered.body, status_code=remembered.status, headers=headers)


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not (1 <= len(key) <= 255 and all(33 <= ord(c) <= 126 for c in key)):
        raise Refused(400, said("1 to 255 visible ASCII characters"), "Idempotency-Key")
    return key


async def _write(
    request: Request,
    principal: Principal,
    raw: bytes,
    act: Callable[[AuditedDeclarations], Any],
    answer: Callable[[Any], tuple[int, BaseModel]],
) -> Response:
    """Run `act` on audited declarations; with an Idempotency-Key, a retry gets the first answer and writes nothing."""
    services = context(request)
    key, fingerprint = _key(request), ""
    idempotency = None
    if key is not None:
        fingerprint = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + raw).hexdigest()
        remembered = await asyncio.to_thread(recall, services.store, principal.actor, key)
        if remembered is not None:
            return _replay(remembered, fingerprint)

        def kept(result: Any) -> tuple[int, dict[str, Any]]:
            status, model = answer(result)
            return status, model.model_dump(mode="json", by_alias=True)

        idempotency = Idempotency(key, fingerprint, kept)

    def run() -> Any:
        writes = AuditedDeclarations(
            services.store, services.settings, principal, "admin", clock=services.clock, idempotency=idempotency
        )
        return act(writes)

    try:
        result = await asyncio.to_thread(run)
    except WriteRefused:
        if key is None:
            raise Refused(409, said("the write met another one; look again and retry")) from None
        remembered = await asyncio.to_thread(recall, services.store, principal.actor, key)
        if remembered is not None:
            return _replay(remembered, fingerprint)
        raise Refused(409, said("a request with this key is still in progress; retry"), "Idempotency-Key") from None
    await services.refresh_overrides()  # shown at once, not at the next tick
    status, model = answer(result)
    return _answer(model, status)


def _incident(status: int) -> Callable[[Any], tuple[int, BaseModel]]:
    return lambda incident: (status, IncidentAnswer.of(incident))


# Endpoints


@guarded
async def open_incident(request: Request) -> Response:
    principal = await write_principal(request)
    body, raw = await json_body(request, am.IncidentOpen)
    now = context(request).clock()

    def act(writes: AuditedDeclarations) -> Incident:
        first = IncidentUpdate(
            _moment(body.at, now),
            body.status,
            _text(body.message),
            _text(body.practitioner_consigne),
            _text(body.member_consigne),
            _statuses(body.statuses),
        )
        return writes.open_incident(
            title=_text(body.title), impact=body.impact, first=first, components=body.components
        )

    return await _write(request, principal, raw, act, _incident(201))


@guarded
async def update_incident(request: Request) -> Response:
    principal = await write_principal(request)
    incident_id = positive_id(request)
    body, raw = await json_body(request, am.IncidentUpdateIn)
    now = context(request).clock()

    def act(writes: AuditedDeclarations) -> Incident:
        status: Phase = body.status or writes.incident(incident_id).status
        change = IncidentUpdate(
            _moment(body.at, now),
            status,
            _text(body.message),
            _text(body.practitioner_consigne),
            _text(body.member_consigne),
            _statuses(body.statuses),
        )
        return writes.update_incident(incident_id, change, impact=body.impact)

    return await _write(request, principal, raw, act, _incident(200))


@guarded
async def resolve_incident(request: Request) -> Response:
    principal = await write_principal(request)
    incident_id = positive_id(request)
    body, raw = await json_body(request, am.IncidentResolve, optional=True)
    now = context(request).clock()

    def act(writes: AuditedDeclarations) -> Incident:
        return writes.resolve_incident(
            incident_id,
            message=_text(body.message) if body.message is not None else None,
            at=_moment(body.at, now),
            practitioner_consigne=_text(body.practitioner_consigne),
            member_consigne=_text(body.member_consigne),
        )

    return await _write(request, principal, raw, act, _incident(200))


@guarded
async def add_window(request: Request) -> Response:
    principal = await write_principal(request)
    body, raw = await json_body(request, am.MaintenanceIn)
    now = context(request).clock()

    def act(writes: AuditedDeclarations) -> MaintenanceWindow:
        window = _window(body)
        check_not_over(window, now)
        return writes.add_window(window)

    return await _write(request, principal, raw, act, lambda window: (201, _window_answer(window, now)))


@guarded
async def cancel_window(request: Request) -> Response:
    principal = await write_principal(request)
    window_id = positive_id(request)
    now = context(request).clock()
    act: Callable[[AuditedDeclarations], Any] = lambda writes: writes.cancel_window(window_id)  # noqa: E731
    return await _write(request, principal, b"", act, lambda window: (200, _window_answer(window, now)))


@guarded
async def cancel_occurrence(request: Request) -> Response:
    principal = await write_principal(request)
    window_id = positive_id(request)
    raw: str = request.path_params["date"]
    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise Refused(400, said("must be a date like 2024-12-31"), "date")
    now = context(request).clock()

    def act(writes: AuditedDeclarations) -> MaintenanceWindow:
        return writes.cancel_occurrence(window_id, day)

    return await _write(request, principal, raw.encode(), act, lambda window: (200, _window_answer(window, now)))


@guarded
async def declared_now(request: Request) -> Response:
    """What open incidents declare now, component by component (any token that may write reads it)."""
    await write_principal(request)
    services = context(request)
    found = [
        am.DeclarationAnswer(
            incident_id=incident.id or 0, component=key, state=d.state, progress=d.progress, since=since
        )
        for incident in services.open_incidents
        for key, (d, since) in incident.declared().items()
    ]
    return _answer(am.DeclarationsAnswer(at=services.clock(), declarations=found), 200)
