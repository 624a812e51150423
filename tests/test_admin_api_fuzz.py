"""The operators' API fuzzed by schemathesis from its own OpenAPI document, with valid and invalid tokens: never a
5xx, every answer as documented, and 401/403 where due.

Every operation (writes, pushes in the three shapes, sign-in), with valid and invalid inputs (positive and
negative modes; examples, coverage and fuzzing phases), against the operators' app in process over a SQLite file
seeded with an incident and a maintenance window. Each kind of caller gets its own app (its own throttles):
an admin token, an editor of one network, a push-only token, a wrong token, none. Reproducible: derandomized,
no example database written.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from operators_support import LIGHT, Clock, make_token, write_config
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.case import Case
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from monitor.app import create_apps
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow, Recurrence
from monitor.store import Store
from monitor.store.declaration_store import Declarations
from monitor.web.admin_openapi import admin_document
from monitor.web.admin_routes import OPERATIONS

EXAMPLES = 25  # fuzzing examples per operation for callers who may write (the examples and coverage phases add theirs)
REFUSED_EXAMPLES = 8  # for the callers refused anyway: the refusal comes before the body is read
CONFIG = {"generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none"}}
REAL = {"network": ["viamedis"], "flow": ["pec"], "check": ["operateur"], "key": ["viamedis_operateur"]}
KINDS = ["admin", "editor", "push", "wrong", "none"]
WRITES = {op.operation_id for op in OPERATIONS if op.security == "bearer" and not op.operation_id.startswith("push")}
CALLERS = {
    "admin": ("admin",),
    "editor": ("write:viamedis", "push:viamedis"),
    "push": ("push:viamedis/pec/operateur",),
}


schema = schemathesis.openapi.from_dict(admin_document(OPERATIONS, REAL), config=SchemathesisConfig.from_dict(CONFIG))


class Caller:
    """One operators' app for one kind of caller (its lifespan run by schemathesis), with the tokens it sends."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        clock = Clock()
        settings = load_config(write_config(tmp_path, rate=1_000_000))
        self.store = Store.open(f"sqlite:///{tmp_path}/tpmon.db")
        declarations = Declarations(self.store, settings, clock=clock)
        declarations.open_incident(
            title=Bilingual("PEC impossibles"),
            impact="major",
            first=IncidentUpdate(
                clock.now - timedelta(hours=1),
                "identified",
                Bilingual("Échec des PEC."),
                statuses={"line:viamedis/optique": declare("down")},
            ),
        )
        start = clock.now.replace(tzinfo=None)
        weekly = Recurrence("weekly", weekdays=(6,))
        window = MaintenanceWindow(
            None, Bilingual("Dimanche"), ("flow:viamedis/pec",), start, timedelta(hours=2), weekly
        )
        declarations.add_window(window)
        scopes = CALLERS.get(kind)
        self.token = make_token(self.store, *scopes) if scopes else ("tpm_" + "w" * 43 if kind == "wrong" else "")
        self.kuma = make_token(self.store, "push:viamedis/pec/operateur") if scopes else self.token or "none"
        apps = create_apps(settings, store=self.store, schedule=False, clock=clock, passwords=LIGHT, environ={})
        self.app = apps.admin


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Caller]]:
    found = {kind: Caller(kind, tmp_path_factory.mktemp(kind)) for kind in KINDS}
    try:
        yield found
    finally:
        asgi.shutdown_lifespans()
        for caller in found.values():
            caller.store.close()


def _refusals(kind: str) -> Any:
    def refused_as_due(ctx: Any, response: Any, case: Case[Any]) -> bool | None:
        op, status = case.operation.definition.raw.get("operationId", ""), response.status_code
        if case.method.upper() != case.operation.method.upper():  # schemathesis probing other methods: 405
            return None
        if kind in ("wrong", "none") and op in WRITES | {"listDeclarations", "push"} and status not in (401, 429):
            raise AssertionError(f"{kind} token: expected 401 (or 429), got {status}: {response.text[:200]}")
        if kind == "push" and op in WRITES | {"listDeclarations"} and status != 403:
            raise AssertionError(f"push-only token on a write: expected 403, got {status}: {response.text[:200]}")
        return None

    return refused_as_due


def _call(case: Case[Any], kind: str, callers: dict[str, Caller]) -> None:
    caller = callers[kind]
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
    if "token" in (case.path_parameters or {}):
        case.path_parameters = {**(case.path_parameters or {}), "token": caller.kuma}
    # the caller's own token, whatever was generated (schemathesis also probes with none: that is the "none" kind)
    kept = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = CaseInsensitiveDict({**kept, **headers})
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
        negative_data_rejection,
        _refusals(kind),
    ]
    case.call_and_validate(app=caller.app, checks=checks)


@pytest.mark.parametrize("kind", ["admin", "editor"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_writers_never_get_a_5xx_and_every_answer_is_as_documented(
    case: Case[Any], kind: str, callers: dict[str, Caller]
) -> None:
    _call(case, kind, callers)


@pytest.mark.parametrize("kind", ["push", "wrong", "none"])
@schema.parametrize()
@settings(
    max_examples=REFUSED_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_others_are_refused_as_due_never_with_a_5xx(case: Case[Any], kind: str, callers: dict[str, Caller]) -> None:
    _call(case, kind, callers)


def test_the_fuzzed_document_is_the_served_one(callers: dict[str, Caller]) -> None:
    with asgi.get_client(callers["admin"].app) as client:  # type: ignore[arg-type]
        served: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    assert served == admin_document(OPERATIONS, REAL)
    documented = {f"{m.upper()} {path}" for path, methods in served["paths"].items() for m in methods}
    assert documented == {r.ok().label for r in schema.get_all_operations()}  # type: ignore[union-attr]
    assert len(documented) == len(OPERATIONS) + 1  # Kuma's URL answers GET and POST
