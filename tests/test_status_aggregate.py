"""Aggregation, dependencies and precedence of the status engine, through `evaluate` (DESIGN §2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_status_support import EARLIER, MINUTE, T0, Engine, key, make_settings, network, tcp

from monitor.config.taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from monitor.config.values import SLUG
from monitor.engine.aggregate import combine
from monitor.engine.overrides import Override, Overrides
from monitor.models import SEVERITY, ComponentRef, Source, State

OP, DEG, PART, DOWN, REC, MAINT, UNK = (
    State.OPERATIONAL,
    State.DEGRADED,
    State.PARTIAL,
    State.DOWN,
    State.RECOVERING,
    State.MAINTENANCE,
    State.UNKNOWN,
)
CHECK_STATES = (OP, DEG, DOWN, UNK)  # the states a check can be in


def engine_with(flows: dict[str, tuple[State, ...]], lines: tuple[str, ...] = ("optique",), **fields: Any) -> Engine:
    """One operator, `viamedis`, with checks `<flow>-<i>` in the given states (since EARLIER)."""
    checks = [tcp(flow, f"{flow}-{i}") for flow, states in flows.items() for i in range(len(states))]
    engine = Engine(make_settings({"viamedis": network(*checks, lines=lines, **fields)}))
    for flow, states in flows.items():
        for i, state in enumerate(states):
            engine.set(key("check", "viamedis", flow, f"{flow}-{i}"), state, EARLIER)
    engine.run(T0)
    return engine


# --- flows ----------------------------------------------------------------------------------------

FLOW_CASES = [
    pytest.param((OP, OP), OP, id="all-up-is-operational"),
    pytest.param((OP, DEG), DEG, id="slow-check-makes-degraded"),
    pytest.param((OP, DOWN), PART, id="up-and-down-is-partial"),
    pytest.param((DEG, DOWN), PART, id="degraded-and-down-is-partial"),
    pytest.param((DOWN, DOWN), DOWN, id="all-down-is-down"),
    pytest.param((OP, UNK), UNK, id="up-and-unknown-is-unknown-never-green"),
    pytest.param((DOWN, UNK), DOWN, id="down-and-unknown-is-down"),
    pytest.param((OP, DOWN, UNK), PART, id="up-down-and-unknown-is-partial"),
    pytest.param((UNK, UNK), UNK, id="all-unknown-is-unknown"),
    pytest.param((), UNK, id="no-checks-is-unknown-never-operational"),
]


@pytest.mark.parametrize(("checks", "expected"), FLOW_CASES)
def test_flow_is_the_worst_of_its_checks_and_a_mix_of_up_and_down_is_partial(
    checks: tuple[State, ...], expected: State
) -> None:
    engine = engine_with({"facturation": checks, "pec": (OP,)})
    flow = engine[key("flow", "viamedis", "facturation")]
    assert flow.state is expected
    assert flow.raw is expected
    assert flow.since is not None
    if not checks:
        assert flow.source is Source.NONE
    elif expected is not UNK:
        assert flow.source is Source.PROBE


def test_flow_progress_is_the_share_of_its_checks_up() -> None:
    engine = engine_with({"facturation": (OP, DOWN, DEG, DOWN)})
    assert engine[key("flow", "viamedis", "facturation")].progress == 0.5


# --- lines ----------------------------------------------------------------------------------------
# optique requires portail_ps|pec and facturation, and droits optionally (the default taxonomy).

LINE_CASES = [
    pytest.param({"portail_ps": (OP,), "pec": (OP,), "facturation": (OP,), "droits": (OP,)}, OP, id="all-up"),
    pytest.param({"portail_ps": (OP,), "pec": (DOWN,), "facturation": (OP,)}, OP, id="portal-alone-suffices"),
    pytest.param({"portail_ps": (DOWN,), "pec": (OP,), "facturation": (OP,)}, OP, id="pec-alone-suffices"),
    pytest.param({"pec": (OP,), "facturation": (OP,)}, OP, id="alternative-without-checks-other-up"),
    # DESIGN §2: a line is down if any required entry is down, however well the others run
    pytest.param({"portail_ps": (DOWN,), "pec": (DOWN,), "facturation": (OP,)}, DOWN, id="both-alternatives-down"),
    pytest.param({"portail_ps": (OP,), "pec": (OP,), "facturation": (DOWN,)}, DOWN, id="facturation-down"),
    pytest.param({"portail_ps": (DOWN,), "pec": (DOWN,), "facturation": (DOWN,)}, DOWN, id="everything-down"),
    pytest.param({"portail_ps": (OP,), "facturation": (OP, DOWN)}, PART, id="required-flow-partial"),
    pytest.param({"portail_ps": (OP,), "facturation": (DEG,)}, DEG, id="required-flow-degraded"),
    pytest.param({"portail_ps": (OP,), "pec": (OP,)}, UNK, id="required-flow-without-checks-is-unknown"),
    pytest.param({"portail_ps": (OP,), "facturation": (UNK,)}, UNK, id="required-flow-unknown"),
    pytest.param({"portail_ps": (OP,), "facturation": (OP,), "droits": (DOWN,)}, DEG, id="optional-down-degrades"),
    pytest.param({"portail_ps": (OP,), "facturation": (OP,), "droits": (OP, DOWN)}, DEG, id="optional-partial"),
    pytest.param({"portail_ps": (OP,), "facturation": (OP,), "droits": (UNK,)}, OP, id="optional-unknown-ignored"),
    pytest.param({"portail_ps": (OP,), "droits": (DOWN,)}, UNK, id="optional-down-does-not-hide-unknown"),
    pytest.param(
        {"portail_ps": (DOWN,), "pec": (DOWN,), "facturation": (OP,), "droits": (DOWN,)},
        DOWN,
        id="optional-down-under-worse",
    ),
    # An alternative without signal may be the one that works: the line is unknown, not partial.
    pytest.param({"pec": (DOWN,), "facturation": (OP,)}, UNK, id="alternative-unknown-other-down-is-unknown"),
    pytest.param({}, UNK, id="no-checks-at-all-is-unknown"),
]


@pytest.mark.parametrize(("flows", "expected"), LINE_CASES)
def test_line_from_its_required_flows(flows: dict[str, tuple[State, ...]], expected: State) -> None:
    engine = engine_with(flows)
    assert engine.state(key("line", "viamedis", "optique")) is expected


def test_optional_flow_down_names_the_flow_as_the_cause() -> None:
    engine = engine_with({"portail_ps": (OP,), "facturation": (OP,), "droits": (DOWN,)})
    line = engine[key("line", "viamedis", "optique")]
    assert (line.state, line.source, line.detail) == (DEG, Source.PROBE, "viamedis/droits")


def test_optional_flow_down_is_dated_from_that_flow_not_from_the_line() -> None:
    engine = engine_with({"portail_ps": (OP,), "facturation": (OP,), "droits": (OP,)})
    assert engine.state(key("line", "viamedis", "optique")) is OP
    engine.set(key("check", "viamedis", "droits", "droits-0"), DOWN, T0 + 10 * MINUTE)
    [move] = [t for t in engine.run(T0 + 12 * MINUTE) if t.ref.kind == "line"]
    assert (move.previous, move.state, move.at) == (OP, DEG, T0 + 10 * MINUTE)


def test_alternatives_are_dated_from_the_latest_change_of_either() -> None:
    engine = engine_with({"pec": (OP,), "facturation": (OP,)})  # portail_ps: no checks, unknown since T0
    engine.set(key("check", "viamedis", "pec", "pec-0"), DOWN, T0 + 10 * MINUTE)
    [move] = [t for t in engine.run(T0 + 12 * MINUTE) if t.ref.kind == "line"]
    assert (move.previous, move.state, move.at) == (OP, UNK, T0 + 10 * MINUTE)


def test_an_unknown_line_shows_no_source_even_when_some_inputs_are_probed() -> None:
    # portail_ps has no checks (unknown), pec is probed down: either could carry optique, so it is unknown
    engine = engine_with({"pec": (DOWN,), "facturation": (OP,)})
    line = engine[key("line", "viamedis", "optique")]
    assert (line.state, line.source) == (UNK, Source.NONE)


def test_line_progress_is_its_bottleneck() -> None:
    engine = engine_with({"portail_ps": (OP,), "facturation": (DOWN,)})
    assert engine[key("line", "viamedis", "optique")].progress == 0.0  # down: nothing goes through
    engine = engine_with({"portail_ps": (OP,), "facturation": (OP, DOWN, OP, OP)})
    assert engine[key("line", "viamedis", "optique")].progress == 0.75  # partial: as its partial flow


def test_network_line_overrides_replace_the_taxonomy() -> None:
    overrides = {"optique": {"requires": ["pec"], "optional": []}}
    engine = engine_with({"pec": (OP,), "facturation": (DOWN,), "droits": (DOWN,)}, line_overrides=overrides)
    assert engine.state(key("line", "viamedis", "optique")) is OP


def test_network_with_working_and_down_lines_is_partial() -> None:
    overrides = {"optique": {"requires": ["pec"]}, "pharmacie": {"requires": ["facturation"], "optional": []}}
    engine = engine_with(
        {"pec": (OP,), "facturation": (DOWN,)}, lines=("optique", "pharmacie"), line_overrides=overrides
    )
    assert engine.state(key("line", "viamedis", "optique")) is OP
    assert engine.state(key("line", "viamedis", "pharmacie")) is DOWN
    assert engine.state(key("network", "viamedis")) is PART  # DESIGN §2: a mix of working and down lines


def test_every_status_carries_its_source_and_since() -> None:
    engine = engine_with({"portail_ps": (OP,), "facturation": (OP, DOWN), "droits": (DEG,)}, lines=("optique", "audio"))
    derived = {k: s for k, s in engine.previous.items() if not k.startswith("check:")}
    assert len(derived) == len(DEFAULT_FLOWS) + 2 + 1
    for status in derived.values():
        assert status.since is not None, status.ref
        assert status.since <= T0
        assert status.source is not Source.NONE or status.state is UNK, status.ref


# --- dependencies ----------------------------------------------------------------------------------


def care_engine(care_checks: tuple[str, ...] = (), dep_lines: tuple[str, ...] = ("optique",)) -> Engine:
    """viamedis (operator) runs pec and facturation; santeclair's optique depends on viamedis/pec."""
    operator = network(tcp("pec"), tcp("facturation"), tcp("portail_ps"), lines=("optique",))
    care = network(
        *(tcp(flow) for flow in care_checks),
        kind="reseau_de_soins",
        lines=("optique", "pharmacie"),
        depends_on=[{"network": "viamedis", "flow": "pec", "lines": list(dep_lines)}],
    )
    engine = Engine(make_settings({"santeclair": care, "viamedis": operator}))
    for flow in ("pec", "facturation", "portail_ps"):
        engine.set(key("check", "viamedis", flow), OP, EARLIER)
    for flow in care_checks:
        engine.set(key("check", "santeclair", flow), OP, EARLIER)
    engine.run(T0)
    return engine


