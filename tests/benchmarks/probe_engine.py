"""Probe-engine benchmark: tpmon against Prometheus + blackbox_exporter, on one nginx farm, in one run.

Not part of the test run. Usage (≈ 3 min with --quick, ≈ 25 min without):

    .venv/bin/python tests/benchmarks/probe_engine.py [--quick] [--json FILE] [--baseline DIR]

Needs `apt-get install -y --no-install-recommends nginx-light prometheus prometheus-blackbox-exporter` and
trustme (test extra). Starts nginx (farm.py: HTTP, HTTPS with a local trustme CA, stub_status) on free
127.0.0.1 ports, then for each contender, one after the other (A B A B), a fresh process on the same checks
(workload.py): `tpmon serve` with a new SQLite database, or Prometheus + blackbox_exporter (peer.py). With
`--baseline DIR` (a checkout of another tpmon, e.g. `git worktree add DIR main`), that tree's `tpmon serve`
(`python -m monitor` with DIR first on PYTHONPATH, this venv's packages) is a third contender, "baseline",
measured in turn with the two others (A B C A B C): before/after figures from one run, on one machine load.
With `--tpmon-workers 1,2` tpmon runs once per worker count (`tpmon serve --probe-workers N`): "tpmon" is the
first count, "tpmon-wN" each other one, measured in turn with the others; the CPU is the main process's and its
workers' together.

What tells the truth here:

- probes are counted AT THE TARGET (nginx's stub_status requests, cross-checked with its access log), never
  by the prober; "missed" is the share of the intended probes (checks × window / interval) nginx did not get;
- tpmon's /metrics is scraped every `--scrape-every` (15 s) during its window, as a Prometheus would: its CPU
  is in tpmon's figures, its duration, size and CPU are reported apart, and the stall it causes is read at the
  target (the longest time with no probe arriving while a scrape runs, beside the same span half a period
  later), besides tpmon's own `tpmon_scheduler_lag_seconds` p50/p99 over the window;
- the warm-up lasts until no check is `unknown` any more (`tpmon_check_state`: the first transitions and
  their writes are over), plus one interval; the peer's until every target has been scraped, plus one interval;
- the rate ramps (`--rates`, 100 to 2000 probes/s, each step its own processes and window, checks = rate ×
  `--ramp-interval`) and the highest rate SUSTAINED is the last step before the first one that failed twice
  in a row (the cores are shared) on any of: lag p99 < 1 s, < 1 % of the intended probes missed at the
  target, ≥ 99 % of the probes successful (every target answers 200);
- CPU is utime+stime of the contender's processes (all threads) over the window, per probe counted at the
  target; RSS is the peak (VmHWM); `load_1m_*` and `host_other_cpu_pct` say how busy the 2 shared cores
  were. Compare the ratios (tpmon / peer, baseline / peer, tpmon / baseline), measured alternately in the
  same run.

ONE JSON object on stdout; progress on stderr. Everything started is stopped by its pid and waited for, and
the temp folder removed, whatever happens (SIGTERM or Ctrl-C included).
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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import peer
from farm import Arrivals, Farm, farm, longest_gap
from meter import Window, cpu_seconds, free_port, load_1m, peak_rss_mib, say, stop, wait_until
from workload import Target, intended_probes, plan, timeout_for, tpmon_config

LAG_P99_LIMIT_S = 1.0
MISSED_LIMIT = 0.01
SUCCESS_FLOOR = 0.99
RATES = "100,200,300,400,500,750,1000,1500,2000"  # probes/s of the ramp
QUICK_RATES = "200,400"

_LAG = re.compile(r'^tpmon_scheduler_lag_seconds_(bucket|count|sum)(?:\{le="([^"]+)"\})? (\S+)$', re.M)
_PROBES = re.compile(r'^tpmon_probes_total\{[^}]*result="([^"]+)"\} (\S+)$', re.M)
_SCHED = re.compile(r"^tpmon_scheduler_(missed|coalesced)_runs_total (\S+)$", re.M)
_STATE = re.compile(r'^tpmon_check_state\{[^}]*state="([a-z_]+)"\} 1\.0$', re.M)


@dataclass
class Scrape:
    """What the benchmark reads of one GET /metrics (with a few regexes: it shares the 2 cores with tpmon)."""

    sent: float  # epoch
    done: float
    size: int
    probes: float
    failures: float
    missed: float
    coalesced: float
    lag_buckets: dict[float, float]
    lag_count: float
    lag_sum: float
    states: dict[str, int]


def scrape(client: httpx.Client) -> Scrape:
    sent = time.time()
    text = client.get("/metrics").text
    done = time.time()
    probes = failures = lag_count = lag_sum = 0.0
    buckets: dict[float, float] = {}
    for kind, le, value in _LAG.findall(text):
        if kind == "bucket":
            buckets[float(le)] = float(value)
        elif kind == "count":
            lag_count = float(value)
        else:
            lag_sum = float(value)
    for result, value in _PROBES.findall(text):
        probes += float(value)
        if result != "success":
            failures += float(value)
    runs = {kind: float(value) for kind, value in _SCHED.findall(text)}
    states: dict[str, int] = {}
    for state in _STATE.findall(text):
        states[state] = states.get(state, 0) + 1
    return Scrape(
        sent,
        done,
        len(text),
        probes,
        failures,
        runs.get("missed", 0.0),
        runs.get("coalesced", 0.0),
        buckets,
        lag_count,
        lag_sum,
        states,
    )


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of cumulative `buckets` (upper bound → count), interpolated linearly in its bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bound: report that bound (a lower limit)
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def tpmon_command(baseline: Path | None = None) -> list[str]:
    """`tpmon` as installed beside this interpreter (the console script), else `python -m monitor`; the
    baseline's always `python -m monitor` (its tree comes first on PYTHONPATH)."""
    script = Path(sys.executable).with_name("tpmon")
    return [str(script)] if script.exists() and baseline is None else [sys.executable, "-m", "monitor"]


