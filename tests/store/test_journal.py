"""The store writer's journal: segments that survive a crash, a torn tail cut off, one process at a time, private
files, and a replay that writes each segment once — even replayed twice."""

from __future__ import annotations

import math
import os
import shutil
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from monitor.errors import StoreError
from monitor.models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, Source, State, Streak
from monitor.store import Batch, Store, rows, tables
from monitor.store.database import make_engine, upgrade
from monitor.store.journal import Journal, journal_path
from monitor.store.writer import replay_journal

from .store_support import CHECK, T0, sample_result, sample_transition

FLOW = ComponentRef("flow", "viamedis", "portail_ps")


def status(state: State, minutes: int = 0) -> ComponentStatus:
    at = T0 + timedelta(minutes=minutes)
    return ComponentStatus(FLOW, state, at, Source.PROBE, state, progress=0.5, stable_since=None, changed_at=at)


def full_batch(first: int = 0) -> Batch:
    odd = ProbeResult(CHECK, T0, math.inf, success=False, detail="é\x00", phases={"connect": 0.5}, cert_expiry=T0)
    return Batch(
        results=[sample_result(first + i) for i in range(3)] + [odd],
        transitions=[sample_transition(first + i) for i in range(2)],
        statuses={FLOW.key: status(State.DOWN, first)},
        memories={CHECK.key: CheckMemory(State.DOWN, T0, fails=Streak(3, T0), last_result_at=T0)},
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "var" / "tpmon.journal.jsonl", database="sqlite:///x.db")
    yield opened
    opened.close()


def test_a_segment_reads_back_as_written_after_a_reopen(tmp_path: Path, journal: Journal) -> None:
    batch = full_batch()
    [segment] = journal.append(batch)
    assert (segment.results, segment.transitions) == (4, 2)
    journal.close()

    again = Journal.open(journal.path)
    try:
        assert again.pending() == [segment]
        loaded = again.load(segment)
        assert loaded.segment == segment.id
        assert (loaded.results, loaded.transitions, loaded.uids) == (batch.results, batch.transitions, batch.uids)
        assert (loaded.statuses, loaded.memories) == (batch.statuses, batch.memories)
    finally:
        again.close()


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        opened = Journal.open(tmp_path / "var" / "j.jsonl")
    finally:
        os.umask(previous)
    opened.close()
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE(opened.path.stat().st_mode) == 0o600


def test_a_torn_tail_is_cut_off_and_what_follows_is_readable(journal: Journal) -> None:
    [kept] = journal.append(full_batch())
    size = journal.size_bytes
    with journal.path.open("ab") as file:  # a crash in the middle of the next spill
        file.write(b'{"segment": "torn", "at": "x"}\n{"r": {"check_key": "check:viamedis/portail_ps/h')
    journal.close()

    again = Journal.open(journal.path)
    try:
        assert again.pending() == [kept] and journal.path.stat().st_size == size
        [later] = again.append(full_batch(10))
        assert again.pending() == [kept, later]
        assert again.load(later).results[0] == sample_result(10)
    finally:
        again.close()


def test_an_unreadable_segment_is_skipped_and_the_file_kept_aside(journal: Journal) -> None:
    [first] = journal.append(full_batch())
    journal.append(full_batch(10))
    data = journal.path.read_bytes().replace(b'"detail": "t11"', b'"detail": t11"')
    journal.close()
    journal.path.write_bytes(data)

    again = Journal.open(journal.path)
    try:
        assert again.pending() == [first]
        assert [p.name for p in journal.path.parent.glob("*.unreadable-*")]
    finally:
        again.close()


def test_one_process_at_a_time(journal: Journal) -> None:
    with pytest.raises(StoreError, match="in use by another tpmon") as raised:
        Journal.open(journal.path)
    assert "\n" not in str(raised.value)


def test_a_large_spill_is_cut_into_segments_written_back_one_transaction_each(journal: Journal) -> None:
    journal.segment_results = 3
    batch = full_batch()
    batch.results += [sample_result(i) for i in range(100, 105)]
    segments = journal.append(batch)
    assert [(s.results, s.transitions) for s in segments] == [(3, 2), (3, 0), (3, 0)]
    loaded = [journal.load(segment) for segment in journal.pending()]
    assert [r for part in loaded for r in part.results] == batch.results
    assert loaded[0].statuses == batch.statuses and not loaded[1].statuses


