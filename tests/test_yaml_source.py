"""libyaml composes the config when installed; it must read every document exactly as PyYAML's Python parser.

`parse_yaml` takes the C parser first and falls back to the Python one (`_parse_slowly`) for what the C one
refuses: the same data, the same line and column of every key and item, the same problems in the same words.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.config import yaml_source
from monitor.config.yaml_source import YamlDocument, parse_yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*(ROOT / "config").glob("*.yaml"), *(ROOT / "tests/data/config").glob("*.yaml")])
TEXTS = {
    "accents": "réseaux:\n  été: {nom: « Santé », liste: [a, b]}\n  clé: 'x'\n",
    "aliases": "base: &b {interval: 30s}\nnetworks:\n  a: *b\n  b: {<<: *b, timeout: 5s}\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "recursive alias": "a: &x\n  - *x\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(5)),
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "unclosed flow": "a: [1, 2\nb: 3\n",
    "tab": "a:\n\tb: 1\n",
    "control character": "a: b\x07\n",
    "bad int": "a: !!int x\n",
    "unknown tag": "a: !python/object x\n",
    "empty": "",
    "comments only": "# nothing\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "scalars": "a: yes\nb: 0o17\nc: 1_000\nd: 2026-12-02\ne: ~\nf: .inf\ng: '012'\nh: 1e3\n",
}


def _same(fast: YamlDocument, slow: YamlDocument) -> None:
    assert fast.data == slow.data
    assert fast.lines == slow.lines
    assert fast.columns == slow.columns
    assert [str(p) for p in fast.problems] == [str(p) for p in slow.problems]


def test_libyaml_is_used_here() -> None:
    """Otherwise every comparison below compares the Python parser with itself."""
    assert yaml.__with_libyaml__
    assert yaml_source._CLoader is not None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_config_file_reads_the_same(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")  # invalid-not-utf8.yaml: the loader refuses it first
    _same(parse_yaml(text, str(path)), yaml_source._parse_slowly(text, str(path)))


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_edge_cases_read_the_same(name: str) -> None:
    text = TEXTS[name]
    fast, slow = parse_yaml(text, "x.yaml"), yaml_source._parse_slowly(text, "x.yaml")
    _same(fast, slow)


def test_the_fast_path_is_taken_for_a_valid_document(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, file: str) -> YamlDocument:
        raise AssertionError("the Python parser was used for a document libyaml reads")

    monkeypatch.setattr(yaml_source, "_parse_slowly", refuse)
    doc = parse_yaml("networks:\n  a:\n    checks: [{name: x, kind: http}]\n", "x.yaml")
    assert doc.data == {"networks": {"a": {"checks": [{"name": "x", "kind": "http"}]}}}
    assert doc.lines[("networks", "a", "checks", 0, "kind")] == 3


PLAIN = [path for path in sorted((ROOT / "config").glob("*.yaml")) if " &" not in path.read_text(encoding="utf-8")]


def test_some_examples_are_plain() -> None:
    assert len(PLAIN) >= 3  # demo.yaml has anchors: the Python parser reads it


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: p.name)
def test_the_plain_example_configs_take_the_fast_path(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No anchor, tag or merge key: the event reader reads them whole."""

    def refuse(text: str, file: str) -> YamlDocument:
        raise AssertionError(f"{file} was read by the Python parser")

    monkeypatch.setattr(yaml_source, "_parse_slowly", refuse)
    doc = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    assert isinstance(doc.data, dict) and doc.data
    assert doc.lines[()] >= 1


def test_a_large_document_without_aliases_is_not_taken_for_an_alias_bomb() -> None:
    """The node limit bounds what aliases expand to, not the size of a document (8 MiB at most): a plain config
    of 13,000 checks holds more than 100,000 values and was refused as "aliases expand to more than…"."""
    text = "values: [" + ", ".join(["1"] * (yaml_source.MAX_NODES + 1000)) + "]\n"
    fast, slow = parse_yaml(text, "x.yaml"), yaml_source._parse_slowly(text, "x.yaml")
    assert slow.problems == [] and fast.problems == []
    assert len(fast.data["values"]) == yaml_source.MAX_NODES + 1000
    _same(fast, slow)


def test_an_alias_bomb_is_still_refused() -> None:
    doc = parse_yaml(TEXTS["alias bomb"], "x.yaml")
    assert [p.message for p in doc.problems] == [
        f"too large: aliases expand to more than {yaml_source.MAX_NODES} values"
    ]
