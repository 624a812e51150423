"""Bad input never crashes the loader: parse_yaml + parse_config raise ConfigError or return Settings.

Three sources: any text, any YAML-like tree, and the example config with values replaced anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from monitor.config import Settings, parse_config
from monitor.config import model as config
from monitor.config.taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from monitor.config.yaml_source import parse_yaml
from monitor.errors import ConfigError

EXAMPLE = yaml.safe_load((Path(__file__).resolve().parent.parent / "config" / "example.yaml").read_text("utf-8"))
ENVIRON = {"SET": "s3cr3t-value"}
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: only writes the test input

WORDS = sorted(
    {
        field.alias or name
        for model in vars(config).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name, field in model.model_fields.items()
    }
    | set(DEFAULT_FLOWS)
    | set(DEFAULT_LINES)
    | {"http", "tcp", "tls", "dns", "operateur", "reseau_de_soins", "viamedis", "kalixia", "source"}
)
keys = st.sampled_from(WORDS) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [*WORDS, "30s", "-5m", "0", "2xx", "${SET}", "${UNSET}", "${bad", "https://x.example/", "(", "$.a"]
    )
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)
TOKENS = [
    "\n",
    "  ",
    "- ",
    ": ",
    "networks",
    "checks",
    "kind",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!!int ",
    "'",
    '"',
]
TOKENS += ["!!timestamp ", "#", "${X}", "---", "? ", "|", "\t", "%YAML 1.1\n", "<<: ", "\x00", "\ufeff"]
yamlish_text = st.lists(st.sampled_from(TOKENS) | st.text(max_size=5), max_size=40).map("".join)


def load(text: str) -> None:
    error: ConfigError | None = None
    try:
        result = parse_config(parse_yaml(text, "fuzz.yaml"), ENVIRON)
    except ConfigError as exc:
        error = exc
    else:
        assert isinstance(result, Settings)
    for problem in error.problems if error else ():
        assert problem.file == "fuzz.yaml"
        assert "s3cr3t" not in str(problem)
    assert error is None or error.problems


@settings(max_examples=300, deadline=None)
@given(st.text() | yamlish_text)
def test_arbitrary_text_never_crashes(text: str) -> None:
    load(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_arbitrary_yaml_data_never_crashes(data: Any) -> None:
    load(yaml.dump(data, Dumper=DUMPER, allow_unicode=True))


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside `data` (keys of mappings, indexes of lists), depth first."""
    places = [path]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        places += _paths(value, (*path, key))
    return places


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`data` with the value at `path` replaced, if that place still exists."""
    if not path:
        return value
    if not (isinstance(data, dict) and path[0] in data) and not (
        isinstance(data, list) and isinstance(path[0], int) and path[0] < len(data)
    ):
        return data
    copied = dict(data) if isinstance(data, dict) else list(data)
    copied[path[0]] = _replace(data[path[0]], path[1:], value)
    return copied


PLACES = _paths(EXAMPLE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_example_never_crashes(data: st.DataObject) -> None:
    config = EXAMPLE
    for path in data.draw(st.lists(st.sampled_from(PLACES), min_size=1, max_size=4)):
        config = _replace(config, path, data.draw(values))
    load(yaml.dump(config, Dumper=DUMPER, allow_unicode=True))
