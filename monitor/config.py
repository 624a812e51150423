"""Frozen pydantic models of the YAML config; `load_config(path) -> Settings` or `ConfigError`."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .configcheck import cross_field_problems, network_flow_problems
from .configerrors import sort_problems, validation_problems
from .errors import ConfigError, ConfigProblem
from .taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from .yamlsource import YamlDocument, parse_yaml

__all__ = [
    "Check",
    "CheckDefaults",
    "Dependency",
    "DnsCheck",
    "FlowDef",
    "FrozenDict",
    "HttpCheck",
    "HttpConditions",
    "LineDef",
    "Network",
    "ProbeCheck",
    "PushCheck",
    "Settings",
    "TcpCheck",
    "TlsCheck",
    "load_config",
    "parse_config",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any) -> float:
    """`30s`, `500ms`, `5m`, `1h`, `1d` or a number of seconds → float seconds. Raises ValueError."""
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if math.isnan(seconds) or math.isinf(seconds):
        shown = f" (got {value!r})" if isinstance(value, str | int | float) and len(repr(value)) <= 40 else ""
        raise ValueError(f"must be a duration like 30s, 5m or 1h{shown}")
    return seconds


K = TypeVar("K")
V = TypeVar("V")


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError("the config is frozen: build a new Settings instead")


class FrozenDict(dict[K, V]):
    """A dict that refuses changes, so the config's mappings are as frozen as its models."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        return type(self)(copy.deepcopy(dict(self), memo))


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Slug = Annotated[str, Field(pattern=SLUG)]
Frozen = Annotated[Mapping[K, V], AfterValidator(FrozenDict)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Label(Model):
    fr: str = Field(min_length=1)
    en: str = Field(min_length=1)


class FlowDef(Model):
    label: Label


class LineDef(Model):
    label: Label
    requires: tuple[str, ...] = Field(min_length=1)  # "a" or "a|b" (either one is enough)
    optional: tuple[str, ...] = ()  # down → the line is at least degraded


class LineOverride(Model):
    requires: tuple[str, ...] | None = Field(default=None, min_length=1)
    optional: tuple[str, ...] | None = None


class CheckDefaults(Model):
    interval: Seconds = 60.0
    timeout: Seconds = 10.0
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)


class CheckBase(Model):
    name: Slug
    flow: Slug
    description: str = ""
    interval: Seconds = 60.0
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)


class ProbeCheck(CheckBase):
    """A check tpmon measures itself; a push check has neither timeout nor latency threshold."""

    timeout: Seconds = 10.0
    degraded_after: Seconds | None = None


class HeaderCondition(Model):
    name: str = Field(min_length=1)
    equals: str | None = None  # absent: the header must only be present


class JsonCondition(Model):
    path: str = Field(pattern=r"^\$(\.[^.\[\]]+|\[\d+\])*$")  # $.a.b[0].c
    equals: Any


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


def _status_code(code: Any) -> int | str:
    """A code (`200`, `"404"`) or a class (`"2xx"`)."""
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        if not 100 <= code <= 599:
            raise ValueError(f"status code {code} is not between 100 and 599")
        return code
    if isinstance(code, str) and _STATUS.match(code):
        return code
    shown = f" {code!r}" if isinstance(code, str) and len(code) <= 20 else ""
    raise ValueError(f"status{shown} is neither a code like 200 nor a class like '2xx'")


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


_STATUS = re.compile(r"^[1-5]xx$")
StatusCode = Annotated[int | str, BeforeValidator(_status_code)]
Regexes = Annotated[tuple[Annotated[str, AfterValidator(_regex)], ...], BeforeValidator(_one_or_many)]
Texts = Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]


class HttpConditions(Model):
    status: tuple[StatusCode, ...] = ("2xx", "3xx")  # codes or classes like "2xx"
    max_latency: Seconds | None = None
    body_contains: Texts = ()
    body_not_contains: Texts = ()
    body_matches: Regexes = ()
    body_not_matches: Regexes = ()
    json_values: tuple[JsonCondition, ...] = Field(default=(), alias="json")
    headers: tuple[HeaderCondition, ...] = ()
    cert_valid_days: int | None = Field(default=None, ge=0, le=3650)

    def accepts_status(self, code: int) -> bool:
        return any(code == s if isinstance(s, int) else str(code)[0] == s[0] for s in self.status)


class HttpCheck(ProbeCheck):
    kind: Literal["http"]
    url: str = Field(pattern=r"^(https?://|\$\{)")  # may hold ${ENV} references (secrets)
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    headers: Frozen[str, str] = Field(default_factory=FrozenDict)  # values may hold ${ENV} references
    body: str | None = None
    follow_redirects: bool = True
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_body_bytes: int = Field(default=256 * 1024, ge=0, le=16 * 1024 * 1024)
    tls_verify: bool = True
    ca_file: str | None = None
    reuse_connection: bool = False
    conditions: HttpConditions = HttpConditions()


class TcpCheck(ProbeCheck):
    kind: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class TlsCheck(ProbeCheck):
    kind: Literal["tls"]
    host: str = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    tls_verify: bool = True
    ca_file: str | None = None
    cert_valid_days: int | None = Field(default=None, ge=0, le=3650)


