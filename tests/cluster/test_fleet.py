"""Several `tpmon serve` on one real PostgreSQL against a loopback farm: each check probed once per interval,
a killed instance's checks taken over within two heartbeats, every transition written once."""

from __future__ import annotations

import itertools
import math
import signal
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import Server, wait_for

from .farm_support import Farm, Instance, fleet, fleet_config, query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHECKS = 30
INTERVAL = 2.0  # seconds
HEARTBEAT = 2.0  # seconds
WINDOW = 40.0  # seconds of steady state measured: 20 slots per check
FLOWS = ("portail_ps", "pec", "facturation", "droits")  # check cNN's flow: FLOWS[NN % 4] (farm_support.fleet_config)


@pytest.fixture
def farm() -> Iterator[Farm]:
    server = Farm()
    yield server
    server.close()


def _paths() -> list[str]:
    return [f"/c{i:02d}" for i in range(CHECKS)]


def _live(url: str) -> list[str]:
    return [row.id for row in query(url, "SELECT id FROM instance ORDER BY id")]


def _settled(url: str, count: int) -> bool:
    """`count` rows, the last joined more than two heartbeats ago by the database's clock."""
    rows = query(
        url, "SELECT count(*) AS n, max(joined_at) < clock_timestamp() - interval '5 seconds' AS ok FROM instance"
    )
    return bool(rows[0].n == count and rows[0].ok)


def _leaders(url: str) -> list[int]:
    """The database sessions holding this schema's leader lock (monitor/cluster/members.py)."""
    rows = query(
        url,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 1953525103 "
        "AND objid::bigint = (hashtext(current_schema())::bigint & 4294967295) AND objsubid = 2",
    )
    return [row.pid for row in rows]


def _missed(server: Server) -> float:
    """Probe runs the instance's scheduler missed or coalesced (late past their grace, or the previous one ran, or
    its share left undone while the instance was late)."""
    found = 0.0
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(("tpmon_scheduler_missed_runs_total ", "tpmon_scheduler_coalesced_runs_total ")):
            found += float(line.split()[1])
    return found


def _gaps(arrivals: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(arrivals)]


def _slot(path: str, arrival: float) -> float:
    """The slot a probe of check `path` arriving at `arrival` ran for: with several instances a check's slots fall at
    the same instants on all (a phase from its key on the scheduler's 50 ms lattice, monitor/scheduler.py; no
    jitter here), and a probe runs at its slot or later, within the scheduler's grace (half an interval)."""
    name = path.lstrip("/")
    key = f"check:alpha/{FLOWS[int(name[1:]) % 4]}/{name}"
    phase = math.ceil(INTERVAL * zlib.crc32(key.encode()) / 2**32 / 0.05) * 0.05
    return phase + math.floor((arrival - phase + 0.01) / INTERVAL) * INTERVAL  # a timer may fire a hair early


def _lags(path: str, arrivals: list[float]) -> list[float]:
    return [round(arrival - _slot(path, arrival), 3) for arrival in arrivals]


def _chains(url: str) -> dict[str, list[tuple[str, str]]]:
    chains: dict[str, list[tuple[str, str]]] = {}
    for row in query(url, "SELECT component_key, previous, state FROM transition ORDER BY id"):
        chains.setdefault(row.component_key, []).append((row.previous, row.state))
    return chains


