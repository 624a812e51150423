"""The config: examples load and cover every field; defaults, durations, freezing, secrets, dependencies."""

from __future__ import annotations

import copy
import inspect
import pickle
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from monitor.cli import main
from monitor.config import (
    HttpCheck,
    Settings,
    TcpCheck,
    dependency_order,
    load_config,
    parse_config,
    parse_duration,
    read_config,
)
from monitor.config.taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from monitor.config.yaml_source import parse_yaml
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))


def parse(text: str, environ: Mapping[str, str] | None = None) -> Settings:
    return parse_config(parse_yaml(text, "test.yaml"), environ or {})


# The environment each example documents in its header (the demo sets these for its simulator).
EXAMPLE_ENV: dict[str, dict[str, str]] = {
    "demo.yaml": {"TPMON_DEMO_HTTP": "http://127.0.0.1:8481", "TPMON_DEMO_TLS": "https://127.0.0.1:8482"},
    "notifications.yaml": {"TPMON_MATTERMOST_TOKEN": "t0ken"},
}


def env_of(path: Path) -> dict[str, str]:
    return EXAMPLE_ENV.get(path.name, {})


def test_there_are_examples() -> None:
    assert ROOT / "config" / "example.yaml" in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads(path: Path) -> None:
    settings = load_config(path, environ=env_of(path))
    assert settings.networks
    assert settings.source == str(path)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_check_config_accepts_example(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_of(path).items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    settings, warnings = read_config(path, environ=env_of(path))
    shown = f", {len(warnings)} warning(s)" if warnings else ""
    assert out == f"{path}: OK — {len(settings.networks)} networks, {len(settings.checks())} checks{shown}\n"
    assert err.splitlines() == [f"{p.file}:{p.line}: {p.path}: warning: {p.message}" for p in warnings]


# --- the examples cover every field (as datasette's test_docs) ----------------------------------------------


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models inside an annotation (`tuple[Check, ...]`, `Mapping[str, Network]`, `X | None`…)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def _key(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def _owner(model: type[BaseModel], name: str) -> str:
    """The class that declares the field: a field inherited by every check kind is covered once."""
    return next(c.__name__ for c in model.__mro__ if name in inspect.get_annotations(c))


def declared_fields() -> set[tuple[str, str]]:
    """(model, YAML key) of every field of every model reachable from Settings."""
    fields: set[tuple[str, str]] = set()
    todo: list[type[BaseModel]] = [Settings]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if name != "source":  # set by the loader, not a config key
                fields.add((_owner(model, name), _key(model, name)))
                todo.extend(_models(field.annotation))
    return fields


def _bare(annotation: Any) -> Any:
    """`annotation` without its `Annotated` layers."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _used(annotation: Any, value: Any, out: set[tuple[str, str]]) -> None:
    """Record (model, key) for every key of `value`, read as `annotation` (shape-aware walk)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        _used(get_args(annotation)[0], value, out)
    elif origin in (Union, types.UnionType):
        members = [_bare(m) for m in get_args(annotation) if m is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        kind = value.get("kind") if isinstance(value, dict) else None
        for member in members:
            tag = member.model_fields.get("kind") if member in models else None
            one_mapping = isinstance(value, dict) and models == [member]  # `text | {fr, en}`: a mapping is the model
            if len(members) == 1 or one_mapping or (tag is not None and get_args(tag.annotation) == (kind,)):
                _used(member, value, out)
    elif origin is tuple and isinstance(value, list):
        for item in value:
            _used(get_args(annotation)[0], item, out)
    elif origin is Mapping and isinstance(value, dict):
        for item in value.values():
            _used(get_args(annotation)[1], item, out)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
        by_key = {_key(annotation, name): name for name in annotation.model_fields}
        for key, item in value.items():
            if key in by_key:
                out.add((_owner(annotation, by_key[key]), key))
                _used(annotation.model_fields[by_key[key]].annotation, item, out)


def test_examples_cover_every_field() -> None:
    used: set[tuple[str, str]] = set()
    for path in EXAMPLES:
        _used(Settings, yaml.safe_load(path.read_text(encoding="utf-8")), used)
    missing = sorted(declared_fields() - used)
    assert not missing, f"fields shown in no config/*.yaml example: {missing}"


def test_field_walk_sees_nested_and_inherited_fields() -> None:
    fields = declared_fields()
    assert ("CheckBase", "interval") in fields  # inherited by every check kind: covered once
    assert ("HttpCheck", "tls_verify") in fields and ("TlsCheck", "tls_verify") in fields
    assert ("HttpConditions", "json") in fields  # by its YAML alias
    assert ("Label", "fr") in fields
    assert not any(key == "source" for _, key in fields)


# --- defaults, durations ------------------------------------------------------------------------------------

NETWORK = """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {name: a, flow: portail_ps, kind: tcp, host: a.example, port: 443}
      - {name: b, flow: portail_ps, kind: tcp, host: b.example, port: 443, interval: 2m, failure_threshold: 1}
"""


def test_defaults_apply_to_checks_that_omit_them_only() -> None:
    settings = parse("defaults: {interval: 30s, timeout: 5s, failure_threshold: 5, success_threshold: 4}\n" + NETWORK)
    a, b = (check for _, check in settings.checks())
    assert isinstance(a, TcpCheck) and isinstance(b, TcpCheck)
    assert (a.interval, a.timeout, a.failure_threshold, a.success_threshold) == (30.0, 5.0, 5, 4)
    assert (b.interval, b.timeout, b.failure_threshold, b.success_threshold) == (120.0, 5.0, 1, 4)
    assert settings.defaults.interval == 30.0


def test_without_defaults_the_model_defaults_apply() -> None:
    a, b = (check for _, check in parse(NETWORK).checks())
    assert isinstance(a, TcpCheck) and isinstance(b, TcpCheck)
    assert (a.interval, a.timeout, a.failure_threshold, a.success_threshold) == (60.0, 10.0, 3, 2)
    assert (b.interval, b.failure_threshold) == (120.0, 1)


def test_defaults_leave_the_parsed_document_as_written() -> None:
    doc = parse_yaml("defaults: {interval: 30s}\n" + NETWORK, "test.yaml")
    parse_config(doc, {})
    assert "interval" not in doc.data["networks"]["viamedis"]["checks"][0]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), ("2.5s", 2.5),
     ("90", 90.0), (" 10 s ", 10.0), (45, 45.0), (1.5, 1.5)],
)  # fmt: skip
def test_durations_parse(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds
    shown = repr(value) if isinstance(value, str) else value
    text = NETWORK.replace("interval: 2m", f"interval: {shown}, timeout: 100ms")
    assert parse(text).networks["viamedis"].checks[1].interval == seconds


@pytest.mark.parametrize(
    "value", ["5 minutes", "-1s", "1w", "", "s", True, None, [], float("inf"), float("nan"), 10**400]
)
def test_bad_durations_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(value)


# --- frozen, secrets ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Settings:
    return load_config(ROOT / "config" / "example.yaml", environ={})


def test_settings_and_parts_are_frozen(example: Settings) -> None:
    network = example.networks["viamedis"]
    check = network.checks[0]
    assert isinstance(check, HttpCheck)
    for model, field, value in [
        (example, "stabilization", 1.0),
        (example.defaults, "interval", 1.0),
        (network, "name", "Other"),
        (check, "url", "https://other.example/"),
        (check.conditions, "status", (500,)),
        (example.flows["pec"].label, "fr", "PEC"),
    ]:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(model, field, value)
    for mapping in (example.networks, example.flows, example.lines, network.line_overrides, check.headers):
        with pytest.raises(TypeError, match="frozen"):
            mapping["x"] = mapping  # type: ignore[index]  # the write its read-only type forbids, refused at run time
        with pytest.raises(TypeError, match="frozen"):
            mapping.update({})  # type: ignore[union-attr]  # idem
    assert isinstance(network.checks, tuple)


def test_settings_copy_pickle_and_dump(example: Settings) -> None:
    assert pickle.loads(pickle.dumps(example)) == example
    assert copy.deepcopy(example) == example
    assert Settings.model_validate(example.model_dump(by_alias=True)).networks == example.networks


def test_env_references_stay_as_written_in_the_model() -> None:
    text = NETWORK.replace(
        "- {name: a, flow: portail_ps, kind: tcp, host: a.example, port: 443}",
        "- name: a\n        flow: portail_ps\n        kind: http\n        url: https://a.example/?key=${TOKEN}\n"
        '        headers: {Authorization: "Bearer ${TOKEN}"}\n        body: "${TOKEN}"',
    )
    settings = parse(text, environ={"TOKEN": "hunter2-secret"})
    check = settings.networks["viamedis"].checks[0]
    assert isinstance(check, HttpCheck)
    assert check.url == "https://a.example/?key=${TOKEN}"
    assert check.headers["Authorization"] == "Bearer ${TOKEN}"
    assert check.body == "${TOKEN}"
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in shown
    with pytest.raises(ConfigError, match="environment variable TOKEN is not set"):
        parse(text, environ={})


# --- dependencies, requirements -----------------------------------------------------------------------------


def test_dependency_order_puts_dependencies_first() -> None:
    def network(name: str, *deps: str) -> str:
        depends = ", ".join(f"{{network: {dep}, flow: pec}}" for dep in deps)
        return f"  {name}: {{name: {name}, kind: reseau_de_soins, lines: [optique], depends_on: [{depends}]}}\n"

    settings = parse(
        "networks:\n" + network("a", "b") + network("b", "c", "d") + network("c") + network("d", "c") + network("e")
    )
    order = dependency_order(settings)
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    for name, net in settings.networks.items():
        for dep in net.depends_on:
            assert order.index(dep.network) < order.index(name), (dep.network, name)


def test_requirements_apply_overrides(example: Settings) -> None:
    kalixia = example.networks["kalixia"]
    assert kalixia.requirements("optique", example.lines) == (
        ("portail_ps|pec", "facturation"),
        ("droits", "paiements"),
    )
    assert kalixia.requirements("audio", example.lines) == (
        tuple(DEFAULT_LINES["audio"]["requires"]),
        tuple(DEFAULT_LINES["audio"]["optional"]),
    )


def test_override_of_requires_only_keeps_the_default_optional() -> None:
    settings = parse(NETWORK.replace("    checks:", "    line_overrides: {optique: {requires: [pec]}}\n    checks:"))
    assert settings.networks["viamedis"].requirements("optique", settings.lines) == (
        ("pec",),
        tuple(DEFAULT_LINES["optique"]["optional"]),
    )


def test_default_taxonomy_is_consistent() -> None:
    for line in DEFAULT_LINES.values():
        for ref in line["requires"] + line["optional"]:
            assert set(ref.split("|")) <= set(DEFAULT_FLOWS), ref


# --- problems -----------------------------------------------------------------------------------------------


def test_problems_of_both_kinds_are_reported_together_and_deterministically() -> None:
    text = NETWORK.replace("kind: operateur", "kind: operator").replace(
        "flow: portail_ps, kind: tcp, host: b", "flow: portal, kind: tcp, host: b"
    )
    messages = []
    for _ in range(2):
        with pytest.raises(ConfigError) as caught:
            parse(text)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "networks.viamedis.kind: must be 'operateur' or 'reseau_de_soins'" in messages[0]
    assert "networks.viamedis.checks[1].flow: unknown flow 'portal'" in messages[0]


def test_a_source_key_in_the_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="source: unknown field 'source'"):
        parse("source: elsewhere.yaml\n" + NETWORK)


