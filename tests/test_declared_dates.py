"""What ops declare is dated when they declared it, through the app (store, declarations, board), even when the
app notices it minutes later: a recovery step, the end of an incident, the end of a maintenance window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from targets import alpha_config

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow
from monitor.i18n import PARIS
from monitor.models import ComponentRef, State, Transition
from monitor.store import Store
from monitor.store.declaration_store import Declarations

NOW = datetime(2024, 2, 14, 8, 0, tzinfo=UTC)
LATE = timedelta(minutes=6)  # how long after a declaration the app looks at it
OPTIQUE = ComponentRef("line", "alpha", "optique")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[tuple[TestClient, Services, Declarations]]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9"), "utf-8")
    settings = load_config(config)
    store = Store.open(f"sqlite:///{tmp_path}/tpmon.db", clock=clock)
    with store, TestClient(create_app(settings, store=store, schedule=False, clock=clock)) as client:
        yield client, client.app_state["services"], Declarations(store, settings, clock=clock)


def refresh(client: TestClient, services: Services) -> list[Transition]:
    client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]
    client.portal.call(services.writer.flush)  # type: ignore[union-attr]
    return services.store.transitions(OPTIQUE)


def test_recovery_steps_and_the_end_of_an_incident_are_dated_when_declared(
    app: tuple[TestClient, Services, Declarations], clock: Clock
) -> None:
    client, services, declarations = app
    down = NOW + timedelta(hours=1)
    incident = declarations.open_incident(
        title=Bilingual("PEC optique"),
        impact="major",
        first=IncidentUpdate(
            down, "identified", Bilingual("PEC impossibles."), statuses={OPTIQUE.key: declare("down")}
        ),
    )
    assert incident.id is not None
    steps = [down + timedelta(days=1), down + timedelta(days=2)]
    for at, progress in zip(steps, (0.25, 0.5), strict=True):
        update = IncidentUpdate(
            at, "monitoring", Bilingual("Réactivation."), statuses={OPTIQUE.key: declare("recovering", progress)}
        )
        declarations.update_incident(incident.id, update)
        clock.now = at + LATE
        refresh(client, services)
    resolved = down + timedelta(days=3)
    declarations.resolve_incident(incident.id, at=resolved)
    clock.now = resolved + LATE
    moves = refresh(client, services)
    dated = [(t.previous, t.state, round(t.progress, 2), t.at) for t in reversed(moves)]
    assert dated == [
        (State.UNKNOWN, State.RECOVERING, 0.25, steps[0]),
        (State.RECOVERING, State.RECOVERING, 0.5, steps[1]),  # the step, when declared
        (State.RECOVERING, State.UNKNOWN, 0.0, resolved),  # what the declaration hid, from its end (no probe yet)
    ]
    assert [t.recorded_at - t.at for t in moves] == [LATE] * 3


def test_the_end_of_a_maintenance_window_is_dated_at_its_end(
    app: tuple[TestClient, Services, Declarations], clock: Clock
) -> None:
    client, services, declarations = app
    start = NOW + timedelta(hours=1)
    window = MaintenanceWindow(
        None, Bilingual("Bascule"), (OPTIQUE.key,), start.astimezone(PARIS).replace(tzinfo=None), timedelta(hours=2)
    )
    declarations.add_window(window)
    clock.now = start + LATE
    [began] = refresh(client, services)
    assert (began.state, began.at) == (State.MAINTENANCE, start)
    clock.now = start + timedelta(hours=2) + LATE
    ended = refresh(client, services)[0]
    assert (ended.previous, ended.at) == (State.MAINTENANCE, start + timedelta(hours=2))
