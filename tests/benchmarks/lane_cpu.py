"""Where a test lane's time goes: a pytest plugin writing, per test, its wall time, the CPU of the pytest process
and the CPU of the child processes it waited for (`tpmon serve`, `tpmon demo` and Chromium count when reaped),
then a summary per file. Used to tell a CPU-bound lane from a waiting one, and a starved one (wall >> CPU on a
loaded machine) from both.

    cd tests/benchmarks
    LANE_CPU_OUT=/tmp/first.jsonl PYTHONPATH=$PWD ../../.venv/bin/pytest -p lane_cpu ... (from the repository root)
    python lane_cpu.py /tmp/first.jsonl [more.jsonl] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

_sink: dict[str, IO[str]] = {}  # "out": the JSON-lines file, when LANE_CPU_OUT names one


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("LANE_CPU_OUT")
    if path:
        _sink["out"] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 — open for the whole session


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    yield
    out = _sink.get("out")
    if out is not None:
        row = {
            "id": item.nodeid,
            "wall": round(time.perf_counter() - wall, 3),
            "cpu": round(time.process_time() - cpu, 3),
            "children": round(_children_cpu() - children, 3),
            "load": round(os.getloadavg()[0], 2),
        }
        out.write(json.dumps(row) + "\n")


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and per-file sums (tests, wall, CPU, children's CPU), slowest file first."""
    files: dict[str, dict[str, float]] = {}
    for row in rows:
        name = row["id"].split("::")[0]
        sums = files.setdefault(name, {"tests": 0, "wall": 0.0, "cpu": 0.0, "children": 0.0})
        sums["tests"] += 1
        for key in ("wall", "cpu", "children"):
            sums[key] += row[key]
    total = {key: round(sum(row[key] for row in rows), 1) for key in ("wall", "cpu", "children")}
    loads = [row["load"] for row in rows]
    return {
        "tests": len(rows),
        **total,
        "load_min": min(loads, default=0.0),
        "load_max": max(loads, default=0.0),
        "files": {
            name: {key: round(value, 1) for key, value in sums.items()}
            for name, sums in sorted(files.items(), key=lambda item: -item[1]["wall"])
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("lanes", nargs="+", type=Path, help="JSON-lines files written by the plugin, one a lane")
    parser.add_argument("--json", type=Path, help="write the summaries there")
    args = parser.parse_args()
    summaries = {}
    for lane in args.lanes:
        rows = [json.loads(line) for line in lane.read_text(encoding="utf-8").splitlines() if line.strip()]
        summaries[lane.stem] = found = summary(rows)
        print(
            f"{lane.stem}: {found['tests']} tests, wall {found['wall']} s, CPU {found['cpu']} s, "
            f"children {found['children']} s, load {found['load_min']}-{found['load_max']}"
        )
        for name, sums in list(found["files"].items())[:25]:
            print(f"  {name:60} {sums['tests']:5.0f} {sums['wall']:8.1f} {sums['cpu']:7.1f} {sums['children']:7.1f}")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
