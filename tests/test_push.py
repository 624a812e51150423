"""Push checks in the engine: heartbeats, reported states, missed signals, recovery; the source is push."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from test_status_support import T0, key, make_settings, network, tcp

from monitor.board import Board, BoardChange, policy_for
from monitor.config import PushCheck, Settings
from monitor.models import ComponentRef, FailureReason, ProbeResult, Source, State
from monitor.push_signals import to_result
from monitor.store.signal_store import StoredSignal

OP, DEG, DOWN, REC, UNK = State.OPERATIONAL, State.DEGRADED, State.DOWN, State.RECOVERING, State.UNKNOWN
MINUTE = timedelta(minutes=1)
PEC = key("check", "viamedis", "pec", "operateur")
PEC_FLOW = key("flow", "viamedis", "pec")
OPTIQUE = key("line", "viamedis", "optique")


def push(flow: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "push", "name": name, "flow": flow, "interval": "1m", **fields}


def world(*checks: dict[str, Any], **fields: Any) -> Settings:
    """viamedis: Viamedis reports its PEC every minute (missed after 3 minutes by default)."""
    return make_settings(
        {"viamedis": network(push("pec", "operateur"), *checks, lines=("optique",))}, stabilization="10m", **fields
    )


def signal(state: str, at: datetime, detail: str = "", check: str = PEC) -> ProbeResult:
    return to_result(StoredSignal(1, ComponentRef.parse(check), at, state, detail))


class Feed:
    """A board fed by hand, with an injected clock; `changes` keeps every change, in order."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.now = T0
        self.board = Board(settings or world(), T0)
        self.changes: list[BoardChange] = []

    def send(self, state: str = "operational", after: timedelta = MINUTE, detail: str = "") -> BoardChange:
        self.now += after
        change = self.board.record(signal(state, self.now, detail), self.now)
        self.changes.append(change)
        return change

    def tick(self, at: datetime) -> BoardChange:
        self.now = at
        change = self.board.tick(at)
        self.changes.append(change)
        return change

    def status(self, component_key: str) -> tuple[State, Source]:
        status = self.board.get(component_key)
        assert status is not None
        return status.state, status.source


def test_signals_become_probe_results() -> None:
    up, slow, down = (signal(s, T0, "batch_12") for s in ("operational", "degraded", "down"))
    assert (up.success, up.slow, up.reason, up.detail) == (True, False, None, "batch_12")
    assert (slow.success, slow.slow, slow.reason) == (True, True, None)
    assert (down.success, down.reason, down.detail, down.started_at) == (False, FailureReason.REPORTED, "batch_12", T0)


def test_policy_of_a_push_check() -> None:
    settings = world(push("facturation", "concentrateur", missed_after="10m", failure_threshold=1))
    default, custom = (policy_for(c, settings) for _, c in settings.checks())
    assert (default.source, default.stale_after) == (Source.PUSH, 180.0)
    assert (custom.stale_after, custom.failure_threshold) == (600.0, 1)
    probe = policy_for(make_settings({"v": network(tcp("pec"))}).checks()[0][1], settings)
    assert probe.source is Source.PROBE


def test_a_push_check_never_signalled_is_down_missed_after_its_configuration() -> None:
    """DESIGN §2: a heartbeat that never came is an outage, not a mystery; counted from the configuration."""
    feed = Feed()  # configured (first loaded) at T0; missed after 3 minutes
    assert feed.status(PEC) == (UNK, Source.NONE)
    assert feed.board.get(PEC).since == T0  # type: ignore[union-attr]
    assert not feed.tick(T0 + 3 * MINUTE - timedelta(milliseconds=1)).transitions
    change = feed.tick(T0 + 3 * MINUTE)
    moved = {t.ref.key: t for t in change.transitions}
    assert (moved[PEC].previous, moved[PEC].state, moved[PEC].at, moved[PEC].detail) == (
        UNK,
        DOWN,
        T0 + 3 * MINUTE,
        "no_heartbeat",
    )
    assert feed.status(PEC_FLOW) == (DOWN, Source.PUSH)
    assert not feed.tick(T0 + timedelta(days=30)).transitions  # down once


