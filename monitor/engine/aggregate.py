"""Where check states become flow, line and network states: aggregation, dependencies, overrides applied, and the
recovery rule (DESIGN §2). Pure: `now` is always a parameter.

Each rule is a small function over `Input`s (state, progress, date of the last change), so that a caller may
re-derive only what one result affects:

- `over_checks` / `over_lines` — a flow over its checks, a network over its lines: the worst, except that working
  and down inputs mixed are partial;
- `best_of` — an alternative group (`portail_ps|pec`) is as good as its best member;
- `over_required` — a line over its required entries: the worst of them (down if any is down, then partial, …),
  progress the bottleneck when recovering;
- `with_optional`, `with_dependency` — floors: an optional flow down or partial makes a line at least degraded;
  a dependency makes it at least its impact (or recovering, or degraded, after the upstream's state);
- `stabilize` — the recovery rule, and the dates (since, changed_at) shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..config import Dependency, Network, Settings
from ..models import SEVERITY, ComponentRef, ComponentStatus, Source, State, Transition, worst
from .overrides import Override, Overrides

__all__ = [
    "IMPACT_STATES",
    "NO_SIGNAL",
    "Evaluation",
    "Input",
    "best_of",
    "combine",
    "evaluate",
    "line_value",
    "over_checks",
    "over_lines",
    "over_required",
    "settle",
    "stabilize",
    "transition",
    "with_dependency",
    "with_optional",
]

_PROGRESS_STEP = 0.01  # a recovering progress change smaller than this is not a new step
_OVERRIDING = (Source.DECLARED, Source.MAINTENANCE)
IMPACT_STATES: Mapping[str, State] = {"partial": State.PARTIAL, "down": State.DOWN, "degraded": State.DEGRADED}
_CLOSED = (State.DOWN, State.PARTIAL, State.MAINTENANCE)  # an upstream that leaves its dependents' members without


@dataclass(frozen=True, slots=True)
class Input:
    """One input of an aggregate, as shown: its state, progress (share up), the date of its last change
    (a recovery step included), its source and detail, and, while recovering, since when it is fully up."""

    state: State
    share: float
    since: datetime | None
    source: Source
    detail: str = ""
    stable_since: datetime | None = None

    @classmethod
    def of(cls, status: ComponentStatus) -> Input:
        stable = status.stable_since if status.state is State.RECOVERING else None
        return cls(
            status.state, status.progress, status.changed_at or status.since, status.source, status.detail, stable
        )


NO_SIGNAL = Input(State.UNKNOWN, 0.0, None, Source.NONE)  # what an aggregate of nothing, or a missing input, is


def _latest(dates: Iterable[datetime | None]) -> datetime | None:
    return max((d for d in dates if d is not None), default=None)


def combine(states: Iterable[State]) -> State:
    """Worst of the inputs, except that a mix of working and down inputs is partial; none is unknown."""
    listed = list(states)
    if not listed:
        return State.UNKNOWN
    working = any(s.is_up or s in (State.PARTIAL, State.RECOVERING) for s in listed)
    if working and State.DOWN in listed:
        return State.PARTIAL
    return worst(listed)


def _source(state: State, inputs: list[Input], driver: Input) -> Source:
    if state is State.UNKNOWN:
        return Source.NONE  # "we do not know" has no source to show, whatever the known inputs say
    if driver.source is not Source.NONE:
        return driver.source
    return min((i.source for i in inputs if i.source is not Source.NONE), default=Source.NONE)


def _stable_since(inputs: list[Input]) -> datetime | None:
    """While recovering because inputs are: since when every recovering input is fully up, or None if one is
    not yet. The aggregate ends its recovery with them, not a stabilization later."""
    dates = []
    for i in inputs:
        if i.state is State.RECOVERING:
            if i.stable_since is None:
                return None
            dates.append(i.stable_since)
    return max(dates, default=None)


def _driver(inputs: list[Input]) -> Input:
    return max(inputs, key=lambda i: (SEVERITY[i.state], i.since.timestamp() if i.since else 0.0))


def _progress(state: State, inputs: list[Input], default: float) -> float:
    recovering = [i.share for i in inputs if i.state is State.RECOVERING]
    return min(recovering) if state is State.RECOVERING and recovering else default


def over_checks(inputs: list[Input]) -> Input:
    """A flow over its checks (a network over its lines): all down is down, some down and some working is
    partial (progress: the share working), otherwise the worst of them; none is unknown."""
    if not inputs:
        return NO_SIGNAL
    state = combine(i.state for i in inputs)
    driver = _driver(inputs)
    share = _progress(state, inputs, sum(i.share for i in inputs) / len(inputs))
    stable = _stable_since(inputs) if state is State.RECOVERING else None
    return Input(state, share, _latest(i.since for i in inputs), _source(state, inputs, driver), driver.detail, stable)


over_lines = over_checks  # a network is the worst of its lines, except that working and down lines mixed are partial


def best_of(members: list[Input]) -> Input:
    """An alternative group ("portail_ps|pec") is as good as its best member.

    Dated like any aggregate, from the latest change of its members: the best one may be unchanged while
    the change of another (the one that was best) is what made the state.
    """
    if len(members) == 1:
        return members[0]
    best = min(members, key=lambda i: (SEVERITY[i.state], -i.share))
    return replace(best, since=_latest(i.since for i in members))


def over_required(entries: list[Input]) -> Input:
    """A line over its required entries: the worst of them — down if any is down (optique cannot work without
    PEC, however well invoicing runs), then partial, …; recovering with the lowest progress (the bottleneck)."""
    if not entries:
        return NO_SIGNAL
    state = worst([e.state for e in entries])
    driver = _driver(entries)
    share = _progress(state, entries, min(e.share for e in entries))
    stable = _stable_since(entries) if state is State.RECOVERING else None
    return Input(
        state, share, _latest(e.since for e in entries), _source(state, entries, driver), driver.detail, stable
    )


def _at_least(value: Input, state: State, share: float, cause: Input, source: Source, detail: str) -> Input:
    """`value` made at least `state` (by severity): the floor's source and detail when it is what shows."""
    if SEVERITY[value.state] < SEVERITY[state]:
        stable = cause.stable_since if state is State.RECOVERING else None
        return Input(state, share, value.since, source, detail, stable)
    if value.state is State.RECOVERING and state is State.RECOVERING:
        stable = None
        if value.stable_since is not None and cause.stable_since is not None:
            stable = max(value.stable_since, cause.stable_since)
        if share < value.share:  # the floor is the bottleneck
            return replace(value, share=share, source=source, detail=detail, stable_since=stable)
        return replace(value, stable_since=stable)
    return value


