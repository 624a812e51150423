"""YAML parsing that remembers the line of every key, so config errors can say file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import ConfigProblem

Path = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Plain data parsed from YAML, with the line of each mapping key and sequence item."""

    data: Any
    file: str
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(self, path: Path, message: str) -> ConfigProblem:
        return ConfigProblem(format_path(path), message, self.file, self.line_of(path))


def format_path(path: Path) -> str:
    """`("networks", "viamedis", "checks", 0, "url")` → `networks.viamedis.checks[0].url`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; syntax errors and duplicate keys become problems, never exceptions."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        message = f"invalid YAML: {exc.problem or exc}"
        return YamlDocument(None, file, problems=[ConfigProblem("", message, file, line)])
    except yaml.YAMLError as exc:
        return YamlDocument(None, file, problems=[ConfigProblem("", f"invalid YAML: {exc}", file)])
    if node is None:
        return YamlDocument(None, file, problems=[ConfigProblem("", "the file is empty", file, 1)])
    doc = YamlDocument(None, file)
    doc.lines[()] = node.start_mark.line + 1
    _walk(node, (), doc)
    if doc.problems:
        return doc
    try:
        doc.data = yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as exc:  # e.g. an unhashable key
        doc.problems.append(ConfigProblem("", f"invalid YAML: {exc}", file))
    return doc


def _walk(node: yaml.Node, path: Path, doc: YamlDocument) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                line = key_node.start_mark.line + 1
                doc.problems.append(ConfigProblem(format_path(child), "duplicate key", doc.file, line))
            seen.add(key)
            doc.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, doc)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines[child] = item.start_mark.line + 1
            _walk(item, child, doc)