CARE_OPTIQUE = key("line", "santeclair", "optique")


def test_dependency_down_makes_a_line_without_probes_of_its_own_partial() -> None:
    engine = care_engine()
    assert engine.state(CARE_OPTIQUE) is UNK  # no signal of its own: never operational
    engine.set(key("check", "viamedis", "pec"), DOWN, T0 + MINUTE)
    engine.run(T0 + 5 * MINUTE)
    line = engine[CARE_OPTIQUE]
    assert (line.state, line.source, line.detail) == (PART, Source.DEPENDENCY, "viamedis/pec")
    assert engine.state(key("line", "santeclair", "pharmacie")) is UNK  # not a dependent line


def test_dependency_partial_counts_too() -> None:
    engine = Engine(care_engine().settings)
    engine.set(key("check", "viamedis", "pec"), DOWN, T0)
    engine.overrides = Overrides(declared={key("flow", "viamedis", "pec"): Override(PART, T0, Source.DECLARED)})
    engine.run(T0)
    assert engine[CARE_OPTIQUE].source is Source.DEPENDENCY


def test_dependency_without_lines_covers_every_line() -> None:
    engine = care_engine(dep_lines=())
    engine.set(key("check", "viamedis", "pec"), DOWN, T0)
    engine.run(T0 + MINUTE)
    assert engine.state(CARE_OPTIQUE) is PART
    assert engine.state(key("line", "santeclair", "pharmacie")) is PART