def test_tcp_check_needs_a_port() -> None:
    with pytest.raises(ConfigError, match=r"checks\[0\]\.port: required field is missing"):
        parse(NETWORK.replace("host: a.example, port: 443", "host: a.example"))
    assert TcpCheck.model_fields["port"].is_required()


def test_equal_conditions_are_one_shared_instance_and_different_ones_stay_apart() -> None:
    """Memory at 10,000 checks: equal frozen parts are shared after validation, never merged when they differ."""
    settings = parse(
        """
networks:
  n:
    name: N
    kind: operateur
    lines: [pharmacie]
    checks:
      - {name: a, flow: pec, kind: http, url: "http://127.0.0.1/a", conditions: {status: [200]}}
      - {name: b, flow: pec, kind: http, url: "http://127.0.0.1/b", conditions: {status: [200]}}
      - {name: c, flow: pec, kind: http, url: "http://127.0.0.1/c", conditions: {status: [204]}}
      - {name: d, flow: pec, kind: http, url: "http://127.0.0.1/d", headers: {X-A: "1"}}
      - {name: e, flow: pec, kind: http, url: "http://127.0.0.1/e"}
"""
    )
    a, b, c, d, e = (check for _, check in settings.checks())
    assert isinstance(a, HttpCheck) and isinstance(b, HttpCheck) and isinstance(c, HttpCheck)
    assert isinstance(d, HttpCheck) and isinstance(e, HttpCheck)
    assert a.conditions is b.conditions
    assert c.conditions is not a.conditions and c.conditions.status == (204,)
    assert a.conditions.status == (200,)
    assert a.headers is c.headers and a.headers == {}
    assert d.headers == {"X-A": "1"} and d.headers is not e.headers
    assert e.conditions.status == ("2xx", "3xx")


