"""YAML parsing that remembers the line of every key, so config errors can say file:line."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigProblem
from .texts import Text, _, config_problem

Path = tuple[str | int, ...]

# Aliases let a small file expand into a huge tree ("billion laughs"): past this many values reached again through
# an alias, refuse. (A document's own size is bounded by the loader's MAX_BYTES: 13,000 checks hold 100,000 values.)
MAX_NODES = 100_000


@dataclass
class YamlDocument:
    """Plain data parsed from YAML, with the line of each mapping key and sequence item."""

    data: Any
    file: str
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    columns: dict[Path, int] = field(default_factory=dict)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # of each problem's path, for sorting

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its closest ancestor that has one."""
        return self.position_of(path)[0]

    def position_of(self, path: Path) -> tuple[int | None, int]:
        """(line, column) of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line, self.columns.get(path[:end], 0)
        return None, 0

    def problem(self, path: Path, message: Text) -> ConfigProblem:
        line, column = self.position_of(path)
        shown = format_path(path)
        self.positions.setdefault(shown, (line or 0, column))
        return config_problem(shown, message, self.file, line)

    def sort_key(self, problem: ConfigProblem) -> tuple[int, int, str]:
        """File order: line, then column (several problems on one line of flow style), then path."""
        line, column = self.positions.get(problem.path, (problem.line or 0, 0))
        return (line, column, problem.path)


def format_path(path: Path) -> str:
    """`("networks", "viamedis", "checks", 0, "url")` → `networks.viamedis.checks[0].url`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _yaml_message(exc: yaml.MarkedYAMLError) -> Text:
    """PyYAML's own words (its problem and context) stay English, inside a sentence of the catalogs."""
    problem = exc.problem or "not valid YAML"
    context, mark = exc.context, exc.context_mark
    if context and context.startswith("while ") and mark is not None:
        return _(
            "invalid YAML: {problem} ({context} at line {line})", problem=problem, context=context, line=mark.line + 1
        )
    if context:
        return _("invalid YAML: {context}, {problem}", context=context, problem=problem)
    return _("invalid YAML: {problem}", problem=problem)


