"""History verbs on every backend: idempotent roll-ups, late transitions, windows, pruning in batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from monitor.availability import PERIODS, Window, rollups, total
from monitor.config import Settings
from monitor.models import ComponentRef, ProbeResult, Source, State, Transition
from monitor.store import Batch, Store, tables
from monitor.store.housekeeping import Housekeeper, component_keys
from monitor.store.rollup_store import availability_over, prune_results, roll_up, rollups_of

CHECK = ComponentRef.for_check("viamedis", "pec", "api")
FLOW = ComponentRef("flow", "viamedis", "pec")
QUIET = ComponentRef("line", "viamedis", "audio")  # never had a transition
# Paris midnight of Sunday 27 October 2024, a day of 25 hours.
DAY = datetime(2024, 10, 26, 22, tzinfo=UTC)
DAY_END = datetime(2024, 10, 27, 23, tzinfo=UTC)
ALL_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def moves(ref: ComponentRef, *steps: tuple[datetime, State], first: State = State.UNKNOWN) -> list[Transition]:
    found, previous = [], first
    for moment, state in steps:
        found.append(Transition(ref, previous, state, moment, moment, Source.PROBE))
        previous = state
    return found


STORY = [
    *moves(
        CHECK,
        (DAY - hours(2), State.OPERATIONAL),
        (DAY + hours(2.5), State.DOWN),
        (DAY + hours(3.25), State.OPERATIONAL),
    ),
    *moves(
        FLOW, (DAY + hours(1), State.OPERATIONAL), (DAY + hours(2.5), State.PARTIAL), (DAY + hours(4), State.RECOVERING)
    ),
]


def stored(store: Store) -> dict[tuple[str, str, datetime], dict[State, float]]:
    every = [
        r
        for ref in (CHECK, FLOW, QUIET)
        for period in PERIODS
        for r in rollups_of(store, ref, period, ALL_TIME, DAY_END + hours(48))
    ]
    return {(r.component_key, r.period, r.start): dict(r.seconds) for r in every}


def expected(
    transitions: list[Transition], ref: ComponentRef, now: datetime
) -> dict[tuple[str, str, datetime], dict[State, float]]:
    mine = [t for t in transitions if t.ref == ref and t.at < now]
    found = rollups(ref.key, mine, mine[0].previous, "hour", mine[0].at, now) + rollups(
        ref.key, mine, mine[0].previous, "day", mine[0].at, now
    )
    return {(r.component_key, r.period, r.start): dict(r.seconds) for r in found}


def count_rollups(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(tables.availability_rollup)).scalar_one())


def test_first_roll_up_covers_history_and_rerunning_is_idempotent(store: Store) -> None:
    store.write(Batch(transitions=STORY))
    now = DAY + hours(10.5)
    first = roll_up(store, [CHECK, FLOW, QUIET], now)
    rows = stored(store)
    assert rows == expected(STORY, CHECK, now) | expected(STORY, FLOW, now)
    assert first.rows == len(rows) and first.through_id is not None
    assert rows[(CHECK.key, "hour", DAY + hours(2))] == {
        **dict.fromkeys(State, 0.0),
        State.OPERATIONAL: 1800,
        State.DOWN: 1800,
    }
    assert rows[(CHECK.key, "day", DAY)][State.DOWN] == 45 * 60
    assert not [key for key in rows if key[0] == QUIET.key]

    roll_up(store, [CHECK, FLOW, QUIET], now)
    roll_up(store, [CHECK, FLOW], now, since=ALL_TIME, chunk=3)  # in transactions of 3 rows
    assert stored(store) == rows
    assert count_rollups(store) == len(rows)


def test_rerunning_after_new_and_late_transitions_updates_the_periods_they_touch(store: Store) -> None:
    store.write(Batch(transitions=STORY))
    run = roll_up(store, [CHECK, FLOW], DAY + hours(5.5))
    later = DAY + hours(9.5)
    # A new outage now, and one written late, dated (retroactively) hours before the previous hour.
    extra = moves(CHECK, (DAY + hours(8.5), State.DOWN), first=State.OPERATIONAL)
    late = moves(FLOW, (DAY + hours(3), State.DOWN), first=State.PARTIAL)
    store.write(Batch(transitions=extra + late))
    everything = STORY + extra + late
    # Without `after_id` only the previous hour and later are recomputed: the late one is missed.
    roll_up(store, [CHECK, FLOW], later)
    assert stored(store)[(FLOW.key, "hour", DAY + hours(3))][State.DOWN] == 0
    assert stored(store)[(CHECK.key, "day", DAY)][State.DOWN] == 45 * 60 + 3600

    again = roll_up(store, [CHECK, FLOW], later, after_id=run.through_id)
    assert stored(store) == expected(everything, CHECK, later) | expected(everything, FLOW, later)
    assert stored(store)[(FLOW.key, "hour", DAY + hours(3))][State.DOWN] == 3600
    assert again.through_id is not None and run.through_id is not None and again.through_id > run.through_id


def test_a_run_after_a_pause_catches_up_from_the_last_stored_hour(store: Store) -> None:
    store.write(Batch(transitions=STORY))
    roll_up(store, [CHECK, FLOW], DAY + hours(1.5))
    roll_up(store, [CHECK, FLOW], DAY_END + hours(2))  # the process was down for a day
    now = DAY_END + hours(2)
    assert stored(store) == expected(STORY, CHECK, now) | expected(STORY, FLOW, now)


def test_backfill_from_a_given_moment_with_a_virtual_clock(store: Store) -> None:
    store.write(Batch(transitions=STORY))
    for step in range(-2, 30):  # as the demo does: the clock advances, rollups follow
        roll_up(store, [CHECK], DAY + hours(step), since=DAY + hours(step - 1))
    assert stored(store) == expected(STORY, CHECK, DAY + hours(29))
    assert len(rollups_of(store, CHECK, "day", DAY, DAY_END)) == 1
    assert rollups_of(store, CHECK, "day", DAY, DAY_END)[0].start == DAY


def test_availability_over_sums_the_seconds_of_days_and_edge_hours(store: Store) -> None:
    store.write(Batch(transitions=STORY))
    now = DAY_END + hours(30.25)
    roll_up(store, [CHECK, FLOW], now)
    for days in (1, 7, 30):
        window = availability_over(store, FLOW.key, now, days)
        hourly = rollups_of(store, FLOW, "hour", window.start, window.end)
        assert window.seconds == pytest.approx(Window.summing(FLOW.key, window.start, window.end, hourly).seconds)
    window = availability_over(store, CHECK, now, 7)
    assert window.availability == pytest.approx(1 - 0.75 / (30.25 + 25 + 2))
    assert window.coverage == 1.0  # history counts from the first transition, not as unknown before it
    assert total(window) == pytest.approx((30.25 + 25 + 2) * 3600)


@pytest.fixture
def deletes(store: Store) -> Iterator[list[str]]:
    """The DELETE statements sent to the database."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", note)
    yield seen
    event.remove(store.engine, "before_cursor_execute", note)