def test_room_for_results_is_bounded(tmp_path: Path) -> None:
    small = Journal.open(tmp_path / "j.jsonl", max_results=5)
    try:
        assert small.room_for_results() == 5
        small.append(full_batch())
        assert small.room_for_results() == 1
    finally:
        small.close()


def test_written_segments_are_forgotten_and_the_file_emptied(journal: Journal) -> None:
    [first], [second] = journal.append(full_batch()), journal.append(full_batch(10))
    journal.written(first)
    assert journal.pending() == [second] and journal.size_bytes > 0
    journal.written(second)
    assert journal.pending() == [] and journal.size_bytes == 0 and journal.path.stat().st_size == 0
    assert (journal.replayed_results, journal.replayed_transitions) == (8, 4)


def test_default_paths(tmp_path: Path) -> None:
    assert journal_path(f"sqlite:///{tmp_path}/db/tpmon.db", {}) == tmp_path / "db" / "tpmon.journal.jsonl"
    assert journal_path("postgresql+psycopg://u:p@h/db", {}) == Path("var/tpmon.journal.jsonl")
    assert journal_path("sqlite://", {}) is None
    assert journal_path("sqlite://", {"TPMON_JOURNAL": "/x/j.jsonl"}) == Path("/x/j.jsonl")


def test_replay_writes_each_segment_once_even_when_replayed_twice(durable_database_url: str, tmp_path: Path) -> None:
    """A crash between the database's commit and the journal's truncation replays the same segments again."""
    journal = Journal.open(tmp_path / "j.jsonl")
    batches = [full_batch(), full_batch(10)]
    for batch in batches:
        journal.append(batch)
    crash_copy = tmp_path / "copy.jsonl"
    shutil.copyfile(journal.path, crash_copy)
    with Store.open(durable_database_url) as store:
        assert replay_journal(store, journal) == (8, 4)
        assert journal.pending() == [] and journal.path.stat().st_size == 0
        store.write(Batch(statuses={FLOW.key: status(State.OPERATIONAL, 99)}))  # newer than the journal
        journal.close()
        shutil.copyfile(crash_copy, journal.path)

        again = Journal.open(journal.path)
        try:
            assert len(again.pending()) == 2
            assert replay_journal(store, again) == (8, 4)  # read back, and skipped by the database
        finally:
            again.close()

        # 3 of each batch's 4: a result with an infinite duration has no µs to store, refused (NOT NULL) and dropped
        assert len(store.results(CHECK, limit=100)) == 6
        transitions = store.transitions(limit=100)
        assert sorted(transitions, key=lambda t: t.at) == [t for b in batches for t in b.transitions]
        assert store.load_statuses() == {FLOW.key: status(State.OPERATIONAL, 99)}  # not rolled back


def test_a_transition_written_twice_is_kept_once(database_url: str) -> None:
    with Store.open(database_url) as store:
        batch = Batch(transitions=[sample_transition(1), sample_transition(2)])
        store.write(batch)
        store.write(Batch(transitions=batch.transitions, uids=batch.uids))
        store.write(Batch(transitions=[sample_transition(1)]))  # the same event, another key: another row
        assert len(store.transitions()) == 3


def test_migration_0025_keeps_the_transitions_before_it(durable_database_url: str) -> None:
    engine = make_engine(durable_database_url)
    try:
        upgrade(engine, "0020")
        with engine.begin() as connection:  # as before 0025: no write key
            connection.execute(insert(tables.transition), [rows.transition_row(sample_transition(i)) for i in range(3)])
    finally:
        engine.dispose()
    with Store.open(durable_database_url) as store:  # upgrades to the head
        assert sorted(store.transitions(), key=lambda t: t.at) == [sample_transition(i) for i in range(3)]
        batch = Batch(transitions=[sample_transition(3)])
        store.write(batch)
        row = rows.transition_row(sample_transition(4)) | {"uid": batch.keys()[0]}
        with store.engine.begin() as connection, pytest.raises(IntegrityError):  # the database itself refuses
            connection.execute(insert(tables.transition), [row])
        assert len(store.transitions()) == 4
