"""Evaluation of an HTTP check's conditions on the answer it got."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ..config import HttpConditions
from ..models import FailureReason
from .certs import expiry_problem

__all__ = ["MISSING", "Answer", "check_conditions", "json_lookup"]

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
MISSING: Any = object()  # what json_lookup returns for an absent path

Failure = tuple[FailureReason, str]


@dataclass(frozen=True)
class Answer:
    """The final response of a probe: its status, headers, body (cut at max_body_bytes) and timing."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    encoding: str
    elapsed: float
    chain_expiry: datetime | None = None


def json_lookup(document: Any, path: str) -> Any:
    """The value at a path like `$.a.b[0].c` in a parsed JSON document, or MISSING."""
    node = document
    for match in _STEP.finditer(path, 1):
        key, index = match.groups()
        if key is not None:
            if not isinstance(node, dict) or key not in node:
                return MISSING
            node = node[key]
        else:
            position = int(index)
            if not isinstance(node, list) or position >= len(node):
                return MISSING
            node = node[position]
    return node


def _same(actual: Any, expected: Any) -> bool:
    """JSON equality where `true` is not `1`."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return bool(actual == expected)


def _status(conditions: HttpConditions, answer: Answer) -> Failure | None:
    if conditions.accepts_status(answer.status_code):
        return None
    expected = ", ".join(str(code) for code in conditions.status)
    return FailureReason.HTTP_STATUS, f"status {answer.status_code}, expected {expected}"


def _headers(conditions: HttpConditions, answer: Answer) -> Failure | None:
    for header in conditions.headers:
        value = answer.headers.get(header.name)
        if value is None:
            return FailureReason.ASSERTION, f"header {header.name!r} missing"
        if header.equals is not None and value != header.equals:
            # never echo the value: a header may carry a token or a session
            return FailureReason.ASSERTION, f"header {header.name!r} has an unexpected value"
    return None


def _body(conditions: HttpConditions, answer: Answer) -> Failure | None:
    if not (
        conditions.body_contains
        or conditions.body_not_contains
        or conditions.body_matches
        or conditions.body_not_matches
    ):
        return None
    text = answer.body.decode(answer.encoding, errors="replace")
    for needle in conditions.body_contains:
        if needle not in text:
            return FailureReason.BODY, f"body does not contain {needle!r}"
    for needle in conditions.body_not_contains:
        if needle in text:
            return FailureReason.BODY, f"body contains {needle!r}"
    for pattern in conditions.body_matches:
        if not re.search(pattern, text):
            return FailureReason.BODY, f"body does not match {pattern!r}"
    for pattern in conditions.body_not_matches:
        if re.search(pattern, text):
            return FailureReason.BODY, f"body matches {pattern!r}"
    return None


def _json(conditions: HttpConditions, answer: Answer) -> Failure | None:
    if not conditions.json_values:
        return None
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        return FailureReason.ASSERTION, "body is not JSON (or is longer than max_body_bytes)"
    for condition in conditions.json_values:
        actual = json_lookup(document, condition.path)
        if actual is MISSING:
            return FailureReason.ASSERTION, f"json {condition.path} missing"
        if not _same(actual, condition.equals):
            return FailureReason.ASSERTION, f"json {condition.path} is not {json.dumps(condition.equals, default=str)}"
    return None


def _latency(conditions: HttpConditions, answer: Answer) -> Failure | None:
    limit = conditions.max_latency
    if limit is None or answer.elapsed <= limit:
        return None
    return FailureReason.ASSERTION, f"took {answer.elapsed:.2f} s, max_latency is {limit:g} s"


def check_conditions(conditions: HttpConditions, answer: Answer, now: datetime) -> Failure | None:
    """The first failed condition as (reason, detail), or None when all hold.

    Order: status, headers, body, json, certificate, latency. A slow answer over `max_latency`
    is an ASSERTION (the target answered; the condition on it failed).
    """
    for rule in (_status, _headers, _body, _json):
        failure = rule(conditions, answer)
        if failure:
            return failure
    problem = expiry_problem(answer.chain_expiry, conditions.cert_valid_days, now)
    if problem:
        return FailureReason.CERTIFICATE_EXPIRY, problem
    return _latency(conditions, answer)