def with_optional(value: Input, flow: Input, detail: str) -> Input:
    """An optional flow down or partial makes the line at least degraded (a workaround exists); `detail` names it.

    A line we know nothing of stays unknown: an optional flow down says nothing of the required ones.
    """
    if flow.state not in (State.DOWN, State.PARTIAL) or value.state is State.UNKNOWN:
        return value
    return _at_least(value, State.DEGRADED, 1.0 if value.state.is_up else value.share, flow, flow.source, detail)


def with_dependency(value: Input, impact: State, upstream: Input, detail: str) -> Input:
    """A line relying on another network's flow: upstream down or partial (or closed for maintenance) → at least
    `impact`; recovering → at least recovering with the upstream's progress (never more than `impact`);
    degraded → at least degraded. An upstream we know nothing of changes nothing."""
    if upstream.state in _CLOSED:
        floor, share = impact, 0.0 if impact is State.DOWN else value.share
    elif upstream.state is State.RECOVERING:
        floor = State.RECOVERING if SEVERITY[impact] > SEVERITY[State.RECOVERING] else impact
        share = upstream.share if floor is State.RECOVERING else value.share
    elif upstream.state is State.DEGRADED:
        floor, share = State.DEGRADED, value.share
    else:
        return value
    return _at_least(value, floor, share, upstream, Source.DEPENDENCY, detail)


def line_value(
    required: list[list[Input]],
    optional: list[tuple[Input, str]],
    dependencies: list[tuple[State, Input, str]],
) -> Input:
    """A line over its required groups (each an alternative of flows), then the floors of its optional flows
    (each with the detail naming it) and of its dependencies (impact, upstream flow, detail), in that order.

    The line changes when any of these changes: it is dated from the latest of them (a flow back, a floor lifted).
    """
    value = over_required([best_of(group) for group in required])
    causes = [value.since]
    for flow, detail in optional:
        value = with_optional(value, flow, detail)
        causes.append(flow.since)
    for impact, upstream, detail in dependencies:
        value = with_dependency(value, impact, upstream, detail)
        causes.append(upstream.since)
    latest = _latest(causes)
    if latest != value.since:
        value = replace(value, since=latest)
    return value


def _apply(value: Input, override: Override | None) -> Input:
    if override is None:
        return value
    if override.progress is not None:
        share = override.progress
    else:
        share = 1.0 if override.state.is_up else 0.0
    since = max(override.since, override.changed_at or override.since)
    return Input(override.state, share, since, override.source, override.detail)