def has_admin_listener(baseline: Path | None) -> bool:
    """Whether `tpmon serve` of this tree (or of the baseline's) runs the operators' listener, which
    `--no-admin` leaves out (a baseline older than that listener does not know the option)."""
    if baseline is None:
        return True
    cli = baseline / "monitor" / "cli.py"
    return cli.exists() and "--no-admin" in cli.read_text(encoding="utf-8")


def worker_pids(pid: int) -> list[int]:
    """The child processes of `pid` (tpmon's probe workers)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def database_figures(db: Path) -> dict[str, Any]:
    """Bytes per stored result: the whole file (main + WAL + SHM) over the rows, and the pages of the results'
    tables and indexes (probe_result, and probe_check where it exists), as the database is when tpmon stops."""
    size = sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = int(conn.execute("SELECT count(*) FROM probe_result").fetchone()[0])
        table: int | None = None
        with contextlib.suppress(sqlite3.Error):  # dbstat is compiled in on Debian, maybe not elsewhere
            table = int(
                conn.execute(
                    "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master"
                    " WHERE tbl_name IN ('probe_result', 'probe_check'))"
                ).fetchone()[0]
            )
    return {
        "db_rows": rows,
        "db_bytes_per_result": round(size / rows, 1) if rows else None,
        "db_table_bytes_per_result": round(table / rows, 1) if rows and table else None,
    }


def run_tpmon(
    farm: Farm,
    targets: list[Target],
    *,
    interval: float,
    https: bool,
    window: float,
    scrape_every: float,
    root: Path,
    profile: Path | None = None,
    baseline: Path | None = None,
    workers: int = 1,
    who: str = "tpmon",
) -> dict[str, Any]:
    """One measured window of `tpmon serve` (the baseline's with `baseline`; with `workers` > 1, its probe workers)
    on `targets`, scraped every `scrape_every` s; stops it before returning."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    config = root / "tpmon.yaml"
    base = farm.base(https)
    config.write_text(tpmon_config(targets, interval, base, farm.ca_file if https else None), encoding="utf-8")
    db, port = root / "tpmon.db", free_port()
    env = {**os.environ, "TPMON_DATABASE_URL": f"sqlite:///{db}"}
    env.pop("TPMON_CONFIG", None)
    if baseline is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(baseline), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [*tpmon_command(baseline), "serve", "--config", str(config), "--port", str(port)]
    if has_admin_listener(baseline):
        command.append("--no-admin")  # the public listener alone is measured
    if workers > 1:
        command += ["--probe-workers", str(workers)]
    who = who if baseline is None else "baseline"
    log_path = root / "serve.log"
    log = log_path.open("wb")
    load_before = load_1m()
    say(f"{who}: {len(targets)} {'https' if https else 'http'} checks every {interval:g} s")
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False)
    spy: subprocess.Popen[bytes] | None = None
    try:

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"{who} serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")

        def ready() -> bool:
            alive()
            return client.get("/readyz", timeout=5).status_code == 200

        started = time.monotonic()
        wait_until(ready, 180, "tpmon serve to be ready", every=0.2)
        ready_s = time.monotonic() - started
        settled, states = False, {}
        deadline = time.monotonic() + 5 * interval + 60
        while time.monotonic() < deadline:  # the first state changes: unknown → operational (success_threshold)
            alive()
            states = scrape(client).states
            if sum(states.values()) >= len(targets) and not states.get("unknown"):
                settled = True
                break
            time.sleep(max(1.0, interval / 2))
        if not settled:
            say(f"{who}: still {states.get('unknown')} unknown checks; measuring anyway")
        time.sleep(interval)
        settle_s = time.monotonic() - started
        count = max(1, round(window / scrape_every))
        window = count * scrape_every
        spy_binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if profile is not None and Path(spy_binary).exists():
            spy = subprocess.Popen(
                [
                    spy_binary,
                    "record",
                    "-p",
                    str(proc.pid),
                    "-r",
                    "100",
                    "--nonblocking",
                    "-f",
                    "raw",
                    "-d",
                    str(int(window)),
                    "-o",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
        pids = [proc.pid, *worker_pids(proc.pid)]  # the probe workers are started before the window
        if workers > 1 and len(pids) != workers + 1:
            say(f"{who}: {len(pids) - 1} probe workers running, {workers} expected")
        meter = Window({"tpmon": pids, "nginx": farm.pids()})
        mark0 = farm.mark()
        meter.start()
        main0 = cpu_seconds(proc.pid)  # the main process alone (with workers: what recording costs)
        begin = time.monotonic()
        say(f"{who}: measuring {window:g} s, /metrics every {scrape_every:g} s")
        scrapes: list[tuple[Scrape, float]] = []  # (scrape, tpmon CPU seconds spent meanwhile)
        for k in range(count):
            time.sleep(max(0.0, begin + k * scrape_every - time.monotonic()))
            cpu0 = cpu_seconds(proc.pid)  # the scrape's cost is the main process's
            got = scrape(client)
            scrapes.append((got, cpu_seconds(proc.pid) - cpu0))
        time.sleep(max(0.0, begin + window - time.monotonic()))
        figures = meter.stop()
        main_cpu = cpu_seconds(proc.pid) - main0
        mark1 = farm.mark()
        last = scrape(client)  # closes the lag histogram's window (its own stall falls after it)
        rss = peak_rss_mib(pids)
        alive()
    finally:
        client.close()
        if spy is not None:
            stop(spy, signal.SIGINT, 30)
        stop(proc, signal.SIGTERM, 60)
        log.close()
    say(f"{who}: stopped (exit {proc.returncode})")
    arrivals = farm.arrivals(mark0, mark1)
    first = scrapes[0][0]
    lag = {b: last.lag_buckets.get(b, 0.0) - c for b, c in first.lag_buckets.items()}
    lag_count = last.lag_count - first.lag_count
    p50, p99 = quantile(lag, 0.5), quantile(lag, 0.99)
    probes_counted = last.probes - first.probes
    cpu = figures["procs"]["tpmon"]["cpu_s"]
    wall = mark1.at - mark0.at
    # the scrapes' CPU: what tpmon spent while each ran, less what its probes would have cost meanwhile
    during = sum(c for _, c in scrapes)
    busy = sum(s.done - s.sent for s, _ in scrapes)
    base_rate = (cpu - during) / max(1e-9, figures["wall_s"] - busy)
    scrape_cpu = max(0.0, during - base_rate * busy)
    half = scrape_every / 2
    stalls = [longest_gap(arrivals.times, s.sent, s.done) for s, _ in scrapes]
    calm = [longest_gap(arrivals.times, s.sent + half, s.done + half) for s, _ in scrapes if s.done + half < mark1.at]
    return {
        "contender": who,
        "probe_workers": workers,
        "settled": settled,
        "ready_s": round(ready_s, 1),
        "settle_s": round(settle_s, 1),
        "cpu_s": cpu,
        "cpu_share_of_one_core": round(cpu / figures["wall_s"], 3),
        "cpu_main_process_s": round(main_cpu, 3),
        "cpu_scrapes_s": round(scrape_cpu, 3),
        "peak_rss_mib": round(rss, 1),
        "arrivals": arrivals,
        "window_s": round(wall, 3),
        "meter": figures,
        "lag_p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "lag_p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "lag_mean_ms": round((last.lag_sum - first.lag_sum) / lag_count * 1000, 2) if lag_count else None,
        "lag_source": "tpmon_scheduler_lag_seconds over the window (its scrapes included)",
        "success_ratio": round(1 - (last.failures - first.failures) / probes_counted, 4) if probes_counted else None,
        "probes_by_tpmon": int(probes_counted),
        "missed_runs": int(last.missed - first.missed),
        "coalesced_runs": int(last.coalesced - first.coalesced),
        "scrapes": {
            "count": len(scrapes),
            "bytes": scrapes[-1][0].size,
            "duration_ms": [round((s.done - s.sent) * 1000, 1) for s, _ in scrapes],
            "cpu_ms_each": round(scrape_cpu * 1000 / len(scrapes), 1),
            "target_stall_ms": [round(g * 1000, 1) for g in stalls],
            "target_gap_between_scrapes_ms": [round(g * 1000, 1) for g in calm],
        },
        "intended_in_window": intended_probes(len(targets), interval, wall),
        "load_1m_before_start": load_before,
        "profiled": spy is not None,
        **database_figures(db),
    }


def judge(result: dict[str, Any], checks: int, interval: float, https: bool) -> dict[str, Any]:
    """Put the target's count in the figures and decide whether the rate was sustained."""
    arrivals: Arrivals = result.pop("arrivals")
    intended = result["intended_in_window"]
    received = arrivals.stub
    missed = max(0.0, 1 - received / intended)
    nginx_cpu = result["meter"]["procs"]["nginx"]["cpu_s"]
    lag = result.get("lag_p99_ms")
    success = result.get("success_ratio")
    failed = []
    if lag is None or lag >= LAG_P99_LIMIT_S * 1000:
        failed.append("lag_p99")
    if missed >= MISSED_LIMIT:
        failed.append("missed")
    if success is None or success < SUCCESS_FLOOR:
        failed.append("success")
    return {
        "contender": result.pop("contender"),
        "scheme": "https" if https else "http",
        "checks": checks,
        "interval_s": interval,
        "intended_per_s": round(checks / interval, 2),
        "target_per_s": round(received / result["window_s"], 2),
        "target_requests": received,
        "target_logged": len(arrivals.times),
        "target_statuses": arrivals.statuses,
        "checks_probed_share": round(len(arrivals.uris) / checks, 4),
        "intended_in_window": round(intended, 1),
        "missed_share": round(missed, 4),
        "cpu_ms_per_probe": round(result["cpu_s"] * 1000 / received, 3) if received else None,
        "cpu_ms_per_probe_without_scrapes": (
            round((result["cpu_s"] - result["cpu_scrapes_s"]) * 1000 / received, 3)
            if received and "cpu_scrapes_s" in result
            else None
        ),
        "cpu_main_ms_per_probe": (
            round(result["cpu_main_process_s"] * 1000 / received, 3)
            if received and "cpu_main_process_s" in result
            else None
        ),
        "nginx_cpu_ms_per_request": round(nginx_cpu * 1000 / received, 3) if received else None,
        "sustained": not failed,
        "failed": failed,
        **result,
    }


def pair_ratio(runs: list[dict[str, Any]], key: str, mine: str = "tpmon", theirs: str = "peer") -> dict[str, Any]:
    """`mine` / `theirs` (contenders; "peer" is Prometheus + blackbox_exporter) for `key`: of the means, and
    of each pair measured back to back."""

    def of(who: str) -> list[Any]:
        return [r[key] for r in runs if _role(r["contender"]) == who and r.get(key) is not None]

    a, b = of(mine), of(theirs)
    if not a or not b:
        return {mine: a, theirs: b, "ratio": None}
    pairs = [round(x / y, 3) for x, y in zip(a, b, strict=False) if y]
    return {mine: a, theirs: b, "ratio": round(statistics.mean(a) / statistics.mean(b), 3), "pair_ratios": pairs}


def _role(contender: str) -> str:
    return contender if contender.startswith("tpmon") or contender == "baseline" else "peer"


def ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The block of one rate and scheme: its runs, tpmon / peer, and with a baseline, baseline / peer and
    tpmon / baseline (CPU with and without the /metrics scrapes)."""
    found = {
        "runs": runs,
        "cpu_ms_per_probe": pair_ratio(runs, "cpu_ms_per_probe"),
        "peak_rss_mib": pair_ratio(runs, "peak_rss_mib"),
    }
    for who in sorted({r["contender"] for r in runs if r["contender"].startswith("tpmon-")}):
        found[f"{who}_cpu_ms_per_probe"] = pair_ratio(runs, "cpu_ms_per_probe", who)
        found[f"{who}_cpu_ms_per_probe_vs_tpmon"] = pair_ratio(runs, "cpu_ms_per_probe", who, "tpmon")
    if any(r["contender"] == "baseline" for r in runs):
        found |= {
            "baseline_cpu_ms_per_probe": pair_ratio(runs, "cpu_ms_per_probe", "baseline"),
            "cpu_ms_per_probe_vs_baseline": pair_ratio(runs, "cpu_ms_per_probe", "tpmon", "baseline"),
            "cpu_ms_per_probe_without_scrapes_vs_baseline": pair_ratio(
                runs, "cpu_ms_per_probe_without_scrapes", "tpmon", "baseline"
            ),
            "db_bytes_per_result_vs_baseline": pair_ratio(runs, "db_bytes_per_result", "tpmon", "baseline"),
        }
    return found


def versions() -> dict[str, str]:
    from importlib.metadata import version

    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip()
    found = {"tpmon": version("tpmon"), "python": platform.python_version(), "nginx": nginx}
    with contextlib.suppress(OSError):
        found |= peer.versions()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, short windows (≈ 3 min)")
    parser.add_argument("--checks", type=int, help="checks of the 100/s runs (default 1000; quick 200)")
    parser.add_argument("--interval", type=float, help="their interval, s (default 10; quick 2)")
    parser.add_argument("--window", type=float, help="measured seconds of the 100/s runs (default 60; quick 15)")
    parser.add_argument("--repeats", type=int, help="A B pairs at 100/s, per scheme (default 2; quick 1)")
    parser.add_argument("--rates", help=f"ramp, probes/s, comma-separated (default {RATES})")
    parser.add_argument("--ramp-interval", type=float, help="interval of the ramp's checks, s (default 5; quick 2)")
    parser.add_argument("--ramp-window", type=float, help="measured seconds of each ramp step (default 30; quick 15)")
    parser.add_argument("--scrape-every", type=float, default=15.0, help="tpmon's /metrics scrape period, s")
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--no-https", action="store_true", help="skip the HTTPS runs at 100/s")
    parser.add_argument("--no-ramp", action="store_true")
    parser.add_argument("--no-base", action="store_true", help="skip the 100/s runs (the ramp only)")
    parser.add_argument("--no-peer", action="store_true", help="tpmon alone (no Prometheus + blackbox_exporter)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of tpmon's first HTTP 100/s window")
    parser.add_argument("--baseline", type=Path, help="another tpmon tree (e.g. main), measured as a contender too")
    parser.add_argument("--profile-baseline", type=Path, help="the same profile, of the baseline")
    parser.add_argument("--json", type=Path, help="also write the JSON object to this file")
    parser.add_argument(
        "--tpmon-workers",
        default="1",
        help="tpmon's --probe-workers, comma-separated: one contender per count (default 1: in-process probes)",
    )
    args = parser.parse_args()
    quick = args.quick
    checks = args.checks or (200 if quick else 1000)
    interval = args.interval or (2.0 if quick else 10.0)
    window = args.window or (15.0 if quick else 60.0)
    repeats = args.repeats or (1 if quick else 2)
    rates = [float(r) for r in (args.rates or (QUICK_RATES if quick else RATES)).split(",")]
    ramp_interval = args.ramp_interval or (2.0 if quick else 5.0)
    ramp_window = args.ramp_window or (15.0 if quick else 30.0)
    if min(checks, interval, window, repeats, ramp_interval, ramp_window, args.scrape_every, *rates) <= 0:
        parser.error("counts, rates, intervals and windows must be positive")
    try:
        worker_counts = [int(n) for n in args.tpmon_workers.split(",")]
    except ValueError:
        parser.error(f"--tpmon-workers {args.tpmon_workers!r}: comma-separated numbers of workers")
    if not worker_counts or min(worker_counts) < 1 or len(set(worker_counts)) != len(worker_counts):
        parser.error("--tpmon-workers: distinct counts, each at least 1")
    mine = {("tpmon" if i == 0 else f"tpmon-w{n}"): n for i, n in enumerate(worker_counts)}
    if args.baseline is not None and not (args.baseline / "monitor" / "__init__.py").is_file():
        parser.error(f"--baseline {args.baseline}: no monitor/ package there")

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: children stopped, temp folder removed

    signal.signal(signal.SIGTERM, terminate)
    contenders = [*mine, *(["baseline"] if args.baseline else []), *([] if args.no_peer else ["peer"])]
    root = Path(tempfile.mkdtemp(prefix="tpmon-bench-"))
    started, load0 = time.monotonic(), load_1m()
    out: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "tpmon_workers": mine,
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_1m_start": load0,
        "criteria": {
            "lag_p99_ms_below": LAG_P99_LIMIT_S * 1000,
            "missed_share_below": MISSED_LIMIT,
            "success_ratio_at_least": SUCCESS_FLOOR,
        },
    }
    try:
        out["versions"] = versions()
        with farm(root / "farm") as target_farm:

            def measure(who: str, targets: list[Target], every: float, https: bool, span: float) -> dict[str, Any]:
                name = f"{who}-{len(targets)}-{every:g}-{'https' if https else 'http'}"
                wanted = {"tpmon": args.profile, "baseline": args.profile_baseline}.get(who)
                profile = wanted if not https and every == interval else None
                if who in mine or who == "baseline":
                    got = run_tpmon(
                        target_farm,
                        targets,
                        interval=every,
                        https=https,
                        window=span,
                        scrape_every=args.scrape_every,
                        root=root / name,
                        profile=profile,
                        baseline=args.baseline if who == "baseline" else None,
                        workers=mine.get(who, 1),
                        who=who,
                    )
                    if profile is not None and who == "tpmon":
                        args.profile = None  # only the first one
                    elif profile is not None:
                        args.profile_baseline = None
                else:
                    got = peer.run(
                        target_farm,
                        targets,
                        interval=every,
                        timeout=timeout_for(every),
                        https=https,
                        window=span,
                        root=root / name,
                    )
                shutil.rmtree(root / name, ignore_errors=True)
                verdict = judge(got, len(targets), every, https)
                say(
                    f"{who} {verdict['scheme']} {verdict['intended_per_s']:g}/s: target {verdict['target_per_s']}/s, "
                    f"{verdict['cpu_ms_per_probe']} ms CPU/probe, lag p99 {verdict['lag_p99_ms']} ms, "
                    f"RSS {verdict['peak_rss_mib']} MiB, load {load_1m()}, "
                    f"others {verdict['meter']['host_other_cpu_pct']} % CPU, "
                    f"{'sustained' if verdict['sustained'] else 'NOT sustained ' + ','.join(verdict['failed'])}"
                )
                return verdict

            base_targets = plan(checks, args.networks)
            for https in [] if args.no_base else [False] if args.no_https else [False, True]:
                runs = [
                    measure(who, base_targets, interval, https, window) for _ in range(repeats) for who in contenders
                ]
                out[f"at_{checks / interval:g}_per_s_{'https' if https else 'http'}"] = ratios(runs)
            if not args.no_ramp:
                out["ramp"] = ramp(measure, contenders, rates, ramp_interval, ramp_window, args.networks)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["load_1m_end"] = load_1m()
    out["duration_s"] = round(time.monotonic() - started)
    out["summary"] = summary(out, checks / interval)
    text = json.dumps(out, ensure_ascii=False)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def ramp(
    measure: Callable[[str, list[Target], float, bool, float], dict[str, Any]],
    contenders: list[str],
    rates: list[float],
    interval: float,
    window: float,
    networks: int,
) -> dict[str, Any]:
    """Each rate in turn (the order of the contenders alternating), each contender until it fails a step twice."""
    steps: list[dict[str, Any]] = []
    highest: dict[str, float | None] = dict.fromkeys(contenders)
    going = set(contenders)
    for number, rate in enumerate(rates):
        if not going:
            break
        targets = plan(round(rate * interval), networks)
        order = contenders if number % 2 == 0 else contenders[::-1]
        for who in order:
            if who not in going:
                continue
            verdict = measure(who, targets, interval, False, window)
            steps.append(verdict)
            if not verdict["sustained"]:  # the cores are shared: a step fails when it fails twice in a row
                verdict = measure(who, targets, interval, False, window)
                verdict["retry"] = True
                steps.append(verdict)
            if verdict["sustained"]:
                highest[who] = rate
            else:
                going.discard(who)
    return {
        "interval_s": interval,
        "rates": rates,
        "steps": steps,
        "highest_sustained_per_s": highest,
        "beyond_the_last_rate": sorted(going),  # sustained every rate tried: the figure is a lower bound
    }


def summary(out: dict[str, Any], base_rate: float) -> dict[str, Any]:
    """The key figures and the tpmon / peer ratios (and, with a baseline, its own and tpmon / baseline)."""
    found: dict[str, Any] = {}
    for scheme in ("http", "https"):
        block = out.get(f"at_{base_rate:g}_per_s_{scheme}")
        if block is None:
            continue
        found[f"cpu_ms_per_probe_{scheme}"] = block["cpu_ms_per_probe"]
        found[f"cpu_ms_per_probe_without_scrapes_{scheme}"] = pair_ratio(
            block["runs"], "cpu_ms_per_probe_without_scrapes"
        )
        for key in (
            "baseline_cpu_ms_per_probe",
            "cpu_ms_per_probe_vs_baseline",
            "cpu_ms_per_probe_without_scrapes_vs_baseline",
        ):
            if key in block:
                found[f"{key}_{scheme}"] = block[key]
        if scheme == "http":
            found["peak_rss_mib"] = block["peak_rss_mib"]
            tpmon_runs = [r for r in block["runs"] if r["contender"] == "tpmon"]
            found["tpmon_scrape"] = [
                {
                    "bytes": r["scrapes"]["bytes"],
                    "duration_ms": r["scrapes"]["duration_ms"],
                    "cpu_ms_each": r["scrapes"]["cpu_ms_each"],
                    "target_stall_ms": r["scrapes"]["target_stall_ms"],
                    "target_gap_between_scrapes_ms": r["scrapes"]["target_gap_between_scrapes_ms"],
                    "lag_p50_ms": r["lag_p50_ms"],
                    "lag_p99_ms": r["lag_p99_ms"],
                }
                for r in tpmon_runs
            ]
            found["db_bytes_per_result"] = [r["db_bytes_per_result"] for r in tpmon_runs]
            found["db_table_bytes_per_result"] = [r["db_table_bytes_per_result"] for r in tpmon_runs]
            baseline_runs = [r for r in block["runs"] if r["contender"] == "baseline"]
            if baseline_runs:
                found["baseline_db_bytes_per_result"] = [r["db_bytes_per_result"] for r in baseline_runs]
                found["baseline_db_table_bytes_per_result"] = [r["db_table_bytes_per_result"] for r in baseline_runs]
    if "ramp" in out:
        highest = out["ramp"]["highest_sustained_per_s"]
        mine, theirs = highest.get("tpmon"), highest.get("peer")
        found["highest_sustained_per_s"] = {
            **highest,
            "ratio": round(mine / theirs, 3) if mine and theirs else None,
            "lower_bounds": out["ramp"]["beyond_the_last_rate"],
        }
    found["load_1m"] = [out["load_1m_start"], out.get("load_1m_end")]
    found["cores"] = out["cores"]
    return found


if __name__ == "__main__":
    sys.exit(main())
