"""The Prometheus text format (version 0.0.4), written by hand: label blocks formatted once, numbers at scrape time.

prometheus_client formats every sample anew at every scrape — labels sorted, escaped and joined, the value
turned into Go's notation — about 0.25 ms per check for tpmon's series. Here the name and labels of a series are
formatted once, into a prefix that ends where its value begins; a scrape appends the value and a newline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["CONTENT_TYPE", "escape", "header", "label_block", "number", "open_series", "series"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_block(labels: Mapping[str, str]) -> str:
    """`a="…",b="…"`: the labels sorted by name, escaped, without braces (for a caller that adds some)."""
    return ",".join(f'{name}="{escape(labels[name])}"' for name in sorted(labels))


def series(name: str, labels: Mapping[str, str] | None = None) -> str:
    """`name{a="…",b="…"} ` (labels sorted by name; no braces without labels): the line up to its value."""
    return f"{name}{{{label_block(labels)}}} " if labels else f"{name} "


def open_series(name: str, labels: Mapping[str, str], last: str) -> str:
    """`name{a="…",b="…",last="`: the line up to the value of one more label, which the caller appends with
    `"} ` and the sample's value (for enumerations: state, phase, result). `last` must sort after `labels`."""
    assert all(other < last for other in labels), (name, last)
    return f'{name}{{{label_block(labels)},{last}="' if labels else f'{name}{{{last}="'


def header(name: str, kind: str, text: str) -> str:
    """The `# HELP` and `# TYPE` lines of a family; `kind` is counter, gauge, histogram or untyped."""
    help_text = text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def number(value: float) -> str:
    """A sample value: Python's shortest round-trip repr (`0.05`, `1.0`, `1764600000.0`), `+Inf`, `-Inf`, `NaN`."""
    value = float(value)
    if value - value == 0:  # finite
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"
