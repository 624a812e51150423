"""Scale benchmark: `tpmon serve` with many checks (10,000 by default) — how long it takes to start, and how much
memory it holds once running, for this tree and (optionally) a baseline, in one run.

Not part of the test run. Usage (≈ 5 min per tree at 10,000 checks every 60 s; ≈ 2 min with --quick):

    .venv/bin/python tests/benchmarks/scale.py [--checks 10000] [--interval 60] [--intervals 3]
        [--scrape-every 15] [--baseline REF] [--quick] [--startup-only] [--json FILE]

With `--startup-only` each tree is stopped once ready (≈ 30 s for both trees): the start's figures alone.

With `--tracemalloc N` (this tree only) tpmon traces its allocations (N frames each) from the instant it listens
to the end of the run (SIGUSR1 twice; a `gc.collect()` before the snapshot), and the JSON gets
`tracemalloc_since_listening`: what it allocated meanwhile and still holds, top lines and files. A diagnosis
only: tracing costs memory and CPU, so the run's RSS figures are not the product's.

Starts nginx (farm.py, plain HTTP) on free loopback ports, writes the checks of workload.py (`--networks`
networks, the five flows in turn, every check its own path) at `--interval` s (60 s: 167 probes/s at 10,000
checks, a modest rate: this measures size, not speed), then `tpmon serve --no-admin` with a new SQLite
database, its default single process. With `--baseline REF`, `monitor/` of git REF is extracted with
`git archive` into a temp folder and run the same way (`python -m monitor` with that folder first on
PYTHONPATH, this venv's packages) after this tree: before/after figures of one run, on one machine load.

Measured, each from the instant the process is started (`Popen`):

- `listening_s`: the public port accepts a TCP connection; `ready_s`: `/readyz` answers 200;
- `first_probe_s`: the first probe that reached the target ended (nginx's access log, request end);
- `all_probed_s`: every check's path has been received by the target at least once (all checks have a first
  result); cross-checked at the end by /metrics (`checks_with_result`: the checks with a `tpmon_probe_success`
  line);
- RSS of the process (VmRSS, sampled every 0.5 s): at `listening_s` and at `all_probed_s`, `peak_rss_mib`
  (VmHWM, the kernel's high-water mark) and `steady_rss_mib`, the median of the samples over the last interval,
  after `--intervals` intervals (the first one included) with `/metrics` scraped every `--scrape-every` s from
  the start, as Prometheus would;
- `cpu_to_listening_s`: the CPU the process spent to listen (the start's cost, however busy the machine is);
- CPU of the process (utime + stime) to `all_probed_s`, and over the steady window;
- the machine's load (`os.getloadavg`, 1/5/15 min) before and after each run, and the CPU other processes
  took meanwhile (`host_other_cpu_pct`, 100 = one core): the machine has 2 cores shared with others.

ONE JSON object on stdout; progress on stderr. Everything started is stopped by its pid and waited for, and
the temp folder removed, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from farm import Farm, farm
from meter import cpu_seconds, extract, free_port, host_cpu, say, status_kib, stop, wait_until
from workload import plan, tpmon_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
_SUCCESS_LINE = re.compile(r"^tpmon_probe_success\{", re.M)


# `tpmon` under tracemalloc from its first SIGUSR1 (sent once it listens: the start runs at full speed, and what is
# traced is what it allocates from then on); the second writes the snapshot in $TPMON_BENCH_SNAPSHOTS. Each
# signal is acknowledged by an empty file n.done.
_TRACED = """
import gc, os, runpy, signal, sys, tracemalloc
where, taken = os.environ["TPMON_BENCH_SNAPSHOTS"], []
def on_signal(*_):
    taken.append(1)
    if len(taken) == 1:
        tracemalloc.start({frames})
    else:
        gc.collect()
        tracemalloc.take_snapshot().dump(os.path.join(where, "traced.snap"))
    open(os.path.join(where, f"{{len(taken)}}.done"), "w").close()
