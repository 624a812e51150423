"""Narrow probe results (migration 0035): results stored at 0030 converted without loss (and back), no id nor
primary key, values out of a narrower column's range clamped and counted (never wrapped, never a refused batch),
results of one µs read last written first."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from monitor.models import FailureReason, ProbeResult
from monitor.store import Batch, Store
from monitor.store.database import make_engine, upgrade
from monitor.store.rollup_store import prune_results
from monitor.store.rows import result_row

from .store_support import CHECK, T0, sample_result
from .test_compact_results import OLD_RESULTS, OTHER, PORTAL, downgrade, newest_first

INT4_MAX, INT4_MIN = 2**31 - 1, -(2**31)
START = T0 + timedelta(hours=2, microseconds=250_001)

# Out of the narrow columns' ranges: a duration and a phase over 35 min, a certificate date of the year 9999
# (RFC 5280's "no expiry"), a chain date more than 68 years before the probe, a status code over 32767.
WILD = ProbeResult(
    OTHER,
    START,
    3600.0,
    success=True,
    status_code=70000,
    phases={"connect": 0.002, "processing": 2200.0},
    cert_expiry=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    chain_expiry=datetime(1901, 1, 1, tzinfo=UTC),
)
NEGATIVE = ProbeResult(OTHER, START + timedelta(seconds=1), -2500.0, success=False, reason=FailureReason.INTERNAL)
WILD_STORED = replace(
    WILD,
    duration_s=INT4_MAX / 1e6,
    status_code=32767,
    phases={"connect": 0.002, "processing": INT4_MAX / 1e6},
    cert_expiry=START.replace(microsecond=0) + timedelta(seconds=INT4_MAX),
    chain_expiry=START.replace(microsecond=0) + timedelta(seconds=INT4_MIN),
)
NEGATIVE_STORED = replace(NEGATIVE, duration_s=INT4_MIN / 1e6)
# Two results of one check in one µs, told apart by their detail: the later written is read first.
TWINS = [
    ProbeResult(PORTAL, START, 0.5, success=False, reason=FailureReason.BODY, detail="premier"),
    ProbeResult(PORTAL, START, 0.25, success=True, status_code=200),
]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = make_engine(database_url)
    yield built
    built.dispose()


def rows_at_0030(engine: Engine) -> list[dict[str, Any]]:
    """The rows of probe_result at 0030, in the order of their ids, without the ids."""
    with engine.connect() as connection:
        table = sa.Table("probe_result", sa.MetaData(), autoload_with=connection)
        found = connection.execute(sa.select(table).order_by(table.c.id))
        return [{k: v for k, v in row._mapping.items() if k != "id"} for row in found]


def test_migration_0035_converts_the_results_of_0030_without_loss_and_back(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(engine, "0030")
    wild = replace(WILD, status_code=200)  # 0030 had the status code in an int2 already (PostgreSQL refused more)
    written = [*OLD_RESULTS, *TWINS, wild, NEGATIVE]
    keys = sorted({r.check.key for r in written})
    with engine.begin() as connection:  # as tpmon 0030 wrote them (rows.result_row is still its row)
        probe_check = sa.Table("probe_check", sa.MetaData(), autoload_with=connection)
        connection.execute(sa.insert(probe_check), [{"key": key} for key in keys])
        ids = {str(key): int(id_) for key, id_ in connection.execute(sa.select(probe_check.c.key, probe_check.c.id))}
        probe_result = sa.Table("probe_result", sa.MetaData(), autoload_with=connection)
        for result in written:  # one by one: the ids follow this order
            connection.execute(sa.insert(probe_result), result_row(result, ids[result.check.key]))
    before = rows_at_0030(engine)
    assert len(before) == len(written)

    with caplog.at_level(logging.WARNING):
        upgrade(engine)
    assert [r.getMessage() for r in caplog.records if "0035" in r.getMessage()] == [
        "migration 0035: 5 out-of-range result values clamped to their column's bounds: cert_expires_in_s ×1,"
        " chain_expires_in_s ×1, duration_us ×2, processing_us ×1"
    ]
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        assert inspector.get_pk_constraint("probe_result")["constrained_columns"] == []
        assert [i["name"] for i in inspector.get_indexes("probe_result")] == ["ix_probe_result_check_id_started_us"]
        assert "id" not in {c["name"] for c in inspector.get_columns("probe_result")}
    store = Store(engine)
    for check in (CHECK, OTHER):
        expected = newest_first([r for r in OLD_RESULTS if r.check == check], check)
        if check == OTHER:
            stored = [replace(WILD_STORED, status_code=200), NEGATIVE_STORED]
            expected = sorted([*expected, *stored], key=lambda r: r.started_at, reverse=True)
        assert store.results(check, limit=100) == expected
    portal = store.results(PORTAL, limit=100)
    assert portal[:2] == TWINS[::-1]  # the same µs: the one written last first
    assert portal[2:] == newest_first([r for r in OLD_RESULTS if r.check == PORTAL], PORTAL)

    downgrade(engine, "0030")  # the rows of 0030 again, in their order, only the clamped values changed
    after = rows_at_0030(engine)
    clamped = {len(written) - 2: result_row(stored[0], 0), len(written) - 1: result_row(stored[1], 0)}
    for index, row in clamped.items():
        before[index] |= {k: v for k, v in row.items() if k != "check_id"}
    assert after == before


def test_values_out_of_range_are_clamped_counted_and_never_refuse_a_batch(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="monitor.store.store"):
        assert store.write(Batch([WILD, sample_result(1), NEGATIVE]))
    assert store.results(OTHER) == [NEGATIVE_STORED, WILD_STORED]
    assert store.results(CHECK) == [sample_result(1)]
    assert store.clamped == Counter(
        {
            "duration_us": 2,
            "processing_us": 1,
            "status_code": 1,
            "cert_expires_in_s": 1,
            "chain_expires_in_s": 1,
        }
    )
    assert [r.getMessage() for r in caplog.records] == [
        "6 out-of-range result values clamped to their column's bounds: cert_expires_in_s ×1, chain_expires_in_s ×1,"
        " duration_us ×2, processing_us ×1, status_code ×1"
    ]
    store.write(Batch([sample_result(2)]))  # in range: nothing more counted
    assert store.clamped.total() == 6


def test_the_bounds_themselves_are_kept_exactly(store: Store) -> None:
    edge = ProbeResult(
        CHECK,
        START,
        INT4_MAX / 1e6,
        success=True,
        status_code=32767,
        phases={"resolve": INT4_MIN / 1e6, "transfer": 0.000001},
        cert_expiry=START.replace(microsecond=0) + timedelta(seconds=INT4_MAX),
        chain_expiry=START.replace(microsecond=0) + timedelta(seconds=INT4_MIN),
    )
    store.write(Batch([edge]))
    assert store.results(CHECK) == [edge]
    assert store.clamped.total() == 0


def test_results_of_the_same_microsecond_are_read_last_written_first(store: Store) -> None:
    store.write(Batch(list(TWINS)))
    later = replace(TWINS[0], detail="troisième")
    store.write(Batch([later]))
    assert store.results(PORTAL) == [later, TWINS[1], TWINS[0]]
    assert store.results(PORTAL, limit=1) == [later]


def test_the_last_results_of_several_checks_are_each_ones_newest_in_one_read(store: Store) -> None:
    store.write(Batch([*TWINS, sample_result(1), sample_result(5), sample_result(3)]))
    later = replace(TWINS[0], detail="troisième")  # the same µs as the twins, written last
    store.write(Batch([later]))
    reads: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: reads.append(args[2]))
    found = store.last_results([PORTAL, CHECK, OTHER])  # OTHER has no result: absent
    assert len(reads) == 1
    assert found == {PORTAL.key: later, CHECK.key: sample_result(5)}
    assert [found[check.key] for check in (PORTAL, CHECK)] == [store.results(c, limit=1)[0] for c in (PORTAL, CHECK)]
    assert store.last_results([]) == {}


def test_an_empty_detail_and_a_detail_read_back_as_written(store: Store) -> None:
    results = [replace(sample_result(1), detail=""), replace(sample_result(2), detail="réponse 503 ")]
    store.write(Batch(results))
    assert store.results(CHECK) == results[::-1]


def test_pruning_removes_every_result_of_a_shared_microsecond_at_the_batch_edge(store: Store) -> None:
    same = [replace(sample_result(0), detail=str(i)) for i in range(5)]
    store.write(Batch([*same, sample_result(1), sample_result(86400 * 40)]))
    assert prune_results(store, T0 + timedelta(days=31), 30, batch_size=2) == 6
    assert store.results(CHECK) == [sample_result(86400 * 40)]
