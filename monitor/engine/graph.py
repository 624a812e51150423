"""Who feeds whom, indexed once per config: a check feeds its flow; a flow, the lines of its network that require
it (required or optional) and the lines of other networks that depend on it; a line, its network. `propagate`
re-derives only what a change reaches, in the order `evaluate` derives everything, with the same rules
(`aggregate`), so that both tell the same statuses and transitions — the property tests hold them to it. Pure.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..config import Settings, dependency_order
from ..models import ComponentRef, ComponentStatus, State
from .aggregate import (
    IMPACT_STATES,
    NO_SIGNAL,
    Evaluation,
    Input,
    line_value,
    over_checks,
    over_lines,
    settle,
    transition,
)
from .overrides import Overrides

__all__ = ["Graph", "Node", "build_graph", "propagate"]


@dataclass(frozen=True)
class Node:
    """A flow, line or network, with the keys of its inputs; `index` is its rank in `evaluate`'s order."""

    index: int
    ref: ComponentRef
    key: str
    network_key: str  # whose override applies too
    checks: tuple[str, ...] = ()  # a flow: its checks, in config order
    required: tuple[tuple[str, ...], ...] = ()  # a line: each required group's flows
    optional: tuple[tuple[str, str], ...] = ()  # a line: (flow, the detail naming it)
    dependencies: tuple[tuple[str, State, str], ...] = ()  # a line: (upstream flow, impact, the detail naming it)
    lines: tuple[str, ...] = ()  # a network: its lines


@dataclass(frozen=True)
class Graph:
    """Every flow, line and network of a config, in `evaluate`'s order (networks after those they depend on; in
    each, flows, lines, then itself), with what each feeds."""

    order: tuple[str, ...]  # networks, upstreams first
    nodes: tuple[Node, ...]
    index: Mapping[str, int]  # key → node
    dependants: tuple[tuple[int, ...], ...]  # node → the nodes it feeds, by rank
    feeds: Mapping[str, tuple[int, int]]  # check key → (its flow's node, its position among the flow's checks)
    by_network: Mapping[str, tuple[int, ...]]  # network → its nodes

    def overridden(self, keys: Iterable[str]) -> set[int]:
        """The nodes whose override may change when those of `keys` do: a network's applies to all its nodes."""
        found: set[int] = set()
        for key in keys:
            if key in self.index:
                found.add(self.index[key])
            if key.startswith("network:"):
                found.update(self.by_network.get(key.removeprefix("network:"), ()))
        return found


def build_graph(settings: Settings) -> Graph:
    """Index the config once (at load and at reload): never rebuilt per result."""
    order = tuple(dependency_order(settings))
    nodes: list[Node] = []
    feeds: dict[str, tuple[int, int]] = {}
    by_network: dict[str, tuple[int, ...]] = {}
    for name in order:
        network, first, own = settings.networks[name], len(nodes), f"network:{name}"
        for flow in network.flow_names(settings.flows):
            ref = ComponentRef("flow", name, flow)
            checks = tuple(ComponentRef.for_check(name, flow, c.name).key for c in network.checks if c.flow == flow)
            feeds.update({key: (len(nodes), position) for position, key in enumerate(checks)})
            nodes.append(Node(len(nodes), ref, ref.key, own, checks=checks))
        for line in network.lines:
            ref = ComponentRef("line", name, line)
            required, optional = network.requirements(line, settings.lines)
            dependencies = tuple(
                (f"flow:{d.network}/{d.flow}", IMPACT_STATES[d.impact], f"{d.network}/{d.flow}")
                for d in network.depends_on
                if d.covers(line)
            )
            groups = tuple(tuple(f"flow:{name}/{f}" for f in group.split("|")) for group in required)
            optional_flows = tuple((f"flow:{name}/{f}", f"{name}/{f}") for f in optional)
            nodes.append(Node(len(nodes), ref, ref.key, own, (), groups, optional_flows, dependencies))
        lines = tuple(f"line:{name}/{line}" for line in network.lines)
        nodes.append(Node(len(nodes), ComponentRef("network", name), own, own, lines=lines))
        by_network[name] = tuple(range(first, len(nodes)))

    index = {node.key: node.index for node in nodes}
    fed: list[set[int]] = [set() for _ in nodes]
    for node in nodes:
        inputs = [*(k for group in node.required for k in group), *(k for k, _ in node.optional)]
        inputs += [k for k, _, _ in node.dependencies] + list(node.lines)
        for key in inputs:
            if key in index:
                fed[index[key]].add(node.index)
    return Graph(order, tuple(nodes), index, tuple(tuple(sorted(f)) for f in fed), feeds, by_network)


FlowValue = Callable[[Node], Input]


def propagate(
    graph: Graph,
    statuses: Mapping[str, ComponentStatus],
    overrides: Overrides,
    dirty: Iterable[int],
    now: datetime,
    stabilization: float,
    flow_value: FlowValue | None = None,
) -> Evaluation:
    """Re-derive the nodes of `dirty` and, as far as their statuses change, what they feed: by rank, so that each
    node reads inputs already derived, as `evaluate` does. Returns the statuses that changed and the transitions.

    `statuses` holds every status (checks included) before the change; `flow_value` tells a flow's value over its
    checks (by default `over_checks` of their statuses; the board keeps a `CheckTally` per flow instead).
    """
    result = Evaluation()
    changed = result.statuses

    def get(key: str) -> ComponentStatus | None:
        found = changed.get(key)
        return found if found is not None else statuses.get(key)

    def of(key: str) -> Input:
        found = get(key)
        return Input.of(found) if found is not None else NO_SIGNAL

    def over_own_checks(node: Node) -> Input:
        return over_checks([Input.of(s) for k in node.checks if (s := statuses.get(k)) is not None])

    value_of_flow = flow_value or over_own_checks
    queue = sorted(set(dirty))
    queued = set(queue)
    while queue:
        node = graph.nodes[heapq.heappop(queue)]
        kind = node.ref.kind
        if kind == "flow":
            value = value_of_flow(node)
        elif kind == "line":
            value = line_value(
                [[of(k) for k in group] for group in node.required],
                [(of(k), detail) for k, detail in node.optional],
                [(impact, of(k), detail) for k, impact, detail in node.dependencies],
            )
        else:
            value = over_lines([of(k) for k in node.lines])
        prev = get(node.key)
        override = overrides.for_key(node.key, node.network_key)
        status = settle(prev, node.ref, value, override, now, stabilization, overrides.lifted)
        if status == prev:
            continue  # what it feeds reads the same: re-deriving it would tell nothing new
        changed[node.key] = status
        moved = transition(prev, status, now)
        if moved is not None:
            result.transitions.append(moved)
        for fed in graph.dependants[node.index]:
            if fed not in queued:
                queued.add(fed)
                heapq.heappush(queue, fed)
    return result
