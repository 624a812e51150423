"""A network's `flows:`: only those flows exist for it, and alternatives it does not run are dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.board import Board
from monitor.config import Settings
from monitor.models import ComponentRef, ProbeResult, State

T0 = datetime(2024, 2, 5, 9, 0, tzinfo=UTC)


def settings() -> Settings:
    check = {"name": "pec", "flow": "pec", "kind": "tcp", "host": "127.0.0.1", "port": 9}
    return Settings.model_validate(
        {
            "networks": {
                "kalixia": {
                    "name": "Kalixia",
                    "kind": "reseau_de_soins",
                    "flows": ["pec", "facturation"],
                    "lines": ["optique"],
                    "checks": [check, {**check, "name": "dre", "flow": "facturation"}],
                }
            }
        }
    )


def test_requirements_keep_only_the_flows_run() -> None:
    config = settings()
    network = config.networks["kalixia"]
    # the taxonomy says optique = "portail_ps|pec" + facturation, droits optional
    assert network.requirements("optique", config.lines) == (("pec", "facturation"), ())
    assert network.flow_names(config.flows) == ("pec", "facturation")


def test_the_board_has_no_status_for_flows_the_network_does_not_run() -> None:
    board = Board(settings(), T0)
    board.evaluate_all(T0)
    flows = sorted(key for key in board.statuses() if key.startswith("flow:"))
    assert flows == ["flow:kalixia/facturation", "flow:kalixia/pec"]
    for name in ("pec", "dre"):
        ref = ComponentRef.for_check("kalixia", "pec" if name == "pec" else "facturation", name)
        board.record(ProbeResult(ref, T0, 0.01, True), T0 + timedelta(seconds=1))
    line = board.get(ComponentRef("line", "kalixia", "optique"))
    assert line is not None
    assert line.state is State.OPERATIONAL  # not unknown: no unrun portail_ps or droits weighs on it
