"""Web benchmark under a random-query storm: does a flood of `/reseaux/x?<random>` slow the other readers?

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/web_storm.py [--days 400] [--duration 10] [--storm-connections 32]

Builds the same data as tests/benchmarks/web.py (10 networks × 11 lines × 3 checks, `--days` of history), starts
`tpmon serve` as users do, then measures a normal reader (`wrk -c4` on the page, plain requests) three times:
alone, beside as many plain readers as the storm has connections (what that load costs by itself), and beside a
storm (`wrk` on the same page with a random query string on every request, so that each names a new URL).
Before issue 11 each such request rebuilt the page (0.5–0.85 s of CPU for /reseaux/viamedis over 400 days): the
storm got 66 req/s and every reader waited behind it. Prints ONE JSON object on stdout (the reader's p50/p99 in
each case, the storm's rate and statuses, the server's CPU and memory), progress on stderr. Target: the reader's
p99 beside the storm below 50 ms. Needs wrk (`apt-get install -y --no-install-recommends wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from web import build_store, cpu_seconds, parse_wrk, process_figures, say, serving, settle
from web_data import config_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared loopback target
from targets import Target

STORM = """math.randomseed(os.time())
request = function()
  return wrk.format(nil, wrk.path .. "?" .. math.random(1, 2000000000) .. "=" .. math.random(1, 2000000000))
end
"""
TARGET_P99_MS = 50.0


def wrk(url: str, connections: int, seconds: float, script: Path | None = None) -> subprocess.Popen[str]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    command += ["-s", str(script)] if script else []
    return subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def figures(proc: subprocess.Popen[str]) -> dict[str, Any]:
    output, _ = proc.communicate()
    if proc.returncode != 0 or "Requests/sec" not in output:
        raise SystemExit(f"wrk failed ({proc.returncode}): {output}")
    return parse_wrk(output)


def measure(base: str, path: str, pid: int, args: argparse.Namespace, script: Path) -> dict[str, Any]:
    url = base + path
    first = httpx.get(url, timeout=60)
    say(f"{path}: {first.status_code}, {len(first.content)} bytes")
    figures(wrk(url, args.reader_connections, args.warmup))
    cpu = cpu_seconds(pid)
    alone = figures(wrk(url, args.reader_connections, args.duration))
    alone["server_cpu_share"] = round((cpu_seconds(pid) - cpu) / args.duration, 2)
    say(f"reader alone: {alone['req_per_s']:.0f} req/s, p99 {alone['p99_ms']} ms")
    crowd = beside(url, args, None, pid)  # as many ordinary readers of the page: what load alone costs
    say(f"reader beside {args.storm_connections} plain readers: p99 {crowd['reader']['p99_ms']} ms")
    storm = beside(url, args, script, pid)
    say(f"reader beside the storm: p99 {storm['reader']['p99_ms']} ms; storm {storm['flood']['req_per_s']:.0f} req/s")
    return {
        "path": path,
        "bytes": len(first.content),
        "reader_alone": alone,
        "reader_beside_plain_crowd": crowd["reader"],
        "plain_crowd": crowd["flood"],
        "reader_beside_storm": storm["reader"],
        "storm": storm["flood"],
        "target_reader_p99_ms": TARGET_P99_MS,
        "reader_p99_met": storm["reader"]["p99_ms"] is not None and storm["reader"]["p99_ms"] < TARGET_P99_MS,
    }


def beside(url: str, args: argparse.Namespace, script: Path | None, pid: int) -> dict[str, Any]:
    """The reader measured while `storm_connections` others load the page (with random queries under `script`)."""
    cpu = cpu_seconds(pid)
    flood = wrk(url, args.storm_connections, args.duration + 1, script)
    reader = figures(wrk(url, args.reader_connections, args.duration))
    crowd = figures(flood)
    reader["server_cpu_share"] = round((cpu_seconds(pid) - cpu) / (args.duration + 1), 2)
    return {"reader": reader, "flood": crowd}


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    target = Target()
    script = root / "storm.lua"
    script.write_text(STORM, encoding="utf-8")
    try:
        config = root / "tpmon.yaml"
        config.write_text(config_yaml(target.url("")), encoding="utf-8")
        url = args.database_url or f"sqlite:///{root / 'tpmon.db'}"
        data, _ = build_store(url, config, args.days, args.workers)
        with serving(root, config, url, "auto", "auto") as (port, proc):
            settle(port, data["checks"], timeout=180)
            load = round(os.getloadavg()[0], 2)
            base = f"http://127.0.0.1:{port}"
            runs = [measure(base, path, proc.pid, args, script) for path in args.paths]
            after = process_figures(proc.pid)
    finally:
        target.close()
    return {
        "data": data,
        "runs": runs,
        "server_after": after,
        "host_load_1m_before": load,
        "host_load_1m_after": round(os.getloadavg()[0], 2),
        "wrk": {"reader_connections": args.reader_connections, "storm_connections": args.storm_connections},
        "cores": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="an EMPTY database (default: a SQLite file in a temp folder)")
    parser.add_argument("--days", type=int, default=400, help="days of history (default 400)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of a reader run before measuring")
    parser.add_argument("--reader-connections", type=int, default=4, help="the normal reader's connections")
    parser.add_argument("--storm-connections", type=int, default=32, help="the storm's connections")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the roll-up")
    parser.add_argument("--paths", nargs="+", default=["/reseaux/viamedis"], help="pages stormed and read")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        say("wrk is missing: apt-get install -y --no-install-recommends wrk")
        return 2

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    root = Path(tempfile.mkdtemp(prefix="tpmon-web-storm-"))
    try:
        result = run(args, root)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