def test_the_configuration_time_is_saved_so_a_restart_does_not_reset_it() -> None:
    board = Board(world(), T0)
    first = board.evaluate_all(T0)
    assert first.memories[PEC].since == T0  # handed to the store with the first change
    assert not board.evaluate_all(T0).memories  # once
    restarted = Board(world(), T0 + 2 * MINUTE, board.statuses(), board.memories())
    assert not restarted.evaluate_all(T0 + 2 * MINUTE).memories
    moved = {t.ref.key: t for t in restarted.tick(T0 + 3 * MINUTE).transitions}
    assert (moved[PEC].state, moved[PEC].at) == (DOWN, T0 + 3 * MINUTE)


def test_a_push_check_added_by_a_reload_is_awaited_from_the_reload() -> None:
    board = Board(make_settings({"viamedis": network(tcp("pec", "api"), lines=("optique",))}), T0)
    change = board.reload(world(tcp("pec", "api")), T0 + 10 * MINUTE)
    assert change.memories[PEC].since == T0 + 10 * MINUTE
    assert board.push_due(T0 + 13 * MINUTE - timedelta(milliseconds=1)) == []
    assert board.push_due(T0 + 13 * MINUTE) == [PEC]
    assert board.next_push_deadline() == T0 + 13 * MINUTE


def test_heartbeats_keep_it_operational_and_the_flow_shows_push() -> None:
    feed = Feed()
    first = feed.send()
    assert {t.ref.key: (t.state, t.source) for t in first.transitions}[PEC] == (OP, Source.PUSH)
    for _ in range(30):
        assert not feed.send().transitions
        assert not feed.tick(feed.now + 30 * timedelta(seconds=1)).transitions
    assert feed.status(PEC) == (OP, Source.PUSH)
    assert feed.status(PEC_FLOW) == (OP, Source.PUSH)
    flow = feed.board.get(PEC_FLOW)
    assert flow is not None
    assert flow.since == T0 + MINUTE


def test_reported_down_follows_the_failure_threshold_and_is_dated_from_the_first() -> None:
    feed = Feed()
    feed.send()
    first_down = feed.now + MINUTE
    assert not feed.send("down", detail="pec_ko").transitions
    assert not feed.send("down").transitions
    change = feed.send("down")
    check = next(t for t in change.transitions if t.ref.key == PEC)
    assert (check.previous, check.state, check.at, check.source, check.detail) == (
        OP,
        DOWN,
        first_down,
        Source.PUSH,
        "reported",
    )
    assert feed.status(PEC_FLOW) == (DOWN, Source.PUSH)


def test_reported_degraded_is_a_slow_success_with_the_same_thresholds() -> None:
    feed = Feed()
    feed.send()
    feed.send("degraded")
    feed.send("degraded")
    assert feed.status(PEC) == (OP, Source.PUSH)
    feed.send("degraded")
    assert feed.status(PEC) == (DEG, Source.PUSH)
    feed.send()
    feed.send()
    assert feed.status(PEC) == (OP, Source.PUSH)


def test_a_first_degraded_report_is_believed_at_once() -> None:
    feed = Feed()
    feed.send("degraded")
    assert feed.status(PEC) == (DEG, Source.PUSH)


def test_missing_heartbeat_is_down_dated_at_the_deadline() -> None:
    feed = Feed()
    feed.send()
    last = feed.now
    deadline = last + 3 * MINUTE
    assert not feed.tick(deadline - timedelta(milliseconds=1)).transitions
    change = feed.tick(deadline)  # at the deadline: no delay added in the engine
    moved = {t.ref.key: t for t in change.transitions}
    assert (moved[PEC].previous, moved[PEC].state, moved[PEC].at) == (OP, DOWN, deadline)
    assert (moved[PEC].source, moved[PEC].detail, moved[PEC].recorded_at) == (Source.PUSH, "no_heartbeat", feed.now)
    assert (moved[PEC_FLOW].state, moved[PEC_FLOW].at, moved[PEC_FLOW].source) == (DOWN, deadline, Source.PUSH)
    assert feed.status(PEC) == (DOWN, Source.PUSH)
    pec = feed.board.get(PEC)
    assert pec is not None
    assert pec.since == deadline
    assert change.memories[PEC].last_result_at == last
    assert not feed.tick(deadline + timedelta(hours=5)).transitions  # down once, not again and again


def test_missed_after_from_the_config() -> None:
    feed = Feed(make_settings({"viamedis": network(push("pec", "operateur", missed_after="10m"), lines=("optique",))}))
    feed.send()
    deadline = feed.now + 10 * MINUTE
    assert not feed.tick(deadline - timedelta(seconds=1)).transitions
    assert feed.tick(deadline).transitions[0].at == deadline


