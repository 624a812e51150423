"""Where check states become flow, line and network states: aggregation, dependencies, overrides applied, and the
recovery rule (DESIGN §2). Pure: `now` is always a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..config import Network, Settings
from ..models import SEVERITY, ComponentRef, ComponentStatus, Source, State, Transition, worst
from .overrides import Override, Overrides

__all__ = ["Evaluation", "combine", "evaluate", "stabilize"]

_PROGRESS_STEP = 0.01  # a recovering progress change smaller than this is not a new step
_OVERRIDING = (Source.DECLARED, Source.MAINTENANCE)


@dataclass(frozen=True)
class _Input:
    """One input of an aggregate: its raw state, up-share, since and source."""

    state: State
    share: float
    since: datetime | None
    source: Source
    detail: str = ""

    @classmethod
    def of(cls, status: ComponentStatus) -> _Input:
        # The input is the raw state, so its date is the raw one: while recovering, when it became fully up.
        since = status.stable_since or status.since
        return cls(status.raw, status.progress, since, status.source, status.detail)


_UNKNOWN = _Input(State.UNKNOWN, 0.0, None, Source.NONE)


def combine(states: Iterable[State]) -> State:
    """Worst of the inputs, except that a mix of working and down inputs is partial; none is unknown."""
    listed = list(states)
    if not listed:
        return State.UNKNOWN
    working = any(s.is_up or s in (State.PARTIAL, State.RECOVERING) for s in listed)
    if working and State.DOWN in listed:
        return State.PARTIAL
    return worst(listed)


def _aggregate(inputs: list[_Input], rule: str = "combine") -> _Input:
    if not inputs:
        return _UNKNOWN
    states = [i.state for i in inputs]
    state = combine(states) if rule == "combine" else worst(states)
    driver = max(inputs, key=lambda i: (SEVERITY[i.state], i.since.timestamp() if i.since else 0.0))
    since = max((i.since for i in inputs if i.since is not None), default=None)
    share = sum(i.share for i in inputs) / len(inputs)
    if state is State.UNKNOWN:
        source = Source.NONE  # "we do not know" has no source to show, whatever the known inputs say
    else:
        sources = {i.source for i in inputs if i.source is not Source.NONE}
        source = driver.source if driver.source is not Source.NONE else (min(sources) if sources else Source.NONE)
    return _Input(state, share, since, source, driver.detail)


def _best(inputs: list[_Input]) -> _Input:
    """For alternatives ("portail_ps|pec"): the line works if either works.

    Dated like any aggregate, from the latest change of its inputs: the best one may be unchanged while
    the change of another (the one that was best) is what made the state.
    """
    best = min(inputs, key=lambda i: (SEVERITY[i.state], -i.share))
    return replace(best, since=max((i.since for i in inputs if i.since is not None), default=None))


def _at_least_degraded(value: _Input, cause: _Input, source: Source, detail: str) -> _Input:
    """`value` made degraded if it looks better; then dated from `cause` (the flow that went wrong) if later."""
    if value.state is State.UNKNOWN or SEVERITY[value.state] < SEVERITY[State.DEGRADED]:
        since = max((s for s in (value.since, cause.since) if s is not None), default=None)
        return _Input(State.DEGRADED, max(value.share, 1.0 if value.state.is_up else 0.0), since, source, detail)
    return value


def _apply(value: _Input, override: Override | None) -> _Input:
    if override is None:
        return value
    if override.progress is not None:
        share = override.progress
    else:
        share = 1.0 if override.state.is_up else 0.0
    return _Input(override.state, share, override.since, override.source, override.detail)


def stabilize(
    prev: ComponentStatus | None, ref: ComponentRef, value: _Input, now: datetime, stabilization: float
) -> ComponentStatus:
    """The recovery rule: after down, a component is recovering until fully up for `stabilization`."""
    prev_state = prev.state if prev else State.UNKNOWN
    in_recovery = prev_state in (State.DOWN, State.RECOVERING)
    state, stable_since, since = value.state, None, value.since
    if value.state is State.RECOVERING:
        pass
    elif in_recovery and value.state in (State.OPERATIONAL, State.DEGRADED, State.PARTIAL):
        if value.state.is_up and value.share >= 1.0:
            stable_since = (prev.stable_since if prev else None) or value.since or now
            end = stable_since + timedelta(seconds=stabilization)
            if now >= end:
                since, stable_since = end, None  # recovered: what it shows no longer depends on the past
            else:
                state = State.RECOVERING
        else:
            state = State.RECOVERING
    progress = round(value.share, 4)
    if prev is not None and state is prev.state:
        since = prev.since
        stepped = state is State.RECOVERING and abs(progress - prev.progress) >= _PROGRESS_STEP
        changed_at = now if stepped else prev.changed_at
    else:
        since = since or now
        floor = max(filter(None, (prev.since, prev.changed_at)), default=None) if prev is not None else None
        if floor is not None and since < floor:
            since = floor  # a retroactive date never goes back before what was already shown
        if prev is not None and prev.source in _OVERRIDING and value.source not in _OVERRIDING:
            since = now  # what an override hid was not shown before the override ended
        since = min(since, now)
        changed_at = since
    return ComponentStatus(
        ref, state, since, value.source, value.state, progress, stable_since, value.detail, changed_at
    )


def _transition(prev: ComponentStatus | None, new: ComponentStatus, now: datetime) -> Transition | None:
    """A transition when the shown state changes or a recovery takes a step (`changed_at` moved)."""
    before = prev.state if prev else State.UNKNOWN
    if new.state is before and (prev is None or new.changed_at == prev.changed_at):
        return None
    return Transition(new.ref, before, new.state, new.changed_at or now, now, new.source, new.progress, new.detail)


@dataclass
class Evaluation:
    statuses: dict[str, ComponentStatus] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)


def evaluate(
    settings: Settings,
    checks: Mapping[str, ComponentStatus],
    overrides: Overrides,
    previous: Mapping[str, ComponentStatus],
    now: datetime,
    networks: Iterable[str],
) -> Evaluation:
    """Derive flows, lines and networks of `networks` (in dependency order) from their inputs.

    `checks` holds every check status; `previous` every component's last status (for the recovery
    rule and for the flows of other networks this one depends on).
    """
    result = Evaluation()
    current: dict[str, ComponentStatus] = dict(previous)
    for name in networks:
        network = settings.networks[name]
        for status in _evaluate_network(settings, name, network, checks, overrides, current, now):
            prev = previous.get(status.ref.key)
            current[status.ref.key] = status
            result.statuses[status.ref.key] = status
            transition = _transition(prev, status, now)
            if transition is not None:
                result.transitions.append(transition)
    return result


def _evaluate_network(
    settings: Settings,
    name: str,
    network: Network,
    checks: Mapping[str, ComponentStatus],
    overrides: Overrides,
    current: dict[str, ComponentStatus],
    now: datetime,
) -> list[ComponentStatus]:
    out: list[ComponentStatus] = []
    stab = settings.stabilization

    def settle(ref: ComponentRef, value: _Input) -> ComponentStatus:
        status = stabilize(current.get(ref.key), ref, _apply(value, overrides.for_component(ref)), now, stab)
        current[ref.key] = status
        out.append(status)
        return status

    flows: dict[str, _Input] = {}
    for flow in network.flow_names(settings.flows):
        inputs = [
            _Input.of(checks[ComponentRef.for_check(name, flow, c.name).key])
            for c in network.checks
            if c.flow == flow and ComponentRef.for_check(name, flow, c.name).key in checks
        ]
        flows[flow] = _Input.of(settle(ComponentRef("flow", name, flow), _aggregate(inputs)))

    lines: list[_Input] = []
    for line in network.lines:
        required, optional = network.requirements(line, settings.lines)
        value = _aggregate([_best([flows[f] for f in group.split("|")]) for group in required])
        for flow in optional:
            if flows[flow].state in (State.DOWN, State.PARTIAL) and value.state is not State.UNKNOWN:
                value = _at_least_degraded(value, flows[flow], flows[flow].source, f"{name}/{flow}")
        depended = False
        for dep in network.depends_on:
            if dep.lines and line not in dep.lines:
                continue
            upstream = current.get(ComponentRef("flow", dep.network, dep.flow).key)
            if upstream is not None and upstream.raw in (State.DOWN, State.PARTIAL):
                depended = True
                cause = _Input.of(upstream)
                value = _at_least_degraded(value, cause, Source.DEPENDENCY, f"{dep.network}/{dep.flow}")
        ref = ComponentRef("line", name, line)
        before = current.get(ref.key)
        if not depended and before is not None and before.source is Source.DEPENDENCY:
            value = replace(value, since=now)  # the dependency's effect ended when it was noticed, not before
        lines.append(_Input.of(settle(ref, value)))

    settle(ComponentRef("network", name), _aggregate(lines, rule="worst"))
    return out
