"""The board: records results, re-derives what depends on them, ticks, reloads and restarts (DESIGN §2, §3)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_status_support import T0, key, make_settings, network, tcp

from monitor.board import Board, BoardChange
from monitor.config import Settings
from monitor.engine.overrides import Override, Overrides
from monitor.models import CheckMemory, ComponentRef, FailureReason, ProbeResult, Source, State

OP, DEG, PART, DOWN, REC, UNK = (
    State.OPERATIONAL,
    State.DEGRADED,
    State.PARTIAL,
    State.DOWN,
    State.RECOVERING,
    State.UNKNOWN,
)
PEC = key("check", "viamedis", "pec")
FACTURATION = key("check", "viamedis", "facturation")
CARE_PEC = key("check", "santeclair", "pec")
CARE_OPTIQUE = key("line", "santeclair", "optique")
INTERVAL = timedelta(seconds=60)  # every check's interval; stale after 3 of them


def world(**changes: Any) -> Settings:
    """viamedis (operator) probes pec and facturation; santeclair (care network) depends on viamedis/pec."""
    networks = {
        "viamedis": network(tcp("pec"), tcp("facturation"), lines=("optique",)),
        "santeclair": network(
            tcp("pec"),
            tcp("facturation"),
            kind="reseau_de_soins",
            lines=("optique",),
            depends_on=[{"network": "viamedis", "flow": "pec"}],
        ),
    }
    for name, net in changes.items():
        if net is None:
            del networks[name]
        else:
            networks[name] = net
    return make_settings(networks, stabilization="30m")


def result(check_key: str, at: datetime, success: bool = True) -> ProbeResult:
    ref = ComponentRef.parse(check_key)
    return ProbeResult(ref, at, 0.1, success, None if success else FailureReason.CONNECT)


class Clock:
    """A hand-driven clock: probes are 1 minute apart."""

    def __init__(self) -> None:
        self.now = T0

    def advance(self, delta: timedelta = INTERVAL) -> datetime:
        self.now += delta
        return self.now


def probe_all(board: Board, clock: Clock, success: bool = True, keys: tuple[str, ...] | None = None) -> BoardChange:
    """One round of probes, one minute after the previous one, merged into one change."""
    now = clock.advance()
    merged = BoardChange()
    for check_key in keys or tuple(board.memories()):
        change = board.record(result(check_key, now, success), now)
        merged.transitions += change.transitions
        merged.statuses += change.statuses
        merged.memories.update(change.memories)
    return merged


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def board(clock: Clock) -> Board:
    """Everything probed up once: operational everywhere."""
    board = Board(world(), clock.now)
    probe_all(board, clock)
    assert {board.statuses()[k].state for k in (key("network", "viamedis"), key("network", "santeclair"))} == {OP}
    return board


def test_a_new_board_knows_every_component_and_shows_nothing_green(clock: Clock) -> None:
    board = Board(world(), clock.now)
    statuses = board.statuses()
    assert len(statuses) == 2 * (2 + 5 + 1 + 1)  # per network: checks, flows, one line, itself
    assert {s.state for s in statuses.values()} == {UNK}
    assert board.evaluate_all(clock.now).transitions == []


def test_record_returns_transitions_only_when_a_check_changes(board: Board, clock: Clock) -> None:
    version = board.version
    unchanged = board.record(result(PEC, clock.advance()), clock.now)
    assert unchanged.transitions == []
    assert unchanged.statuses == []
    assert set(unchanged.memories) == {PEC}  # every raw result is still remembered
    assert board.version == version
    assert board.checked_at == clock.now

    first_failure = board.record(result(PEC, clock.advance(), success=False), clock.now)
    assert first_failure.transitions == []
    memory = board.memory(PEC)
    assert memory is not None
    assert memory.fails.count == 1


def test_record_down_rederives_the_flow_line_network_and_dependents(board: Board, clock: Clock) -> None:
    first = clock.now + INTERVAL
    changes = [board.record(result(PEC, clock.advance(), success=False), clock.now) for _ in range(3)]
    assert [bool(c.transitions) for c in changes] == [False, False, True]
    moved = {t.ref.key: (t.previous, t.state, t.at) for t in changes[-1].transitions}
    assert moved == {
        PEC: (OP, DOWN, first),
        key("flow", "viamedis", "pec"): (OP, DOWN, first),
        # optique needs portail_ps|pec: portail_ps has no checks (unknown), so the line is unknown, not down.
        key("line", "viamedis", "optique"): (OP, UNK, first),
        key("network", "viamedis"): (OP, UNK, first),
        # the dependency's impact is partial by default: unavailable for the members it serves
        CARE_OPTIQUE: (OP, PART, first),
        key("network", "santeclair"): (OP, PART, first),
    }
    line = board.get(CARE_OPTIQUE)
    assert line is not None
    assert (line.source, line.detail) == (Source.DEPENDENCY, "viamedis/pec")
    assert {s.ref.key for s in changes[-1].statuses} >= set(moved)


def test_record_of_a_care_network_check_leaves_the_operator_alone(board: Board, clock: Clock) -> None:
    for _ in range(3):
        change = board.record(result(CARE_PEC, clock.advance(), success=False), clock.now)
    assert {t.ref.network for t in change.transitions} == {"santeclair"}


def test_record_of_a_removed_check_is_ignored(board: Board, clock: Clock) -> None:
    change = board.record(result(key("check", "viamedis", "pec", "gone"), clock.advance()), clock.now)
    assert not change


def test_tick_expires_stale_checks(board: Board, clock: Clock) -> None:
    last = clock.now
    assert board.tick(last + 3 * INTERVAL - timedelta(seconds=1)).transitions == []
    change = board.tick(last + timedelta(hours=1))
    stale = [t for t in change.transitions if t.ref.kind == "check"]
    assert {t.ref.key for t in stale} == set(board.memories())
    assert {(t.state, t.at, t.source) for t in stale} == {(UNK, last + 3 * INTERVAL, Source.NONE)}
    assert board.statuses()[key("network", "viamedis")].state is UNK
    assert {k for k in change.memories} == set(board.memories())
    assert board.tick(last + timedelta(hours=2)).transitions == []


def test_tick_ends_stabilization(board: Board, clock: Clock) -> None:
    for _ in range(3):
        probe_all(board, clock, success=False)
    up_since = clock.now + INTERVAL
    probe_all(board, clock)
    probe_all(board, clock)
    assert board.statuses()[key("flow", "viamedis", "pec")].state is REC
    assert board.tick(clock.now).transitions == []
    # Keep probing through the stabilization, then let time pass: the tick ends it.
    for _ in range(29):
        assert [t.ref.key for t in probe_all(board, clock).transitions if t.ref.kind != "check"] == []
    change = board.tick(up_since + timedelta(minutes=30))
    ended = {t.ref.key for t in change.transitions if (t.previous, t.state) == (REC, OP)}
    assert key("network", "viamedis") in ended
    assert CARE_OPTIQUE in ended
    assert {t.at for t in change.transitions} == {up_since + timedelta(minutes=30)}
    assert board.tick(clock.advance()).transitions == []


def test_set_overrides_applies_and_lifts_a_declaration(board: Board, clock: Clock) -> None:
    declared = Override(DOWN, clock.now, Source.DECLARED, detail="incident-1")
    change = board.set_overrides(Overrides(declared={key("network", "viamedis"): declared}), clock.now)
    assert board.statuses()[key("flow", "viamedis", "facturation")].source is Source.DECLARED
    assert board.statuses()[CARE_OPTIQUE].state is PART
    assert change.transitions
    lifted = board.set_overrides(Overrides(), clock.advance())
    assert {t.at for t in lifted.transitions} == {clock.now}


# --- reload ---------------------------------------------------------------------------------------


def test_reload_of_the_same_config_changes_nothing(board: Board, clock: Clock) -> None:
    before = dict(board.statuses())
    memories = dict(board.memories())
    change = board.reload(world(), clock.advance())
    assert change.transitions == []
    assert dict(board.statuses()) == before
    assert dict(board.memories()) == memories


def test_reload_keeps_unchanged_checks_and_starts_new_ones_unknown(board: Board, clock: Clock) -> None:
    operator = network(tcp("pec"), tcp("facturation"), tcp("paiements"), lines=("optique",))
    memory = board.memory(PEC)
    change = board.reload(world(viamedis=operator), clock.advance())
    new = key("check", "viamedis", "paiements")
    assert change.transitions == []  # paiements had no check: it was unknown and stays unknown
    assert board.memory(PEC) == memory
    assert board.statuses()[new].state is UNK
    assert board.statuses()[key("flow", "viamedis", "paiements")].state is UNK
    # The kept check's memory still counts: two more failures and a third make it down, dated from the first.
    assert [bool(board.record(result(PEC, clock.advance(), False), clock.now).transitions) for _ in range(3)] == [
        False,
        False,
        True,
    ]


def test_reload_keeps_failure_streaks_of_unchanged_checks(board: Board, clock: Clock) -> None:
    first = clock.advance()
    board.record(result(PEC, first, False), first)
    board.record(result(PEC, clock.advance(), False), clock.now)
    board.reload(world(), clock.now)
    change = board.record(result(PEC, clock.advance(), False), clock.now)
    [check] = [t for t in change.transitions if t.ref.kind == "check"]
    assert (check.state, check.at) == (DOWN, first)


def test_reload_drops_removed_checks_and_networks(board: Board, clock: Clock) -> None:
    operator = network(tcp("pec"), lines=("optique",))
    change = board.reload(world(viamedis=operator, santeclair=None), clock.advance())
    assert FACTURATION not in board.statuses()
    assert board.memory(FACTURATION) is None
    assert not any(k.endswith(":santeclair") or ":santeclair/" in k for k in board.statuses())
    assert not any(":santeclair/" in k for k in board.memories())
    # facturation lost its only check: it is unknown now, a real change, reported.
    moved = {t.ref.key: (t.previous, t.state) for t in change.transitions}
    assert moved[key("flow", "viamedis", "facturation")] == (OP, UNK)
    assert board.record(result(FACTURATION, clock.advance()), clock.now).memories == {}


# --- restart ---------------------------------------------------------------------------------------


def restarted(board: Board, now: datetime) -> Board:
    """A new board seeded from what the store saved of `board` (its statuses and check memories)."""
    return Board(board.settings, now, dict(board.statuses()), dict(board.memories()))


@pytest.mark.parametrize("history", ["operational", "down", "recovering", "partial-stale"])
def test_restart_at_the_same_time_makes_no_transition(board: Board, clock: Clock, history: str) -> None:
    if history in ("down", "recovering"):
        for _ in range(3):
            probe_all(board, clock, success=False)
    if history == "recovering":
        probe_all(board, clock, keys=(PEC,))
        probe_all(board, clock, keys=(PEC,))
        assert board.statuses()[key("flow", "viamedis", "pec")].state is REC
    if history == "partial-stale":
        probe_all(board, clock, keys=(PEC, FACTURATION))
        board.tick(clock.advance(timedelta(minutes=2, seconds=30)))

    again = restarted(board, clock.now)
    assert dict(again.statuses()) == dict(board.statuses())
    assert again.evaluate_all(clock.now).transitions == []
    assert again.tick(clock.now).transitions == []
    assert dict(again.statuses()) == dict(board.statuses())


def test_restart_with_the_same_overrides_makes_no_transition(board: Board, clock: Clock) -> None:
    declared = Override(DOWN, clock.now, Source.DECLARED, detail="incident-1")
    overrides = Overrides(declared={key("flow", "viamedis", "pec"): declared})
    board.set_overrides(overrides, clock.now)

    again = restarted(board, clock.now)
    assert again.set_overrides(overrides, clock.now).transitions == []
    assert again.tick(clock.now).transitions == []
    assert dict(again.statuses()) == dict(board.statuses())


def test_restart_later_reports_what_changed_while_away(board: Board, clock: Clock) -> None:
    """A recovery that stabilized while the process was down is reported once, dated when it ended."""
    for _ in range(3):
        probe_all(board, clock, success=False)
    up_since = clock.now + INTERVAL
    for _ in range(29):
        probe_all(board, clock)
    assert board.statuses()[key("network", "viamedis")].state is REC

    later = clock.now + 2 * INTERVAL  # stabilization ended meanwhile; the checks are not stale yet
    again = restarted(board, later)
    change = again.tick(later)
    moved = {t.ref.key: (t.previous, t.state, t.at) for t in change.transitions}
    ended = up_since + timedelta(minutes=30)
    assert moved[key("flow", "viamedis", "pec")] == (REC, OP, ended)
    assert moved[key("network", "viamedis")] == (REC, OP, ended)
    assert again.tick(later).transitions == []


# --- properties over random histories -------------------------------------------------------------

CHECKS = (PEC, FACTURATION, CARE_PEC, key("check", "santeclair", "facturation"))
DECLARATIONS = (
    None,
    Override(DOWN, T0, Source.DECLARED, detail="incident-1"),
    Override(REC, T0, Source.DECLARED, progress=0.4, detail="incident-1"),
    Override(State.MAINTENANCE, T0, Source.MAINTENANCE, detail="window-1"),
)
STEP = st.one_of(
    st.tuples(st.just("probe"), st.sampled_from(CHECKS), st.booleans(), st.integers(0, 120)),
    st.tuples(st.just("burst"), st.booleans(), st.integers(0, 120)),  # every check, 3 times a minute apart
    st.tuples(st.just("tick"), st.integers(0, 900)),
    st.tuples(st.just("declare"), st.sampled_from(range(len(DECLARATIONS))), st.integers(0, 60)),
)


def overrides_for(index: int, now: datetime) -> Overrides:
    declaration = DECLARATIONS[index]
    if declaration is None:
        return Overrides()
    target = key("network", "viamedis")
    dated = Override(declaration.state, now, declaration.source, declaration.progress, declaration.detail)
    if declaration.source is Source.MAINTENANCE:
        return Overrides(maintenance={target: dated})
    return Overrides(declared={target: dated})


@settings(deadline=None, max_examples=300)
@given(st.lists(STEP, max_size=40))
def test_transitions_tell_the_whole_story_and_a_restart_is_transparent(steps: list[tuple[Any, ...]]) -> None:
    """Over any history: every shown change is a transition, from the state last reported, never dated in
    the future nor before the previous one; and a board restored from what it saved, at the same time,
    reports nothing new."""
    now = T0
    board = Board(world(), now)
    shown = {k: s.state for k, s in board.statuses().items()}
    last_at: dict[str, datetime] = {}
    overrides = Overrides()
    for step in steps:
        now += timedelta(seconds=step[-1])
        if step[0] == "probe":
            change = board.record(result(step[1], now, step[2]), now)
        elif step[0] == "burst":
            change = BoardChange()
            for _ in range(3):
                now += INTERVAL
                for check_key in CHECKS:
                    change.transitions += board.record(result(check_key, now, step[1]), now).transitions
        elif step[0] == "tick":
            change = board.tick(now)
        else:
            overrides = overrides_for(step[1], now)
            change = board.set_overrides(overrides, now)
        for transition in change.transitions:
            component = transition.ref.key
            assert transition.previous is shown[component], transition
            assert transition.at <= transition.recorded_at <= now, transition
            # A component's timeline never goes back in time, recovery steps included.
            assert transition.at >= last_at.get(component, transition.at), transition
            last_at[component] = transition.at
            shown[component] = transition.state
        assert {k: s.state for k, s in board.statuses().items()} == shown
        event(" ".join(sorted({s.state.value for s in board.statuses().values()})))
        for status in board.statuses().values():
            # Only a check that never had a result has no date (it is unknown, with no source).
            assert status.since is not None or (status.ref.kind == "check" and status.source is Source.NONE)
            assert status.since is None or status.since <= now

    board.tick(now)
    again = Board(board.settings, now, dict(board.statuses()), dict(board.memories()))
    assert again.set_overrides(overrides, now).transitions == []
    assert again.tick(now).transitions == []
    assert dict(again.statuses()) == dict(board.statuses())


def test_a_board_restored_from_the_store_knows_when_it_last_checked() -> None:
    # a page served after a restart (or exported) says how old its news is: never green without a date
    assert Board(world(), T0).checked_at is None
    older, last = T0 - timedelta(hours=2), T0 - timedelta(minutes=5)
    memories = {
        PEC: CheckMemory(OP, older, last_result_at=older),
        FACTURATION: CheckMemory(OP, older, last_result_at=last),
        CARE_PEC: CheckMemory(),  # never probed
    }
    assert Board(world(), T0, memories=memories).checked_at == last


def test_internal_failures_never_turn_a_target_down_and_end_in_unknown(board: Board, clock: Clock) -> None:
    """tpmon's own failures (no file descriptor left, a crash) say nothing of the target (issue 11)."""

    def internal(at: datetime) -> ProbeResult:
        return ProbeResult(ComponentRef.parse(PEC), at, 0.0, False, FailureReason.INTERNAL, "Too many open files")

    before, checked_at = board.memory(PEC), board.checked_at
    for _ in range(5):  # more than failure_threshold (3) in a row
        change = board.record(internal(clock.advance()), clock.now)
        assert change.transitions == []
    assert board.get(PEC).state is OP  # type: ignore[union-attr]
    assert board.memory(PEC) == before  # not even counted as the last result
    assert board.checked_at == checked_at  # nor as news: the pages do not say "checked just now"
    # a real failure after them starts its own streak: the internal ones did not count
    assert board.record(result(PEC, clock.advance(), success=False), clock.now).transitions == []
    assert board.memory(PEC).fails.count == 1  # type: ignore[union-attr]
    # only internal failures for longer than stale_after: unknown (no signal), never down nor still green
    for _ in range(3):
        board.record(internal(clock.advance()), clock.now)
    expired = board.tick(clock.now)
    assert [t.state for t in expired.transitions if t.ref.key == PEC] == [UNK]


def test_component_keys_are_one_string_each() -> None:
    """The board, the scheduler, the metrics and the writer keep keys in their tables: equal keys are one object
    (10,000 checks × a few tables), and a key still reads and parses back as before."""
    for ref in (
        ComponentRef.for_check("viamedis", "pec", "portail"),
        ComponentRef("line", "viamedis", "optique"),
        ComponentRef("flow", "viamedis", "pec"),
        ComponentRef("network", "viamedis"),
    ):
        again = ComponentRef.parse(ref.key)
        assert again == ref
        assert again.key is ref.key
    assert ComponentRef.for_check("viamedis", "pec", "portail").key == "check:viamedis/pec/portail"