def test_dependency_on_a_probed_line_is_dated_from_the_upstream_outage() -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    assert engine.state(CARE_OPTIQUE) is OP
    down_at = T0 + 10 * MINUTE
    engine.set(key("check", "viamedis", "pec"), DOWN, down_at)
    transitions = engine.run(T0 + 12 * MINUTE)
    line = engine[CARE_OPTIQUE]
    assert (line.state, line.source) == (PART, Source.DEPENDENCY)
    assert line.since == down_at
    [move] = [t for t in transitions if t.ref.key == CARE_OPTIQUE]
    assert (move.previous, move.state, move.at) == (OP, PART, down_at)


def test_dependency_is_a_floor_a_line_down_by_its_own_probes_stays_down() -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    engine.set(key("check", "viamedis", "pec"), DOWN, T0)
    engine.set(key("check", "santeclair", "facturation"), DOWN, T0)
    engine.set(key("check", "santeclair", "pec"), DOWN, T0)
    engine.run(T0 + MINUTE)
    line = engine[CARE_OPTIQUE]
    assert (line.state, line.source) == (DOWN, Source.PROBE)


def test_upstream_declared_down_reaches_dependents() -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    engine.overrides = Overrides(declared={key("network", "viamedis"): Override(DOWN, T0, Source.DECLARED)})
    engine.run(T0 + MINUTE)
    assert engine.state(key("flow", "viamedis", "pec")) is DOWN
    assert engine[CARE_OPTIQUE].source is Source.DEPENDENCY