def stabilize(
    prev: ComponentStatus | None,
    ref: ComponentRef,
    value: Input,
    now: datetime,
    stabilization: float,
    lifted: Mapping[str, datetime] | None = None,
    *,
    partly: bool = True,
) -> ComponentStatus:
    """The recovery rule and the dates shown.

    After down or partial, a component partly or newly up is recovering until fully up for `stabilization`
    (a declared state is shown as declared). With `partly` false (lines, networks: their inputs already follow
    the rule), only the stabilization applies: partly up is what their inputs say.

    `since` is the start of the current state: the date of the input change that made it, never before what
    was already shown, never after `now`; `changed_at` moves with each recovery step, dated when it happened.
    """
    prev_state = prev.state if prev else State.UNKNOWN
    in_recovery = prev_state in (State.DOWN, State.PARTIAL, State.RECOVERING)
    declared = value.source in _OVERRIDING
    if prev is not None and prev.source in _OVERRIDING and not declared and prev_state is not value.state:
        # what an override hid was not shown before it ended: it begins, and is stable, from then on
        ended = (lifted or {}).get(prev.detail, now)
        value = replace(value, since=max(filter(None, (value.since, ended))))
    state, stable_since, since = value.state, None, value.since
    if value.state is State.RECOVERING:
        stable_since = value.stable_since
    elif in_recovery and not declared and value.state in (State.OPERATIONAL, State.DEGRADED, State.PARTIAL):
        if value.state is State.PARTIAL and (prev_state is State.PARTIAL or not partly):
            pass  # still partial, or partial as its inputs say
        elif (
            not partly
            and value.state.is_up
            and prev is not None
            and prev_state is State.RECOVERING
            and prev.stable_since is None
            and prev.source not in _OVERRIDING
        ):
            since = value.since or now  # recovering with its inputs, which ended their own stabilization: now over
        elif value.state.is_up and value.share >= 1.0:
            stable_since = (prev.stable_since if prev else None) or value.since or now
            end = stable_since + timedelta(seconds=stabilization)
            if now >= end and prev_state is State.RECOVERING:
                since, stable_since = end, None  # recovered: what it shows no longer depends on the past
            else:
                # recovering first, even if already stable for long when noticed: the next evaluation ends it,
                # dated at its end; an outage never ends without its recovery shown
                state = State.RECOVERING
        else:
            state = State.RECOVERING
    progress = round(value.share, 4)
    if prev is not None and state is prev.state:
        since = prev.since
        stepped = state is State.RECOVERING and abs(progress - prev.progress) >= _PROGRESS_STEP
        changed_at = prev.changed_at
        if stepped:
            floor = max(filter(None, (prev.since, prev.changed_at)), default=None)
            step = value.since or now
            changed_at = min(max(step, floor) if floor is not None else step, now)
    else:
        since = since or now
        floor = max(filter(None, (prev.since, prev.changed_at)), default=None) if prev is not None else None
        if floor is not None and since < floor:
            since = floor  # a retroactive date never goes back before what was already shown
        since = min(since, now)
        changed_at = since
    return ComponentStatus(
        ref, state, since, value.source, value.state, progress, stable_since, value.detail, changed_at
    )


def settle(
    prev: ComponentStatus | None,
    ref: ComponentRef,
    value: Input,
    override: Override | None,
    now: datetime,
    stabilization: float,
    lifted: Mapping[str, datetime],
) -> ComponentStatus:
    """A flow, line or network's new status: its override (if any) over `value`, then the recovery rule (flows
    partly up recover; lines and networks follow their inputs)."""
    applied = _apply(value, override)
    return stabilize(prev, ref, applied, now, stabilization, lifted, partly=ref.kind == "flow")


def transition(prev: ComponentStatus | None, new: ComponentStatus, now: datetime) -> Transition | None:
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
            moved = transition(prev, status, now)
            if moved is not None:
                result.transitions.append(moved)
    return result


def _dependencies(network: Network, line: str) -> list[Dependency]:
    return [dep for dep in network.depends_on if dep.covers(line)]


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

    def settled(ref: ComponentRef, value: Input) -> ComponentStatus:
        status = settle(current.get(ref.key), ref, value, overrides.for_component(ref), now, stab, overrides.lifted)
        current[ref.key] = status
        out.append(status)
        return status

    by_flow: dict[str, list[Input]] = {}
    for check in network.checks:
        found = checks.get(ComponentRef.for_check(name, check.flow, check.name).key)
        if found is not None:
            by_flow.setdefault(check.flow, []).append(Input.of(found))
    flows: dict[str, Input] = {}
    for flow in network.flow_names(settings.flows):
        flows[flow] = Input.of(settled(ComponentRef("flow", name, flow), over_checks(by_flow.get(flow, []))))

    def upstream(dep: Dependency) -> Input:
        found = current.get(ComponentRef("flow", dep.network, dep.flow).key)
        return Input.of(found) if found is not None else NO_SIGNAL

    lines: list[Input] = []
    for line in network.lines:
        required, optional = network.requirements(line, settings.lines)
        value = line_value(
            [[flows[f] for f in group.split("|")] for group in required],
            [(flows[f], f"{name}/{f}") for f in optional],
            [(IMPACT_STATES[d.impact], upstream(d), f"{d.network}/{d.flow}") for d in _dependencies(network, line)],
        )
        lines.append(Input.of(settled(ComponentRef("line", name, line), value)))

    settled(ComponentRef("network", name), over_lines(lines))
    return out
