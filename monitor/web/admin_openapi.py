"""The OpenAPI 3.1 document of the operators' listener (writes, pushes, sign-in), built from its operations table
and their pydantic models, as `api_v1_openapi` builds the public one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .admin_models import AdminError
from .api_v1_openapi import API_VERSION, REF, Endpoint, PathParam

__all__ = ["AdminOperation", "QueryParam", "admin_document"]

Security = Literal["bearer", "session", "none", "path"]

DESCRIPTION = """\
L'API d'écriture de tpmon, sur l'écoute des opérateurs (jamais sur l'écoute publique) : incidents, maintenances, \
signaux des partenaires (dont les formes d'URL d'Uptime Kuma et de Gatus), connexion du personnel. Chaque écriture \
est journalisée (qui, quand, avant, après). Jeton : `Authorization: Bearer <jeton>` (`tpmon token create`), à la \
portée (scope) de ce qu'il écrit. Un POST rejoué avec le même `Idempotency-Key` rend la même réponse, sans \
seconde écriture.

tpmon's write API, on the operators' listener (never on the public one): incidents, maintenance, partners' \
signals (including Uptime Kuma's and Gatus' URL shapes), staff sign-in. Every write is audited (who, when, \
before, after). Token: `Authorization: Bearer <token>` (`tpmon token create`), scoped to what it writes. A POST \
retried with the same `Idempotency-Key` gets the same answer, with no second write.

Errors are `{"error": "<field>: <problem>", "field": "<field>"}`: 400 (malformed request), 401 (no or wrong \
token), 403 (the token's scope does not cover it), 404, 409 (changed meanwhile, or a retry still in progress), \
422 (a field refused: `field` names it as the CLI does), 429 (`Retry-After`), 503 (database out of reach)."""

ERRORS: Mapping[int, str] = {
    400: "The request is malformed (not JSON, a bad header or path parameter)",
    401: "No token, or a wrong, revoked or expired one",
    403: "The token or account may not do this (its scope)",
    404: "No such incident, window, check or token",
    409: "Changed meanwhile, already done, or a retry with the same Idempotency-Key still in progress",
    422: "A field is refused; `field` names it",
    429: "Too many requests: wait `Retry-After` seconds",
    503: "The database is unreachable; try again shortly",
}
_RETRY = {"Retry-After": {"description": "seconds to wait", "required": True, "schema": {"type": "integer"}}}


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    schema: Mapping[str, Any]
    required: bool = False


@dataclass(frozen=True)
class AdminOperation:
    """One operation of the operators' listener and everything the document says of it."""

    method: Literal["get", "post", "delete"]
    path: str
    endpoint: Endpoint
    operation_id: str
    summary: str
    status: int
    response: type[BaseModel] | None  # None: an empty text/plain answer (Gatus)
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: tuple[QueryParam, ...] = ()
    path_params: tuple[PathParam, ...] = ()
    errors: tuple[int, ...] = ()
    security: Security = "bearer"
    idempotent: bool = False
    error_model: type[BaseModel] | None = AdminError  # None: text/plain errors (Gatus)
    description: str = ""
    extra_methods: tuple[str, ...] = field(default=())  # the same operation under other methods (Kuma: GET too)

    @property
    def route_path(self) -> str:
        path = self.path
        for param in self.path_params:
            if param.slashes:
                path = path.replace(f"{{{param.name}}}", f"{{{param.name}:path}}")
        return path


@cache
def _schemas(
    bodies: tuple[type[BaseModel], ...], answers: tuple[type[BaseModel], ...]
) -> tuple[dict[tuple[type[BaseModel], str], Any], dict[str, Any]]:
    pairs = [(m, "validation") for m in bodies] + [(m, "serialization") for m in answers]
    keys, top = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    return {(model, mode): schema for (model, mode), schema in keys.items()}, top.get("$defs", {})  # type: ignore[misc]


def _content(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"text/plain": {"schema": {"type": "string"}}}
    return {"application/json": {"schema": dict(schema)}}


def _error(code: int, op: AdminOperation, refs: Mapping[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    schema = refs[(op.error_model, "serialization")] if op.error_model is not None else None
    answer: dict[str, Any] = {"description": ERRORS[code], "content": _content(schema)}
    if code in (429, 503):
        answer["headers"] = dict(_RETRY)
    if code == 401 and op.security == "bearer":
        answer["headers"] = {
            "WWW-Authenticate": {"description": 'Bearer realm="tpmon"', "required": True, "schema": {"type": "string"}}
        }
    return answer


def _operation(
    op: AdminOperation, refs: Mapping[tuple[type[BaseModel], str], Any], examples: Mapping[str, list[Any]]
) -> dict[str, Any]:
    ok = refs[(op.response, "serialization")] if op.response is not None else None
    parameters: list[dict[str, Any]] = []
    for param in op.path_params:
        schema = dict(param.schema)
        if examples.get(param.name):
            schema["examples"] = list(examples[param.name])
        parameters.append(
            {"name": param.name, "in": "path", "required": True, "description": param.description, "schema": schema}
        )
    parameters += [
        {"name": q.name, "in": "query", "required": q.required, "description": q.description, "schema": dict(q.schema)}
        for q in op.query
    ]
    if op.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "a retry with the same key gets the first answer again, and writes nothing",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
            }
        )
    found: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": {
            str(op.status): {"description": "OK", "content": _content(ok)},
            **{str(code): _error(code, op, refs) for code in sorted(op.errors)},
        },
    }
    if op.security == "bearer":
        found["security"] = [{"bearer": []}]
    elif op.security == "session":
        found["security"] = [{"session": []}]
    else:
        found["security"] = []
    if parameters:
        found["parameters"] = parameters
    if op.body is not None:
        found["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.description:
        found["description"] = op.description
    return found


def admin_document(
    operations: Iterable[AdminOperation], examples: Mapping[str, list[Any]] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of the operators' listener; `examples` gives path parameters real values."""
    operations = list(operations)
    bodies = tuple(dict.fromkeys(op.body for op in operations if op.body is not None))
    answers = tuple(
        dict.fromkeys(
            [op.response for op in operations if op.response is not None]
            + [op.error_model for op in operations if op.error_model is not None]
        )
    )
    refs, schemas = _schemas(bodies, answers)
    paths: dict[str, Any] = {}
    for op in operations:
        described = _operation(op, refs, examples or {})
        for method in (op.method, *op.extra_methods):
            paths.setdefault(op.path, {})[method] = {
                **described,
                "operationId": f"{op.operation_id}{'' if method == op.method else method.title()}",
            }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "tpmon operators' API",
            "version": API_VERSION,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token of `tpmon token create`"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "tpmon_session",
                    "description": "a staff session",
                },
            },
        },
    }
