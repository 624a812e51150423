"""DESIGN §2, row by row: lines over their required entries, networks over their lines, recovery after down or
partial, dependencies with an impact, and the dates each status carries. Then properties over random worlds.

Flow states other than what checks can be (partial, recovering) are set by declared flow overrides: a line sees
its flows' shown states, whatever made them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_status_support import EARLIER, T0, Engine, key, make_settings, network, tcp

from monitor.config.taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from monitor.engine.overrides import Override, Overrides
from monitor.models import SEVERITY, Source, State, Transition

OP, DEG, PART, DOWN, REC, MAINT, UNK = (
    State.OPERATIONAL,
    State.DEGRADED,
    State.PARTIAL,
    State.DOWN,
    State.RECOVERING,
    State.MAINTENANCE,
    State.UNKNOWN,
)
OPTIQUE = key("line", "viamedis", "optique")
NETWORK = key("network", "viamedis")

# A flow's state: a check state, or a declared state (with a progress when recovering).
FlowState = State | tuple[State, float]


def engine_of(flows: dict[str, FlowState], lines: tuple[str, ...] = ("optique",), **fields: Any) -> Engine:
    """viamedis with one check per flow of `flows`; partial and recovering flows are declared on the flow."""
    checks = [tcp(flow) for flow in flows]
    engine = Engine(make_settings({"viamedis": network(*checks, lines=lines, **fields)}, stabilization="30m"))
    declared: dict[str, Override] = {}
    for flow, wanted in flows.items():
        state, progress = wanted if isinstance(wanted, tuple) else (wanted, None)
        if state in (OP, DEG, DOWN, UNK):
            engine.set(key("check", "viamedis", flow), state, EARLIER)
        else:
            engine.set(key("check", "viamedis", flow), OP, EARLIER)
            declared[key("flow", "viamedis", flow)] = Override(state, EARLIER, Source.DECLARED, progress)
    engine.overrides = Overrides(declared=declared)
    engine.run(T0)
    return engine


# --- lines: over their required entries (optique = portail_ps|pec + facturation, optional droits) ---------------

LINE_ROWS = [
    # down if any required entry is down: optique cannot work without PEC, however well invoicing runs
    pytest.param({"portail_ps": DOWN, "pec": DOWN, "facturation": OP}, DOWN, 0.0, id="required-group-down"),
    pytest.param({"portail_ps": OP, "pec": OP, "facturation": DOWN}, DOWN, 0.0, id="required-flow-down"),
    pytest.param({"portail_ps": DOWN, "pec": OP, "facturation": (PART, 0.5)}, PART, 0.5, id="down-member-other-ok"),
    pytest.param({"portail_ps": DOWN, "pec": DOWN, "facturation": (PART, 0.5)}, DOWN, 0.0, id="down-beats-partial"),
    pytest.param({"portail_ps": DOWN, "pec": DOWN, "facturation": (REC, 0.5)}, DOWN, 0.0, id="down-beats-recovering"),
    # partial if any is partial
    pytest.param({"portail_ps": OP, "facturation": (PART, 0.3)}, PART, 0.3, id="required-partial"),
    pytest.param({"portail_ps": OP, "facturation": (PART, 0.3), "pec": (REC, 0.1)}, PART, 0.3, id="partial-over-rec"),
    # recovering if any is recovering, progress = the bottleneck; never operational meanwhile
    pytest.param({"portail_ps": (REC, 0.25), "pec": DOWN, "facturation": OP}, REC, 0.25, id="required-recovering"),
    pytest.param(
        {"portail_ps": DOWN, "pec": (REC, 0.25), "facturation": (REC, 0.75)}, REC, 0.25, id="bottleneck-is-the-lowest"
    ),
    # an alternative without signal may be the one that works, or not: unknown, not recovering
    pytest.param({"portail_ps": UNK, "pec": (REC, 0.25), "facturation": OP}, UNK, 0.0, id="group-unknown-or-rec"),
    pytest.param({"portail_ps": DOWN, "pec": (REC, 0.4), "facturation": OP}, REC, 0.4, id="group-as-good-as-best"),
    pytest.param({"portail_ps": OP, "pec": (REC, 0.4), "facturation": OP}, OP, 1.0, id="best-member-up"),
    pytest.param({"portail_ps": OP, "facturation": (REC, 0.6), "droits": DEG}, REC, 0.6, id="rec-over-degraded"),
    # otherwise the worst of them
    pytest.param({"portail_ps": OP, "facturation": DEG}, DEG, 1.0, id="degraded"),
    pytest.param({"portail_ps": OP, "facturation": UNK}, UNK, 0.0, id="unknown"),
    pytest.param({"portail_ps": OP, "facturation": MAINT}, MAINT, 0.0, id="maintenance"),
    pytest.param({"portail_ps": OP, "facturation": OP}, OP, 1.0, id="all-up"),
    # an optional entry down or partial: at least degraded
    pytest.param({"portail_ps": OP, "facturation": OP, "droits": DOWN}, DEG, 1.0, id="optional-down"),
    pytest.param({"portail_ps": OP, "facturation": OP, "droits": (PART, 0.5)}, DEG, 1.0, id="optional-partial"),
    pytest.param({"portail_ps": OP, "facturation": DOWN, "droits": DOWN}, DOWN, 0.0, id="optional-under-down"),
]


@pytest.mark.parametrize(("flows", "state", "progress"), LINE_ROWS)
def test_a_line_over_its_required_entries(flows: dict[str, FlowState], state: State, progress: float) -> None:
    line = engine_of(flows)[OPTIQUE]
    assert (line.state, line.progress) == (state, progress)


def test_a_line_degraded_by_an_optional_flow_names_it() -> None:
    line = engine_of({"portail_ps": OP, "facturation": OP, "droits": DOWN})[OPTIQUE]
    assert (line.state, line.detail) == (DEG, "viamedis/droits")


# --- networks: the worst of their lines, except that working and down lines mixed are partial ------------------

ALL_UP = {"pec": OP, "facturation": OP, "droits": OP, "portail_ps": OP}
HOSPITAL = {"hospitalisation": {"requires": ["pec"], "optional": []}}  # pharmacie: facturation; optique, both
NETWORK_ROWS = [
    pytest.param({"pec": DOWN, "facturation": DOWN}, DOWN, id="all-lines-down"),
    pytest.param({"pec": DOWN}, PART, id="a-line-down-others-working-is-partial"),
    pytest.param({"pec": (REC, 0.5)}, REC, id="a-line-recovering"),
    pytest.param({"pec": DOWN, "facturation": (REC, 0.5)}, PART, id="down-and-recovering-is-partial"),
    pytest.param({"droits": DOWN}, DEG, id="degraded-lines"),
    pytest.param({"pec": UNK, "facturation": DOWN}, DOWN, id="down-and-unknown-is-down"),
    pytest.param({}, OP, id="all-up"),
]


@pytest.mark.parametrize(("flows", "state"), NETWORK_ROWS)
def test_a_network_over_its_lines(flows: dict[str, FlowState], state: State) -> None:
    lines = ("pharmacie", "hospitalisation")
    engine = engine_of({**ALL_UP, **flows}, lines=lines, line_overrides=HOSPITAL)
    assert engine.state(NETWORK) is state


# --- recovering: after down or partial, until stable ------------------------------------------------------------


def two_checks(stabilization: str = "30m") -> Engine:
    """viamedis: pharmacie requires facturation, probed by checks a and b, both up."""
    pharmacie = {"pharmacie": {"requires": ["facturation"], "optional": []}}
    checks = (tcp("facturation", "a"), tcp("facturation", "b"))
    engine = Engine(
        make_settings({"viamedis": network(*checks, line_overrides=pharmacie)}, stabilization=stabilization)
    )
    for name in "ab":
        engine.set(key("check", "viamedis", "facturation", name), OP, EARLIER)
    engine.run(T0)
    return engine


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


A, B = key("check", "viamedis", "facturation", "a"), key("check", "viamedis", "facturation", "b")
DERIVED = (key("flow", "viamedis", "facturation"), key("line", "viamedis", "pharmacie"), NETWORK)


def test_a_partial_outage_that_ends_passes_through_recovering() -> None:
    engine = two_checks()
    engine.set(A, DOWN, at(1))
    engine.run(at(2))
    assert [engine.state(k) for k in DERIVED] == [PART, PART, PART]
    engine.set(A, OP, at(10))
    moved = engine.run(at(11))
    assert {t.ref.key: (t.previous, t.state, t.at) for t in moved if t.ref.key in DERIVED} == {
        k: (PART, REC, at(10)) for k in DERIVED
    }
    assert engine.run(at(39)) == []
    assert {(t.ref.key, t.state, t.at) for t in engine.run(at(40))} == {(k, OP, at(40)) for k in DERIVED}


def test_an_outage_noticed_over_after_its_stabilization_still_shows_its_recovery() -> None:
    """Probes every 2 h, stabilization 30 min: back at 9:00, seen at 11:00 — recovering at 9:00, operational at 9:30."""
    engine = two_checks()
    engine.set(A, DOWN, at(1))
    engine.set(B, DOWN, at(1))
    engine.run(at(2))
    engine.set(A, OP, at(60))
    engine.set(B, OP, at(60))
    first = engine.run(at(180))
    assert {(t.ref.key, t.previous, t.state, t.at) for t in first} == {(k, DOWN, REC, at(60)) for k in DERIVED}
    second = engine.run(at(180))  # the next tick
    assert {(t.ref.key, t.previous, t.state, t.at) for t in second} == {(k, REC, OP, at(90)) for k in DERIVED}


def test_a_line_is_never_operational_while_a_required_flow_recovers() -> None:
    """optique: PEC and the portal down (the line down), invoicing up; then PEC back: recovering, not operational."""
    engine = engine_of({"portail_ps": DOWN, "pec": OP, "facturation": OP})
    engine.set(key("check", "viamedis", "pec"), DOWN, at(1))
    engine.run(at(2))
    assert engine.state(OPTIQUE) is DOWN
    engine.set(key("check", "viamedis", "pec"), OP, at(10))
    engine.run(at(11))
    assert engine.state(key("flow", "viamedis", "pec")) is REC
    line = engine[OPTIQUE]
    assert (line.state, line.since) == (REC, at(10))
    engine.run(at(39))
    assert engine.state(OPTIQUE) is REC
    engine.run(at(40))
    assert [engine.state(k) for k in (key("flow", "viamedis", "pec"), OPTIQUE)] == [OP, OP]
    assert engine[OPTIQUE].since == at(40)


def test_a_declared_state_is_shown_as_declared_no_recovery_added() -> None:
    engine = two_checks()
    declared = {NETWORK: Override(DOWN, at(1), Source.DECLARED, detail="incident:1")}
    engine.overrides = Overrides(declared=declared)
    engine.run(at(2))
    engine.overrides = Overrides(declared={NETWORK: Override(OP, at(20), Source.DECLARED, detail="incident:1")})
    engine.run(at(21))
    assert [(engine.state(k), engine[k].since) for k in DERIVED] == [(OP, at(20))] * 3


# --- dependencies: impact, and what the upstream's state makes of the line --------------------------------------


def care(impact: str | None = None, own: State = OP, upstream: FlowState = OP) -> Engine:
    """kalixia's optique (own PEC check) depends on viamedis/pec (declared when partial or recovering)."""
    dependency: dict[str, Any] = {"network": "viamedis", "flow": "pec", "lines": ["optique"]}
    if impact is not None:
        dependency["impact"] = impact
    dependency["scope"] = {
        "fr": "assurés dont le tiers payant est géré par Viamedis",
        "en": "members managed by Viamedis",
    }
    engine = Engine(
        make_settings(
            {
                "viamedis": network(tcp("pec"), lines=("optique",)),
                "kalixia": network(
                    tcp("pec"),
                    kind="reseau_de_soins",
                    flows=["pec"],
                    lines=("optique",),
                    line_overrides={"optique": {"requires": ["pec"]}},
                    depends_on=[dependency],
                ),
            }
        )
    )
    engine.set(key("check", "kalixia", "pec"), own, EARLIER)
    state, progress = upstream if isinstance(upstream, tuple) else (upstream, None)
    engine.set(key("check", "viamedis", "pec"), state if state in (OP, DEG, DOWN, UNK) else OP, EARLIER)
    if state not in (OP, DEG, DOWN, UNK):
        upstream_key = key("flow", "viamedis", "pec")
        engine.overrides = Overrides(declared={upstream_key: Override(state, EARLIER, Source.DECLARED, progress)})
    engine.run(T0)
    return engine


