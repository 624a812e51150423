"""Latency by hour, summed in SQL: the same buckets and numbers on SQLite (memory, file) and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import ComponentRef, FailureReason, ProbeResult
from monitor.store import Batch, Store
from monitor.store.latency_store import HourLatency, latency_by_hour

PEC = ComponentRef.for_check("alpha", "pec", "portail")
DRE = ComponentRef.for_check("alpha", "facturation", "dre")
QUIET = ComponentRef.for_check("alpha", "droits", "idb")  # configured, never probed
SINCE = datetime(2024, 2, 12, 10, 0, tzinfo=UTC)


def result(check: ComponentRef, moment: datetime, duration: float, *, ok: bool = True) -> ProbeResult:
    reason = None if ok else FailureReason.TIMEOUT
    return ProbeResult(check, moment, duration, success=ok, reason=reason)


def story() -> list[ProbeResult]:
    """Results around `SINCE` and hour edges, to the microsecond: what the SQL must bucket like Python does."""
    edge = SINCE + timedelta(hours=3)  # 13:00:00 UTC exactly
    return [
        result(PEC, SINCE - timedelta(microseconds=1), 9.0),  # before `since`: excluded
        result(PEC, SINCE - timedelta(hours=5), 9.0, ok=False),
        result(PEC, SINCE, 0.2),  # at `since`: included
        result(PEC, SINCE + timedelta(minutes=10, seconds=1.5), 0.4),
        result(PEC, SINCE + timedelta(minutes=59, seconds=59.999999), 0.8, ok=False),
        result(PEC, edge - timedelta(microseconds=1), 0.1),  # 12:59:59.999999: hour 12
        result(PEC, edge, 0.3),  # 13:00: hour 13
        result(PEC, edge + timedelta(minutes=30), 2.5, ok=False),
        result(DRE, SINCE + timedelta(minutes=5), 0.05),
        result(DRE, SINCE + timedelta(hours=2, minutes=1), 4.0, ok=False),  # an hour of failures alone
        result(DRE, SINCE + timedelta(days=1, minutes=5), 0.07),  # a day later: hours in between are absent
        result(DRE, SINCE + timedelta(days=1, minutes=6), 0.09),
    ]


def expected(results: list[ProbeResult], since: datetime) -> dict[str, list[HourLatency]]:
    groups: dict[str, dict[datetime, list[ProbeResult]]] = defaultdict(lambda: defaultdict(list))
    for one in results:
        if one.started_at >= since:
            hour = one.started_at.replace(minute=0, second=0, microsecond=0)
            groups[one.check.key][hour].append(one)

    def ok_mean(found: list[ProbeResult]) -> float | None:
        ok = [r.duration_s for r in found if r.success]
        return sum(ok) / len(ok) if ok else None

    return {
        key: [
            HourLatency(
                hour,
                sum(r.duration_s for r in found) / len(found),
                max(r.duration_s for r in found),
                len(found),
                sum(not r.success for r in found),
                ok_mean(found),
                max((r.duration_s for r in found if r.success), default=None),
            )
            for hour, found in sorted(hours.items())
        ]
        for key, hours in groups.items()
    }


def test_buckets_means_maxima_counts_and_failures_match_python(store: Store) -> None:
    results = story()
    store.write(Batch(results=results))
    found = latency_by_hour(store, [PEC.key, DRE.key, QUIET.key], SINCE)
    want = expected(results, SINCE)
    assert set(found) == {PEC.key, DRE.key} == set(want)  # a check without results is absent
    for key in want:
        assert [(h.start, h.count, h.failures) for h in found[key]] == [
            (h.start, h.count, h.failures) for h in want[key]
        ]
        for got, hour in zip(found[key], want[key], strict=True):
            assert got.mean_s == pytest.approx(hour.mean_s, rel=1e-9)
            assert got.max_s == pytest.approx(hour.max_s, rel=1e-9)
            if hour.ok_mean_s is None:  # an hour of failures alone: no response time at all
                assert got.ok_mean_s is None and got.ok_max_s is None
            else:  # the successes alone
                assert got.ok_mean_s == pytest.approx(hour.ok_mean_s, rel=1e-9)
                assert got.ok_max_s == pytest.approx(hour.ok_max_s, rel=1e-9)
            assert got.start.tzinfo is not None and got.start.utcoffset() == timedelta(0)
    pec = found[PEC.key]
    assert [h.start.hour for h in pec] == [10, 12, 13]
    assert (pec[0].count, pec[0].failures) == (3, 1)  # 10:00, 10:10:01.5 and 10:59:59.999999
    assert pec[0].ok_mean_s == pytest.approx(0.3) and pec[0].ok_max_s == pytest.approx(0.4)  # not the 0.8 s failure
    dre = found[DRE.key]
    assert [(h.start.hour, h.count, h.ok_mean_s, h.ok_max_s) for h in dre][1] == (12, 1, None, None)  # all failed


def test_results_before_since_are_left_out(store: Store) -> None:
    store.write(Batch(results=story()))
    later = SINCE + timedelta(hours=3)
    found = latency_by_hour(store, [PEC.key], later)
    assert [(h.start, h.count, h.max_s) for h in found[PEC.key]] == [(later, 2, 2.5)]
    assert latency_by_hour(store, [PEC.key], SINCE + timedelta(days=2)) == {}


def test_unknown_keys_are_absent_and_no_key_asks_nothing(store: Store) -> None:
    store.write(Batch(results=story()))
    assert latency_by_hour(store, ["check:nobody/pec/x"], SINCE) == {}
    assert latency_by_hour(store, [], SINCE) == {}
    assert set(latency_by_hour(store, iter([PEC.key, PEC.key]), SINCE)) == {PEC.key}  # any iterable, once each
