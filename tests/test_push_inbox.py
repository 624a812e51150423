"""Push signals from the config to the board: push check config, validation, and the inbox read by cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from test_push import MINUTE, PEC, PEC_FLOW, world
from test_status_support import T0, tcp

from monitor.board import Board, BoardChange
from monitor.config import PushCheck, parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.errors import ConfigError, MonitorError, NotFound
from monitor.models import ComponentRef, Source, State
from monitor.push_signals import PushError, PushInbox, validate_signal
from monitor.store import Store
from monitor.store.signal_store import add_signal

REF = ComponentRef.parse(PEC)
SETTLE = timedelta(seconds=2)  # the inbox's default
RIPE = timedelta(seconds=5)  # a signal this old is read
ENV = {"PUSH_TOKEN": "hunter2-secret"}


# --- config ---------------------------------------------------------------------------------------------


def config(check: str) -> PushCheck:
    text = f"""
defaults: {{timeout: 20s}}
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [optique]
    checks:
      - {{name: operateur, flow: pec, kind: push, {check}}}
"""
    parsed = parse_config(parse_yaml(text, "test.yaml"), ENV).checks()[0][1]
    assert isinstance(parsed, PushCheck)
    return parsed


def test_a_push_check_takes_no_default_timeout_and_keeps_its_token_as_a_reference() -> None:
    check = config('interval: 5m, token: "${PUSH_TOKEN}"')
    assert (check.interval, check.missed_after, check.token) == (300.0, None, "${PUSH_TOKEN}")
    assert not hasattr(check, "timeout")
    assert "hunter2" not in repr(check) + check.model_dump_json()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('token: "${PUSH_UNSET}"', "token: environment variable PUSH_UNSET is not set"),
        ('token: "${PUSH-TOKEN"', "token: malformed ${…} reference"),
        ('token: "Bearer ${PUSH_TOKEN}"', "token: must be a ${VAR} reference to an environment variable"),
        ("token: hunter2-secret", "token: must be a ${VAR} reference to an environment variable, never the secret"),
        ("missed_after: 30s", "missed_after: must be longer than interval (30s <= 1m by default)"),
        ("timeout: 5s", "timeout: a push check has no timeout"),
    ],
)
def test_push_check_config_problems(fields: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(fields)
    assert len(raised.value.problems) == 1
    assert f"checks[0].{message}" in str(raised.value)
    assert "hunter2" not in str(raised.value)


# --- validation -----------------------------------------------------------------------------------------

SETTINGS = world(tcp("portail_ps", "portail"))


def test_a_valid_signal() -> None:
    signal = validate_signal(SETTINGS, "viamedis/pec/operateur", "down", "pec.ko-1")
    assert (signal.check, signal.state, signal.detail) == (REF, "down", "pec.ko-1")
    assert validate_signal(SETTINGS, "viamedis/pec/operateur").state == "operational"


@pytest.mark.parametrize(
    ("target", "state", "detail", "error", "message"),
    [
        ("viamedis/pec", "down", "", PushError, "check: 'viamedis/pec' is not NETWORK/FLOW/CHECK"),
        ("viamedis/pec/nope", "down", "", NotFound, "check: no check 'viamedis/pec/nope' in the config "
         "(push checks: viamedis/pec/operateur)"),
        ("viamedis/portail_ps/portail", "down", "", PushError, "check: viamedis/portail_ps/portail is probed by "
         "tpmon (kind tcp): only push checks take signals"),
        ("viamedis/pec/operateur", "up", "", PushError, "state: must be one of operational, degraded, down"),
        ("viamedis/pec/operateur", "down", "Patient Dupont", PushError, "detail: must be a short code"),
        ("viamedis/pec/operateur", "down", "x" * 41, PushError, "detail: must be a short code"),
        ("<script>/a/b c", "down", "", NotFound, "check: no check in the config"),
    ],
)  # fmt: skip
def test_invalid_signals_name_the_field(
    target: str, state: str, detail: str, error: type[MonitorError], message: str
) -> None:
    with pytest.raises(error) as raised:
        validate_signal(SETTINGS, target, state, detail)
    assert str(raised.value).startswith(message)
    assert "Dupont" not in str(raised.value) and "<script>" not in str(raised.value)


# --- the inbox ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[Store]:
    with Store.open("sqlite://", clock=clock) as opened:
        yield opened


class Pumped:
    """Collects what the inbox hands to `record`."""

    def __init__(self) -> None:
        self.changes: list[BoardChange] = []

    def __call__(self, change: BoardChange) -> None:
        self.changes.append(change)

    def moves(self, component_key: str) -> list[tuple[State, Source]]:
        return [(t.state, t.source) for c in self.changes for t in c.transitions if t.ref.key == component_key]


async def test_the_inbox_folds_new_signals_in_order_and_moves_its_cursor(store: Store, clock: Clock) -> None:
    board, inbox, pumped = Board(SETTINGS, T0), PushInbox(store), Pumped()
    assert await inbox.pump(board, pumped, T0) == 0
    for state in ("operational", "down", "down", "down"):
        clock.now += MINUTE
        add_signal(store, REF, state)
    portail = ComponentRef.for_check("viamedis", "portail_ps", "portail")
    add_signal(store, portail, "down")  # in the inbox, but not a push check of the config: skipped
    assert await inbox.pump(board, pumped, clock.now + RIPE) == 4
    assert pumped.moves(PEC) == [(State.OPERATIONAL, Source.PUSH), (State.DOWN, Source.PUSH)]
    assert pumped.moves(PEC_FLOW)[-1] == (State.DOWN, Source.PUSH)
    assert inbox.cursor == 5
    assert await inbox.pump(board, pumped, clock.now + RIPE) == 0


async def test_a_signal_younger_than_settle_waits_for_the_next_pump(store: Store, clock: Clock) -> None:
    board, inbox, pumped = Board(SETTINGS, T0), PushInbox(store, settle=2.0), Pumped()
    add_signal(store, REF, "operational")
    assert await inbox.pump(board, pumped, T0 + SETTLE / 2) == 0
    assert inbox.cursor == 0
    assert await inbox.pump(board, pumped, T0 + SETTLE) == 0  # exactly `settle` old: not yet
    assert await inbox.pump(board, pumped, T0 + RIPE) == 1


async def test_batches_are_read_until_the_inbox_is_drained(store: Store, clock: Clock) -> None:
    board, inbox = Board(SETTINGS, T0), PushInbox(store, batch=3)
    await inbox.pump(board, Pumped(), T0)  # places the cursor: the later signals are all new
    for _ in range(10):
        clock.now += MINUTE
        add_signal(store, REF, "operational")
    assert await inbox.pump(board, Pumped(), clock.now + RIPE) == 10
    assert inbox.cursor == 10


async def test_a_restarted_inbox_replays_only_what_the_board_does_not_know(store: Store, clock: Clock) -> None:
    board, pumped = Board(SETTINGS, T0), Pumped()
    for _ in range(3):
        clock.now += MINUTE
        add_signal(store, REF, "operational")
    await PushInbox(store).pump(board, pumped, clock.now + RIPE)
    for _ in range(3):  # received while tpmon was stopped
        clock.now += MINUTE
        add_signal(store, REF, "down")
    restarted = Board(SETTINGS, clock.now, board.statuses(), board.memories())
    again = Pumped()
    assert await PushInbox(store).pump(restarted, again, clock.now + RIPE) == 3
    assert again.moves(PEC) == [(State.DOWN, Source.PUSH)]


async def test_a_fresh_board_reads_the_signals_of_the_last_missed_after_only(store: Store, clock: Clock) -> None:
    add_signal(store, REF, "down", received_at=T0 - timedelta(hours=1))  # older than missed_after (3 min)
    add_signal(store, REF, "operational", received_at=T0 - MINUTE)
    board, pumped = Board(SETTINGS, T0), Pumped()
    assert await PushInbox(store).pump(board, pumped, T0 + RIPE) == 1
    assert pumped.moves(PEC) == [(State.OPERATIONAL, Source.PUSH)]


async def test_a_broken_store_is_logged_and_the_next_pump_resumes(
    store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    board, inbox = Board(SETTINGS, T0), PushInbox(store)
    add_signal(store, REF, "operational")
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE push_signal RENAME TO push_signal_away")
    assert await inbox.pump(board, Pumped(), T0 + RIPE) == 0
    assert "push inbox not read" in caplog.text
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE push_signal_away RENAME TO push_signal")
    assert await inbox.pump(board, Pumped(), T0 + RIPE) == 1
