"""Config problems: pydantic errors mapped to file:line and field path, and the cross-field rules."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .errors import ConfigProblem
from .yamlsource import Path, YamlDocument

if TYPE_CHECKING:
    from .config import Settings

_SECRET_FIELDS = {"url", "headers", "body"}


def _known_fields() -> set[str]:
    from . import config

    names: set[str] = set()
    for value in vars(config).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            names.update(value.model_fields)
    return names - {"source"}


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Keep the parts of a pydantic `loc` that exist in the data (drops union tags and validator names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(part, str) and not part.startswith(("function-", "tagged-union")) and "[" not in part:
            # a missing or extra key: it names the field even though the data has no such value
            if not (isinstance(node, dict) and part in ("http", "tcp", "tls", "dns")):
                path.append(part)
                node = None
    return tuple(path)


def _message(error: Any, known: set[str]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        return f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_invalid":
        return f"unknown check kind {error['input'].get('kind')!r}; expected one of: http, tcp, tls, dns"
    if kind == "union_tag_not_found":
        return "a check needs `kind:` (http, tcp, tls or dns)"
    if kind == "string_pattern_mismatch":
        field = str(error["loc"][-1]) if error["loc"] else ""
        if field == "url":
            return "must start with http:// or https://"
        if field == "path":
            return "must be a JSON path like $.status or $.items[0].state"
        return f"{error['input']!r} is not a valid name: use lowercase letters, digits, '-' and '_'"
    message = str(error["msg"]).replace("Input should be", "must be")
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def validation_problems(exc: ValidationError, doc: YamlDocument) -> list[ConfigProblem]:
    """One ConfigProblem per pydantic error, located in the YAML, sorted by line."""
    known = _known_fields()
    problems = []
    for error in exc.errors():
        path = _data_path(tuple(error["loc"]), doc.data)
        problems.append(doc.problem(path, _message(error, known)))
    return _sorted(problems)


def _sorted(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.path))


def _env_problems(value: Any, path: Path, doc: YamlDocument, environ: Mapping[str, str]) -> list[ConfigProblem]:
    from .config import ENV_REF

    problems: list[ConfigProblem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            problems += _env_problems(item, (*path, key), doc, environ)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += _env_problems(item, (*path, index), doc, environ)
    elif isinstance(value, str):
        refs = ENV_REF.findall(value)
        allowed = len(path) >= 5 and path[2] == "checks" and path[4] in _SECRET_FIELDS
        if refs and not allowed:
            problems.append(doc.problem(path, "${…} references are only allowed in a check's url, headers and body"))
        for name in refs if allowed else ():
            if name not in environ:
                problems.append(doc.problem(path, f"environment variable {name} is not set"))
    return problems


def check_settings(settings: Settings, doc: YamlDocument, environ: Mapping[str, str]) -> list[ConfigProblem]:
    """The rules pydantic cannot express field by field: references, uniqueness, cycles, timings."""
    problems = _env_problems(doc.data, (), doc, environ)
    flows, lines = settings.flows, settings.lines

    def flow_refs(refs: tuple[str, ...], path: Path) -> None:
        for index, ref in enumerate(refs):
            for flow in ref.split("|"):
                if flow not in flows:
                    problems.append(doc.problem((*path, index), f"unknown flow {flow!r}; known: {', '.join(flows)}"))

    for name, line in lines.items():
        flow_refs(line.requires, ("lines", name, "requires"))
        flow_refs(line.optional, ("lines", name, "optional"))

    for net_name, network in settings.networks.items():
        base: Path = ("networks", net_name)
        for index, line_name in enumerate(network.lines):
            if line_name not in lines:
                problems.append(doc.problem((*base, "lines", index), f"unknown line {line_name!r}"))
        for line_name, override in network.line_overrides.items():
            where = (*base, "line_overrides", line_name)
            if line_name not in network.lines:
                problems.append(doc.problem(where, f"{line_name!r} is not one of this network's lines"))
            flow_refs(override.requires or (), (*where, "requires"))
            flow_refs(override.optional or (), (*where, "optional"))
        seen: set[str] = set()
        for index, check in enumerate(network.checks):
            where = (*base, "checks", index)
            if check.name in seen:
                problems.append(doc.problem((*where, "name"), f"duplicate check name {check.name!r} in this network"))
            seen.add(check.name)
            if check.flow not in flows:
                problems.append(doc.problem((*where, "flow"), f"unknown flow {check.flow!r}; known: {', '.join(flows)}"))
            if check.timeout >= check.interval:
                problems.append(doc.problem((*where, "timeout"), "must be shorter than interval"))
            if check.degraded_after is not None and check.degraded_after >= check.timeout:
                problems.append(doc.problem((*where, "degraded_after"), "must be shorter than timeout"))
        for index, dep in enumerate(network.depends_on):
            where = (*base, "depends_on", index)
            if dep.network == net_name:
                problems.append(doc.problem((*where, "network"), "a network cannot depend on itself"))
            elif dep.network not in settings.networks:
                problems.append(doc.problem((*where, "network"), f"unknown network {dep.network!r}"))
            if dep.flow not in flows:
                problems.append(doc.problem((*where, "flow"), f"unknown flow {dep.flow!r}"))
            for line_index, line_name in enumerate(dep.lines):
                if line_name not in network.lines:
                    problems.append(
                        doc.problem((*where, "lines", line_index), f"{line_name!r} is not one of this network's lines")
                    )
    cycle = _dependency_cycle(settings)
    if cycle:
        path = ("networks", cycle[0], "depends_on")
        problems.append(doc.problem(path, "dependency cycle: " + " → ".join([*cycle, cycle[0]])))
    return _sorted(problems)


def _dependency_cycle(settings: Settings) -> list[str]:
    graph = {
        name: [d.network for d in network.depends_on if d.network in settings.networks and d.network != name]
        for name, network in settings.networks.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def dependency_order(settings: Settings) -> list[str]:
    """Network names ordered so that each comes after the networks it depends on."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for dep in settings.networks[name].depends_on:
            if dep.network in settings.networks and dep.network != name:
                visit(dep.network)
        done.append(name)

    for name in settings.networks:
        visit(name)
    return done
