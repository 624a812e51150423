"""Every route of the operators' listener (writes, pushes, sign-in, its OpenAPI document) from one table,
`OPERATIONS`; and the push routes the public listener serves when the operator opens them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import Check
from ..i18n import said
from ..staff.audit import Listener
from . import admin_api as api
from . import admin_models as am
from . import push_api, sign_in_api
from .admin_openapi import AdminOperation, QueryParam, admin_document
from .api_v1_models import MAX_ID, IncidentAnswer
from .api_v1_openapi import PathParam
from .console_admin import console_admin_routes
from .console_pages import console_routes
from .page_cache import request_lang
from .push_api import GATUS_LIMITS, KUMA_LIMITS
from .staff_auth import context

__all__ = ["OPERATIONS", "admin_routes", "examples", "public_push_routes"]

_SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}
NETWORK = PathParam("network", "a network's id, e.g. viamedis", _SLUG)
FLOW = PathParam("flow", "a flow's id, e.g. pec", _SLUG)
CHECK = PathParam("check", "a push check's name, e.g. operateur", _SLUG)
ID = PathParam("id", "an incident's or window's number", {"type": "integer", "minimum": 1, "maximum": MAX_ID})
DAY = PathParam(
    "date", "the local (Paris) date an occurrence starts", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
)
KUMA_TOKEN = PathParam(
    "token", "the push token, as in Uptime Kuma's push URL", {"type": "string", "minLength": 1, "maxLength": 200}
)
GATUS_KEY = PathParam(
    "key",
    "Gatus' key: <network>_<check>, sanitized as Gatus does (_ . / , space → -)",
    {"type": "string", "minLength": 1, "maxLength": 200},
)
WRITE_ERRORS = (400, 401, 403, 404, 409, 422, 429, 503)
PUSH_QUERY = (
    QueryParam(
        "state", "what the partner reports (default operational)", {"enum": ["operational", "degraded", "down"]}
    ),
    QueryParam("message", "kept only as a short code", {"type": "string", "maxLength": 200}),
    QueryParam("latency_ms", "what the partner measured", {"type": "number", "minimum": 0, "maximum": 86_400_000}),
)
KUMA_QUERY = (
    QueryParam(
        "status",
        "up; anything else is down (as Uptime Kuma reads it)",
        {"type": "string", "maxLength": KUMA_LIMITS["status"]},
    ),
    QueryParam("msg", "kept only as a short code", {"type": "string", "maxLength": KUMA_LIMITS["msg"]}),
    QueryParam("ping", "milliseconds, 0 to 86400000", {"type": "string", "maxLength": KUMA_LIMITS["ping"]}),
)
GATUS_QUERY = (
    QueryParam("success", "whether the partner's check succeeded", {"enum": ["true", "false"]}, required=True),
    QueryParam(
        "error",
        "kept only as a short code, when not successful",
        {"type": "string", "maxLength": GATUS_LIMITS["error"]},
    ),
    QueryParam(
        "duration", "a Go duration, e.g. 1.5s or 150ms", {"type": "string", "maxLength": GATUS_LIMITS["duration"]}
    ),
)
KUMA_DOC = "Scripts written for Uptime Kuma's push monitor work unchanged: replace its base URL and token."
GATUS_DOC = "Scripts written for Gatus' external endpoints work unchanged: point them here with a tpmon token."


def _push_operations(listener: Listener) -> list[AdminOperation]:
    return [
        AdminOperation("post", "/api/v1/push/{network}/{flow}/{check}", push_api.push(listener), "push",
                       "A partner's heartbeat or reported state for a push check", 202, am.PushAnswer, am.PushIn,
                       body_required=False, query=PUSH_QUERY, path_params=(NETWORK, FLOW, CHECK),
                       errors=(400, 401, 403, 404, 422, 429, 503),
                       description="State, message and latency as a JSON body or as query parameters; nothing is "
                                   "a heartbeat. Answers once the signal is stored."),
        AdminOperation("post", "/api/push/{token}", push_api.kuma_push(listener), "pushKuma",
                       "Uptime Kuma's push URL", 200, am.KumaAnswer, query=KUMA_QUERY, path_params=(KUMA_TOKEN,),
                       errors=(400, 404, 422, 429, 503), security="path", error_model=am.KumaAnswer,
                       description=KUMA_DOC, extra_methods=("get",)),
        AdminOperation("post", "/api/v1/endpoints/{key}/external", push_api.gatus_push(listener), "pushGatus",
                       "Gatus' external endpoint", 200, None, query=GATUS_QUERY, path_params=(GATUS_KEY,),
                       errors=(400, 401, 404, 422, 429, 503), security="none", error_model=None, description=GATUS_DOC),
    ]  # fmt: skip


OPERATIONS: list[AdminOperation] = [
    AdminOperation("post", "/api/v1/incidents", api.open_incident, "openIncident",
                   "Open an incident with its first update", 201, IncidentAnswer, am.IncidentOpen,
                   errors=WRITE_ERRORS, idempotent=True),
    AdminOperation("post", "/api/v1/incidents/{id}/updates", api.update_incident, "updateIncident",
                   "Add an update: phase, message, consignes, declared statuses", 200, IncidentAnswer,
                   am.IncidentUpdateIn, path_params=(ID,), errors=WRITE_ERRORS, idempotent=True),
    AdminOperation("post", "/api/v1/incidents/{id}/resolve", api.resolve_incident, "resolveIncident",
                   "Resolve an incident: its declared statuses stop counting", 200, IncidentAnswer,
                   am.IncidentResolve, body_required=False, path_params=(ID,), errors=WRITE_ERRORS, idempotent=True),
    AdminOperation("post", "/api/v1/maintenance", api.add_window, "addMaintenance",
                   "Plan a one-off or recurring maintenance window (Europe/Paris wall times)", 201, am.WindowAnswer,
                   am.MaintenanceIn, errors=WRITE_ERRORS, idempotent=True),
    AdminOperation("post", "/api/v1/maintenance/{id}/cancel", api.cancel_window, "cancelMaintenance",
                   "Cancel a window and all its occurrences", 200, am.WindowAnswer, path_params=(ID,),
                   errors=WRITE_ERRORS, idempotent=True),
    AdminOperation("post", "/api/v1/maintenance/{id}/occurrences/{date}/cancel", api.cancel_occurrence,
                   "cancelOccurrence", "Cancel one occurrence of a recurring window; the series goes on", 200,
                   am.WindowAnswer, path_params=(ID, DAY), errors=WRITE_ERRORS, idempotent=True),
    AdminOperation("get", "/api/v1/declarations", api.declared_now, "listDeclarations",
                   "What open incidents declare now, component by component", 200, am.DeclarationsAnswer,
                   errors=(401, 403, 429)),
    *_push_operations("admin"),
    AdminOperation("post", "/api/v1/session", sign_in_api.sign_in, "signIn",
                   "Sign in with account name, password and TOTP code (JSON or a form)", 200, am.SessionAnswer,
                   am.SignInIn, errors=(400, 401, 403, 422, 429, 503), security="none"),
    AdminOperation("get", "/api/v1/session", sign_in_api.whoami, "getSession", "The signed-in session", 200,
                   am.SessionAnswer, errors=(401, 503), security="session"),
    AdminOperation("delete", "/api/v1/session", sign_in_api.sign_out, "signOut", "End the session (CSRF token)",
                   200, am.SignedOut, errors=(401, 403, 503), security="session"),
    AdminOperation("get", "/api/v1/session/enrolment", sign_in_api.enrolment, "getEnrolment",
                   "The TOTP secret to set up (a session at the enrolment stage)", 200, am.EnrolmentAnswer,
                   errors=(401, 503), security="session"),
    AdminOperation("post", "/api/v1/session/enrolment", sign_in_api.enrol, "enrol",
                   "Confirm the second factor with a first code (CSRF token)", 200, am.SessionAnswer, am.EnrolIn,
                   errors=(400, 401, 403, 422, 429, 503), security="session"),
]  # fmt: skip


def examples(request: Request) -> dict[str, list[Any]]:
    """Real values of the running config for the path parameters, so that a reader (or a fuzzer) reaches them."""
    settings = context(request).settings
    first, network = next(iter(settings.networks.items()))
    checks: list[Check] = [c for c in network.checks if c.kind == "push"] or list(network.checks)
    found: dict[str, list[Any]] = {"network": [first]}
    if checks:
        found.update(flow=[checks[0].flow], check=[checks[0].name], key=[push_api.gatus_key(first, checks[0].name)])
    return found


async def openapi(request: Request) -> Response:
    return JSONResponse(admin_document(OPERATIONS, examples(request)), headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def no_such_path(request: Request) -> Response:
    missing = said("no such path {path}; see /api/v1/openapi.json", path=repr(request.url.path))
    return api.error(404, missing, lang=request_lang(request))


def _routes(operations: list[AdminOperation]) -> list[Route]:
    found: dict[str, dict[str, Any]] = {}
    for op in operations:
        for method in (op.method, *op.extra_methods):
            found.setdefault(op.route_path, {})[method.upper()] = op.endpoint
    routes = []
    for path, endpoints in found.items():
        if len(endpoints) == 1 or len(set(map(id, endpoints.values()))) == 1:
            routes.append(Route(path, next(iter(endpoints.values())), methods=list(endpoints)))
        else:
            routes.append(Route(path, _by_method(endpoints), methods=list(endpoints)))
    return routes


def _by_method(endpoints: dict[str, Any]) -> Any:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = endpoints[method]
        answer: Response = await handler(request)
        return answer

    return endpoint


def admin_routes() -> list[Route | Mount]:
    """The operators' listener: the operations, their document, a health check, JSON 404s under /api/v1, and the
    console's pages (with the stylesheet they share with the public site)."""
    return [
        *_routes(OPERATIONS),
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/api/v1/{rest:path}", no_such_path, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        *(Route(path, endpoint, methods=methods) for path, endpoint, methods in console_routes()),
        *(Route(path, endpoint, methods=methods) for path, endpoint, methods in console_admin_routes()),
        Mount("/static", StaticFiles(packages=[("monitor.web", "static")]), name="static"),
    ]


def public_push_routes() -> list[Route]:
    """The push routes on the public listener: they answer 404 unless `admin.push_on_public` is true."""
    return _routes(_push_operations("public"))
