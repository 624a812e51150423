"""The Store's verbs against every backend: round-trips, newest-first reads, upserts, restore, atomicity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.models import (
    CheckMemory,
    ComponentRef,
    ComponentStatus,
    FailureReason,
    ProbeResult,
    Source,
    State,
    Streak,
    Transition,
)
from monitor.store import Batch, Store, WriteRefused

from .store_support import CHECK, T0, sample_result, sample_transition

PARIS = timezone(timedelta(hours=1))
FLOW = ComponentRef("flow", "viamedis", "pec")
LINE = ComponentRef("line", "viamedis", "optique")

FULL_RESULT = ProbeResult(
    check=CHECK,
    started_at=datetime(2024, 2, 12, 13, 0, 0, 123456, tzinfo=PARIS),
    duration_s=1.25,
    success=False,
    reason=FailureReason.HTTP_STATUS,
    detail="HTTP 503",
    status_code=503,
    phases={"resolve": 0.001, "connect": 0.0123, "tls": 0.04, "processing": 1.1, "transfer": 0.0966},
    cert_expiry=datetime(2024, 6, 1, tzinfo=UTC),
    chain_expiry=datetime(2024, 5, 1, 23, 59, 59, tzinfo=PARIS),
    slow=True,
)
BARE_RESULT = ProbeResult(CHECK, T0, 0.0, success=True)
STATUSES = {
    FLOW.key: ComponentStatus(
        FLOW, State.RECOVERING, T0, Source.PROBE, State.PARTIAL, 0.5, T0 + timedelta(minutes=3), "2/4", T0
    ),
    LINE.key: ComponentStatus(LINE, State.UNKNOWN, None, Source.NONE),
}
MEMORIES = {
    CHECK.key: CheckMemory(
        State.DOWN,
        T0,
        fails=Streak(3, T0),
        oks=Streak(),
        fasts=Streak(),
        bads=Streak(4, T0 - timedelta(seconds=30)),
        last_result_at=T0 + timedelta(seconds=60),
    ),
    "check:almerys/droits/idb": CheckMemory(),
}


def assert_utc(*moments: datetime | None) -> None:
    for moment in moments:
        assert moment is None or moment.tzinfo is UTC


def test_round_trip_of_every_field(store: Store) -> None:
    transition = Transition(FLOW, State.DOWN, State.RECOVERING, T0, T0 + timedelta(seconds=5), Source.PROBE)
    store.write(Batch([FULL_RESULT, BARE_RESULT], [transition], dict(STATUSES), dict(MEMORIES)))

    results = store.results(CHECK)
    assert results == [FULL_RESULT, BARE_RESULT]  # 13:00:00.12+01:00 is 0.12 s after T0 = 12:00 UTC
    assert_utc(results[0].started_at, results[0].cert_expiry, results[0].chain_expiry)
    assert results[0].started_at.microsecond == 123456
    assert store.transitions() == [transition]
    assert store.load_statuses() == STATUSES
    assert store.load_memories() == MEMORIES
    for status in store.load_statuses().values():
        assert_utc(status.since, status.stable_since, status.changed_at)
    for memory in store.load_memories().values():
        assert_utc(memory.since, memory.fails.since, memory.bads.since, memory.last_result_at)


def test_text_and_naive_datetimes_are_made_safe(store: Store) -> None:
    naive = ProbeResult(CHECK, datetime(2024, 2, 12, 12, 0), 0.1, success=True, detail="a\x00b")
    store.write(Batch([naive]))
    (loaded,) = store.results(CHECK)
    assert loaded.started_at == T0
    assert loaded.detail == "ab"


def test_empty_store(store: Store) -> None:
    store.write(Batch())
    assert store.results(CHECK) == []
    assert store.transitions() == []
    assert store.load_statuses() == {}
    assert store.load_memories() == {}


def test_results_newest_first_with_since_and_limit(store: Store) -> None:
    other = ComponentRef.for_check("almerys", "droits", "idb")
    store.write(Batch([sample_result(i) for i in (3, 0, 4, 1, 2)] + [sample_result(9, other)]))

    assert [r.started_at for r in store.results(CHECK)] == [T0 + timedelta(seconds=i) for i in (4, 3, 2, 1, 0)]
    assert len(store.results(CHECK, limit=2)) == 2
    assert store.results(CHECK, limit=2)[0].started_at == T0 + timedelta(seconds=4)
    since = store.results(CHECK, since=T0 + timedelta(seconds=2))
    assert [r.started_at.second for r in since] == [4, 3, 2]  # `since` is inclusive
    assert store.results(other) == [sample_result(9, other)]


def test_transitions_newest_first_by_component_since_and_limit(store: Store) -> None:
    store.write(Batch(transitions=[sample_transition(i) for i in range(4)]))
    store.write(Batch(transitions=[sample_transition(1, FLOW), sample_transition(4)]))

    assert [t.detail for t in store.transitions()] == ["t4", "t3", "t2", "t1", "t1", "t0"]
    assert [t.ref for t in store.transitions()[3:5]] == [FLOW, CHECK]  # same `at`: last written first
    assert [t.detail for t in store.transitions(CHECK, limit=2)] == ["t4", "t3"]
    assert store.transitions(FLOW) == [sample_transition(1, FLOW)]
    assert [t.detail for t in store.transitions(CHECK, since=T0 + timedelta(minutes=3))] == ["t4", "t3"]
    assert store.transitions(LINE) == []


def test_statuses_and_memories_are_upserted(store: Store) -> None:
    store.write(Batch(statuses=dict(STATUSES), memories=dict(MEMORIES)))
    newer = ComponentStatus(FLOW, State.OPERATIONAL, T0 + timedelta(hours=1), Source.DECLARED, State.OPERATIONAL)
    network = ComponentRef("network", "viamedis")
    added = ComponentStatus(network, State.DEGRADED, T0, Source.DEPENDENCY, State.DEGRADED, detail="pec")
    memory = CheckMemory(State.OPERATIONAL, T0, oks=Streak(2, T0), fasts=Streak(2, T0), last_result_at=T0)
    store.write(Batch(statuses={FLOW.key: newer, network.key: added}, memories={CHECK.key: memory}))

    assert store.load_statuses() == {FLOW.key: newer, LINE.key: STATUSES[LINE.key], network.key: added}
    assert store.load_memories() == {CHECK.key: memory, "check:almerys/droits/idb": CheckMemory()}


def test_statuses_and_memories_are_restored_after_reopening(durable_database_url: str) -> None:
    with Store.open(durable_database_url) as store:
        store.write(Batch([FULL_RESULT], [sample_transition(1)], dict(STATUSES), dict(MEMORIES)))
    with Store.open(durable_database_url) as reopened:
        assert reopened.load_statuses() == STATUSES
        assert reopened.load_memories() == MEMORIES
        assert reopened.results(CHECK) == [FULL_RESULT]
        assert reopened.transitions() == [sample_transition(1)]


def test_a_refused_write_leaves_nothing_half_written(store: Store) -> None:
    # NaN is refused by both backends: SQLite stores it as NULL (NOT NULL column), PostgreSQL's json rejects it.
    poison = ProbeResult(CHECK, T0, float("nan"), success=True, phases={"connect": float("nan")})
    batch = Batch([sample_result(1), poison], [sample_transition(1)], dict(STATUSES), dict(MEMORIES))
    with pytest.raises(WriteRefused) as refused:
        store.write(batch)
    assert "\n" not in str(refused.value)
    assert store.results(CHECK) == []
    assert store.transitions() == []
    assert store.load_statuses() == {}
    assert store.load_memories() == {}


def test_ping_and_size(store: Store) -> None:
    store.ping()
    store.write(Batch([sample_result(i) for i in range(100)]))
    size = store.size_bytes()
    assert size is not None
    assert size > 0
