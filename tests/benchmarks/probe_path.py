"""Probe-path micro-benchmark: CPU per HTTP(S) probe inside one process, against the nginx farm.

Not part of the test run. Usage (≈ 1 min; needs nginx-light and trustme, like probe_engine.py):

    .venv/bin/python tests/benchmarks/probe_path.py [--probes 3000] [--concurrency 20] [--rounds 3]
    PYTHONPATH=/path/to/other/tree .venv/bin/python tests/benchmarks/probe_path.py   # another tree's probes

Runs the HTTP probe (`monitor.probes.http.probe`) on uvloop, as `tpmon serve` does, `--probes` times per round
with `--concurrency` probes in flight, on the workload's checks (`workload.py`: the portal's body condition, the
JSON and header conditions of `pec`), for HTTP then HTTPS (the farm's CA in `ca_file`), and reports the
process's CPU (user + system, every thread) per probe: the probe path alone, without the scheduler, the status
engine, the store or /metrics. nginx runs in its own process, outside the figure. `--profile FILE` runs py-spy
on this process during the rounds of `--profile-scheme` (raw folded stacks). ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from farm import farm
from meter import load_1m, say, stop
from workload import plan, tpmon_config

from monitor.config import HttpCheck, load_config
from monitor.probes import ProbeContext
from monitor.probes.clients import HttpClients
from monitor.probes.http import probe


def checks_for(base: str, ca_file: Path | None, count: int, root: Path) -> list[HttpCheck]:
    path = root / f"checks-{'https' if ca_file else 'http'}.yaml"
    path.write_text(tpmon_config(plan(count, 10), 10.0, base, ca_file), encoding="utf-8")
    settings = load_config(path, {})
    return [c for n in settings.networks.values() for c in n.checks if isinstance(c, HttpCheck)]


async def run_round(checks: list[HttpCheck], ctx: ProbeContext, probes: int, concurrency: int) -> dict[str, Any]:
    queue = iter(range(probes))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for number in queue:
            result = await probe(checks[number % len(checks)], ctx)
            failures += not result.success

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_ms_per_probe": round(cpu * 1000 / probes, 4), "wall_s": round(wall, 2), "failures": failures}


def start_spy(binary: str, output: Path, native: bool) -> subprocess.Popen[bytes]:
    """py-spy recording this very process (raw folded stacks, 200 samples/s) until stopped with SIGINT."""
    command = [binary, "record", "-p", str(os.getpid()), "-r", "200", "-f", "raw", "-o", str(output)]
    return subprocess.Popen(
        command + (["--native"] if native else []), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def measure(args: argparse.Namespace, bases: dict[str, tuple[str, Path | None]], root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with HttpClients() as clients:
        ctx = ProbeContext("bench", clients.get(), "tpmon-bench", {}, clients=clients)
        for scheme, (base, ca_file) in bases.items():
            checks = checks_for(base, ca_file, 200, root)
            await run_round(checks, ctx, 200, args.concurrency)  # warm-up: imports, contexts, caches
            spy = None
            if args.profile is not None and scheme == args.profile_scheme:
                spy = start_spy(args.py_spy, args.profile, args.native)
                await asyncio.sleep(1.0)
            rounds = [await run_round(checks, ctx, args.probes, args.concurrency) for _ in range(args.rounds)]
            if spy is not None:
                stop(spy, signal.SIGINT, 30)
            figures = [r["cpu_ms_per_probe"] for r in rounds]
            out[scheme] = {"rounds": rounds, "cpu_ms_per_probe_median": statistics.median(figures)}
            say(f"{scheme}: {figures} ms CPU per probe, load {load_1m()}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=3000, help="probes per round")
    parser.add_argument("--concurrency", type=int, default=20, help="probes in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-https", action="store_true")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the rounds of --profile-scheme")
    parser.add_argument("--profile-scheme", choices=("http", "https"), default="http")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    args = parser.parse_args()
    if min(args.probes, args.concurrency, args.rounds) <= 0:
        parser.error("counts must be positive")
    args.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    import uvloop

    import monitor

    root = Path(tempfile.mkdtemp(prefix="tpmon-probe-path-"))
    out: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "monitor_from": str(Path(monitor.__file__).parent),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "load_1m_start": load_1m(),
    }
    try:
        with farm(root / "farm") as target:
            bases: dict[str, tuple[str, Path | None]] = {"http": (target.base(False), None)}
            if not args.no_https:
                bases["https"] = (target.base(True), target.ca_file)
            out |= uvloop.run(measure(args, bases, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["load_1m_end"] = load_1m()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
