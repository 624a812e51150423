"""Probe workers (`tpmon serve --probe-workers N`): real worker processes probing real loopback targets.

Every check is probed by exactly one worker; a worker killed with SIGKILL is started again and its checks are
probed again within an interval, none twice; what the workers send is recorded once, with the right transitions;
a corrupted line never reaches further than a counter; SIGTERM stops everything within the shutdown bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from targets import Server, Target, wait_for

from monitor.app import SHUTDOWN_DEADLINE
from monitor.config import Settings, load_config
from monitor.models import ComponentRef, FailureReason, ProbeResult
from monitor.probe_pool import ProbePool, worker_count
from monitor.probe_wire import WireError, decode_batch, encode_batch, owner
from monitor.scheduler import OVERDUE_SPREAD

INTERVAL = 2.0


@pytest.fixture
def timed_target() -> Iterator[Target]:
    target = Target()
    yield target
    target.close()


NAMES = [f"c{n:02d}" for n in range(12)]


def config_text(url: str, interval: float = INTERVAL, names: list[str] = NAMES) -> str:
    checks = "\n".join(
        f'      - {{name: {name}, flow: facturation, kind: http, url: "{url}/{name}"}}' for name in names
    )
    return f"""
defaults: {{interval: {interval:g}s, timeout: {interval / 2:g}s, failure_threshold: 1, success_threshold: 1}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie]
    checks:
{checks}
"""


def load(text: str, folder: Path) -> Settings:
    """The settings of `text`, read as `tpmon serve` reads a file (with its `defaults:`)."""
    path = folder / f"tpmon-{len(list(folder.glob('tpmon-*.yaml')))}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def key(name: str) -> str:
    return ComponentRef.for_check("alpha", "facturation", name).key


@dataclass
class Recorder:
    """A pool sink that keeps what each worker sent, with when it arrived (monotonic)."""

    results: list[tuple[int, ProbeResult, float]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)

    def take(self, result: ProbeResult, worker: int) -> None:
        self.results.append((worker, result, time.monotonic()))

    def lag(self, seconds: float) -> None:
        self.lags.append(seconds)

    def missed(self, runs: int) -> None:
        pass

    def skipped(self, runs: int) -> None:
        pass

    def workers_of(self) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for worker, result, _ in self.results:
            found.setdefault(result.check.key, set()).add(worker)
        return found


async def until(condition: Any, what: str, deadline: float = 60.0) -> None:
    """Poll on the loop with a deadline (the pool's readers run on the same loop); generous: a loaded machine."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        await asyncio.sleep(0.02)


def test_every_check_has_exactly_one_owner_the_same_in_every_process() -> None:
    keys = [f"check:net{n % 7}/pec/c{n:05d}" for n in range(3000)]
    for count in (1, 2, 3, 5):
        shares = [owner(k, count) for k in keys]
        assert set(shares) == set(range(count))
        assert min(shares.count(i) for i in range(count)) > 3000 / count * 0.8  # roughly even
    # the hash is not Python's (salted per process): another process finds the same owners
    code = "import sys; from monitor.probe_wire import owner; print([owner(k, 3) for k in sys.argv[1:]])"
    other = subprocess.run([sys.executable, "-c", code, *keys[:50]], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([owner(k, 3) for k in keys[:50]])
    # a third worker takes checks only from the others, never moves one between the two first
    moved = [k for k in keys if owner(k, 3) != 2 and owner(k, 3) != owner(k, 2)]
    assert moved == []


def test_worker_count_accepts_a_number_or_auto_and_refuses_the_rest() -> None:
    assert worker_count("2") == 2
    assert worker_count("auto") == max(1, min(64, os.cpu_count() or 1))
    for bad in ("0", "65", "-1", "two", ""):
        with pytest.raises(ValueError):
            worker_count(bad)


def sample(name: str = "c00", **extra: Any) -> ProbeResult:
    base: dict[str, Any] = {
        "check": ComponentRef.parse(key(name)),
        "started_at": datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "duration_s": 0.012345,
        "success": False,
        "reason": FailureReason.HTTP_STATUS,
        "detail": "HTTP 503",
        "status_code": 503,
        "phases": {"connect": 0.001, "processing": 0.01},
        "cert_expiry": datetime(2027, 1, 1, tzinfo=UTC),
        "chain_expiry": datetime(2026, 12, 31, tzinfo=UTC),
        "slow": False,
    }
    return ProbeResult(**{**base, **extra})


KNOWN = {key(n): ComponentRef.parse(key(n)) for n in NAMES}


def test_a_batch_goes_through_the_wire_unchanged() -> None:
    results = [sample(), sample("c01", success=True, reason=None, detail="", phases={}, slow=True, cert_expiry=None)]
    batch = decode_batch(encode_batch(results, [0.25, 0.001], missed=2, skipped=1), KNOWN)
    assert batch.results == results
    assert batch.lags == [0.25, 0.001] and (batch.missed, batch.skipped, batch.bad) == (2, 1, 0)


def test_malformed_results_are_dropped_and_counted_the_others_kept() -> None:
    good = json.loads(encode_batch([sample()], []))["r"][0]
    bad_rows: list[Any] = [
        [*good[:1], "yesterday", *good[2:]],  # started_us not an integer
        [*good[:2], -5, *good[3:]],  # negative duration
        [*good[:3], 2, *good[4:]],  # ok neither 0 nor 1
        [*good[:4], "on_fire", *good[5:]],  # no such reason
        [*good[:6], 99999, *good[7:]],  # status code
        [*good[:7], [1, 2], *good[8:]],  # phases: five or none
        [*good[:1], 10**30, *good[2:]],  # beyond any datetime
        good[:5],  # too short
        "check:alpha/facturation/c00",
        [12, *good[1:]],  # key not a string
        [key("c00") + "x" * 1000, *good[1:]],  # no such check, and too long to be one
    ]
    line = json.dumps({"r": [*bad_rows, good, [key("gone"), *good[1:]]], "lag": [0.1, -1, "x"], "missed": -3})
    batch = decode_batch(line.encode(), KNOWN)
    assert batch.results == [sample()]
    assert batch.bad == len(bad_rows) + 2 + 1  # the rows, two lags, the count
    assert batch.unknown == 1  # a check removed by a reload meanwhile: not malformed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_line_is_a_batch_or_a_wire_error_never_a_crash(line: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_batch(line, KNOWN)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=4))
def test_a_corrupted_batch_is_a_batch_or_a_wire_error(at: int, junk: bytes) -> None:
    line = encode_batch([sample(), sample("c01")], [0.5])
    at = min(at, len(line) - 1)
    try:
        batch = decode_batch(line[:at] + junk + line[at + len(junk) :], KNOWN)
    except WireError:
        return
    assert len(batch.results) <= 2


async def test_each_check_by_one_worker_and_a_killed_worker_comes_back_for_its_checks_only(
    tmp_path: Path, timed_target: Target
) -> None:
    settings_ = load(config_text(timed_target.url("")), tmp_path)
    sink = Recorder()
    pool = ProbePool(2, sink, log_level="warning")
    await pool.start(settings_)
    try:
        await until(lambda: len(sink.workers_of()) == len(NAMES) and pool.alive == 2, "a result of every check")
        workers = sink.workers_of()
        assert all(len(found) == 1 for found in workers.values()), workers  # exactly one worker per check
        assert {k: found.pop() for k, found in workers.items()} == {key(n): owner(key(n), 2) for n in NAMES}
        victim_checks = [n for n in NAMES if owner(key(n), 2) == 0]
        assert victim_checks and len(victim_checks) < len(NAMES)  # both workers have a share

        victim = pool.pids()[0] if pool._slots[0].process is not None else None
        assert victim is not None and victim == pool._slots[0].process.pid  # type: ignore[union-attr]
        before = len(sink.results)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await until(lambda: pool.restarts == 1 and pool.alive == 2, "the worker started again")
        assert victim not in pool.pids()

        def back() -> float | None:
            """When the new worker's first result arrived."""
            return next((at for w, _, at in sink.results[before:] if w == 0 and at > killed_at), None)

        await until(lambda: back() is not None, "a result of the new worker")
        first_back = back()
        assert first_back is not None
        # within one interval of its return (overdue checks within OVERDUE_SPREAD), every check of its share
        await until(
            lambda: all(any(t > killed_at for t in timed_target.times(f"/{n}")) for n in victim_checks),
            "every check of the killed worker probed again",
        )
        for name in victim_checks:
            again = min(t for t in timed_target.times(f"/{name}") if t > killed_at)
            assert again <= first_back + INTERVAL + OVERDUE_SPREAD, (name, again - first_back)
        await until(lambda: time.monotonic() > first_back + 4 * INTERVAL, "four more intervals of probes")
        ended = time.monotonic()
        assert pool.restarts == 1  # the other worker was never touched
        # never probed twice: a check run by two workers (or twice by one) would be probed twice per interval; a
        # run late on a loaded machine followed by one on time may come closer than an interval, and the probe
        # under way at the kill (its result lost) is run again: hence the + 2
        for name in NAMES:
            hits = [t for t in timed_target.times(f"/{name}") if killed_at < t <= ended]
            assert len(hits) <= (ended - killed_at) / INTERVAL + 2, (name, len(hits), ended - killed_at)
        assert all(len(found) == 1 for found in sink.workers_of().values())
        assert sink.lags  # the workers' schedulers report their lag
    finally:
        await pool.stop()
    assert pool.alive == 0


async def test_a_reload_reaches_the_workers(tmp_path: Path, timed_target: Target) -> None:
    sink = Recorder()
    pool = ProbePool(2, sink, log_level="warning")
    await pool.start(load(config_text(timed_target.url(""), names=NAMES[:4]), tmp_path))
    try:
        await until(lambda: len(sink.workers_of()) == 4, "the first checks probed")
        pool.apply(load(config_text(timed_target.url(""), names=NAMES[2:8]), tmp_path))
        await until(lambda: all(timed_target.times(f"/{n}") for n in NAMES[4:8]), "the added checks probed")
        reloaded = time.monotonic()
        await until(lambda: time.monotonic() > reloaded + 2 * INTERVAL, "two intervals after the reload")
        for name in NAMES[:2]:  # removed: at most a probe under way at the reload
            assert len([t for t in timed_target.times(f"/{name}") if t > reloaded]) <= 1
    finally:
        await pool.stop()


async def test_a_worker_that_sends_garbage_never_stops_the_pool(tmp_path: Path, timed_target: Target) -> None:
    """A "worker" whose lines are corrupted: counted and dropped; the pool keeps reading, the good results count."""
    fake = tmp_path / "fake_worker.py"
    good = encode_batch([sample("c00", success=True, reason=None)], [0.01]).decode()
    fake.write_text(
        f"""
import socket, sys, time
fd = int(sys.argv[sys.argv.index("--fd") + 1])
sock = socket.socket(fileno=fd)
sock.recv(4)
bad = [b"\\x00\\xff garbage\\n", b"[1, 2, 3]\\n", b"{{\\"r\\": 5}}\\n", b"x" * (5 * 1024 * 1024) + b"\\n"]
for line in [*bad, {good!r}.encode()]:
    sock.sendall(line)
time.sleep(30)
""",
        encoding="utf-8",
    )
    sink = Recorder()
    pool = ProbePool(1, sink, log_level="warning", command=[sys.executable, str(fake)])
    await pool.start(load(config_text(timed_target.url(""), names=NAMES[:1]), tmp_path))
    try:
        await until(lambda: len(sink.results) == 1, "the good line after the bad ones")
        assert pool.bad_messages >= 4  # each bad line at least once (one too long is skipped in pieces)
        assert pool.restarts == 0 and pool.alive == 1
    finally:
        await pool.stop(grace=0.2)
    assert pool.alive == 0


def test_serve_with_workers_records_each_result_once_with_its_transitions_and_stops_in_time(
    tmp_path: Path, timed_target: Target
) -> None:
    config = tmp_path / "tpmon.yaml"
    names = NAMES[:6]
    config.write_text(config_text(timed_target.url(""), interval=2.0, names=names), encoding="utf-8")
    db = tmp_path / "tpmon.db"
    server = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{db}"}).start("--probe-workers", "2")
    try:
        wait_for(lambda: server.get("/readyz").status_code == 200, what="ready")

        def state(name: str, metrics: str) -> str | None:
            line = re.search(rf'tpmon_check_state{{check="{name}",[^}}]*state="(\w+)"}} 1\.0', metrics)
            return line.group(1) if line else None

        wait_for(
            lambda: all(state(n, server.get("/metrics").text) == "operational" for n in names), what="every check up"
        )
        timed_target.codes["/c03"] = 503
        wait_for(lambda: state("c03", server.get("/metrics").text) == "down", what="c03 down")
        metrics = server.get("/metrics").text
        assert "tpmon_probe_workers 2.0" in metrics
        assert re.search(r'tpmon_probe_success{[^}]*check="c03"[^}]*} 0\.0', metrics)
        count = next(line for line in metrics.splitlines() if line.startswith("tpmon_scheduler_lag_seconds_count"))
        assert float(count.split()[1]) > 0  # the workers' lag, exported by the main process
        # `tpmon reload` reaches the workers: an added check is probed, a removed one no longer
        config.write_text(config_text(timed_target.url(""), interval=2.0, names=[*names[1:], "c09"]), encoding="utf-8")
        done = server.run("reload", "--config", str(config), "--pid-file", str(server.pid_file))
        assert done.returncode == 0 and done.stdout.strip() == "reloaded: 1 added, 1 removed, 0 changed", done
        reloaded = time.monotonic()
        wait_for(lambda: state("c09", server.get("/metrics").text) == "operational", what="the added check probed")
        wait_for(lambda: time.monotonic() > reloaded + 2 * 2.0, what="two intervals after the reload")
        assert len([t for t in timed_target.times("/c00") if t > reloaded]) <= 1  # at most one under way
        names = names[1:]  # c00's last probe may be under way at the reload, its result dropped; c09 joined late
        assert server.proc is not None
        pids = [int(p) for p in _children(server.proc.pid)]
        assert len(pids) == 2
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        server.proc.wait(timeout=SHUTDOWN_DEADLINE + 5)
        took = time.monotonic() - signalled
        server.proc = None
    finally:
        server.stop()
    assert took < SHUTDOWN_DEADLINE
    assert not [p for p in pids if _alive(p)]  # the workers are gone too
    with sqlite3.connect(db) as conn:
        rows = dict(
            conn.execute(
                "SELECT c.key, count(*) FROM probe_result r JOIN probe_check c ON c.id = r.check_id GROUP BY c.key"
            ).fetchall()
        )
        chain = conn.execute(
            "SELECT previous, state FROM transition WHERE component_key = ? ORDER BY at, id", (key("c03"),)
        ).fetchall()
    for name in names:  # each probe recorded once: never more rows than the target saw, at most one under way lost
        hits = len(timed_target.times(f"/{name}"))
        assert hits - 1 <= rows[key(name)] <= hits, (name, rows[key(name)], hits)
    # one chain, each transition from the state the previous one left (a slow first probe may have failed)
    assert chain[0][0] == "unknown" and chain[-1] == ("operational", "down")
    assert all(before[1] == after[0] for before, after in itertools.pairwise(chain)), chain


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_a_bad_worker_count_is_one_line_naming_the_option(tmp_path: Path) -> None:
    for bad in ("0", "65", "many"):
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "serve", "--probe-workers", bad],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--probe-workers" in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_workers_on_postgresql_are_refused_in_one_line_until_composed_with_the_cluster_share(
    tmp_path: Path, postgres_url: str
) -> None:
    """Several instances share the checks on PostgreSQL; the workers' share is not cut from an instance's yet:
    refused before anything starts (the database untouched), one line naming the option."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(config_text("http://127.0.0.1:9/", interval=2.0, names=NAMES[:1]), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--probe-workers", "2"],
        cwd=tmp_path,
        env={**os.environ, "TPMON_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--probe-workers" in lines[0] and "PostgreSQL" in lines[0], done.stderr
