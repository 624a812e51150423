"""Config problems from pydantic: each error mapped to its file:line and field path, in plain words."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import ConfigProblem
from .model import Settings
from .yaml_source import Path, YamlDocument

__all__ = ["SECRET_FIELDS", "sort_problems", "suggest", "validation_problems"]

SECRET_FIELDS = {"url", "headers", "body", "token"}  # the only fields where ${VAR} references are expanded
_CHECK_KINDS = ("http", "tcp", "tls", "dns", "push")
_NOT_FOR_PUSH = {
    "timeout": "a push check has no timeout: it waits `missed_after` for its partner's next signal",
    "degraded_after": "a push check has no degraded_after: its partner reports `degraded` itself",
}

_SIMPLE = {
    "missing": "required field is missing",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "recursion_loop": "must not contain itself",
}


# --- pydantic errors -------------------------------------------------------------------------------------


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Keep the parts of a pydantic `loc` that exist in the data (drops union tags and validator names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict | list) and _has(node, part):
            path.append(part if isinstance(node, list) or isinstance(part, str) else str(part))
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and _names_a_key(part):
            path.append(part)  # a missing or extra key: it names the field though the data has no value
            node = None
        # else: a union member or a validator's name, not a place in the data
    return tuple(path)


def _names_a_key(part: str) -> bool:
    return part not in _CHECK_KINDS and not part.startswith(("function-", "tagged-union", "tag-")) and "[" not in part


def _model_fields(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts in YAML (aliases where set), in declaration order."""
    return [field.alias or name for name, field in model.model_fields.items() if name != "source"]


def _resolve(annotation: Any, node: Any) -> Any:
    """Strip `Annotated` and `X | None`; pick a check model by the data's `kind:`."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            kind = node.get("kind") if isinstance(node, dict) else None
            tagged = [m for m in members if isinstance(m, type) and _kind_of(m) == kind]
            if len(members) == 1 or len(tagged) == 1:
                annotation = (tagged or members)[0]
            else:
                return None
        else:
            return annotation


def _kind_of(model: type) -> Any:
    field = model.model_fields.get("kind") if issubclass(model, BaseModel) else None
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if len(args) == 1 else None


def _model_at(path: Path, data: Any) -> type[BaseModel] | None:
    """The config model that validates the value at `path` of `data`, if any."""
    annotation: Any = Settings
    node = data
    for part in path:
        annotation = _resolve(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {field.alias or name: field for name, field in annotation.model_fields.items()}
            annotation = fields[part].annotation if part in fields else None
        elif get_origin(annotation) is tuple or get_origin(annotation) is Mapping:
            annotation = get_args(annotation)[0 if get_origin(annotation) is tuple else 1]
        else:
            return None
        node = _child(node, part)
    annotation = _resolve(annotation, node)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _has(node: dict[Any, Any] | list[Any], part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _meant(path: Path, data: Any) -> str | None:
    """The field an unknown key at `path` most likely means, among those of its model."""
    model = _model_at(path[:-1], data)
    close = difflib.get_close_matches(str(path[-1]), _model_fields(model), n=1, cutoff=0.75) if model and path else []
    return close[0] if close else None


def _shown(value: Any) -> str:
    """` (got 'x')` for a short scalar, else nothing."""
    if isinstance(value, str | int | float) and len(repr(value)) <= 40:
        return f" (got {value!r})"
    return ""


def _message(error: Any, path: Path, data: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    secret = any(part in SECRET_FIELDS for part in path)
    if kind == "invalid_key" or (kind == "string_type" and "[key]" in error["loc"]):
        return "names must be strings"
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "extra_forbidden":
        if path and path[-1] in _NOT_FOR_PUSH and (model := _model_at(path[:-1], data)) and _kind_of(model) == "push":
            return _NOT_FOR_PUSH[str(path[-1])]
        close = _meant(path, data)
        return f"unknown field {str(path[-1]) if path else ''!r}" + (f" (did you mean {close!r}?)" if close else "")
    if kind == "union_tag_invalid":
        tag = f" {ctx['tag']!r}" if len(repr(ctx.get("tag"))) <= 40 else ""
        return f"unknown check kind{tag}; expected one of: {', '.join(_CHECK_KINDS)}"
    if kind == "union_tag_not_found":
        return f"a check needs `kind:` ({', '.join(_CHECK_KINDS)})"
    if kind == "string_pattern_mismatch":
        if "https?" in str(ctx.get("pattern")):
            return "must start with http:// or https://"
        if str(ctx.get("pattern")).startswith("^\\$"):
            return "must be a JSON path like $.status or $.items[0].state"
        return f"{error['input']!r} is not a valid name: use lowercase letters, digits, '-' and '_'"
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length", 1)
        unit = "character" if kind == "string_too_short" else "item"
        return "must not be empty" if least == 1 else f"must have at least {least} {unit}s"
    if kind in ("too_long", "string_too_long"):
        unit = "character" if kind == "string_too_long" else "item"
        return f"must have at most {ctx.get('max_length')} {unit}s"
    message = str(error["msg"]).replace("Input should be", "must be")
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "literal_error" and not secret:
        message += _shown(error["input"])
    return message


def validation_problems(exc: ValidationError, doc: YamlDocument) -> list[ConfigProblem]:
    """One ConfigProblem per pydantic error, located in the YAML, sorted by line."""
    located = []
    for error in exc.errors():
        path = _data_path(tuple(error["loc"]), doc.data)
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            path = (*path, "kind")
        located.append((path, error["type"], _message(error, path, doc.data)))
    # `netwrk: b` (did you mean 'network'?) says already that `network` is missing: one problem, not two
    suggested = {(*path[:-1], _meant(path, doc.data)) for path, kind, _ in located if kind == "extra_forbidden"}
    problems = [doc.problem(path, m) for path, kind, m in located if not (kind == "missing" and path in suggested)]
    return sort_problems(problems, doc)


def sort_problems(problems: Iterable[ConfigProblem], doc: YamlDocument | None = None) -> list[ConfigProblem]:
    """Problems in file order (line, column when `doc` is given, then field path), each once."""
    unique = list(dict.fromkeys(problems))
    if doc is None:
        return sorted(unique, key=lambda p: (p.line or 0, p.path))
    return sorted(unique, key=doc.sort_key)


# --- cross-field rules, on the raw data --------------------------------------------------------------------
