"""The config rules pydantic cannot express field by field: references, uniqueness, cycles, timings, ${VAR}."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ConfigProblem
from ..i18n import N_
from .model import ProbeCheck, Settings
from .problems import SECRET_FIELDS, sort_problems, suggest
from .taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from .texts import Text, _, literal
from .values import ENV_REF, SLUG, clear_credentials, clear_secret_header, parse_duration, secret_header, url_problem
from .yaml_source import Path, YamlDocument

__all__ = ["blind_lines", "cross_field_problems", "network_flow_problems"]

_CHECK_KINDS = ("http", "tcp", "tls", "dns", "push")
_HEADER_EXAMPLES = {
    "authorization": "Bearer ${TOKEN}",
    "proxy-authorization": "Basic ${PROXY_CREDENTIALS}",
    "cookie": "SESSION=${SESSION_ID}",
}
_SLUG = re.compile(SLUG)


def _references(value: dict[Any, Any] | list[Any], path: Path) -> Iterator[tuple[str, Path]]:
    """Every string holding `${` under `value`, with its path, in document order; a path is built only for a
    collection or such a string (not for each of the 150,000 values of a config of 10,000 checks)."""
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = ((key if isinstance(key, str) else str(key), item) for key, item in value.items())
    else:
        items = enumerate(value)
    for key, item in items:
        if isinstance(item, str):
            if "${" in item:
                yield item, (*path, key)
        elif isinstance(item, dict | list):
            yield from _references(item, (*path, key))


def _env_problems(data: dict[Any, Any], doc: YamlDocument, environ: Mapping[str, str]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for value, path in _references(data, ()):
        problems += _reference_problems(value, path, doc, environ)
    return problems


def _reference_problems(value: str, path: Path, doc: YamlDocument, environ: Mapping[str, str]) -> list[ConfigProblem]:
    allowed = len(path) >= 5 and path[0] == "networks" and path[2] == "checks" and path[4] in SECRET_FIELDS
    allowed = allowed or (len(path) == 4 and path[:2] == ("notifications", "chat") and path[3] == "url")
    if not allowed:
        message = _("${{…}} references are only allowed in a check's url, headers, body and token, and a chat url")
        return [doc.problem(path, message)]
    problems: list[ConfigProblem] = []
    if ENV_REF.sub("", value).count("${"):
        problems.append(doc.problem(path, _("malformed ${{…}} reference: write ${{NAME}} with letters, digits and _")))
    problems += [
        doc.problem(path, _("environment variable {name} is not set", name=name))
        for name in dict.fromkeys(ENV_REF.findall(value))
        if name not in environ
    ]
    return problems


def _names(data: dict[Any, Any], key: str, default: Mapping[str, Any]) -> list[str] | None:
    """The names defined under `key` (its default when absent), or None when it is malformed."""
    if key not in data:
        return list(default)
    value = data[key]
    return [name for name in value if isinstance(name, str)] if isinstance(value, dict) else None


def _slugs(value: Any) -> list[tuple[int, str]]:
    """(index, name) of the well-formed names of a list; the others are pydantic's to report."""
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, str) and _SLUG.match(item)]


def _seconds(value: Any) -> float | None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None


_UNKNOWN = {
    "flow": N_("unknown flow {name!r}{hint}"),
    "line": N_("unknown line {name!r}{hint}"),
    "network": N_("unknown network {name!r}{hint}"),
}


def _unknown(what: str, name: str, known: list[str], network: str = "") -> Text:
    """`unknown flow 'x' (did you mean 'y'?)`, or with the known names; `what`: flow, line, network or domain (of
    `network`)."""
    hint = suggest(name, known)
    if hint == literal("") and known:
        hint = _("; known: {names}", names=", ".join(known[:12]) + (", …" if len(known) > 12 else ""))
    if what == "domain":
        return _("unknown domain of {network} {name!r}{hint}", network=network, name=name, hint=hint)
    return _(_UNKNOWN[what], name=name, hint=hint)