KALIXIA_OPTIQUE = key("line", "kalixia", "optique")
DEPENDENCY_ROWS = [
    pytest.param(None, OP, DOWN, (PART, Source.DEPENDENCY), id="upstream-down-impact-partial-by-default"),
    pytest.param(None, OP, (PART, 0.5), (PART, Source.DEPENDENCY), id="upstream-partial"),
    pytest.param("down", OP, DOWN, (DOWN, Source.DEPENDENCY), id="impact-down"),
    pytest.param("degraded", OP, DOWN, (DEG, Source.DEPENDENCY), id="impact-degraded"),
    pytest.param(None, OP, (REC, 0.25), (REC, Source.DEPENDENCY), id="upstream-recovering"),
    pytest.param(None, OP, DEG, (DEG, Source.DEPENDENCY), id="upstream-degraded"),
    pytest.param("degraded", OP, (REC, 0.25), (DEG, Source.DEPENDENCY), id="recovering-no-worse-than-impact"),
    pytest.param(None, DOWN, DOWN, (DOWN, Source.PROBE), id="a-floor-own-down-stays"),
    pytest.param(None, UNK, DOWN, (PART, Source.DEPENDENCY), id="unknown-line-raised"),
    pytest.param(None, UNK, DEG, (UNK, Source.NONE), id="unknown-stays-above-degraded"),
    pytest.param(None, OP, UNK, (OP, Source.PROBE), id="upstream-unknown-no-effect"),
    pytest.param(None, OP, OP, (OP, Source.PROBE), id="upstream-up"),
]


