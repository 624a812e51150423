"""Board benchmark: the CPU cost of `Board.record` (and of the snapshot the app takes after each change), in
process, without I/O, at 1,000 and 10,000 checks.

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/board_record.py [--checks 1000,10000] [--baseline DIR]

The config: ten networks sharing the checks evenly — an operator and nine care networks, four of which depend on
the operator's PEC (as the demo's depend on Viamedis). Three workloads, each timed in process CPU per result:

- `steady`: on every check in turn, a success like the previous one (the probe path's common case: no transition);
- `flapping`: one check of the operator's PEC alternating failures and successes at its thresholds, so that
  most results move the check and re-derive what it feeds (its flow, lines, network, the dependants);
- `outage`: every check of the operator failing (one result each takes it down), then every one succeeding
  twice: a large outage and its end, where each check's change used to re-derive its whole network.

After every result that changes what the board shows, the snapshot's statuses are taken as the app takes them
(`app.Services._take`): a copy of every status when the board hands out a dict, the board's own map when it hands
out an immutable one. `snapshot_us_median` is that cost alone (wall clock, the median over the changes).

With `--locations N` (N > 1), the board is one location's of N (`Board.here`): its results go to its location's
memory and each check's verdict is combined with the N - 1 others' memories (`engine/quorum.py`), all fresh and
working — the cost of a verdict by quorum in the instance that writes it.

With `--baseline DIR` (a tree holding another `monitor` package, e.g. `main`'s:
`mkdir -p /tmp/tpmon-main && git archive main monitor | tar -x -C /tmp/tpmon-main`), the same measure runs in a
child process on that code first, then on this one, and both are printed side by side. Prints ONE JSON object on
stdout, with the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.board import Board
from monitor.config import Settings
from monitor.engine.quorum import located_key
from monitor.models import CheckMemory, ComponentRef, ComponentStatus, FailureReason, ProbeResult, State

NOW = datetime(2024, 2, 12, 8, 0, tzinfo=UTC)
NETWORKS = 10
DEPENDANTS = 4  # care networks relying on the operator's PEC
FLOWS = ("droits", "pec", "facturation", "paiement")
LINES = ["pharmacie", "optique", "audio", "dentaire", "hospitalisation"]


def config(checks: int) -> Settings:
    per_network = checks // NETWORKS
    networks: dict[str, dict[str, Any]] = {}
    for n in range(NETWORKS):
        name = "operateur" if n == 0 else f"soins{n}"
        networks[name] = {
            "name": name,
            "kind": "operateur" if n == 0 else "reseau_de_soins",
            "lines": LINES,
            "depends_on": [{"network": "operateur", "flow": "pec"}] if 1 <= n <= DEPENDANTS else [],
            "checks": [
                {
                    "name": f"c{i}",
                    "flow": FLOWS[i % len(FLOWS)],
                    "kind": "tcp",
                    "host": "127.0.0.1",
                    "port": 9,
                    "interval": 60,
                    "failure_threshold": 1,
                    "success_threshold": 2,
                }
                for i in range(per_network)
            ],
        }
    return Settings.model_validate({"networks": networks})


def taker(board: Board) -> Callable[[], Mapping[str, ComponentStatus]]:
    """What the app hands the snapshot: main copied the board's dict; an immutable map is handed as it is."""
    if isinstance(board.statuses(), dict):
        return lambda: dict(board.statuses())
    return board.statuses


class Meter:
    """Results fed to the board, timed in process CPU; the snapshot taken after each change, timed apart."""

    def __init__(self, board: Board) -> None:
        self.board, self.take = board, taker(board)
        self.results = self.transitions = 0
        self.record_cpu = 0.0
        self.takes: list[int] = []  # ns, one per change shown

    def feed(self, result: ProbeResult, now: datetime) -> None:
        version = self.board.version
        start = time.process_time()
        change = self.board.record(result, now)
        self.record_cpu += time.process_time() - start
        if self.board.version != version:
            begin = time.perf_counter_ns()
            self.take()
            self.takes.append(time.perf_counter_ns() - begin)
        self.results += 1
        self.transitions += len(change.transitions)

    def figures(self) -> dict[str, Any]:
        per_result = self.record_cpu / self.results
        return {
            "results": self.results,
            "transitions": self.transitions,
            "record_us": round(per_result * 1e6, 2),
            "results_per_s": round(1 / per_result),
            "changes_shown": len(self.takes),
            "snapshot_us_median": round(statistics.median(self.takes) / 1e3, 2) if self.takes else None,
        }


