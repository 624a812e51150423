"""Push deadlines through the real pipeline (app, scheduler, store, inbox, board): a missed heartbeat, or one that
never came, is concluded within a second of its deadline (DESIGN §2), and the configuration time survives a restart.

The clock is injected: real time plus an offset the test moves, so a deadline hours away comes in a second.
Nothing sleeps: the test polls, with a deadline, for what the app records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from targets import wait_for

from monitor.app import Services, create_app
from monitor.config import Settings, parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.models import ComponentRef, State, Transition
from monitor.store import Store
from monitor.store.signal_store import add_signal

CHECK = ComponentRef.for_check("alpha", "paiements", "virements")
NOTICED_WITHIN = timedelta(seconds=1)


class Clock:
    """Real time, plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def settings(missed_after: str) -> Settings:
    text = f"""
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie]
    checks:
      - {{name: virements, flow: paiements, kind: push, interval: 1s, missed_after: {missed_after}}}
"""
    return parse_config(parse_yaml(text, "push.yaml"), {})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tpmon.db'}"


def down_transition(services: Services) -> Transition:
    """The check's move to down, once the writer has stored it."""

    def stored() -> Transition | None:
        found = [t for t in services.store.transitions(CHECK) if t.state is State.DOWN]
        return found[0] if found else None

    found: Transition = wait_for(stored, timeout=10, what="the missed deadline in the store")
    return found


def test_a_check_never_signalled_is_down_within_a_second_of_its_configuration_plus_missed_after(
    clock: Clock, database: str
) -> None:
    app = create_app(settings("2s"), database_url=database, clock=clock, tick_seconds=5.0)
    with TestClient(app) as client:
        services: Services = client.app_state["services"]
        memory = services.board.memory(CHECK.key)
        assert memory is not None and memory.since is not None
        configured = memory.since
        moved = down_transition(services)
    assert (moved.previous, moved.state, moved.detail) == (State.UNKNOWN, State.DOWN, "no_heartbeat")
    assert moved.at == configured + timedelta(seconds=2)
    assert timedelta(0) <= moved.recorded_at - moved.at <= NOTICED_WITHIN, moved


def test_a_missed_heartbeat_is_noticed_within_a_second_and_one_in_time_is_not(clock: Clock, database: str) -> None:
    # tick_seconds 5: the regular pump (and its 2 s settle) is far too slow to see the signals in time
    app = create_app(settings("2s"), database_url=database, clock=clock, tick_seconds=5.0)
    with TestClient(app) as client:
        services: Services = client.app_state["services"]
        # a heartbeat every half second for three seconds: never judged missing
        beats = [clock()]
        add_signal(services.store, CHECK, "operational", received_at=beats[-1])
        until = beats[0] + timedelta(seconds=3)
        while clock() < until:
            wait_for(lambda: clock() >= beats[-1] + timedelta(seconds=0.5), timeout=5, what="half a second")
            beats.append(clock())
            add_signal(services.store, CHECK, "operational", received_at=beats[-1])
        moved = down_transition(services)
        status = services.board.get(CHECK)
    assert status is not None and status.state is State.DOWN
    assert moved.previous is State.OPERATIONAL
    assert moved.at == beats[-1] + timedelta(seconds=2)  # the last heartbeat's deadline, none before
    assert timedelta(0) <= moved.recorded_at - moved.at <= NOTICED_WITHIN, moved


def test_the_configuration_time_survives_a_restart(clock: Clock, database: str) -> None:
    config = settings("1h")
    with TestClient(create_app(config, database_url=database, clock=clock)) as client:
        services: Services = client.app_state["services"]
        memory = services.board.memory(CHECK.key)
        assert memory is not None and memory.since is not None
        configured = memory.since
    clock.offset = timedelta(minutes=59, seconds=58)  # restarted just before the deadline
    with TestClient(create_app(config, database_url=database, clock=clock)) as client:
        services = client.app_state["services"]
        memory = services.board.memory(CHECK.key)
        assert memory is not None and memory.since == configured  # not reset by the restart
        moved = down_transition(services)
    assert moved.at == configured + timedelta(hours=1)
    assert timedelta(0) <= moved.recorded_at - moved.at <= NOTICED_WITHIN, moved
    with Store.open(database) as store:
        assert store.load_memories()[CHECK.key].state is State.DOWN