@pytest.mark.parametrize(("impact", "own", "upstream", "expected"), DEPENDENCY_ROWS)
def test_a_dependency_makes_the_line_at_least_its_impact(
    impact: str | None, own: State, upstream: FlowState, expected: tuple[State, Source]
) -> None:
    line = care(impact, own, upstream)[KALIXIA_OPTIQUE]
    assert (line.state, line.source) == expected
    if line.source is Source.DEPENDENCY:
        assert line.detail == "viamedis/pec"


def test_an_upstream_recovering_gives_its_progress_unless_the_line_is_further_behind() -> None:
    assert care(upstream=(REC, 0.25))[KALIXIA_OPTIQUE].progress == 0.25
    engine = care(upstream=(REC, 0.6))
    engine.set(key("check", "kalixia", "pec"), DOWN, at(1))
    engine.run(at(2))
    engine.overrides = Overrides(
        declared={
            key("flow", "viamedis", "pec"): Override(REC, EARLIER, Source.DECLARED, 0.6),
            key("flow", "kalixia", "pec"): Override(REC, at(3), Source.DECLARED, 0.2),
        }
    )
    engine.run(at(4))
    line = engine[KALIXIA_OPTIQUE]
    assert (line.state, line.progress, line.source) == (REC, 0.2, Source.DECLARED)