def measure(checks: int, steady: int, flapping: int, outages: int, locations: int = 1) -> dict[str, Any]:
    settings = config(checks)
    now = NOW
    build = time.process_time()
    board = Board(settings, now)
    build = time.process_time() - build
    refs = [ComponentRef.for_check(n, c.flow, c.name) for n, c in settings.checks()]
    if locations > 1:  # one location of several: the others' memories fresh and working for a long while
        board.here = "l0"
        later = NOW + timedelta(days=1)
        working = CheckMemory(State.OPERATIONAL, NOW, last_result_at=later)
        board.follow({located_key(r.key, f"l{n}"): working for r in refs for n in range(1, locations)}, now)
    for ref in refs:
        board.record(ProbeResult(ref, now, 0.1, True), now)
    board.tick(now)

    def fail(ref: ComponentRef, at: datetime) -> ProbeResult:
        return ProbeResult(ref, at, 0.1, False, FailureReason.CONNECT)

    meter = Meter(board)
    for i in range(steady):
        now += timedelta(microseconds=200)
        meter.feed(ProbeResult(refs[i % len(refs)], now, 0.1, True), now)
    out: dict[str, Any] = {"checks": len(refs), "build_board_ms": round(build * 1e3, 1), "steady": meter.figures()}

    meter = Meter(board)
    flapper = ComponentRef.for_check("operateur", "pec", "c1")
    for i in range(flapping):
        now += timedelta(seconds=1)
        meter.feed(ProbeResult(flapper, now, 0.1, True) if i % 3 else fail(flapper, now), now)
    out["flapping"] = meter.figures()

    meter = Meter(board)
    operator = [ref for ref in refs if ref.network == "operateur"]
    for _ in range(outages):
        for ref in operator:
            now += timedelta(milliseconds=1)
            meter.feed(fail(ref, now), now)
        for _ in range(2):
            for ref in operator:
                now += timedelta(milliseconds=1)
                meter.feed(ProbeResult(ref, now, 0.1, True), now)
    out["outage"] = meter.figures()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", default="1000,10000", help="comma-separated numbers of checks")
    parser.add_argument("--steady", type=int, default=100_000, help="results without a transition")
    parser.add_argument("--flapping", type=int, default=3_000, help="results of one check going down and up")
    parser.add_argument("--outages", type=int, default=1, help="outages of the whole operator, each then ended")
    parser.add_argument("--locations", type=int, default=1, help="locations probing every check (quorum)")
    parser.add_argument("--baseline", type=Path, help="a tree with another monitor package: measured first")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(n) for n in args.checks.split(",")]

    def run() -> dict[str, Any]:
        import monitor

        return {
            "code": str(Path(monitor.__file__).parent),
            "locations": args.locations,
            "by_checks": [measure(n, args.steady, args.flapping, args.outages, args.locations) for n in sizes],
        }

    if args.child:
        print(json.dumps(run()))
        return
    load_before = os.getloadavg()
    runs: dict[str, Any] = {}
    if args.baseline is not None:
        command = [sys.executable, __file__, "--child", "--checks", args.checks, "--steady", str(args.steady)]
        command += ["--flapping", str(args.flapping), "--outages", str(args.outages)]
        env = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}
        child = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        runs["baseline"] = json.loads(child.stdout)
    runs["this"] = run()
    print(
        json.dumps(
            {
                "benchmark": "board_record",
                **runs,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_before": load_before,
                    "load_after": os.getloadavg(),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
