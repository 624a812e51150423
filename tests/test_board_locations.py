"""The board with several locations: its own results into its location's memory, the check's verdict by quorum."""

from __future__ import annotations

from datetime import datetime, timedelta

from test_status_support import T0, key, make_settings, network, tcp

from monitor.board import Board, BoardChange
from monitor.config import Settings
from monitor.engine.quorum import located_key
from monitor.models import CheckMemory, ComponentRef, FailureReason, ProbeResult, State

PEC = key("check", "viamedis", "facturation")  # the check under test: the line requires its flow
OTHER = key("check", "viamedis", "pec")  # the line's other requirement, always up
LINE = key("line", "viamedis", "optique")
MINUTE = timedelta(seconds=60)


def world() -> Settings:
    return make_settings({"viamedis": network(tcp("pec"), tcp("facturation"), lines=("optique",))})


def result(at: datetime, success: bool = True, check: str = PEC) -> ProbeResult:
    return ProbeResult(ComponentRef.parse(check), at, 0.1, success, None if success else FailureReason.CONNECT)


def memory(state: State, at: datetime) -> CheckMemory:
    return CheckMemory(state, at - 5 * MINUTE, last_result_at=at)


def located(here: str, *, writes: bool = True) -> Board:
    board = Board(world(), T0)
    board.here = here
    board.followed = lambda check: not writes
    board.evaluate_all(T0)
    return board


def probe(board: Board, start: datetime, results: list[bool]) -> tuple[datetime, list[BoardChange]]:
    changes = []
    for success in results:
        board.record(result(start, True, OTHER), start)
        changes.append(board.record(result(start, success), start))
        start += MINUTE
    return start, changes


def test_one_location_of_three_down_is_told_without_turning_the_line_down_two_are_down() -> None:
    board = located("paris")
    now, _ = probe(board, T0, [True, True])
    board.follow(
        {
            located_key(PEC, "lyon"): memory(State.DOWN, now),
            located_key(PEC, "marseille"): memory(State.OPERATIONAL, now),
        },
        now,
    )
    now, changes = probe(board, now, [True])
    shown = board.get(PEC)
    assert shown is not None and shown.state is State.OPERATIONAL
    assert shown.detail == "down_from:lyon"
    line = board.get(LINE)
    assert line is not None and line.state is State.OPERATIONAL
    assert located_key(PEC, "paris") in changes[-1].memories  # its own location's memory, to store
    change = board.follow({located_key(PEC, "marseille"): memory(State.DOWN, now)}, now)
    shown, line = board.get(PEC), board.get(LINE)
    assert shown is not None and shown.state is State.DOWN and shown.detail == ""
    assert line is not None and line.state is State.DOWN
    assert [(t.ref.key, t.state) for t in change.transitions if t.ref.kind == "check"] == [(PEC, State.DOWN)]
    assert change.memories[PEC].state is State.DOWN  # the verdict, written by this board


def test_a_split_of_two_locations_is_unknown_and_says_so() -> None:
    board = located("paris")
    now, _ = probe(board, T0, [True, True])
    change = board.follow({located_key(PEC, "lyon"): memory(State.DOWN, now)}, now)
    shown = board.get(PEC)
    assert shown is not None and shown.state is State.UNKNOWN and shown.detail == "no_quorum:lyon"
    assert [(t.previous, t.state) for t in change.transitions if t.ref.key == PEC] == [
        (State.OPERATIONAL, State.UNKNOWN)
    ]


def test_alone_in_its_location_set_the_board_is_the_one_location_board() -> None:
    plain, here = Board(world(), T0), located("paris")
    plain.evaluate_all(T0)
    outcomes = [True, False, False, False, True, True, False, True, True, True]
    _, theirs = probe(plain, T0, outcomes)
    _, mine = probe(here, T0, outcomes)
    assert [c.transitions for c in mine] == [c.transitions for c in theirs]
    assert here.get(PEC) == plain.get(PEC) and here.memory(PEC) == plain.memory(PEC)
    assert any(c.transitions for c in theirs)  # the sequence went down and back


def test_a_board_that_does_not_write_the_verdict_keeps_its_results_in_its_location_memory() -> None:
    board = located("lyon", writes=False)
    before = board.memory(PEC)
    _, changes = probe(board, T0, [False, False, False])
    assert board.memory(PEC) == before  # the verdict is followed as its writer stores it
    assert board.located(PEC)["lyon"].state is State.DOWN
    assert all(PEC not in c.memories and not c.transitions for c in changes)
    assert changes[-1].memories[located_key(PEC, "lyon")].state is State.DOWN


def test_a_restart_during_an_outage_never_goes_on_from_an_old_memory_of_its_location() -> None:
    """A location's memory stored a week ago (another location lived then, gone since) is too old to go on from:
    the check's stored verdict, down now, is this location's memory again — no false recovery at the restart."""
    week_ago = T0 - timedelta(days=7)
    stored = {
        PEC: CheckMemory(State.DOWN, T0 - 10 * MINUTE, last_result_at=T0 - MINUTE),
        located_key(PEC, "paris"): memory(State.OPERATIONAL, week_ago),
        located_key(PEC, "lyon"): memory(State.OPERATIONAL, week_ago),
    }
    board = Board(world(), T0, memories=stored)
    board.here, board.followed = "paris", lambda check: False
    board.evaluate_all(T0)
    _, changes = probe(board, T0, [False])
    shown = board.get(PEC)
    assert shown is not None and shown.state is State.DOWN
    assert not [t for c in changes for t in c.transitions if t.ref.key == PEC]
    assert board.located(PEC)["paris"].state is State.DOWN  # went on from the verdict