def test_a_dependent_line_ends_its_recovery_with_its_upstream_not_a_stabilization_later() -> None:
    """Viamedis PEC's last gateway back at 9:00, seen at 11:00: PEC operational from 9:30, and Kalixia with it."""
    pec_1, pec_2 = tcp("pec", "pec-1"), tcp("pec", "pec-2")
    kalixia = care().settings.networks["kalixia"].model_dump(by_alias=True, exclude_none=True)
    engine = Engine(
        make_settings({"viamedis": network(pec_1, pec_2, lines=("optique",)), "kalixia": kalixia}, stabilization="30m")
    )
    gateways = [key("check", "viamedis", "pec", name) for name in ("pec-1", "pec-2")]
    engine.set(key("check", "kalixia", "pec"), OP, EARLIER)
    for gateway in gateways:
        engine.set(gateway, DOWN, EARLIER)
    engine.run(T0)
    engine.set(gateways[0], OP, at(10))
    engine.run(at(11))
    assert engine.state(KALIXIA_OPTIQUE) is REC
    engine.set(gateways[1], OP, at(60))
    moved = {t.ref.key: (t.state, t.at) for t in engine.run(at(180))}
    assert moved[key("flow", "viamedis", "pec")] == moved[KALIXIA_OPTIQUE] == (OP, at(90))