def test_pruning_deletes_only_older_results_in_batches_and_keeps_transitions(store: Store, deletes: list[str]) -> None:
    now = DAY + hours(12)
    cutoff = now - timedelta(days=30)
    old = [ProbeResult(CHECK, cutoff - timedelta(minutes=i + 1), 0.1, success=True) for i in range(10)]
    recent = [ProbeResult(CHECK, cutoff + timedelta(minutes=i), 0.1, success=False) for i in range(4)]
    store.write(Batch(results=old + recent, transitions=moves(CHECK, (cutoff - hours(48), State.DOWN))))

    assert prune_results(store, now, 30, batch_size=3) == 10
    assert len(deletes) == 4  # 3 + 3 + 3 + 1, each its own transaction
    assert store.results(CHECK, limit=100) == list(reversed(recent))
    assert len(store.transitions(CHECK)) == 1
    assert prune_results(store, now, 30, batch_size=3) == 0


async def test_housekeeper_rolls_up_each_run_and_prunes_once_an_hour(store: Store) -> None:
    settings = Settings.model_validate(
        {
            "raw_retention_days": 1,
            "networks": {"viamedis": {"name": "Viamedis", "kind": "operateur", "lines": ["optique"]}},
        }
    )
    assert ComponentRef("line", "viamedis", "optique").key in component_keys(settings)
    assert FLOW.key in component_keys(settings)
    keeper = Housekeeper(store, pause=0)
    store.write(Batch(transitions=STORY))

    async def run(now: datetime, *results: ProbeResult) -> tuple[int | None, int | None]:
        store.write(Batch(results=list(results)))
        report = await keeper.run(settings, now)
        return report.rollups, report.pruned

    now = DAY + hours(30)
    stale = ProbeResult(CHECK, now - hours(25), 0.1, success=True)
    fresh = ProbeResult(CHECK, now - hours(1), 0.1, success=True)
    assert await run(now, stale, fresh) == (len(expected(STORY, FLOW, now)), 1)
    assert (await run(now + timedelta(minutes=5), stale))[1] is None  # not due yet: it stays
    assert store.results(CHECK) == [fresh, stale]  # newest first
    assert (await run(now + hours(1)))[1] == 1
    assert store.results(CHECK) == [fresh]
    assert stored(store) == expected(STORY, FLOW, now + hours(1))  # CHECK is not in the config


