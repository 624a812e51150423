"""The recovery rule (DESIGN §2): after down, a component is recovering, with progress, until stable."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from test_status_support import EARLIER, T0, Engine, key, make_settings, moves, network, tcp

from monitor.engine.overrides import Override, Overrides
from monitor.models import Source, State, Transition

OP, DEG, PART, DOWN, REC, UNK = (
    State.OPERATIONAL,
    State.DEGRADED,
    State.PARTIAL,
    State.DOWN,
    State.RECOVERING,
    State.UNKNOWN,
)
STABILIZATION = timedelta(minutes=30)
A, B = key("check", "viamedis", "facturation", "a"), key("check", "viamedis", "facturation", "b")
FLOW, LINE, NETWORK = (
    key("flow", "viamedis", "facturation"),
    key("line", "viamedis", "pharmacie"),
    key("network", "viamedis"),
)
DERIVED = (FLOW, LINE, NETWORK)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def derived_moves(transitions: list[Transition]) -> dict[str, tuple[State, State]]:
    """Moves of the facturation flow, the pharmacie line and the network (not of the other flows)."""
    return {k: move for k, move in moves(transitions).items() if k in DERIVED}


@pytest.fixture
def engine() -> Engine:
    """viamedis: pharmacie requires facturation only, probed by checks a and b; both up, then both down at 1."""
    pharmacie = {"pharmacie": {"requires": ["facturation"], "optional": []}}
    settings = make_settings(
        {"viamedis": network(tcp("facturation", "a"), tcp("facturation", "b"), line_overrides=pharmacie)},
        stabilization="30m",
    )
    engine = Engine(settings)
    engine.set(A, OP, EARLIER)
    engine.set(B, OP, EARLIER)
    engine.run(T0)
    assert [engine.state(k) for k in DERIVED] == [OP, OP, OP]
    engine.set(A, DOWN, at(1))
    engine.set(B, DOWN, at(1))
    engine.run(at(4))
    assert [engine.state(k) for k in DERIVED] == [DOWN, DOWN, DOWN]
    return engine


def test_partly_up_after_down_is_recovering_with_progress(engine: Engine) -> None:
    engine.set(A, OP, at(10))
    transitions = engine.run(at(12))
    assert moves(transitions) == {FLOW: (DOWN, REC), LINE: (DOWN, REC), NETWORK: (DOWN, REC)}
    for component in DERIVED:
        status = engine[component]
        assert (status.state, status.progress, status.since) == (REC, 0.5, at(10)), component
    # The flow is partly up (raw partial); its line and network follow the recovering flow.
    assert [engine[k].raw for k in DERIVED] == [PART, REC, REC]
    assert {t.progress for t in transitions} == {0.5}
    assert {t.at for t in transitions} == {at(10)}


def test_fully_up_stays_recovering_until_stabilization_then_operational(engine: Engine) -> None:
    engine.set(A, OP, at(10))
    engine.run(at(12))
    engine.set(B, OP, at(20))
    transitions = engine.run(at(22))
    # Progress steps 0.5 → 1.0 are transitions (recovering → recovering), dated when the step happened: b's
    # first success, not when it was noticed.
    assert moves(transitions) == {k: (REC, REC) for k in DERIVED}
    assert {(t.progress, t.at) for t in transitions} == {(1.0, at(20))}
    for component in DERIVED:
        status = engine[component]
        assert (status.state, status.progress, status.since) == (REC, 1.0, at(10)), component
    assert engine[FLOW].raw is OP

    assert engine.run(at(20) + STABILIZATION - timedelta(seconds=1)) == []
    assert all(engine.state(k) is REC for k in DERIVED)

    ended = at(20) + STABILIZATION
    transitions = engine.run(ended)
    assert moves(transitions) == {k: (REC, OP) for k in DERIVED}
    assert {t.at for t in transitions} == {ended}
    assert all(engine[k].since == ended for k in DERIVED)
    settled = dict(engine.previous)
    assert engine.run(ended) == []  # evaluating again at the same instant changes nothing
    assert engine.previous == settled
    assert engine.run(ended + timedelta(hours=1)) == []  # a line or network never stabilizes twice


def test_stabilization_end_is_dated_even_when_noticed_late(engine: Engine) -> None:
    engine.set(A, OP, at(10))
    engine.set(B, OP, at(10))
    first = engine.run(at(12))
    assert {(t.state, t.progress, t.at) for t in first} == {(REC, 1.0, at(10))}
    transitions = engine.run(at(180))
    assert {(t.state, t.at, t.recorded_at) for t in transitions} == {(OP, at(10) + STABILIZATION, at(180))}
    assert all(engine[k].since == at(10) + STABILIZATION for k in DERIVED)


def test_down_again_during_recovery_is_down(engine: Engine) -> None:
    engine.set(A, OP, at(10))
    engine.run(at(12))
    engine.set(A, DOWN, at(15))
    transitions = engine.run(at(17))
    assert moves(transitions) == {k: (REC, DOWN) for k in DERIVED}
    assert engine[FLOW].since == at(15)


def test_down_again_while_stabilizing_restarts_the_stabilization(engine: Engine) -> None:
    engine.set(A, OP, at(10))
    engine.set(B, OP, at(10))
    engine.run(at(12))
    engine.set(B, DOWN, at(30))
    engine.run(at(31))
    assert engine[FLOW].state is REC  # partial during a recovery: still recovering, with less progress
    assert engine[FLOW].progress == 0.5
    engine.set(B, OP, at(35))
    engine.run(at(36))
    assert engine.run(at(10) + STABILIZATION) == []  # the first stretch of stability does not count
    assert engine.state(FLOW) is REC
    assert {t.state for t in engine.run(at(35) + STABILIZATION)} == {OP}


def test_a_partial_outage_is_partial_then_recovering_when_it_ends(engine: Engine) -> None:
    fresh = Engine(engine.settings)
    fresh.set(A, OP, EARLIER)
    fresh.set(B, OP, EARLIER)
    fresh.run(T0)
    fresh.set(A, DOWN, at(1))
    transitions = fresh.run(at(4))
    assert moves(transitions) == {FLOW: (OP, PART), LINE: (OP, PART), NETWORK: (OP, PART)}
    fresh.set(A, OP, at(6))
    assert moves(fresh.run(at(7))) == {k: (PART, REC) for k in DERIVED}  # DESIGN §2: after down *or* partial
    assert moves(fresh.run(at(36))) == {k: (REC, OP) for k in DERIVED}


def test_degraded_checks_still_count_as_up_for_the_recovery(engine: Engine) -> None:
    engine.set(A, DEG, at(10))
    engine.set(B, OP, at(10))
    engine.run(at(12))
    assert (engine.state(FLOW), engine[FLOW].raw, engine[FLOW].progress) == (REC, DEG, 1.0)
    engine.run(at(10) + STABILIZATION)
    assert engine.state(FLOW) is DEG


def test_a_line_ends_its_recovery_with_its_flows_not_before() -> None:
    """The flow recovers in two steps; the line follows it and both end at the same instant."""
    optique = {"optique": {"requires": ["pec"], "optional": []}}
    settings = make_settings(
        {"viamedis": network(tcp("pec", "a"), tcp("pec", "b"), lines=("optique",), line_overrides=optique)},
        stabilization="30m",
    )
    engine = Engine(settings)
    check_a, check_b = key("check", "viamedis", "pec", "a"), key("check", "viamedis", "pec", "b")
    flow, line, net = key("flow", "viamedis", "pec"), key("line", "viamedis", "optique"), key("network", "viamedis")
    engine.set(check_a, DOWN, at(0))
    engine.set(check_b, DOWN, at(0))
    engine.run(at(1))
    engine.set(check_a, OP, at(10))  # partly up: recovering since 10
    engine.run(at(11))
    engine.set(check_b, OP, at(30))  # fully up at 30: stable until 60
    engine.run(at(31))

    for minutes in (40, 50, 59):
        assert engine.run(at(minutes)) == [], minutes
        assert [engine.state(k) for k in (flow, line, net)] == [REC, REC, REC], minutes
    transitions = engine.run(at(60))
    assert moves(transitions) == {flow: (REC, OP), line: (REC, OP), net: (REC, OP)}
    assert {t.at for t in transitions} == {at(60)}
    assert engine.run(at(120)) == []


# --- declared recovery -------------------------------------------------------------------------------


def declare(engine: Engine, state: State, minutes: float, progress: float | None = None) -> None:
    override = Override(state, at(minutes), Source.DECLARED, progress, detail="incident-7")
    engine.overrides = Overrides(declared={NETWORK: override})


def test_declared_recovering_shows_its_progress_and_each_step_is_a_transition(engine: Engine) -> None:
    declare(engine, DOWN, 5)
    engine.run(at(6))
    declare(engine, REC, 30, progress=0.3)
    first = engine.run(at(30))
    declare(engine, REC, 45, progress=0.6)
    second = engine.run(at(45))

    assert derived_moves(first) == {k: (DOWN, REC) for k in DERIVED}
    assert {(t.progress, t.at, t.source, t.detail) for t in first} == {(0.3, at(30), Source.DECLARED, "incident-7")}
    assert derived_moves(second) == {k: (REC, REC) for k in DERIVED}
    assert {(t.progress, t.at) for t in second} == {(0.6, at(45))}
    for component in DERIVED:
        status = engine[component]
        assert (status.state, status.progress, status.since, status.source) == (REC, 0.6, at(30), Source.DECLARED)
    assert engine.run(at(50)) == []  # same declaration, same progress: nothing new


def test_declared_recovering_never_ends_by_itself(engine: Engine) -> None:
    declare(engine, REC, 5, progress=0.5)
    engine.set(A, OP, at(5))
    engine.set(B, OP, at(5))
    engine.run(at(6))
    assert engine.run(at(6) + 10 * STABILIZATION) == []
    assert engine.state(FLOW) is REC


def test_lifting_a_declaration_never_dates_the_next_state_inside_it(engine: Engine) -> None:
    """While declared, the declared state was shown; what follows begins no earlier than the lift."""
    engine.set(A, OP, at(20))
    engine.set(B, OP, at(20))
    declare(engine, DOWN, 30)  # the portal answers, but ops know PEC is broken
    engine.run(at(30))
    assert engine.state(FLOW) is DOWN
    engine.overrides = Overrides()
    lifted = at(40)
    transitions = engine.run(lifted)
    for component in DERIVED:
        status = engine[component]
        assert status.source is Source.PROBE
        assert status.since is not None
        assert status.since >= lifted, component
    assert all(t.at >= lifted for t in transitions)
    # Down was shown until the lift: up from then on, so stable from then on (flows, lines and network alike).
    assert derived_moves(transitions) == {k: (DOWN, REC) for k in DERIVED}
    assert derived_moves(engine.run(at(50))) == {}
    assert derived_moves(engine.run(at(70))) == {k: (REC, OP) for k in DERIVED}


def test_maintenance_over_a_down_component_then_lifted_shows_the_outage_from_the_lift(engine: Engine) -> None:
    window = Override(State.MAINTENANCE, at(10), Source.MAINTENANCE, detail="window-1")
    engine.overrides = Overrides(maintenance={NETWORK: window})
    engine.run(at(10))
    assert engine.state(LINE) is State.MAINTENANCE
    engine.overrides = Overrides()
    transitions = engine.run(at(70))
    assert derived_moves(transitions) == {k: (State.MAINTENANCE, DOWN) for k in DERIVED}
    assert all(t.at == at(70) for t in transitions)


def test_a_component_timeline_never_goes_back_in_time(engine: Engine) -> None:
    engine.set(A, OP, at(4))
    engine.set(B, OP, at(4))
    engine.run(at(5))  # recovering, progress 1.0
    engine.set(A, DOWN, at(7))  # a's third failure, noticed at 9: progress step to 0.5, stamped 9
    step = engine.run(at(9))
    engine.set(B, DOWN, at(7))  # b's third failure, noticed a few seconds later: down since 7
    down = engine.run(at(9) + timedelta(seconds=20))
    [stepped] = [t for t in step if t.ref.key == FLOW]
    [fell] = [t for t in down if t.ref.key == FLOW]
    assert (stepped.state, stepped.progress, fell.state) == (REC, 0.5, DOWN)
    assert fell.at >= stepped.at