def test_upstream_back_up_lifts_the_dependency() -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    engine.set(key("check", "viamedis", "pec"), DOWN, T0)
    engine.run(T0 + MINUTE)
    engine.set(key("check", "viamedis", "pec"), OP, T0 + 20 * MINUTE)
    transitions = engine.run(T0 + 21 * MINUTE)
    # The upstream flow is recovering: the dependent line is recovering with it, from when the upstream came back.
    assert engine.state(key("flow", "viamedis", "pec")) is REC
    assert engine.state(CARE_OPTIQUE) is REC
    [move] = [t for t in transitions if t.ref.key == CARE_OPTIQUE]
    assert (move.previous, move.state, move.at) == (PART, REC, T0 + 20 * MINUTE)
    # and back with it, at the same instant
    moved = {t.ref.key: (t.state, t.at) for t in engine.run(T0 + 50 * MINUTE)}
    assert moved[CARE_OPTIQUE] == moved[key("flow", "viamedis", "pec")] == (OP, T0 + 50 * MINUTE)


# --- precedence: maintenance › declared › dependency › probes › unknown ------------------------------

LINE_KEY, CARE_NETWORK = CARE_OPTIQUE, key("network", "santeclair")


def declared(state: State, at_minutes: int = 0, progress: float | None = None) -> Override:
    return Override(state, T0 + at_minutes * MINUTE, Source.DECLARED, progress, detail="incident-1")


def maintenance(at_minutes: int = 0) -> Override:
    return Override(MAINT, T0 + at_minutes * MINUTE, Source.MAINTENANCE, detail="window-1")


