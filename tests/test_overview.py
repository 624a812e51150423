"""The first screen's answer: what does not work now, the worst first, grouped by what is said of it and by network."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.models import Source, State
from monitor.web.board_view import BoardView, Cell, NetworkView
from monitor.web.home_page import now_groups

T1 = datetime(2024, 1, 31, 8, 0, tzinfo=UTC)
T2 = datetime(2024, 1, 31, 8, 49, tzinfo=UTC)


def cell(line: str, state: State, cause: str = "", since: datetime | None = T1, action: str = "") -> Cell:
    return Cell(line, line.title(), state, state.value, since, Source.PROBE, "", 0.0, "", cause=cause, action=action)


def network(name: str, *cells: Cell) -> NetworkView:
    status = cell(name, State.OPERATIONAL)
    return NetworkView(name, name.title(), "operateur", status, {c.id: c for c in cells}, [], [])


def shape(view: BoardView, line: str | None = None) -> list[tuple[State, str, list[tuple[str, list[str]]]]]:
    return [
        (group.state, group.said, [(row.network.id, [c.id for c in row.cells]) for row in group.rows])
        for group in now_groups(view, line)
    ]


def test_lines_not_operational_are_grouped_by_state_worst_first_then_by_what_is_said() -> None:
    view = BoardView("fr", ["pharmacie", "optique", "audio"], {})
    pec = "prises en charge impossibles"
    view.networks = [
        network(
            "viamedis",
            cell("pharmacie", State.DEGRADED, "droits"),
            cell("optique", State.DOWN, pec),
            cell("audio", State.DOWN, pec),
        ),
        network(
            "almerys",
            cell("pharmacie", State.OPERATIONAL),
            cell("optique", State.RECOVERING),
            cell("audio", State.UNKNOWN),
        ),
        network("kalixia", cell("optique", State.DOWN, pec, since=T2)),
    ]
    assert shape(view) == [
        (State.DOWN, pec, [("viamedis", ["optique", "audio"]), ("kalixia", ["optique"])]),
        (State.RECOVERING, "", [("almerys", ["optique"])]),
        (State.UNKNOWN, "", [("almerys", ["audio"])]),
        (State.DEGRADED, "droits", [("viamedis", ["pharmacie"])]),
    ]
    assert [group.count for group in now_groups(view)] == [3, 1, 1, 1]
    # a filter on one service line keeps its lines only
    assert shape(view, "optique") == [
        (State.DOWN, pec, [("viamedis", ["optique"]), ("kalixia", ["optique"])]),
        (State.RECOVERING, "", [("almerys", ["optique"])]),
    ]


def test_one_row_per_network_and_start_each_with_what_to_do() -> None:
    view = BoardView("fr", ["optique", "audio"], {})
    view.networks = [
        network(
            "viamedis",
            cell("optique", State.DOWN, "pec", T1, "facture acquittée"),
            cell("audio", State.DOWN, "pec", T2, "facture acquittée"),
        )
    ]
    [group] = now_groups(view)
    assert group.action == "facture acquittée"
    assert [(row.since, [c.id for c in row.cells]) for row in group.rows] == [(T1, ["optique"]), (T2, ["audio"])]


def test_all_operational_leaves_nothing_to_list() -> None:
    view = BoardView("fr", ["pharmacie"], {})
    view.networks = [network("viamedis", cell("pharmacie", State.OPERATIONAL))]
    assert now_groups(view) == []