signal.signal(signal.SIGUSR1, on_signal)
sys.argv[0] = "tpmon"
runpy.run_module("monitor", run_name="__main__", alter_sys=True)
"""


def signal_traced(proc: subprocess.Popen[bytes], root: Path, n: int) -> None:
    """Send the traced `proc` its SIGUSR1 number `n`; wait until it is handled (a snapshot takes seconds)."""
    os.kill(proc.pid, signal.SIGUSR1)
    wait_until((root / f"{n}.done").exists, 300, f"tracemalloc signal {n}", every=0.2)


def traced(snap: Path, top: int = 40) -> dict[str, Any]:
    """What is still allocated from the allocations traced: the total, and the top lines and files."""
    import tracemalloc

    snapshot = tracemalloc.Snapshot.load(str(snap)).filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])

    def rows(key: str, n: int) -> list[dict[str, Any]]:
        return [
            {"where": str(stat.traceback), "kib": round(stat.size / 1024, 1), "blocks": stat.count}
            for stat in snapshot.statistics(key)[:n]
        ]

    deep = bool(snapshot.traces) and len(snapshot.traces[0].traceback) > 1
    return {
        "traced_mib": round(sum(t.size for t in snapshot.traces) / 2**20, 1),
        "by_line": rows("lineno", top),
        "by_file": rows("filename", top // 2),
        **({"by_traceback": rows("traceback", top // 2)} if deep else {}),
    }


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Sampler:
    """VmRSS of one pid every `every` s, with the instant of each sample (monotonic)."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            kib = status_kib(self.pid, "VmRSS")
            if kib:
                self.samples.append((time.monotonic(), kib))
            self._stopping.wait(self.every)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def since(self, start: float) -> list[int]:
        return [kib for at, kib in self.samples if at >= start]


