"""The first screen's answer: which lines do not work, the worst first, by network."""

from __future__ import annotations

from monitor.models import Source, State
from monitor.web.board_view import BoardView, Cell, NetworkView
from monitor.web.home_page import affected


def cell(line: str, state: State) -> Cell:
    return Cell(line, line.title(), state, state.value, None, Source.PROBE, "", 0.0, "")


def network(name: str, **lines: State) -> NetworkView:
    cells = {line: cell(line, state) for line, state in lines.items()}
    return NetworkView(name, name.title(), "operateur", cell(name, State.OPERATIONAL), cells, [], [])


def test_lines_not_operational_are_grouped_by_state_worst_first_then_by_network() -> None:
    view = BoardView("fr", ["pharmacie", "optique", "audio"], {})
    view.networks = [
        network("viamedis", pharmacie=State.DEGRADED, optique=State.DOWN, audio=State.DOWN),
        network("almerys", pharmacie=State.OPERATIONAL, optique=State.RECOVERING, audio=State.UNKNOWN),
        network("kalixia", optique=State.DOWN),
    ]
    groups = [(state, [(n.id, [c.id for c in cells]) for n, cells in items]) for state, items in affected(view)]
    assert groups == [
        (State.DOWN, [("viamedis", ["optique", "audio"]), ("kalixia", ["optique"])]),
        (State.RECOVERING, [("almerys", ["optique"])]),
        (State.DEGRADED, [("viamedis", ["pharmacie"])]),
        (State.UNKNOWN, [("almerys", ["audio"])]),
    ]


def test_all_operational_leaves_nothing_to_list() -> None:
    view = BoardView("fr", ["pharmacie"], {})
    view.networks = [network("viamedis", pharmacie=State.OPERATIONAL)]
    assert affected(view) == []
