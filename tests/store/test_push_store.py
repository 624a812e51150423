"""The push signal inbox on every backend: add, read after a cursor, place a cursor, prune, refuse bad rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.errors import StoreError
from monitor.models import ComponentRef
from monitor.store import Store, WriteRefused
from monitor.store.signal_store import (
    add_signal,
    last_signals,
    prune_signals,
    signal_cursor,
    signals_after,
    signals_of,
)

from .store_support import T0

PEC = ComponentRef.for_check("viamedis", "pec", "operateur")
PAIEMENTS = ComponentRef.for_check("almerys", "paiements", "virements")
SECOND = timedelta(seconds=1)


def fill(store: Store, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        add_signal(store, PEC if i % 2 else PAIEMENTS, "operational", f"n{i}", received_at=T0 + i * SECOND)


def test_add_signal_returns_it_with_increasing_ids_and_reads_back_equal(store: Store) -> None:
    first = add_signal(store, PEC, "down", "pec.ko-1", received_at=T0)
    second = add_signal(store, PAIEMENTS, "degraded", received_at=T0 + SECOND)
    assert second.id > first.id > 0
    assert (first.check, first.state, first.detail, first.received_at) == (PEC, "down", "pec.ko-1", T0)
    assert signals_after(store, 0) == [first, second]
    assert signals_after(store, 0)[0].received_at.utcoffset() == timedelta(0)


def test_add_signal_stamps_with_the_store_clock(database_url: str) -> None:
    with Store.open(database_url, clock=lambda: T0 + timedelta(hours=1)) as store:
        assert add_signal(store, PEC, "operational").received_at == T0 + timedelta(hours=1)
        assert signals_after(store, 0)[0].received_at == T0 + timedelta(hours=1)


def test_signals_after_reads_by_cursor_in_id_order_with_a_limit(store: Store) -> None:
    fill(store, 7)
    page = signals_after(store, 0, limit=3)
    assert [s.detail for s in page] == ["n0", "n1", "n2"]
    rest = signals_after(store, page[-1].id, limit=100)
    assert [s.detail for s in rest] == ["n3", "n4", "n5", "n6"]
    assert signals_after(store, rest[-1].id) == []


def test_two_cursors_read_the_same_inbox_independently(store: Store) -> None:
    fill(store, 4)
    one, two = signals_after(store, 0, limit=1), signals_after(store, 0, limit=4)
    assert one[0] == two[0]
    assert signals_after(store, one[-1].id) == two[1:]


def test_signals_of_reads_the_checks_asked_by_time_whatever_their_ids(store: Store) -> None:
    late = add_signal(store, PEC, "down", "late", received_at=T0 + 5 * SECOND)  # committed first, received later
    fill(store, 4)
    found = signals_of(store, [PEC.key], T0)
    assert [s.detail for s in found] == ["n1", "n3", "late"]  # by reception, not by id; `after` excluded
    assert all(s.check == PEC for s in found) and late in found
    assert [s.detail for s in signals_of(store, [PEC.key, PAIEMENTS.key], T0 + 2 * SECOND)] == ["n3", "late"]
    assert signals_of(store, [PEC.key], T0 + 5 * SECOND) == []


def test_signals_after_leaves_out_the_freshest_when_asked(store: Store) -> None:
    fill(store, 5)
    assert [s.detail for s in signals_after(store, 0, received_before=T0 + 3 * SECOND)] == ["n0", "n1", "n2"]


def test_signal_cursor_is_just_before_the_first_signal_since(store: Store) -> None:
    assert signal_cursor(store, T0) == 0
    fill(store, 5)
    ids = [s.id for s in signals_after(store, 0)]
    assert signal_cursor(store, T0 + 2 * SECOND) == ids[2] - 1
    assert signal_cursor(store, T0 - SECOND) == ids[0] - 1
    assert signal_cursor(store, T0 + timedelta(hours=1)) == ids[-1]  # nothing since: the newest


def test_prune_deletes_old_signals_in_small_batches(store: Store) -> None:
    fill(store, 10)
    cutoff = T0 + 7 * SECOND
    assert prune_signals(store, cutoff, batch=3) == 3
    assert prune_signals(store, cutoff, batch=3) == 3
    assert prune_signals(store, cutoff, batch=3) == 1
    assert prune_signals(store, cutoff, batch=3) == 0
    assert [s.detail for s in signals_after(store, 0)] == ["n7", "n8", "n9"]


@pytest.mark.parametrize(
    ("check", "state", "detail"),
    [
        (PEC, "up", ""),
        (PEC, "down", "Patient Dupont"),
        (PEC, "down", "x" * 41),
        (PEC, "down", "ko\n"),
        (ComponentRef("flow", "viamedis", "pec"), "down", ""),
    ],
)
def test_a_bad_signal_is_refused_and_nothing_is_written(
    store: Store, check: ComponentRef, state: str, detail: str
) -> None:
    with pytest.raises(WriteRefused) as refused:
        add_signal(store, check, state, detail)
    assert "Dupont" not in str(refused.value)
    assert signals_after(store, 0) == []


def test_a_database_without_the_table_says_so_in_one_line(database_url: str) -> None:
    with Store.open(database_url, migrate=False) as store, pytest.raises(StoreError) as raised:
        signals_after(store, 0)
    assert "\n" not in str(raised.value)


def test_last_signals_gives_each_check_its_newest_by_reception(store: Store) -> None:
    late = add_signal(store, PEC, "down", "late", received_at=T0 + 50 * SECOND)  # committed first, received last
    fill(store, 6)
    silent = ComponentRef.for_check("viamedis", "pec", "silencieux")
    found = last_signals(store, [PEC.key, PAIEMENTS.key, silent.key])
    assert found[PEC.key] == late
    assert found[PAIEMENTS.key].detail == "n4"
    assert silent.key not in found
