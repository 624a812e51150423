"""/api/v1 fuzzed by schemathesis from its own OpenAPI document: never a 5xx, every answer as documented.

Every operation, with valid and invalid inputs (schemathesis' positive and negative modes, its examples,
coverage and fuzzing phases), against the app in process over the same seeded SQLite store as test_api_v1.
Reproducible: derandomized, and no example database written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err, Ok
from schemathesis.generation.case import Case
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from test_api_v1 import seeded_app

from monitor.web.api_v1 import OPERATIONS
from monitor.web.api_v1_openapi import openapi_document

EXAMPLES = 60  # fuzzing examples per operation (the examples and coverage phases add their own)
CONFIG = {"generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none"}}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
# What the app's document gives as examples for the seeded config (checked below): real ids reach the 200s.
REAL = {
    "network": ["alpha"],
    "line": ["pharmacie", "optique"],
    "component": ["network:alpha", "line:alpha/pharmacie", "check:alpha/facturation/dre"],
}
# Built without the app, so that collection starts nothing; the app serves the same document (a test says so).
schema = schemathesis.openapi.from_dict(openapi_document(OPERATIONS, REAL), config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    """The seeded app; its lifespan runs in schemathesis' own event loop, stopped before the store closes."""
    found, store, _ = seeded_app(tmp_path_factory.mktemp("fuzz"))
    with store:
        try:
            yield found
        finally:
            asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_5xx_and_every_answer_as_documented(case: Case[Any], app: Starlette) -> None:
    case.call_and_validate(app=app, checks=CHECKS)


def test_the_fuzzed_document_is_the_served_one(app: Starlette) -> None:
    # schemathesis types ASGI messages as `dict`, Starlette as `MutableMapping`: the same calls at run time
    with asgi.get_client(app) as client:  # type: ignore[arg-type]
        served: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    assert served == openapi_document(OPERATIONS, REAL)
    results = list(schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]
    assert {f"GET {op.path}" for op in OPERATIONS} == {r.ok().label for r in results if isinstance(r, Ok)}
