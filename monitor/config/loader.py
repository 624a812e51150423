"""Loading a config: YAML read with its lines, defaults applied, rules checked, models validated — or every problem."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ConfigProblem
from .model import CheckDefaults, Settings
from .problems import sort_problems, validation_problems
from .rules import blind_lines, cross_field_problems, network_flow_problems
from .texts import _, config_problem, literal
from .values import FrozenDict
from .yaml_source import YamlDocument, parse_yaml

__all__ = ["load_config", "parse_config", "read_config"]


_CHECK_DEFAULTED = ("interval", "timeout", "failure_threshold", "success_threshold")
_NOT_DEFAULTED: dict[str, tuple[str, ...]] = {"push": ("timeout",)}  # a push check has no timeout


def _valid_default(key: str, value: Any) -> bool:
    """An invalid default is reported once, at `defaults:`, not again in every check."""
    try:
        CheckDefaults.model_validate({key: value})
    except ValueError:
        return False
    return True


def _apply_defaults(data: dict[Any, Any]) -> dict[Any, Any]:
    """`data` with `defaults:` copied into every check that does not set the field itself.

    Builds new dicts: the parsed document is left as written, so problems point at what the file says.
    """
    defaults, networks = data.get("defaults"), data.get("networks")
    if not isinstance(defaults, dict) or not isinstance(networks, dict):
        return data
    inherited = {
        key: defaults[key] for key in _CHECK_DEFAULTED if key in defaults and _valid_default(key, defaults[key])
    }

    def network_with_defaults(network: Any) -> Any:
        if not isinstance(network, dict) or not isinstance(network.get("checks"), list):
            return network
        checks = [_with_defaults(inherited, check) for check in network["checks"]]
        return {**network, "checks": checks}

    return {**data, "networks": {name: network_with_defaults(network) for name, network in networks.items()}}


def _with_defaults(inherited: dict[str, Any], check: Any) -> Any:
    if not isinstance(check, dict):
        return check
    kind = check.get("kind")
    skipped = _NOT_DEFAULTED.get(kind, ()) if isinstance(kind, str) else ()
    return {**{k: v for k, v in inherited.items() if k not in skipped}, **check}


def parse_config(doc: YamlDocument, environ: Mapping[str, str]) -> Settings:
    """Validate parsed YAML into Settings, or raise ConfigError with every problem found, in file order.

    `${VAR}` references are checked against `environ` but kept as written: the model never holds a secret.
    """
    if doc.problems:
        raise ConfigError(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), _("the config must be a mapping with at least `networks:`"))])
    problems = cross_field_problems(doc, environ)
    if "source" in doc.data:  # a field of the model, set by the loader, not by the file
        problems.append(doc.problem(("source",), _("unknown field {field!r}", field="source")))
    try:
        settings = Settings.model_validate({**_apply_defaults(doc.data), "source": doc.file})
    except ValidationError as exc:
        problems += validation_problems(exc, doc)
    if not problems:
        problems = network_flow_problems(settings, doc)
    if problems:
        raise ConfigError(sort_problems(problems, doc))
    _share_equal_parts(settings)
    return settings


def _share_equal_parts(settings: Settings) -> None:
    """Checks share one instance of what they hold equal: their conditions (or other frozen sub-model), an empty
    header map, a string (a flow's name), a number (interval, timeout) and the set of the fields the file gave
    (pydantic keeps one per model: ~0.7 KiB). Each copy cost memory for every check — ~1.5 KiB a check, 15 MiB
    at 10,000 checks. The models are frozen and compared by value: sharing changes no answer (pydantic copies
    the set of given fields before changing it, in `model_copy`)."""
    given_sets: dict[frozenset[str], set[str]] = {}
    strings: dict[str, str] = {}
    numbers: dict[str, float] = {}  # by its text: -0.0 is not 0.0, a NaN is kept as it is
    shared: dict[Any, Any] = {}
    for _network, check in settings.checks():
        given = check.__pydantic_fields_set__
        kept_given = given_sets.setdefault(frozenset(given), given)
        if kept_given is not given:
            object.__setattr__(check, "__pydantic_fields_set__", kept_given)
        fields = check.__dict__
        for name, value in fields.items():
            kind, kept = type(value), value
            if kind is str:
                kept = strings.setdefault(value, value)
            elif kind is float:
                kept = numbers.setdefault(value.hex(), value)
            elif isinstance(value, FrozenDict):
                kept = value if value else shared.setdefault(type(value), value)
            elif isinstance(value, BaseModel):
                try:
                    kept = shared.setdefault(value, value)
                except TypeError:  # a model holding something unhashable: kept as it is
                    continue
            else:
                continue
            if kept is not value:
                fields[name] = kept  # the same keys: the dict is not resized while iterated


_REASONS = {  # why a file cannot be read, by errno, in each language
    errno.EACCES: _("permission denied"),
    errno.EPERM: _("permission denied"),
    errno.EISDIR: _("is a directory"),
    errno.ENOTDIR: _("a part of its path is not a directory"),
    errno.ELOOP: _("too many symbolic links"),
    errno.ENAMETOOLONG: _("the name is too long"),
    errno.EINVAL: _("not a regular file"),  # raised by read_config itself for a device or a directory
}
MAX_BYTES = 8 * 1024 * 1024  # a config file larger than this is a mistake (or /dev/zero), never read whole


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, parse and validate a YAML config file. Raises ConfigError listing every problem."""
    return read_config(path, environ)[0]


def read_config(path: str | Path, environ: Mapping[str, str] | None = None) -> tuple[Settings, list[ConfigProblem]]:
    """`load_config`, and the warnings of a valid config: lines that will stay blind (`rules.blind_lines`)."""
    file = str(path)
    try:
        with open(path, "rb") as opened:
            mode = os.fstat(opened.fileno()).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):  # a pipe is read only MAX_BYTES far
                raise OSError(errno.EINVAL, "not a regular file")
            data = opened.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            too_large = _("larger than {size} MiB", size=MAX_BYTES // 1024 // 1024)
            raise ConfigError([config_problem("", too_large, file)])
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([config_problem("", _("no such file"), file)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError) and exc.errno in _REASONS and not (exc.errno == errno.EINVAL and exc.filename):
            reason = _REASONS[exc.errno]
        elif isinstance(exc, OSError) and exc.strerror:
            reason = literal(exc.strerror)  # the system's words (English: Python leaves LC_MESSAGES at C)
        else:
            reason = _("not a UTF-8 text file")
        raise ConfigError([config_problem("", _("cannot read: {reason}", reason=reason), file)]) from None
    doc = parse_yaml(text, file)
    settings = parse_config(doc, os.environ if environ is None else environ)
    return settings, sort_problems(blind_lines(settings, doc), doc)