def test_a_tick_without_push_leaves_push_checks_to_expire_push() -> None:
    """The app ticks with push=False: only after reading the signals still on their way does it expire one."""
    feed = Feed()
    feed.send()
    deadline = feed.now + 3 * MINUTE
    assert not feed.board.tick(deadline + MINUTE, push=False).transitions
    assert feed.board.push_due(deadline + MINUTE) == [PEC]
    received = deadline - timedelta(seconds=1)  # read late from the inbox, received in time
    assert not feed.board.record(signal("operational", received), deadline + MINUTE).transitions
    assert feed.board.push_due(deadline + MINUTE) == []
    assert not feed.board.expire_push([PEC], deadline + MINUTE).transitions
    assert feed.status(PEC) == (OP, Source.PUSH)
    moved = feed.board.expire_push([PEC], received + 3 * MINUTE).transitions
    assert {(t.ref.key, t.state, t.at) for t in moved if t.ref.kind == "check"} == {(PEC, DOWN, received + 3 * MINUTE)}


def test_a_reported_down_then_silence_stays_down_with_one_transition() -> None:
    feed = Feed()
    for state in ("operational", "down", "down", "down"):
        feed.send(state)
    assert feed.status(PEC) == (DOWN, Source.PUSH)
    assert not feed.tick(feed.now + timedelta(hours=1)).transitions


def test_recovery_after_heartbeats_resume() -> None:
    feed = Feed()
    feed.send()
    deadline = feed.now + 3 * MINUTE
    feed.tick(deadline)
    resumed = feed.now + MINUTE
    assert not feed.send(after=resumed - feed.now).transitions  # success_threshold is 2
    change = feed.send()
    moved = {t.ref.key: t for t in change.transitions}
    assert (moved[PEC].previous, moved[PEC].state, moved[PEC].at, moved[PEC].source) == (DOWN, OP, resumed, Source.PUSH)
    assert (moved[PEC_FLOW].state, moved[PEC_FLOW].source) == (REC, Source.PUSH)  # down, now stabilizing
    while feed.now < resumed + 10 * MINUTE:
        feed.send()
        feed.tick(feed.now)
    assert feed.status(PEC_FLOW) == (OP, Source.PUSH)
    assert feed.status(PEC) == (OP, Source.PUSH)


def test_a_flow_fed_by_a_probe_and_a_push_check_shows_the_source_that_drives_it() -> None:
    settings = world(tcp("pec", "api"))
    feed = Feed(settings)
    api = key("check", "viamedis", "pec", "api")
    feed.board.record(ProbeResult(ComponentRef.parse(api), T0 + MINUTE, 0.1, True), T0 + MINUTE)
    feed.send()
    for _ in range(3):
        feed.send("down")
    assert feed.status(PEC_FLOW) == (State.PARTIAL, Source.PUSH)


def test_a_restart_keeps_the_push_source_and_the_deadline() -> None:
    feed = Feed()
    feed.send()
    deadline = feed.now + 3 * MINUTE
    restarted = Board(world(), feed.now + MINUTE, feed.board.statuses(), feed.board.memories())
    pec = restarted.get(PEC)
    assert pec is not None
    assert pec.source is Source.PUSH
    moved = {t.ref.key: t for t in restarted.tick(deadline).transitions}
    assert (moved[PEC].state, moved[PEC].at, moved[PEC].source) == (DOWN, deadline, Source.PUSH)


def test_a_reload_that_makes_a_probe_check_a_push_check_changes_its_policy() -> None:
    probed = make_settings({"viamedis": network(tcp("pec", "operateur"), lines=("optique",))}, stabilization="10m")
    board = Board(probed, T0)
    board.record(ProbeResult(ComponentRef.parse(PEC), T0, 0.1, True), T0)
    board.reload(world(), T0 + MINUTE)
    assert isinstance(board.settings.checks()[0][1], PushCheck)
    moved = {t.ref.key: t for t in board.tick(T0 + 3 * MINUTE).transitions}
    assert (moved[PEC].state, moved[PEC].source) == (DOWN, Source.PUSH)


@pytest.mark.parametrize("state", ["operational", "degraded", "down"])
def test_every_state_maps_to_a_result_of_the_signal_time(state: str) -> None:
    assert signal(state, T0).started_at == T0
    assert signal(state, T0).duration_s == 0.0