class Arrivals:
    """Follows nginx's access log: when the first probe ended, when every expected path had been received."""

    def __init__(self, farm: Farm, paths: set[str]) -> None:
        self.log = farm.access_log
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.waiting = set(paths)
        self.first_end: float | None = None  # epoch, request end
        self.all_end: float | None = None

    def read(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        cut = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += cut
        for raw in data[:cut].splitlines():
            parts = raw.split()
            if len(parts) != 5:
                continue
            end = float(parts[0])
            if self.first_end is None or end < self.first_end:
                self.first_end = end
            uri = parts[3].decode()
            if uri in self.waiting:
                self.waiting.discard(uri)
                if not self.waiting:
                    self.all_end = end


def run_tree(
    who: str,
    farm: Farm,
    root: Path,
    *,
    checks: int,
    networks: int,
    interval: float,
    intervals: int,
    scrape_every: float,
    tree: Path | None,
    trace_frames: int = 0,
) -> dict[str, Any]:
    """One `tpmon serve` (this tree's, or `tree`'s) from its start to `intervals` intervals later; stopped after.
    `root` (emptied first) must not hold `tree`."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if tree is not None and not (tree / "monitor" / "__init__.py").exists():
        raise RuntimeError(f"no monitor package under {tree}: it would run this tree's instead")
    targets = plan(checks, networks)
    config = root / "tpmon.yaml"
    config.write_text(tpmon_config(targets, interval, farm.base(False), None), encoding="utf-8")
    db, port = root / "tpmon.db", free_port()
    env = {**os.environ, "TPMON_DATABASE_URL": f"sqlite:///{db}"}
    env.pop("TPMON_CONFIG", None)
    script = Path(sys.executable).with_name("tpmon")
    if tree is None and script.exists():
        command = [str(script)]
    else:
        command = [sys.executable, "-m", "monitor"]
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    if trace_frames:
        env["TPMON_BENCH_SNAPSHOTS"] = str(root)
        command = [sys.executable, "-c", _TRACED.format(frames=trace_frames)]
    command += ["serve", "--config", str(config), "--port", str(port), "--no-admin"]
    arrivals = Arrivals(farm, {t.path for t in targets})
    log_path = root / "serve.log"
    log = log_path.open("wb")
    load_before = load()
    host0 = host_cpu()
    say(f"{who}: {checks} http checks every {interval:g} s over {networks} networks")
    started_epoch, started = time.time(), time.monotonic()
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    sampler = Sampler(proc.pid)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, trust_env=False)
    scrapes: list[dict[str, float]] = []
    try:

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"{who} serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")

        def listening() -> bool:
            alive()
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True

        wait_until(listening, 300, f"{who} to listen", every=0.02)
        listening_s = time.monotonic() - started
        rss_listening = status_kib(proc.pid, "VmRSS")
        cpu_listening = cpu_seconds(proc.pid)
        if trace_frames:
            signal_traced(proc, root, 1)

        def ready() -> bool:
            alive()
            return client.get("/readyz", timeout=10).status_code == 200

        wait_until(ready, 300, f"{who} to be ready", every=0.05)
        ready_s = time.monotonic() - started
        end = started + intervals * interval
        next_scrape = time.monotonic()
        cpu_all_probed: float | None = None
        rss_all_probed = 0
        all_probed_s: float | None = None
        text = ""
        while time.monotonic() < end:
            alive()
            arrivals.read()
            if arrivals.all_end is not None and all_probed_s is None:
                all_probed_s = arrivals.all_end - started_epoch
                cpu_all_probed = cpu_seconds(proc.pid)
                rss_all_probed = status_kib(proc.pid, "VmRSS")
                say(f"{who}: every check probed once after {all_probed_s:.1f} s")
            if time.monotonic() >= next_scrape:
                sent = time.monotonic()
                text = client.get("/metrics").text
                scrapes.append({"at_s": round(sent - started, 1), "ms": round((time.monotonic() - sent) * 1000, 1)})
                next_scrape += scrape_every
            time.sleep(max(0.0, min(0.25, end - time.monotonic())))
        arrivals.read()
        cpu_total = cpu_seconds(proc.pid)
        peak = status_kib(proc.pid, "VmHWM")
        text = client.get("/metrics").text
        with_result = len(_SUCCESS_LINE.findall(text))
        alive()
        kept = None
        if trace_frames:
            signal_traced(proc, root, 2)
            kept = traced(root / "traced.snap")
    finally:
        client.close()
        sampler.stop()
        stop(proc, signal.SIGTERM, 60)
        log.close()
    host1 = host_cpu()
    say(f"{who}: stopped (exit {proc.returncode})")
    steady = sampler.since(end - interval) if intervals else []
    wall = time.monotonic() - started
    busy = (host1[0] - host0[0]) / max(1, host1[1] - host0[1]) * 100 * (os.cpu_count() or 1)
    first_probe_s = None if arrivals.first_end is None else arrivals.first_end - started_epoch
    return {
        "tree": who,
        "checks": checks,
        "listening_s": round(listening_s, 2),
        "ready_s": round(ready_s, 2),
        "first_probe_s": None if first_probe_s is None else round(first_probe_s, 2),
        "all_probed_s": None if all_probed_s is None else round(all_probed_s, 2),
        "unprobed_checks": len(arrivals.waiting),
        "checks_with_result": with_result,
        "cpu_to_listening_s": round(cpu_listening, 2),  # the start's cost, whatever else runs on the machine
        "rss_at_listening_mib": round(rss_listening / 1024, 1),
        "rss_at_all_probed_mib": round(rss_all_probed / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "steady_rss_mib": round(statistics.median(steady) / 1024, 1) if steady else None,
        "steady_window_s": [round(end - interval - started, 1), round(end - started, 1)] if intervals else None,
        "cpu_to_all_probed_s": None if cpu_all_probed is None else round(cpu_all_probed, 2),
        "cpu_total_s": round(cpu_total, 2),
        "scrapes": len(scrapes),
        "scrape_ms": [s["ms"] for s in scrapes],
        "load_before": load_before,
        "load_after": load(),
        "host_other_cpu_pct": round(busy - cpu_total / wall * 100, 1),
        "exit_code": proc.returncode,
        **({"tracemalloc_since_listening": kept} if trace_frames else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=60.0, help="every check's interval, seconds")
    parser.add_argument("--intervals", type=int, default=3, help="run length in intervals; the last is 'steady'")
    parser.add_argument("--scrape-every", type=float, default=15.0)
    parser.add_argument("--baseline", default=None, help="git ref run after this tree (e.g. main)")
    parser.add_argument("--quick", action="store_true", help="3,000 checks every 30 s, 2 intervals")
    parser.add_argument(
        "--startup-only", action="store_true", help="stop each tree once it is ready: the start alone (seconds)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON object to this file")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace this tree's allocations (FRAMES deep): what grew from listening to the end (a diagnosis)",
    )
    args = parser.parse_args()
    if args.quick:
        args.checks, args.interval, args.intervals = 3000, 30.0, 2
    if args.startup_only:
        args.intervals = 0
    elif args.interval < 2 * args.scrape_every or args.intervals < 2:
        parser.error("--interval must be ≥ 2 × --scrape-every and --intervals ≥ 2")
    temp = Path(tempfile.mkdtemp(prefix="tpmon-scale-"))
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    runs: list[dict[str, Any]] = []
    try:
        trees: list[tuple[str, Path | None]] = [("this", None)]
        if args.baseline:
            trees.append(("baseline", extract(args.baseline, temp / "baseline")))
        with farm(temp / "farm") as nginx:
            for who, tree in trees:
                runs.append(
                    run_tree(
                        who,
                        nginx,
                        temp / f"run-{who}",
                        checks=args.checks,
                        networks=args.networks,
                        interval=args.interval,
                        intervals=args.intervals,
                        scrape_every=args.scrape_every,
                        tree=tree,
                        trace_frames=args.tracemalloc if tree is None else 0,
                    )
                )
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(OSError):
            shutil.rmtree(temp)
    result: dict[str, Any] = {
        "benchmark": "scale",
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "revision": git("rev-parse", "HEAD"),
        "baseline": None if not args.baseline else f"{args.baseline} {git('rev-parse', args.baseline)}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "checks": args.checks,
        "networks": args.networks,
        "interval_s": args.interval,
        "intervals": args.intervals,
        "scrape_every_s": args.scrape_every,
        "targets": {"rss_mib": 200, "startup_s": 5},
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