def test_first_transitions_are_each_components_first_sight(store: Store) -> None:
    """The earliest `at` of each component's transitions (written out of order), aware UTC; absent without any."""
    t0 = datetime(2023, 11, 6, tzinfo=UTC)
    line, other = ComponentRef("line", "alpha", "optique"), ComponentRef("line", "alpha", "pharmacie")
    at = t0 + timedelta(days=90)
    later = Transition(line, State.OPERATIONAL, State.DOWN, at, at, Source.PROBE)
    first = Transition(line, State.UNKNOWN, State.OPERATIONAL, t0, t0, Source.PROBE)
    store.write(Batch(transitions=[later, first]))
    found = store.first_transitions([line.key, other.key, line.key])
    assert found == {line.key: t0} and found[line.key].utcoffset() == timedelta(0)
    assert store.first_transitions([]) == {}


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements `store` runs within the block, listed as they run."""
    reads: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        reads.append(statement)

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield reads
    finally:
        event.remove(store.engine, "before_cursor_execute", note)


def test_transitions_of_kind_read_only_the_rows_not_kept_and_equal_a_whole_read(store: Store) -> None:
    """The publication's 30-day read of every line's transitions: the same list as `transitions`, newest first, each
    row made a Transition once (kept by id), a new one read, one out of the window or pruned dropped."""
    t0 = datetime(2024, 2, 1, tzinfo=UTC)
    optique, pharmacie = ComponentRef("line", "alpha", "optique"), ComponentRef("line", "alpha", "pharmacie")
    flow = ComponentRef("flow", "alpha", "pec")
    old = Transition(optique, State.OPERATIONAL, State.DOWN, t0 - timedelta(days=40), t0, Source.PROBE)
    first = [
        Transition(optique, State.DOWN, State.OPERATIONAL, t0, t0, Source.PROBE),
        Transition(pharmacie, State.OPERATIONAL, State.PARTIAL, t0 + hours(1), t0, Source.PROBE),
        Transition(flow, State.OPERATIONAL, State.DOWN, t0 + hours(1), t0, Source.PROBE),
    ]
    store.write(Batch(transitions=[old, *first]))
    since = t0 - timedelta(days=30)
    known: dict[int, Transition] = {}
    read = store.transitions_of_kind("line", since=since, known=known)
    assert read == store.transitions(since=since, kind="line") == [first[1], first[0]]
    assert len(known) == 2

    later = Transition(optique, State.OPERATIONAL, State.RECOVERING, t0 + hours(2), t0, Source.DECLARED, 0.5)
    store.write(Batch(transitions=[later]))
    with statements(store) as reads:
        again = store.transitions_of_kind("line", since=since, known=known)
    assert again == store.transitions(since=since, kind="line") == [later, first[1], first[0]]
    assert again[1] is read[0] and again[2] is read[1]  # the rows kept, not made again
    assert len(reads) == 2  # the window's ids, then the one row not kept

    with store.engine.begin() as connection:  # pruned (or out of a later window): dropped from what is kept
        connection.execute(tables.transition.delete().where(tables.transition.c.at == t0))
    assert store.transitions_of_kind("line", since=since, known=known) == [later, first[1]]
    assert len(known) == 2
    assert store.transitions_of_kind("line", since=t0 + hours(2), known=known) == [later] and len(known) == 1


def test_transitions_known_equal_a_whole_read_and_read_only_new_rows(store: Store) -> None:
    """A line's last transitions for its page: as `transitions(ref, limit=…)`, the rows already known not read
    again (one statement listing the ids when nothing is new)."""
    t0 = datetime(2024, 2, 1, tzinfo=UTC)
    line, other = ComponentRef("line", "alpha", "optique"), ComponentRef("line", "alpha", "pharmacie")
    story = [
        Transition(line, State.OPERATIONAL, State.DOWN, t0, t0, Source.PROBE),
        Transition(other, State.OPERATIONAL, State.DOWN, t0, t0, Source.PROBE),
        Transition(line, State.DOWN, State.OPERATIONAL, t0 + hours(1), t0, Source.PROBE),
    ]
    store.write(Batch(transitions=story))
    known: dict[int, Transition] = {}
    first = store.transitions_known(line, known=known, limit=50)
    assert first == store.transitions(line, limit=50) == [story[2], story[0]]
    assert store.transitions_known(line, known=known, limit=1) == [story[2]]
    later = Transition(line, State.OPERATIONAL, State.PARTIAL, t0 + hours(2), t0, Source.PROBE)
    store.write(Batch(transitions=[later]))
    with statements(store) as reads:
        again = store.transitions_known(line, known=known, limit=50)
        assert len(reads) == 2  # the ids, then the new row
        assert store.transitions_known(line, known=known, limit=50) == again
        assert len(reads) == 3  # nothing new: the ids alone
    assert again == store.transitions(line, limit=50) == [later, story[2], story[0]]
    assert again[1] is first[0] and again[2] is first[1]