PRECEDENCE_CASES = [
    pytest.param({}, {}, False, (OP, Source.PROBE), id="probes"),
    pytest.param({}, {}, True, (PART, Source.DEPENDENCY), id="dependency-over-probes"),
    pytest.param({LINE_KEY: declared(OP)}, {}, True, (OP, Source.DECLARED), id="declared-over-dependency"),
    pytest.param({LINE_KEY: declared(DOWN)}, {}, True, (DOWN, Source.DECLARED), id="declared-down"),
    pytest.param(
        {LINE_KEY: declared(DOWN)},
        {LINE_KEY: maintenance()},
        True,
        (MAINT, Source.MAINTENANCE),
        id="maintenance-over-declared-down",
    ),
    pytest.param({CARE_NETWORK: declared(DOWN)}, {}, False, (DOWN, Source.DECLARED), id="network-declared-on-line"),
    pytest.param(
        {CARE_NETWORK: declared(DOWN), LINE_KEY: declared(OP)},
        {},
        False,
        (OP, Source.DECLARED),
        id="own-declared-over-network-declared",
    ),
    pytest.param({}, {CARE_NETWORK: maintenance()}, True, (MAINT, Source.MAINTENANCE), id="network-maintenance"),
    pytest.param(
        {LINE_KEY: declared(OP)},
        {CARE_NETWORK: maintenance()},
        False,
        (MAINT, Source.MAINTENANCE),
        id="network-maintenance-over-own-declared",
    ),
]


@pytest.mark.parametrize(("declared_", "maintenance_", "upstream_down", "expected"), PRECEDENCE_CASES)
def test_precedence_on_a_line(
    declared_: dict[str, Override],
    maintenance_: dict[str, Override],
    upstream_down: bool,
    expected: tuple[State, Source],
) -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    if upstream_down:
        engine.set(key("check", "viamedis", "pec"), DOWN, T0)
    engine.overrides = Overrides(declared=declared_, maintenance=maintenance_)
    engine.run(T0 + MINUTE)
    line = engine[LINE_KEY]
    assert (line.state, line.source) == expected


def test_unknown_is_the_floor_no_signal_no_override() -> None:
    engine = care_engine()
    line = engine[LINE_KEY]
    assert (line.state, line.source) == (UNK, Source.NONE)


def test_network_override_applies_to_its_flows_lines_and_itself_dated_from_the_declaration() -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    engine.overrides = Overrides(declared={CARE_NETWORK: declared(DOWN, at_minutes=2)})
    transitions = engine.run(T0 + 5 * MINUTE)
    for component in ("flow:santeclair/pec", "flow:santeclair/droits", LINE_KEY, CARE_NETWORK):
        status = engine[component]
        assert (status.state, status.source, status.since, status.detail) == (
            DOWN,
            Source.DECLARED,
            T0 + 2 * MINUTE,
            "incident-1",
        ), component
    assert engine.state(key("flow", "viamedis", "pec")) is OP  # another network's flows are untouched
    assert {"flow:santeclair/pec", "flow:santeclair/droits", LINE_KEY, CARE_NETWORK} <= {t.ref.key for t in transitions}
    assert all(t.ref.network == "santeclair" and t.source is Source.DECLARED for t in transitions)


def test_flow_override_feeds_its_lines() -> None:
    engine = care_engine(care_checks=("pec", "facturation"))
    engine.overrides = Overrides(declared={"flow:santeclair/facturation": declared(DOWN)})
    engine.run(T0 + MINUTE)
    assert engine.state(LINE_KEY) is DOWN  # facturation down, pec up: optique needs both


# --- properties -------------------------------------------------------------------------------------

STATES = list(State)


@settings(deadline=None, max_examples=500)
@given(st.lists(st.sampled_from(STATES), min_size=1, max_size=6))
def test_combine_stays_between_its_inputs_and_is_never_green_unless_all_are(states: list[State]) -> None:
    result = combine(states)
    severities = [SEVERITY[s] for s in states]
    assert min(severities) <= SEVERITY[result] <= max(severities)
    assert (result is OP) == all(s is OP for s in states)
    if DOWN in states or UNK in states:
        assert result is not OP


def test_combine_of_nothing_is_unknown() -> None:
    assert combine([]) is UNK


FLOW_NAMES = sorted(DEFAULT_FLOWS)