def _broken(chains: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
    """Components whose chain breaks: a transition whose `previous` is not the state the one before left, or that
    changes nothing (but a recovery's step, recovering → recovering: its progress moved, a fact of its own)."""
    return {
        key: chain
        for key, chain in chains.items()
        if any(chain[i][0] != chain[i - 1][1] for i in range(1, len(chain)))
        or any(p == s != "recovering" for p, s in chain)
    }


def test_three_instances_share_the_checks_a_third_joins_and_a_killed_one_is_taken_over(
    tmp_path: Path, farm: Farm, fresh_postgres_url: str
) -> None:
    url = fresh_postgres_url
    config = tmp_path / "tpmon.yaml"
    config.write_text(fleet_config(farm, CHECKS, interval="2s", heartbeat="2s"), encoding="utf-8")
    with fleet(config, tmp_path, url, 2) as servers:
        wait_for(lambda: _settled(url, 2), timeout=60, what="two settled instances")

        # Every check once per interval, from exactly one instance, while a third one joins and takes its share.
        start = time.time() + INTERVAL  # the slots of the joins are behind us
        end = start + WINDOW
        wait_for(lambda: time.time() > start, timeout=30, what="the measured window to start")
        missed_before = sum(_missed(server) for server in servers)
        (tmp_path / "instance2").mkdir()
        servers.append(Instance(config, tmp_path / "instance2", {"TPMON_DATABASE_URL": url}))
        servers[-1].start()
        wait_for(lambda: _settled(url, 3), timeout=60, what="the third instance settled")
        # when the third one counts, by the database's clock (two heartbeats after it joined): where a gap lies
        counts_from = query(url, f"SELECT extract(epoch FROM max(joined_at)) + {2 * HEARTBEAT} AS at FROM instance")
        end = max(end, time.time() + 5 * INTERVAL)  # a loaded machine starts it late: the window holds its share
        wait_for(lambda: time.time() > end + 1.0, timeout=WINDOW + 30, what="the measured window to pass")
        missed = sum(_missed(server) for server in servers) - missed_before
        counts = {path: farm.between(path, start, end) for path in _paths()}
        total = sum(len(a) for a in counts.values())
        slots = round((end - start) / INTERVAL)
        expected = CHECKS * (end - start) / INTERVAL
        figures = {"probes": total, "expected": expected, "missed_or_left_by_late_instances": missed}
        print(f"fleet steady state: {figures}")  # the figures of the report, with -s
        assert total <= 1.01 * expected, figures  # never more: no check probed twice
        # Fewer only when the instances say they missed runs (a loaded machine: the loop late past a half interval,
        # or an instance late past 1.75 heartbeats that stops itself: the runs of its share it leaves count as missed).
        assert total + missed >= 0.99 * expected, figures
        for path, arrivals in counts.items():
            assert all(gap >= 0.5 * INTERVAL for gap in _gaps(arrivals)), (path, _gaps(arrivals))  # never twice
            if not missed:
                assert slots - 1 <= len(arrivals) <= slots + 1, (path, len(arrivals))
                joined = [round(arrival - float(counts_from[0].at), 3) for arrival in arrivals]
                # a probe run that never reached the farm (timed out before its request was sent) is a failure here
                told = query(url, f"SELECT at, previous, state FROM transition WHERE component_key LIKE '%{path}'")
                assert all(gap <= 1.5 * INTERVAL for gap in _gaps(arrivals)), (path, _gaps(arrivals), joined, told)
        assert len(_live(url)) == 3

        # kill -9 of the leader (the first one): its checks probed again within two heartbeats (+ a slot)
        leaders = _leaders(url)
        assert len(leaders) == 1
        leader = servers[0]
        assert leader.proc is not None
        killed_at = time.time()
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(timeout=20)
        leader.proc = None
        after = killed_at + 2 * HEARTBEAT + 3 * INTERVAL + 2.0
        wait_for(lambda: time.time() > after, timeout=60, what="the takeover to be over")
        for path in _paths():
            around = farm.between(path, killed_at - 2 * INTERVAL, after)
            # judged on the slots the probes ran for, not on when they arrived: on a loaded machine a probe starts
            # up to the scheduler's grace after its slot, and two such lags apart are no slot missed
            gaps = _gaps([_slot(path, arrival) for arrival in around])
            assert gaps, path
            # taken over two heartbeats after the last one written (before the kill), at the next slot
            assert max(gaps) <= 2 * HEARTBEAT + INTERVAL + 1e-6, (path, gaps, _lags(path, around))
            assert min(gaps) >= INTERVAL - 1e-6, (path, gaps, _lags(path, around))  # and never a slot twice
        assert len(_live(url)) in (2, 3)  # the dead row stays until forgotten; it no longer counts
        new = wait_for(lambda: _leaders(url) if _leaders(url) != leaders else None, timeout=10, what="a new leader")
        assert len(new) == 1  # one leader again: housekeeping, notifications and derived states go on, once

        # State changes after the takeover: written once each, by the check's owner and the new leader.
        for path in ("/c01", "/c02", "/c05"):
            farm.codes[path] = 500
        # each of the three probed failing before they answer again (waiting for one alone raced the others' slots)
        wait_for(lambda: _states(servers[1], ("c01", "c02", "c05")) == {"down"}, timeout=30, what="c01, c02, c05 down")
        for path in ("/c01", "/c02", "/c05"):
            farm.codes.pop(path)
        wait_for(lambda: _states(servers[2], ("c01", "c02", "c05")) == {"operational"}, timeout=30, what="all back")
        wait_for(lambda: _line_writes_settled(url), timeout=30, what="the derived states written")
        chains = _chains(url)
        assert not _broken(chains), _broken(chains)  # across the join, the kill and the new leader
        duplicated = query(
            url,
            "SELECT component_key, previous, state, at, count(*) FROM transition "
            "GROUP BY component_key, previous, state, at HAVING count(*) > 1",
        )
        assert duplicated == []
        for name in ("c01", "c02", "c05"):
            flow = FLOWS[int(name[1:]) % 4]
            chain = chains[f"check:alpha/{flow}/{name}"]
            assert chain[-2:] == [("operational", "down"), ("down", "operational")], chain
        assert ("operational", "down") in chains["network:alpha"] or ("operational", "partial") in chains[
            "network:alpha"
        ], chains["network:alpha"]


def _states(server: Server, checks: tuple[str, ...]) -> set[str]:
    return {str(item["state"]) for item in server.get("/api/v1/checks").json()["checks"] if item["id"] in checks}


def _line_writes_settled(url: str) -> bool:
    rows = query(url, "SELECT state FROM component_status WHERE component_key = 'network:alpha'")
    return bool(rows and rows[0].state == "operational")