def test_equal_values_and_given_fields_are_shared_and_stay_each_checks_own() -> None:
    """Memory at 10,000 checks: a flow's name, an interval, the set of fields the file gave are one object for the
    checks that hold them equal; a copy of one check with a change leaves the others as they were."""
    settings = parse(
        """
networks:
  n:
    name: N
    kind: operateur
    lines: [pharmacie]
    checks:
      - {name: a, flow: pec, kind: http, url: "http://127.0.0.1/a", interval: 30s}
      - {name: b, flow: pec, kind: http, url: "http://127.0.0.1/b", interval: 30s}
      - {name: c, flow: pec, kind: http, url: "http://127.0.0.1/c", interval: 30s, timeout: 5s}
      - {name: d, flow: pec, kind: http, url: "http://127.0.0.1/d", interval: 0.5m}
"""
    )
    a, b, c, d = (check for _, check in settings.checks())
    assert isinstance(a, HttpCheck) and isinstance(b, HttpCheck) and isinstance(c, HttpCheck)
    assert a.flow is b.flow is c.flow and a.interval is b.interval is c.interval is d.interval == 30.0
    assert a.model_fields_set is b.model_fields_set is d.model_fields_set
    assert a.model_fields_set == {"name", "flow", "kind", "url", "interval"}
    assert c.model_fields_set is not a.model_fields_set and "timeout" in c.model_fields_set
    changed = a.model_copy(update={"timeout": 2.0})
    assert changed.timeout == 2.0 and "timeout" in changed.model_fields_set
    assert "timeout" not in b.model_fields_set and b.timeout == a.timeout == 10.0