class _Rules:
    """The rules pydantic cannot express field by field: references, uniqueness, cycles, timings.

    They run on the raw data, so they report even when pydantic fails; a malformed value is skipped
    (pydantic reports it) and never reported twice.
    """

    def __init__(self, doc: YamlDocument, data: dict[Any, Any], environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.data = data
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.flows = _names(data, "flows", DEFAULT_FLOWS)
        self.lines = _names(data, "lines", DEFAULT_LINES)
        networks = data.get("networks")
        self.networks: dict[str, Any] = (
            {k: v for k, v in networks.items() if isinstance(k, str)} if isinstance(networks, dict) else {}
        )
        defaults = data.get("defaults")
        self.defaults: dict[Any, Any] = defaults if isinstance(defaults, dict) else {}

    def add(self, path: Path, message: Text) -> None:
        self.problems.append(self.doc.problem(path, message))

    def run(self) -> list[ConfigProblem]:
        self.taxonomy()
        self.default_timings()
        for name, network in self.networks.items():
            if isinstance(network, dict):
                self.network(name, network)
        self.cycle()
        return self.problems

    def flow_refs(self, refs: Any, path: Path) -> None:
        if self.flows is None or not isinstance(refs, list):
            return
        for index, ref in enumerate(refs):
            for flow in ref.split("|") if isinstance(ref, str) else ():
                if flow not in self.flows:
                    self.add((*path, index), _unknown("flow", flow, self.flows))

    def flow(self, flow: Any, path: Path) -> None:
        if self.flows is not None and isinstance(flow, str) and _SLUG.match(flow) and flow not in self.flows:
            self.add(path, _unknown("flow", flow, self.flows))

    def units(self, texts: Any, where: Path) -> None:
        """`unit` and `units` (one request of a flow, and several) go together: a sentence needs both."""
        if isinstance(texts, dict) and ("unit" in texts) != ("units" in texts):
            given, missing = ("unit", "units") if "unit" in texts else ("units", "unit")
            self.add(
                (*where, given),
                _(
                    "give `{missing}` too: one request of this flow and several, e.g. unit: {{fr: prise en charge, "
                    "en: prior approval}} and units: {{fr: prises en charge, en: prior approvals}}",
                    missing=missing,
                ),
            )

    def taxonomy(self) -> None:
        flows = self.data.get("flows")
        for name, flow in flows.items() if isinstance(flows, dict) else ():
            if isinstance(name, str):
                self.units(flow, ("flows", name))
        lines = self.data.get("lines")
        if isinstance(lines, dict):
            for name, line in lines.items():
                if isinstance(name, str) and isinstance(line, dict):
                    self.flow_refs(line.get("requires"), ("lines", name, "requires"))
                    self.flow_refs(line.get("optional"), ("lines", name, "optional"))
        elif "lines" not in self.data and isinstance(self.data.get("flows"), dict) and self.flows is not None:
            needed = [
                f
                for line in DEFAULT_LINES.values()
                for ref in line["requires"] + line["optional"]
                for f in ref.split("|")
            ]
            missing = [flow for flow in dict.fromkeys(needed) if flow not in self.flows]
            if missing:
                names = ", ".join(repr(flow) for flow in missing)
                self.add(
                    ("flows",), _("the default lines need {names}: define them, or define `lines:` too", names=names)
                )

    def timing(self, check: dict[Any, Any], key: str) -> tuple[float | None, Text | None]:
        """The check's `key` in seconds (None if malformed) and where it comes from, when not the check."""
        if key in check:
            return _seconds(check[key]), None
        if key in self.defaults:  # when malformed (reported there), the check's value is unknown
            return _seconds(self.defaults[key]), _(" from defaults")
        return float(ProbeCheck.model_fields[key].default), _(" by default")

    def default_timings(self) -> None:
        (interval, _from), (timeout, timeout_from) = (
            self.timing(self.defaults, key) for key in ("interval", "timeout")
        )
        if interval is None or timeout is None or timeout < interval:
            return
        if "timeout" in self.defaults:
            self.add(("defaults", "timeout"), _shorter("interval", timeout, interval))
        elif "interval" in self.defaults:
            self.add(("defaults", "interval"), _longer("timeout", interval, timeout, timeout_from))

    def network(self, name: str, network: dict[Any, Any]) -> None:
        base: Path = ("networks", name)
        own_lines = [line for _index, line in _slugs(network.get("lines"))]
        for index, line in _slugs(network.get("lines")):
            if self.lines is not None and line not in self.lines:
                self.add((*base, "lines", index), _unknown("line", line, self.lines))
        overrides = network.get("line_overrides")
        for line, override in overrides.items() if isinstance(overrides, dict) else ():
            where = (*base, "line_overrides", str(line))
            if isinstance(line, str) and _SLUG.match(line) and line not in own_lines:
                self.add(where, _("{line!r} is not one of this network's lines", line=line))
            if isinstance(override, dict):
                self.flow_refs(override.get("requires"), (*where, "requires"))
                self.flow_refs(override.get("optional"), (*where, "optional"))
        texts = network.get("flow_texts")
        for flow, given in texts.items() if isinstance(texts, dict) else ():
            self.flow(flow, (*base, "flow_texts", str(flow)))
            self.units(given, (*base, "flow_texts", str(flow)))
        checks = network.get("checks")
        first: dict[str, int | None] = {}
        for index, check in enumerate(checks) if isinstance(checks, list) else ():
            if isinstance(check, dict):
                self.check(check, (*base, "checks", index), first)
        dependencies = network.get("depends_on")
        for index, dep in enumerate(dependencies) if isinstance(dependencies, list) else ():
            if isinstance(dep, dict):
                self.dependency(name, dep, (*base, "depends_on", index), own_lines)

    def check(self, check: dict[Any, Any], where: Path, first: dict[str, int | None]) -> None:
        name = check.get("name")
        if isinstance(name, str) and _SLUG.match(name):
            if name in first:
                if first[name]:
                    message = _(
                        "duplicate check name {name!r} in this network (first at line {line})",
                        name=name,
                        line=first[name],
                    )
                else:
                    message = _("duplicate check name {name!r} in this network", name=name)
                self.add((*where, "name"), message)
            else:
                first[name] = self.doc.line_of((*where, "name"))
        self.flow(check.get("flow"), (*where, "flow"))
        if check.get("kind") == "http":
            self.http_target(check, where)
        if check.get("kind") == "push":
            self.push_check(check, where)
            return
        (interval, interval_from), (timeout, timeout_from) = (
            self.timing(check, key) for key in ("interval", "timeout")
        )
        reported = bool(interval_from and timeout_from)  # neither set here: reported once, at `defaults:`
        if interval is not None and timeout is not None and timeout >= interval and not reported:
            self.add((*where, "timeout"), _shorter("interval", timeout, interval, timeout_from))
        conditions = check.get("conditions")
        url = check.get("url")
        if (
            check.get("kind") == "http"
            and isinstance(url, str)
            and url.startswith("http://")
            and isinstance(conditions, dict)
            and conditions.get("cert_valid_days") is not None
        ):
            self.add(
                (*where, "conditions", "cert_valid_days"), _("needs an https:// url: plain http has no certificate")
            )
        degraded = _seconds(check["degraded_after"]) if check.get("degraded_after") is not None else None
        if degraded is not None and timeout is not None and degraded >= timeout:
            self.add((*where, "degraded_after"), _shorter("timeout", degraded, timeout))

    def http_target(self, check: dict[Any, Any], where: Path) -> None:
        """Credentials never in clear (in the URL or a credentials header); a URL with a host and a valid port,
        checked after ${VAR} expansion too. Messages never quote a URL or a header value."""
        url = check.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://", "${")):  # else: pydantic's pattern
            if clear_credentials(url):
                message = _(
                    "credentials written in clear: write them as ${{VAR}} references (https://user:${{PASSWORD}}@…)"
                )
                self.add((*where, "url"), message)
            names = ENV_REF.findall(url)
            if "${" not in ENV_REF.sub("", url) and all(name in self.environ for name in names):
                expanded = ENV_REF.sub(lambda match: self.environ[match.group(1)], url)
                after = _(" (after ${{VAR}} expansion)") if names else literal("")
                if not expanded.startswith(("http://", "https://")):
                    self.add((*where, "url"), _("is not an http:// or https:// URL{after}", after=after))
                elif problem := url_problem(expanded):
                    self.add((*where, "url"), _("{problem}{after}", problem=problem, after=after))
        headers = check.get("headers")
        for name, value in headers.items() if isinstance(headers, dict) else ():
            if not (isinstance(name, str) and isinstance(value, str)) or "${" in ENV_REF.sub("", value):
                continue  # not a string (pydantic's), or a malformed reference (reported with the ${VAR} rules)
            if secret_header(name) and clear_secret_header(value):
                example = _HEADER_EXAMPLES.get(name.lower(), "${API_KEY}")
                message = _(
                    "{name} carries credentials: write its value as a ${{VAR}} reference ({example}), never in clear",
                    name=name,
                    example=example,
                )
                self.add((*where, "headers", name), message)

    def push_check(self, check: dict[Any, Any], where: Path) -> None:
        """A signal awaited for less than its interval would be late every time."""
        missed = _seconds(check["missed_after"]) if check.get("missed_after") is not None else None
        interval, interval_from = self.timing(check, "interval")
        if missed is not None and interval is not None and missed <= interval:
            self.add((*where, "missed_after"), _longer("interval", missed, interval, interval_from))

    def dependency(self, name: str, dep: dict[Any, Any], where: Path, own_lines: list[str]) -> None:
        target = dep.get("network")
        if isinstance(target, str) and _SLUG.match(target):
            if target == name:
                self.add((*where, "network"), _("a network cannot depend on itself"))
            elif target not in self.networks:
                self.add((*where, "network"), _unknown("network", target, list(self.networks)))
        self.flow(dep.get("flow"), (*where, "flow"))
        for index, line in _slugs(dep.get("lines")):
            if line not in own_lines:
                self.add((*where, "lines", index), _("{line!r} is not one of this network's lines", line=line))

    def cycle(self) -> None:
        graph = {name: _dependency_edges(name, network, self.networks) for name, network in self.networks.items()}
        cycle = _find_cycle({name: [target for _index, target in edges] for name, edges in graph.items()})
        if cycle:
            index = next(i for i, target in graph[cycle[0]] if target == cycle[1 % len(cycle)])
            path = " → ".join([*cycle, cycle[0]])
            self.add(("networks", cycle[0], "depends_on", index), _("dependency cycle: {path}", path=path))


def _shorter(than: str, value: float, limit: float, origin: Text | None = None) -> Text:
    """`must be shorter than interval (30s from defaults >= 20s)`: `than` is timeout or interval."""
    origin = origin or literal("")
    shown = {"value": _fmt(value), "limit": _fmt(limit), "origin": origin}
    if than == "timeout":
        return _("must be shorter than timeout ({value}{origin} >= {limit})", **shown)
    return _("must be shorter than interval ({value}{origin} >= {limit})", **shown)


def _longer(than: str, value: float, limit: float, origin: Text | None = None) -> Text:
    """`must be longer than timeout (5s <= 10s by default)`: `than` is timeout or interval."""
    shown = {"value": _fmt(value), "limit": _fmt(limit), "origin": origin or literal("")}
    if than == "timeout":
        return _("must be longer than timeout ({value} <= {limit}{origin})", **shown)
    return _("must be longer than interval ({value} <= {limit}{origin})", **shown)


def _fmt(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


def _dependency_edges(name: str, network: Any, networks: Mapping[str, Any]) -> list[tuple[int, str]]:
    deps = network.get("depends_on") if isinstance(network, dict) else None
    return [
        (index, dep["network"])
        for index, dep in enumerate(deps if isinstance(deps, list) else [])
        if isinstance(dep, dict) and isinstance(dep.get("network"), str) and dep["network"] in networks
        if dep["network"] != name
    ]


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """The first cycle met walking `graph` in order, as its list of nodes; [] when acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def cross_field_problems(doc: YamlDocument, environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Problems of references, uniqueness, cycles, timings and `${VAR}`s, found in the raw parsed data."""
    if not isinstance(doc.data, dict):
        return []
    problems = _env_problems(doc.data, doc, environ) + _Rules(doc, doc.data, environ).run()
    return sort_problems(problems, doc)


def network_flow_problems(settings: Settings, doc: YamlDocument) -> list[ConfigProblem]:
    """With `flows:` a network runs only those flows: its checks, lines and dependents must agree."""
    problems: list[ConfigProblem] = []
    for name, network in settings.networks.items():
        if network.flows is None:
            continue
        base: Path = ("networks", name)
        runs = ", ".join(network.flows)
        for index, flow in enumerate(network.flows):
            if flow not in settings.flows:
                problems.append(doc.problem((*base, "flows", index), _unknown("flow", flow, list(settings.flows))))
        for index, check in enumerate(network.checks):
            if check.flow in settings.flows and check.flow not in network.flows:
                message = _("{flow!r} is not one of this network's flows ({runs})", flow=check.flow, runs=runs)
                problems.append(doc.problem((*base, "checks", index, "flow"), message))
        for index, line in enumerate(network.lines):
            if line not in settings.lines:
                continue
            override = network.line_overrides.get(line)
            required = override.requires if override and override.requires is not None else None
            for group in required or settings.lines[line].requires:
                if not any(f in network.flows for f in group.split("|")):
                    message = _(
                        "{line!r} requires {group!r}, which this network does not run ({runs})",
                        line=line,
                        group=group,
                        runs=runs,
                    )
                    problems.append(doc.problem((*base, "lines", index), message))
    for name, network in settings.networks.items():
        for index, dep in enumerate(network.depends_on):
            upstream = settings.networks.get(dep.network)
            if upstream is not None and upstream.flows is not None and dep.flow not in upstream.flows:
                message = _(
                    "{network!r} does not run {flow!r} (its flows: {flows})",
                    network=dep.network,
                    flow=dep.flow,
                    flows=", ".join(upstream.flows),
                )
                problems.append(doc.problem(("networks", name, "depends_on", index, "flow"), message))
    return problems + _notification_problems(settings, doc) + _web_problems(settings, doc)


def _web_problems(settings: Settings, doc: YamlDocument) -> list[ConfigProblem]:
    """A published folder is served at the public address: its feeds and JSON documents need it."""
    if settings.web.publish_dir is not None and settings.web.public_url is None:
        message = _(
            "needs web.public_url, the address the published files are served at (their feeds and JSON hold it)"
        )
        return [doc.problem(("web", "publish_dir"), message)]
    return []


def _notification_problems(settings: Settings, doc: YamlDocument) -> list[ConfigProblem]:
    """Chat channels: unique names, scopes naming configured networks and domains."""
    problems: list[ConfigProblem] = []
    if settings.notifications is None:
        return problems
    if settings.notifications.public_url is None and settings.web.public_url is None:
        message = _("the site's address for the links sent is missing: set notifications.public_url or web.public_url")
        problems.append(doc.problem(("notifications",), message))
    seen: set[str] = set()
    for index, channel in enumerate(settings.notifications.chat):
        base: Path = ("notifications", "chat", index)
        if channel.name in seen:
            problems.append(doc.problem((*base, "name"), _("duplicate chat channel {name!r}", name=channel.name)))
        seen.add(channel.name)
        if not channel.scopes:
            problems.append(doc.problem((*base, "scopes"), _("must name at least one scope (* for everything)")))
        for position, scope in enumerate(channel.scopes):
            network, _slash, line = scope.partition("/")
            if scope == "*":
                continue
            if network not in settings.networks:
                problem = _unknown("network", network, list(settings.networks))
            elif line and line not in settings.networks[network].lines:
                problem = _unknown("domain", line, list(settings.networks[network].lines), network)
            else:
                continue
            problems.append(doc.problem((*base, "scopes", position), problem))
    return problems


def _and(names: list[str]) -> Text:
    """'a', 'b' and 'c', in each language."""
    if len(names) == 1:
        return literal(names[0])
    return _("{some} and {last}", some=", ".join(names[:-1]), last=names[-1])


def blind_lines(settings: Settings, doc: YamlDocument) -> list[ConfigProblem]:
    """Lines that will stay blind: a required entry that no check or push check of the network feeds (on any of
    its flows), nor a dependency of the network for that line on one of its flows. Such a line shows "unknown"
    until ops declare its status. Warnings by default (`check-config --strict`: errors), at the line's entry."""
    problems: list[ConfigProblem] = []
    for name, network in settings.networks.items():
        fed = {check.flow for check in network.checks}
        for index, line in enumerate(network.lines):
            if line not in settings.lines:
                continue
            upstream = {dep.flow for dep in network.depends_on if not dep.lines or line in dep.lines}
            required, _optional = network.requirements(line, settings.lines)
            blind = [group for group in required if not set(group.split("|")) & (fed | upstream)]
            if blind:
                message = _(
                    "{line!r} requires {groups}, which no check, push check or dependency of this network feeds:"
                    " the line will stay unknown until ops declare its status",
                    line=line,
                    groups=_and([repr(group) for group in blind]),
                )
                problems.append(doc.problem(("networks", name, "lines", index), message))
    return problems