class DnsCheck(ProbeCheck):
    kind: Literal["dns"]
    host: str = Field(min_length=1)
    family: Literal["any", "ipv4", "ipv6"] = "any"
    expect_addresses: tuple[str, ...] = ()


def _token_reference(value: str) -> str:
    # A malformed reference is reported by the ${VAR} rules of configcheck, once.
    if ENV_REF.fullmatch(value) or "${" in ENV_REF.sub("", value):
        return value
    raise ValueError("must be a ${VAR} reference to an environment variable, never the secret itself")


class PushCheck(CheckBase):
    """A partner reports this flow's health (heartbeat, degraded, down) at least every `interval`.

    With no signal for `missed_after` (default: `stale_after_intervals` × interval) the check is down.
    Before its first signal ever it is unknown. Thresholds apply to reported states as to probe results.
    """

    kind: Literal["push"]
    missed_after: Seconds | None = None
    token: Annotated[str, AfterValidator(_token_reference)] | None = None  # for the HTTP endpoint, later

    @property
    def degraded_after(self) -> None:
        """No latency threshold (not a config key): the partner reports `degraded` itself."""
        return None


Check = Annotated[HttpCheck | TcpCheck | TlsCheck | DnsCheck | PushCheck, Field(discriminator="kind")]


class Dependency(Model):
    """This network's `lines` (all when empty) rely on another network's flow."""

    network: Slug
    flow: Slug
    lines: tuple[Slug, ...] = ()


class Network(Model):
    name: str = Field(min_length=1, max_length=80)
    kind: Literal["operateur", "reseau_de_soins"]
    website: str | None = Field(default=None, pattern=r"^https?://")
    hotline: str | None = Field(default=None, max_length=40)
    flows: tuple[Slug, ...] | None = Field(default=None, min_length=1)  # the flows it runs; default: all
    lines: tuple[Slug, ...] = Field(min_length=1)
    line_overrides: Frozen[Slug, LineOverride] = Field(default_factory=FrozenDict)
    depends_on: tuple[Dependency, ...] = ()
    checks: tuple[Check, ...] = ()

    def flow_names(self, taxonomy: Mapping[str, FlowDef]) -> tuple[str, ...]:
        """The flows this network runs, in taxonomy order."""
        return tuple(f for f in taxonomy if self.flows is None or f in self.flows)

    def requirements(self, line: str, taxonomy: Mapping[str, LineDef]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(required, optional) flows of `line` on this network, overrides applied.

        Only flows the network runs: an alternative it does not run is dropped ("portail_ps|pec" → "pec"),
        so is an optional flow. The config refuses a required group with none of its flows run.
        """
        base = taxonomy[line]
        override = self.line_overrides.get(line)
        required = override.requires if override and override.requires is not None else base.requires
        optional = override.optional if override and override.optional is not None else base.optional
        if self.flows is None:
            return required, optional
        runs = set(self.flows)
        groups = tuple("|".join(f for f in group.split("|") if f in runs) for group in required)
        return tuple(g for g in groups if g), tuple(f for f in optional if f in runs)


class Settings(Model):
    """The whole validated config. Frozen: a reload builds a new one."""

    timezone: Literal["Europe/Paris"] = "Europe/Paris"
    defaults: CheckDefaults = CheckDefaults()
    stabilization: Seconds = 1800.0
    stale_after_intervals: float = Field(default=3.0, ge=1.0, le=100.0)
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)  # share of each interval
    max_concurrency: int = Field(default=64, ge=1, le=2048)
    raw_retention_days: int = Field(default=30, ge=1, le=3650)  # raw results; ≥ 400 for contractual evidence
    user_agent: str = Field(default="tpmon/0.1 (+status monitor of French tiers-payant networks)", min_length=1)
    flows: Frozen[Slug, FlowDef] = Field(
        default_factory=lambda: FrozenDict({k: FlowDef.model_validate(v) for k, v in DEFAULT_FLOWS.items()})
    )
    lines: Frozen[Slug, LineDef] = Field(
        default_factory=lambda: FrozenDict({k: LineDef.model_validate(v) for k, v in DEFAULT_LINES.items()})
    )
    networks: Frozen[Slug, Network] = Field(min_length=1)
    source: str = Field(default="", exclude=True)  # the file it was loaded from

    def checks(self) -> list[tuple[str, Check]]:
        """Every (network, check) pair, in config order."""
        return [(name, check) for name, network in self.networks.items() for check in network.checks]


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
        raise ConfigError([doc.problem((), "the config must be a mapping with at least `networks:`")])
    problems = cross_field_problems(doc, environ)
    if "source" in doc.data:  # a field of the model, set by the loader, not by the file
        problems.append(doc.problem(("source",), "unknown field 'source'"))
    try:
        settings = Settings.model_validate({**_apply_defaults(doc.data), "source": doc.file})
    except ValidationError as exc:
        problems += validation_problems(exc, doc)
    if not problems:
        problems = network_flow_problems(settings, doc)
    if problems:
        raise ConfigError(sort_problems(problems, doc))
    return settings


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, parse and validate a YAML config file. Raises ConfigError listing every problem."""
    import os

    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", "no such file", file)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a UTF-8 text file"
        raise ConfigError([ConfigProblem("", f"cannot read: {reason}", file)]) from None
    return parse_config(parse_yaml(text, file), os.environ if environ is None else environ)