@st.composite
def small_world(draw: st.DrawFn) -> Engine:
    """An operator and a care network depending on one of its flows, with random checks and lines."""

    def checks(network_name: str) -> list[dict[str, object]]:
        flows = draw(st.lists(st.sampled_from(FLOW_NAMES), max_size=6))
        return [tcp(flow, f"c{i}") for i, flow in enumerate(flows)]

    def lines() -> tuple[str, ...]:
        return tuple(draw(st.lists(st.sampled_from(sorted(DEFAULT_LINES)), min_size=1, max_size=4, unique=True)))

    dependency = {"network": "viamedis", "flow": draw(st.sampled_from(FLOW_NAMES))}
    engine = Engine(
        make_settings(
            {
                "viamedis": network(*checks("viamedis"), lines=lines()),
                "santeclair": network(
                    *checks("santeclair"), kind="reseau_de_soins", lines=lines(), depends_on=[dependency]
                ),
            }
        )
    )
    # Two rounds of random check states, so that recovery and stabilization take part too.
    for minutes in (0, draw(st.integers(1, 60))):
        for check_key in engine.checks:
            engine.set(check_key, draw(st.sampled_from(CHECK_STATES)), T0 + minutes * MINUTE - MINUTE)
        engine.run(T0 + minutes * MINUTE)
    return engine


@settings(deadline=None, max_examples=200)
@given(small_world())
def test_aggregation_never_reports_better_than_a_failing_required_input(engine: Engine) -> None:
    world, statuses = engine.settings, engine.previous
    failing = (DOWN, UNK)
    for name, net in world.networks.items():
        for flow in world.flows:
            checks = [s.state for k, s in engine.checks.items() if k.startswith(f"check:{name}/{flow}/")]
            flow_status = statuses[key("flow", name, flow)]
            if not checks:
                assert flow_status.raw is UNK
            if any(s in failing for s in checks):
                assert OP not in (flow_status.raw, flow_status.state)
        line_states = []
        for line in net.lines:
            required, _ = net.requirements(line, world.lines)
            line_status = statuses[key("line", name, line)]
            line_states.append(line_status.state)
            for group in required:
                if all(statuses[key("flow", name, flow)].raw in failing for flow in group.split("|")):
                    assert OP not in (line_status.raw, line_status.state), (line, group)
            for dep in net.depends_on:
                if statuses[key("flow", dep.network, dep.flow)].state in (DOWN, PART):
                    assert SEVERITY[line_status.raw] >= SEVERITY[DEG]
                    assert line_status.state is not OP
        # a network over its lines as shown: the worst, except working and down lines mixed are partial
        assert statuses[key("network", name)].raw is combine(line_states)


def refs() -> st.SearchStrategy[ComponentRef]:
    slug = st.from_regex(SLUG, fullmatch=True)
    return st.one_of(
        st.builds(ComponentRef, st.just("network"), slug),
        st.builds(ComponentRef, st.sampled_from(["flow", "line"]), slug, slug),
        st.builds(ComponentRef, st.just("check"), slug, slug, slug),
    )


@settings(deadline=None, max_examples=300)
@given(refs())
def test_component_key_round_trips(ref: ComponentRef) -> None:
    assert ComponentRef.parse(ref.key) == ref
    assert str(ref) == ref.key


@pytest.mark.parametrize(
    "bad", ["", "network", "network:", "flow:viamedis", "line:a/b/c", "check:a/b", "check:a//c", "nope:a", "flow:/pec"]
)
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="malformed component key"):
        ComponentRef.parse(bad)


def test_dependency_order_does_not_matter_to_evaluate_results() -> None:
    # The care network is declared first in the config; evaluate still sees the operator's fresh flow.
    engine = care_engine()
    engine.set(key("check", "viamedis", "pec"), DOWN, T0)
    engine.run(T0 + timedelta(seconds=1))
    assert engine.order.index("viamedis") < engine.order.index("santeclair")
    assert engine.state(CARE_OPTIQUE) is PART