def _failed(file: str, message: Text, line: int | None = None) -> YamlDocument:
    return YamlDocument(None, file, problems=[config_problem("", message, file, line)])


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; syntax errors and duplicate keys become problems, never exceptions.

    When libyaml (PyYAML's C parser) is installed, a plain document — mappings, sequences and scalars, without
    anchors, aliases, tags, merge keys or duplicate keys — is built straight from its events (`_EventReader`):
    ten times faster than PyYAML's Python parser (~6 s of `tpmon serve`'s start at 10,000 checks), and without
    a tree of nodes (~80 MB at 10,000 checks, freed after but leaving the heap fragmented for the process's
    life). Anything else, and any text with a character PyYAML's reader refuses, is parsed by the Python parser,
    so that every error reads as it always has; a document both read gives the same data, lines and columns.
    """
    if _CLoader is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        with contextlib.suppress(Exception):  # anything unusual or wrong is read (and told) by the Python parser
            return _EventReader(_CLoader(text), file).read()
    return _parse_slowly(text, file)


class _Unusual(Exception):
    """What the event reader leaves to the Python parser."""


_STR_TAG = "tag:yaml.org,2002:str"
_LEFT_TO_PYTHON = {"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"}  # `<<`, `=`


class _EventReader:
    """A plain document from libyaml's events, as `_parse_slowly` would read it (see `parse_yaml`)."""

    def __init__(self, loader: yaml.CSafeLoader, file: str) -> None:
        self.loader = loader
        self.doc = YamlDocument(None, file)

    def next(self) -> yaml.Event:
        event = self.loader.get_event()
        if event is None:
            raise _Unusual
        return event

    def place(self, path: Path, event: yaml.Event) -> None:
        mark = event.start_mark
        if mark is None:
            raise _Unusual
        self.doc.lines[path], self.doc.columns[path] = mark.line + 1, mark.column

    def read(self) -> YamlDocument:
        if not isinstance(self.next(), yaml.StreamStartEvent) or not isinstance(self.next(), yaml.DocumentStartEvent):
            raise _Unusual  # an empty file
        root = self.next()
        self.place((), root)
        del self.doc.columns[()]  # as `_Walker`: the root has a line, no column
        self.doc.data = self.value(root, ())
        if not isinstance(self.next(), yaml.DocumentEndEvent) or not isinstance(self.next(), yaml.StreamEndEvent):
            raise _Unusual  # a second document
        return self.doc

    def value(self, event: yaml.Event, path: Path) -> Any:
        if getattr(event, "anchor", None) is not None:
            raise _Unusual
        if isinstance(event, yaml.ScalarEvent):
            return self.scalar(event)
        if getattr(event, "tag", None) not in (None, "!"):
            raise _Unusual
        if isinstance(event, yaml.MappingStartEvent):
            return self.mapping(path)
        if isinstance(event, yaml.SequenceStartEvent):
            return self.sequence(path)
        raise _Unusual  # an alias

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        if event.anchor is not None or event.tag not in (None, "!"):
            raise _Unusual
        tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        if tag == _STR_TAG:
            return event.value
        construct = self.loader.yaml_constructors.get(tag)
        if construct is None or tag in _LEFT_TO_PYTHON:
            raise _Unusual
        node = yaml.ScalarNode(tag, event.value, None, None, event.style)  # no marks: errors are told by the other
        return construct(self.loader, node)

    def mapping(self, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        seen: set[str] = set()
        while not isinstance(event := self.next(), yaml.MappingEndEvent):
            if not isinstance(event, yaml.ScalarEvent):
                raise _Unusual  # a collection as a key
            text = str(event.value)
            if text in seen:
                raise _Unusual  # told as a duplicate key by the Python parser
            seen.add(text)
            key = self.scalar(event)
            child = (*path, text)
            self.place(child, event)
            out[key] = self.value(self.next(), child)
        return out

    def sequence(self, path: Path) -> list[Any]:
        out: list[Any] = []
        while not isinstance(event := self.next(), yaml.SequenceEndEvent):
            child = (*path, len(out))
            self.place(child, event)
            out.append(self.value(event, child))
        return out


def _parse_slowly(text: str, file: str) -> YamlDocument:
    try:
        loader = _Loader(text)  # checks the characters already
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return _failed(file, _yaml_message(exc), mark.line + 1 if mark is not None else None)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        code = f"U+{char:04X}"
        return _failed(file, _("invalid YAML: character {code} is not allowed", code=code), line)
    except yaml.YAMLError as exc:
        return _failed(file, _("invalid YAML: {problem}", problem=str(exc)))
    except RecursionError:
        return _failed(file, _("invalid YAML: nested too deeply"))
    if node is None:
        return _failed(file, _("the file is empty"), 1)
    return _document(loader, node, file)


def _document(loader: yaml.constructor.BaseConstructor, node: yaml.Node, file: str) -> YamlDocument:
    doc = YamlDocument(None, file)
    doc.lines[()] = node.start_mark.line + 1
    _Walker(doc).walk(node, ())
    if doc.problems:
        return doc
    try:
        doc.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:  # e.g. an unhashable key or an unknown tag
        mark = exc.problem_mark
        doc.problems.append(config_problem("", _yaml_message(exc), file, mark.line + 1 if mark else None))
    return doc


class _Constructing(yaml.constructor.SafeConstructor):
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors raise anything on a bad `!!int x`, `!!timestamp x`…
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(None, None, f"not a valid {tag} value", node.start_mark) from exc


class _Loader(_Constructing, yaml.SafeLoader):
    """PyYAML's Python parser: the reference, and the words of every error."""


_CLoader: type[yaml.CSafeLoader] | None = None
if yaml.__with_libyaml__:

    class _FastLoader(_Constructing, yaml.CSafeLoader):
        """libyaml's parser, PyYAML's safe constructors (the same as `_Loader`'s)."""

    _CLoader = _FastLoader


class _Walker:
    """Records the line of each key and item; reports duplicate keys, recursive aliases and alias bombs."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.nodes = 0  # values reached again through an alias
        self.seen: set[int] = set()
        self.open: set[int] = set()  # ids of the collections being walked: an alias to one of them is a loop

    def walk(self, node: yaml.Node, path: Path) -> None:
        if id(node) in self.seen:  # reached again, through an alias
            self.nodes += 1
            if self.nodes == MAX_NODES:
                message = _("too large: aliases expand to more than {count} values", count=MAX_NODES)
                self.doc.problems.append(self._problem((), message, node))
        else:
            self.seen.add(id(node))
        if self.nodes >= MAX_NODES or not isinstance(node, yaml.CollectionNode):
            return
        if id(node) in self.open:
            self.doc.problems.append(self._problem(path, _("an alias refers to the value that contains it"), node))
            return
        self.open.add(id(node))
        try:
            self._children(node, path)
        finally:
            self.open.discard(id(node))

    def _children(self, node: yaml.CollectionNode, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.doc.problems.append(self._problem(child, _("duplicate key"), key_node))
                seen.add(key)
                self._place(child, key_node)
                self.walk(value_node, child)
        else:
            for index, item in enumerate(node.value):
                child = (*path, index)
                self._place(child, item)
                self.walk(item, child)

    def _place(self, path: Path, node: yaml.Node) -> None:
        if path not in self.doc.lines:  # through an alias, a path keeps its first place
            self.doc.lines[path] = node.start_mark.line + 1
            self.doc.columns[path] = node.start_mark.column

    def _problem(self, path: Path, message: Text, node: yaml.Node) -> ConfigProblem:
        return config_problem(format_path(path), message, self.doc.file, node.start_mark.line + 1)
