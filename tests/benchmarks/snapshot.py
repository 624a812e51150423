"""Snapshot benchmark: what one truth costs — taking the site's snapshot after a board change, and a /metrics
render from it — on the web benchmark's config (10 networks × 11 lines × 3 checks, web_data.config_yaml).

Not part of the test run. Usage: `.venv/bin/python tests/benchmarks/snapshot.py [--rounds 2000]`.
Prints ONE JSON object on stdout. CPU-bound and single-threaded: say the machine's load with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta

from web_data import config_yaml

from monitor.board import Board
from monitor.config import parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.metrics import Metrics
from monitor.models import ProbeResult
from monitor.snapshot import Snapshot

NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    settings = parse_config(parse_yaml(config_yaml("http://127.0.0.1:9"), "bench.yaml"), {})
    board = Board(settings, NOW)
    refs = [board.get(key).ref for key in board.statuses() if key.startswith("check:")]  # type: ignore[union-attr]
    for ref in refs:
        board.record(ProbeResult(ref, NOW, 0.05, True), NOW)
    snapshot: Snapshot | None = None
    takes, renders = [], []
    for n in range(args.rounds):
        ref = refs[n % len(refs)]
        board.record(ProbeResult(ref, NOW + timedelta(seconds=n), 0.05, n % 7 != 0), NOW + timedelta(seconds=n))
        start = time.perf_counter()
        snapshot = Snapshot(settings, NOW, board.statuses(), board.checked_at, board_version=board.version)
        takes.append(time.perf_counter() - start)
    metrics = Metrics(lambda: snapshot)
    for _ in range(max(1, args.rounds // 100)):
        start = time.perf_counter()
        metrics.render()
        renders.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "benchmark": "snapshot",
                "components": len(board.statuses()),
                "rounds": args.rounds,
                "take_snapshot_us": {
                    "median": round(statistics.median(takes) * 1e6, 1),
                    "p99": round(sorted(takes)[int(len(takes) * 0.99) - 1] * 1e6, 1),
                },
                "metrics_render_ms": {"median": round(statistics.median(renders) * 1e3, 2)},
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
            }
        )
    )


if __name__ == "__main__":
    main()
