"""Config problems from pydantic: each error mapped to its file:line and field path, in plain words."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import ConfigProblem
from ..i18n import N_
from .model import Settings
from .texts import Text, TextError, _, literal
from .values import got
from .yaml_source import Path, YamlDocument

__all__ = ["HANDLED", "SECRET_FIELDS", "sort_problems", "suggest", "validation_problems"]

SECRET_FIELDS = {"url", "headers", "body", "token"}  # the only fields where ${VAR} references are expanded
_CHECK_KINDS = ("http", "tcp", "tls", "dns", "push")
_NOT_FOR_PUSH = {
    "timeout": _("a push check has no timeout: it waits `missed_after` for its partner's next signal"),
    "degraded_after": _("a push check has no degraded_after: its partner reports `degraded` itself"),
}

# pydantic's errors are said by their `type` (and `ctx`), never from pydantic's English text; a type missing here
# and in `_message` falls back to that text (tests/test_config_french.py lists the types the config can produce).
_SIMPLE = {
    "missing": _("required field is missing"),
    "dict_type": _("must be a mapping"),
    "model_type": _("must be a mapping"),
    "model_attributes_type": _("must be a mapping"),
    "tuple_type": _("must be a list"),
    "list_type": _("must be a list"),
    "string_type": _("must be a string"),
    "string_unicode": _("must be a string"),
    "int_type": _("must be an integer"),
    "int_parsing": _("must be an integer"),
    "int_parsing_size": _("must be an integer"),
    "int_from_float": _("must be an integer"),
    "float_type": _("must be a number"),
    "float_parsing": _("must be a number"),
    "finite_number": _("must be a finite number"),
    "bool_type": _("must be true or false"),
    "bool_parsing": _("must be true or false"),
    "recursion_loop": _("must not contain itself"),
}
# Bounds: the limit from `ctx`, as the config writes it.
_BOUNDS = {
    "greater_than": ("gt", N_("must be greater than {limit}")),
    "greater_than_equal": ("ge", N_("must be greater than or equal to {limit}")),
    "less_than": ("lt", N_("must be less than {limit}")),
    "less_than_equal": ("le", N_("must be less than or equal to {limit}")),
}
HANDLED = frozenset(
    {*_SIMPLE, *_BOUNDS, "invalid_key", "extra_forbidden", "union_tag_invalid", "union_tag_not_found"}
    | {"string_pattern_mismatch", "too_short", "string_too_short", "too_long", "string_too_long"}
    | {"literal_error", "value_error"}
)  # the pydantic error types said in every language (others: pydantic's English text)


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


def suggest(name: str, known: Iterable[str]) -> Text:
    """` (did you mean 'x'?)` when a known name is close to `name`, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return _(" (did you mean {name!r}?)", name=close[0]) if close else literal("")


def _meant(path: Path, data: Any) -> str | None:
    """The field an unknown key at `path` most likely means, among those of its model."""
    model = _model_at(path[:-1], data)
    close = difflib.get_close_matches(str(path[-1]), _model_fields(model), n=1, cutoff=0.75) if model and path else []
    return close[0] if close else None


def _literal_values(path: Path, data: Any) -> tuple[Any, ...]:
    """The values a `Literal` field at `path` accepts, read from its model (pydantic's `ctx` says them in English
    words only); () when not found."""
    model = _model_at(path[:-1], data) if path else None
    fields = {field.alias or name: field for name, field in model.model_fields.items()} if model else {}
    annotation: Any = fields[path[-1]].annotation if path and path[-1] in fields else None
    while get_origin(annotation) in (Annotated, Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 or get_origin(annotation) is Annotated else None
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _one_of(values: tuple[Any, ...]) -> Text:
    """'a', 'b' or 'c', in each language."""
    shown = [repr(value) for value in values]
    if len(shown) == 1:
        return literal(shown[0])
    return _("{some} or {last}", some=", ".join(shown[:-1]), last=shown[-1])


def _message(error: Any, path: Path, data: Any) -> Text:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    secret = any(part in SECRET_FIELDS for part in path)
    if kind == "invalid_key" or (kind == "string_type" and "[key]" in error["loc"]):
        return _("names must be strings")
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind in _BOUNDS and _BOUNDS[kind][0] in ctx:
        name, message = _BOUNDS[kind]
        return _(message, limit=ctx[name])
    if kind == "extra_forbidden":
        if path and path[-1] in _NOT_FOR_PUSH and (model := _model_at(path[:-1], data)) and _kind_of(model) == "push":
            return _NOT_FOR_PUSH[str(path[-1])]
        close = _meant(path, data)
        field = str(path[-1]) if path else ""
        if close:
            return _("unknown field {field!r} (did you mean {close!r}?)", field=field, close=close)
        return _("unknown field {field!r}", field=field)
    if kind == "union_tag_invalid":
        kinds = ", ".join(_CHECK_KINDS)
        if len(repr(ctx.get("tag"))) <= 40:
            return _("unknown check kind {tag!r}; expected one of: {kinds}", tag=ctx.get("tag"), kinds=kinds)
        return _("unknown check kind; expected one of: {kinds}", kinds=kinds)
    if kind == "union_tag_not_found":
        return _("a check needs `kind:` ({kinds})", kinds=", ".join(_CHECK_KINDS))
    if kind == "string_pattern_mismatch":
        if "https?" in str(ctx.get("pattern")):
            return _("must start with http:// or https://")
        if str(ctx.get("pattern")).startswith("^\\$"):
            return _("must be a JSON path like $.status or $.items[0].state")
        return _("{name!r} is not a valid name: use lowercase letters, digits, '-' and '_'", name=error["input"])
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length", 1)
        if least == 1:
            return _("must not be empty")
        if kind == "string_too_short":
            return _("must have at least {count} characters", count=least)
        return _("must have at least {count} items", count=least)
    if kind in ("too_long", "string_too_long"):
        most = ctx.get("max_length")
        if kind == "string_too_long":
            return _("must have at most {count} characters", count=most)
        return _("must have at most {count} items", count=most)
    if kind == "literal_error" and (values := _literal_values(path, data)):
        shown = got(error["input"], 40) if not secret else literal("")
        return _("must be {values}{got}", values=_one_of(values), got=shown)
    if kind == "value_error" and isinstance(ctx.get("error"), TextError):
        text: Text = ctx["error"].text
        return text
    return _fallback(error, secret)


def _fallback(error: Any, secret: bool) -> Text:
    """pydantic's English text, for an error type without a translation: said as it is in every language."""
    message = str(error["msg"]).replace("Input should be", "must be")
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "literal_error" and not secret:
        message += got(error["input"], 40).render("en")
    return literal(message)


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