# --- times: since is the start of the current state; steps are dated when they happened -------------------------


def test_back_from_degraded_by_an_optional_flow_is_dated_when_that_flow_came_back() -> None:
    """Viamedis pharmacie on 22 Feb: 'Opérationnel depuis' the return of Visiodroits, not the 29/01."""
    engine = engine_of({"facturation": OP, "droits": OP}, lines=("pharmacie",))
    pharmacie = key("line", "viamedis", "pharmacie")
    engine.set(key("check", "viamedis", "droits"), DOWN, at(1))
    engine.run(at(2))
    assert (engine.state(pharmacie), engine[pharmacie].since) == (DEG, at(1))
    engine.set(key("check", "viamedis", "droits"), OP, at(60 * 24 * 20))  # twenty days later
    moved = engine.run(at(60 * 24 * 20 + 5))
    assert (engine.state(pharmacie), engine[pharmacie].since) == (OP, at(60 * 24 * 20))
    [line] = [t for t in moved if t.ref.key == pharmacie]
    assert (line.previous, line.state, line.at) == (DEG, OP, at(60 * 24 * 20))


def test_a_dependency_lifted_is_dated_when_the_upstream_changed_not_when_noticed() -> None:
    engine = care(upstream=DOWN)
    assert engine.state(KALIXIA_OPTIQUE) is PART
    engine.set(key("check", "viamedis", "pec"), OP, at(10))
    engine.run(at(25))
    assert engine.state(key("flow", "viamedis", "pec")) is REC
    line = engine[KALIXIA_OPTIQUE]
    assert (line.state, line.since, line.source) == (REC, at(10), Source.DEPENDENCY)


def declare(
    engine: Engine, state: State, since: float, progress: float | None = None, changed: float | None = None
) -> None:
    step = at(changed) if changed is not None else None
    override = Override(state, at(since), Source.DECLARED, progress, "incident:7", changed_at=step)
    engine.overrides = Overrides(declared={NETWORK: override})


def test_a_declared_recovery_step_is_dated_when_declared_not_when_noticed() -> None:
    engine = two_checks()
    declare(engine, DOWN, 5)
    engine.run(at(6))
    declare(engine, REC, 30, progress=0.25, changed=30)
    first = engine.run(at(36))
    declare(engine, REC, 30, progress=0.5, changed=60)
    second = engine.run(at(66))
    assert {(t.state, t.progress, t.at) for t in first if t.ref.key in DERIVED} == {(REC, 0.25, at(30))}
    assert {(t.state, t.progress, t.at) for t in second if t.ref.key in DERIVED} == {(REC, 0.5, at(60))}
    assert all(engine[k].since == at(30) for k in DERIVED)


def test_the_end_of_a_declaration_is_dated_when_it_was_lifted() -> None:
    engine = two_checks()
    declare(engine, DOWN, 5)
    engine.run(at(6))
    engine.overrides = Overrides(lifted={"incident:7": at(20)})
    moved = engine.run(at(26))
    assert {(t.ref.key, t.previous, t.state, t.at) for t in moved if t.ref.key in DERIVED} == {
        (k, DOWN, REC, at(20)) for k in DERIVED
    }
    assert {(t.state, t.at) for t in engine.run(at(50))} == {(OP, at(50))}  # stable from the lift on


# --- properties ----------------------------------------------------------------------------------------------

FLOW_NAMES = sorted(DEFAULT_FLOWS)
CHECK_STATES = (OP, DEG, DOWN, UNK)


