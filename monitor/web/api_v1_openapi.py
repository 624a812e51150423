"""The OpenAPI 3.1 document of /api/v1, built from the operations table and their pydantic models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from ..i18n import Text, said
from .api_v1_models import ErrorAnswer

__all__ = ["API_VERSION", "Operation", "PathParam", "openapi_document", "parameter_problem", "query_parameters"]

API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
Endpoint = Callable[[Request], Awaitable[Response]]

DESCRIPTION = """\
API JSON de tpmon, le moniteur d'état des réseaux de tiers payant : l'état de chaque réseau, ligne de service, \
flux et sonde, l'historique et la disponibilité, les incidents et les maintenances. Les dates sont en ISO 8601, \
en UTC avec leur décalage. Les textes saisis par l'exploitation sont donnés en français et en anglais \
(`{"fr": …, "en": …}`, `en` nul s'il n'a pas été écrit). Les erreurs disent leur message (`error`) dans la langue \
de la requête (`?lang=`, cookie `lang`, `Accept-Language` ; le français par défaut), avec `field` et `code` stables.

tpmon's JSON API, the status monitor of the French tiers-payant networks: the state of every network, service \
line, flow and check, history and availability, incidents and maintenance. Dates are ISO 8601, UTC with their \
offset. Texts written by ops come in French and English (`{"fr": …, "en": …}`, `en` null when not written).

Errors are `{"error": "<parameter>: <problem>", "field": "<parameter>", "code": "bad_request"}` (400), a missing \
network, line, component or incident (404, `not_found`), or the database out of reach (503, `unavailable`, with \
`Retry-After`); `error` is said in the request's language (`?lang=`, the `lang` cookie, `Accept-Language`; French \
by default), `field` and `code` never change with it."""

ERRORS: Mapping[int, str] = {
    400: "A parameter is invalid; `error` names it",
    404: "No such network, line, component or incident",
    503: "The database is unreachable; try again shortly",
}


@dataclass(frozen=True)
class PathParam:
    """A path parameter; `slashes` lets its value hold `/` (a component key), routed as `{name:path}`."""

    name: str
    description: str
    schema: Mapping[str, Any]
    slashes: bool = False


@dataclass(frozen=True)
class Operation:
    """One GET of the API: its route and everything the document says of it."""

    path: str
    endpoint: Endpoint
    operation_id: str
    summary: str
    response: type[BaseModel] | None  # None: a free-form JSON object (the document itself)
    query: type[BaseModel] | None = None
    path_params: tuple[PathParam, ...] = ()
    errors: tuple[int, ...] = ()
    description: str = ""

    @property
    def route_path(self) -> str:
        """The Starlette path: `{component}` becomes `{component:path}` when its value may hold slashes."""
        path = self.path
        for param in self.path_params:
            if param.slashes:
                path = path.replace(f"{{{param.name}}}", f"{{{param.name}:path}}")
        return path


def _parameter_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A query model's property as a parameter schema: without title and description, never null."""
    found = {k: v for k, v in schema.items() if k not in ("title", "description")}
    branches = found.pop("anyOf", None)
    if branches is not None:
        found.update(next(b for b in branches if b.get("type") != "null"))
        if found.get("default") is None:
            found.pop("default", None)
    return found


@cache
def _query_schemas(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    properties: dict[str, dict[str, Any]] = model.model_json_schema(mode="validation")["properties"]
    return properties


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a query model: every one optional, with type, bounds, enum, default."""
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": schema.get("description", ""),
            "schema": _parameter_schema(schema),
        }
        for name, schema in _query_schemas(model).items()
    ]


def parameter_problem(model: type[BaseModel], name: str) -> Text:
    """What a valid value of query parameter `name` is, said from its documented schema (in each language)."""
    schema = _parameter_schema(_query_schemas(model).get(name, {}))
    if "enum" in schema:
        return said("must be one of {values}", values=", ".join(str(v) for v in schema["enum"]))
    if schema.get("type") == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return said("must be an integer between {low} and {high}", low=low, high=high)
        return said("must be an integer of at least {low}", low=low) if low is not None else said("must be an integer")
    if "pattern" in schema:
        return said("must match {pattern}", pattern=schema["pattern"])
    return said("is invalid")


def _error_response(code: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": ERRORS[code],
        "content": {"application/json": {"schema": {"$ref": REF.format(model=ErrorAnswer.__name__)}}},
    }
    if code == 503:
        answer["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return answer


def _path_parameter(param: PathParam, examples: Mapping[str, list[Any]]) -> dict[str, Any]:
    schema = dict(param.schema)
    if examples.get(param.name):
        schema["examples"] = list(examples[param.name])
    return {"name": param.name, "in": "path", "required": True, "description": param.description, "schema": schema}


def _operation(op: Operation, refs: Mapping[type[BaseModel], Any], examples: Mapping[str, list[Any]]) -> dict[str, Any]:
    schema = refs[op.response] if op.response is not None else {"type": "object"}
    parameters = [_path_parameter(p, examples) for p in op.path_params]
    parameters += query_parameters(op.query) if op.query is not None else []
    found: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": {
            "200": {
                "description": "OK",
                "headers": {"Cache-Control": {"required": True, "schema": {"type": "string", "const": "no-cache"}}},
                "content": {"application/json": {"schema": schema}},
            },
            **{str(code): _error_response(code) for code in sorted(op.errors)},
        },
    }
    if op.description:
        found["description"] = op.description
    if parameters:
        found["parameters"] = parameters
    return found


@cache
def _schemas(models: tuple[type[BaseModel], ...]) -> tuple[dict[type[BaseModel], Any], dict[str, Any]]:
    keys, top = models_json_schema([(model, "serialization") for model in models], ref_template=REF)
    return {model: keys[(model, "serialization")] for model in models}, top.get("$defs", {})


def openapi_document(
    operations: Iterable[Operation], examples: Mapping[str, list[Any]] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of `operations`; `examples` gives path parameters real values (the config's)."""
    operations = list(operations)
    models = (ErrorAnswer, *dict.fromkeys(op.response for op in operations if op.response is not None))
    refs, schemas = _schemas(models)
    paths: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(op.path, {})["get"] = _operation(op, refs, examples or {})
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "tpmon API",
            "version": API_VERSION,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