class World:
    """An operator and a care network depending on one of its flows; random checks, lines, rounds of states."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transitions: list[Transition] = []
        self.now = T0


@st.composite
def worlds(draw: st.DrawFn) -> World:
    def checks() -> list[dict[str, object]]:
        flows = draw(st.lists(st.sampled_from(FLOW_NAMES), min_size=1, max_size=6))
        return [tcp(flow, f"c{i}") for i, flow in enumerate(flows)]

    def lines() -> tuple[str, ...]:
        return tuple(draw(st.lists(st.sampled_from(sorted(DEFAULT_LINES)), min_size=1, max_size=4, unique=True)))

    dependency = {
        "network": "viamedis",
        "flow": draw(st.sampled_from(FLOW_NAMES)),
        "impact": draw(st.sampled_from(["partial", "down", "degraded"])),
    }
    engine = Engine(
        make_settings(
            {
                "viamedis": network(*checks(), lines=lines()),
                "santeclair": network(*checks(), kind="reseau_de_soins", lines=lines(), depends_on=[dependency]),
            },
            stabilization="30m",
        )
    )
    world = World(engine)
    minutes = 0
    flows = [key("flow", "viamedis", flow) for flow in FLOW_NAMES]
    for _ in range(draw(st.integers(1, 6))):
        step = draw(st.integers(1, 150))  # up to 2.5 h: some changes are noticed after a whole stabilization
        for check_key in engine.checks:
            if draw(st.booleans()):
                engine.set(check_key, draw(st.sampled_from(CHECK_STATES)), at(minutes + draw(st.integers(0, step - 1))))
        if draw(st.booleans()):  # ops declare a flow's state, or stop declaring it
            declared = draw(st.sampled_from(DECLARED))
            since = at(minutes + draw(st.integers(0, step - 1)))
            table = {} if declared is None else {draw(st.sampled_from(flows)): Override(since=since, **declared)}
            engine.overrides = Overrides(declared=table)
        minutes += step
        world.now = at(minutes)
        world.transitions += engine.run(world.now)
    return world


DECLARED: list[dict[str, Any] | None] = [
    None,
    {"state": DOWN, "source": Source.DECLARED},
    {"state": PART, "source": Source.DECLARED},
    {"state": REC, "source": Source.DECLARED, "progress": 0.4},
    {"state": OP, "source": Source.DECLARED},
    {"state": MAINT, "source": Source.MAINTENANCE},
]


@settings(deadline=None, max_examples=300)
@given(worlds())
def test_a_line_is_never_better_than_its_worst_required_entry(world: World) -> None:
    engine, statuses = world.engine, world.engine.previous
    for name, net in engine.settings.networks.items():
        for line in net.lines:
            required, _ = net.requirements(line, engine.settings.lines)
            status = statuses[key("line", name, line)]
            for group in required:
                members = [statuses[key("flow", name, flow)] for flow in group.split("|")]
                best = min(members, key=lambda s: SEVERITY[s.state])
                assert SEVERITY[status.state] >= SEVERITY[best.state], (name, line, group)
                if best.state is REC and status.state is REC:
                    assert status.progress <= max(m.progress for m in members if m.state is REC)


@settings(deadline=None, max_examples=300)
@given(worlds())
def test_every_outage_that_ends_passes_through_recovering(world: World) -> None:
    for transition in world.transitions:
        ended = transition.previous in (DOWN, PART) and transition.state in (OP, DEG)
        assert not ended or transition.source is Source.DECLARED, transition  # unless declared otherwise


@settings(deadline=None, max_examples=200)
@given(worlds())
def test_times_never_go_back_nor_ahead(world: World) -> None:
    last: dict[str, datetime] = {}
    for transition in world.transitions:
        assert transition.at <= transition.recorded_at, transition
        assert transition.at >= last.get(transition.ref.key, transition.at), transition
        last[transition.ref.key] = transition.at
    for status in world.engine.previous.values():
        assert status.since is not None and status.since <= world.now, status


def test_a_line_raised_by_a_dependency_names_it_and_the_config_holds_its_scope() -> None:
    """The scope is config: it is not carried in the status, but found from the line's detail (network/flow)."""
    engine = care(upstream=DOWN)
    dependency = engine.settings.networks["kalixia"].depends_on[0]
    assert engine[KALIXIA_OPTIQUE].detail == f"{dependency.network}/{dependency.flow}"
    assert dependency.scope is not None
    assert dependency.scope.fr == "assurés dont le tiers payant est géré par Viamedis"
    assert (dependency.impact, engine.state(key("flow", "viamedis", "pec"))) == ("partial", DOWN)
