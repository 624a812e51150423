"""Probe-engine benchmark: `tpmon serve` probing N http(s) checks of a local nginx farm, measured from outside.

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/probe_engine.py --checks 1000 --interval 10 --duration 60 [--https]

Starts nginx (Debian's, as a child process with its own config under a temp folder) on a free
127.0.0.1 port, writes a tpmon config of N http checks spread over networks and flows (each check its
own path on the farm), starts `tpmon serve` as users do (a subprocess, a fresh SQLite database), waits
until it is ready, lets one interval and its jitter pass (warm-up, excluded), then measures
`--duration` seconds and prints ONE JSON object on stdout. Progress goes to stderr. Everything it
starts is stopped and waited for, and the temp folder removed, whatever happens. Needs nginx
(`apt-get install -y --no-install-recommends nginx`) and, for --https, trustme.

Figures: probes come from the delta of `tpmon_probes_total` between two scrapes of /metrics; the
scheduling lag percentiles from the delta of the `tpmon_scheduler_lag_seconds` buckets over the same
window (linear interpolation inside a bucket). The lag includes what the first scrape itself causes: a
full /metrics of 1000 checks holds the event loop for a few hundred ms, as a Prometheus scrape would.
CPU from utime+stime of /proc/<pid>/stat, read just after the first scrape and just before the last
(the scrapes themselves are not counted; the cost of one is reported apart as `scrape_cpu_ms`); peak
RSS from VmHWM; database bytes per result from the SQLite files (main + WAL + SHM) after tpmon has
stopped and flushed, over the rows of probe_result. `host_load_1m` tells how busy the machine was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

FLOWS = ("portail_ps", "droits", "pec", "facturation", "paiements")
LINES = ("pharmacie", "optique", "dentaire", "hospitalisation")
PORTAL_BODY = "<!doctype html><title>Portail</title><h1>Connexion</h1><form>identifiant</form>"
PEC_BODY = '{"status": "UP", "components": [{"name": "pec", "state": "running"}]}'
PLAIN_BODY = "OK\n"
JITTER = 0.1  # tpmon's default share of each interval
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[probe_engine] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if condition():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def stop(proc: subprocess.Popen[bytes] | None, sig: int, grace: float) -> None:
    """Signal `proc` (by its pid), wait for it, kill it past `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        say(f"pid {proc.pid} did not stop within {grace:g} s: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


# --- the farm ---------------------------------------------------------------------------------------
def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise SystemExit("nginx is missing: apt-get install -y --no-install-recommends nginx")
    return found


def nginx_config(root: Path, port: int, https: bool) -> str:
    tls = ""
    if https:
        tls = f"""
        ssl_certificate {root / "server.pem"};
        ssl_certificate_key {root / "server.pem"};
        ssl_protocols TLSv1.2 TLSv1.3;"""
    temp = "\n    ".join(
        f"{name}_temp_path {root / 'nginx' / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {root / "nginx" / "nginx.pid"};
error_log {root / "nginx" / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_timeout 5s;
    {temp}
    server {{
        listen 127.0.0.1:{port}{" ssl" if https else ""};
        server_name localhost;{tls}
        location ~ ^/[^/]+/portail_ps/ {{ default_type text/html; return 200 '{PORTAL_BODY}'; }}
        location ~ ^/[^/]+/pec/ {{ default_type application/json; return 200 '{PEC_BODY}'; }}
        location / {{ default_type text/plain; return 200 '{PLAIN_BODY}'; }}
    }}
}}
"""


def make_certificates(root: Path) -> Path:
    import trustme

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca_file


@contextlib.contextmanager
def farm(root: Path, https: bool) -> Iterator[str]:
    """nginx on a free loopback port; yields its base URL."""
    (root / "nginx").mkdir()
    port = free_port()
    config = root / "nginx" / "nginx.conf"
    config.write_text(nginx_config(root, port, https), encoding="utf-8")
    log = (root / "nginx" / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(root / "nginx"), "-c", str(config), "-e", str(root / "nginx" / "error.log")],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    base = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited {proc.returncode}: {(root / 'nginx' / 'error.log').read_text()}")
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_until(answers, 15, "nginx")
        say(f"nginx farm at {base} (pid {proc.pid})")
        yield base
    finally:
        stop(proc, signal.SIGTERM, 10)  # TERM: fast shutdown of master and workers
        log.close()


# --- tpmon --------------------------------------------------------------------------------------------
def tpmon_config(checks: int, interval: float, networks: int, base: str, ca_file: Path | None) -> str:
    timeout = min(5.0, interval / 2)  # the config wants timeout < interval and degraded_after < timeout
    out = [
        "stabilization: 30m",
        f"jitter: {JITTER:g}",
        "max_concurrency: 64",
        f"defaults: {{interval: {interval:g}s, timeout: {timeout:g}s, failure_threshold: 3, success_threshold: 2}}",
        "networks:",
    ]
    extra = f', ca_file: "{ca_file}"' if ca_file is not None else ""
    per_network = [checks // networks + (1 if i < checks % networks else 0) for i in range(networks)]
    number = 0
    for n, count in enumerate(per_network):
        if count == 0:
            continue
        name = f"net{n:02d}"
        out += [
            f"  {name}:",
            f"    name: Network {n:02d}",
            f"    kind: {'operateur' if n % 2 == 0 else 'reseau_de_soins'}",
            f"    lines: [{', '.join(LINES)}]",
            "    checks:",
        ]
        for i in range(count):
            flow = FLOWS[i % len(FLOWS)]
            check = f"c{number:05d}"
            number += 1
            url = f"{base}/{name}/{flow}/{check}"
            if flow == "portail_ps":
                cond = f', degraded_after: {timeout / 2:g}s, conditions: {{status: [200], body_contains: "Connexion"}}'
            elif flow == "pec":
                cond = (
                    ", conditions: {status: ['2xx'], json: [{path: $.status, equals: UP}],"
                    " headers: [{name: Content-Type, equals: application/json}]}"
                )
            else:
                cond = ""
            out.append(f'      - {{name: {check}, flow: {flow}, kind: http, url: "{url}"{extra}{cond}}}')
    return "\n".join(out) + "\n"


def tpmon_command() -> list[str]:
    """`tpmon` as installed beside this interpreter (the console script), else `python -m monitor`."""
    script = Path(sys.executable).with_name("tpmon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


@dataclass
class Scrape:
    at: float  # monotonic, when the request was sent: tpmon reads the counters first, then renders
    probes: float
    failures: float
    missed: float
    coalesced: float
    lag_buckets: dict[float, float]
    lag_count: float
    lag_sum: float


def scrape(port: int) -> Scrape:
    sent = time.monotonic()
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    probes = failures = missed = coalesced = lag_count = lag_sum = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tpmon_probes_total":
                probes += sample.value
                if sample.labels.get("result") != "success":
                    failures += sample.value
            elif sample.name == "tpmon_scheduler_missed_runs_total":
                missed = sample.value
            elif sample.name == "tpmon_scheduler_coalesced_runs_total":
                coalesced = sample.value
            elif sample.name == "tpmon_scheduler_lag_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == "tpmon_scheduler_lag_seconds_count":
                lag_count = sample.value
            elif sample.name == "tpmon_scheduler_lag_seconds_sum":
                lag_sum = sample.value
    return Scrape(sent, probes, failures, missed, coalesced, buckets, lag_count, lag_sum)


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


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid`, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat, counted after "(comm)"
    return utime / CLK_TCK, stime / CLK_TCK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def database_figures(db: Path) -> tuple[int, int]:
    size = sum(
        p.stat().st_size for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()
    )
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT count(*) FROM probe_result").fetchone()[0]
    return size, int(rows)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    ca_file = make_certificates(root) if args.https else None
    with farm(root, args.https) as base:
        config = root / "tpmon.yaml"
        config.write_text(tpmon_config(args.checks, args.interval, args.networks, base, ca_file), encoding="utf-8")
        db = root / "tpmon.db"
        port = free_port()
        env = {**os.environ, "TPMON_DATABASE_URL": f"sqlite:///{db}"}
        env.pop("TPMON_CONFIG", None)
        command = [
            *tpmon_command(),
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--pid-file",
            str(root / "tpmon.pid"),
            "--no-admin",  # the public listener alone is measured
        ]
        log_path = root / "serve.log"
        log = log_path.open("wb")
        say(f"starting {' '.join(command[:2])} with {args.checks} checks every {args.interval:g} s")
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"tpmon serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200

            wait_until(ready, 120, "tpmon serve to be ready")
            say(f"ready (pid {proc.pid}); warm-up {args.warmup:g} s")
            time.sleep(args.warmup)
            first = scrape(port)
            (user_start, sys_start), t_start = cpu_times(proc.pid), time.monotonic()
            say(f"measuring {args.duration:g} s")
            time.sleep(args.duration)
            (user_end, sys_end), t_end = cpu_times(proc.pid), time.monotonic()
            cpu_start, cpu_end = user_start + sys_start, user_end + sys_end
            load = os.getloadavg()[0]
            last = scrape(port)
            scrape_cpu = cpu_seconds(proc.pid) - cpu_end  # includes what ran meanwhile: an upper bound
            rss = peak_rss_mib(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError(f"tpmon serve died during the run:\n{log_path.read_text()[-3000:]}")
        finally:
            stop(proc, signal.SIGTERM, 30)
            log.close()
        say(f"tpmon stopped (exit {proc.returncode})")
        size, rows = database_figures(db)

    window = last.at - first.at
    probes = last.probes - first.probes
    lag = {bound: last.lag_buckets.get(bound, 0.0) - count for bound, count in first.lag_buckets.items()}
    intended = args.checks / args.interval
    achieved = probes / window
    p50, p99 = quantile(lag, 0.50), quantile(lag, 0.99)
    lag_count = last.lag_count - first.lag_count
    return {
        "checks": args.checks,
        "interval_s": args.interval,
        "duration_s": round(t_end - t_start, 3),
        "https": args.https,
        "intended_per_s": round(intended, 2),
        "achieved_per_s": round(achieved, 2),
        "completion": round(achieved / intended, 4),
        "probes": int(probes),
        "failed_probes": int(last.failures - first.failures),
        "missed_runs": int(last.missed - first.missed),
        "coalesced_runs": int(last.coalesced - first.coalesced),
        "lag_p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "lag_p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "lag_mean_ms": round((last.lag_sum - first.lag_sum) / lag_count * 1000, 2) if lag_count else None,
        "cpu_ms_per_probe": round((cpu_end - cpu_start) * 1000 / probes, 3) if probes else None,
        "cpu_user_ms_per_probe": round((user_end - user_start) * 1000 / probes, 3) if probes else None,
        "cpu_sys_ms_per_probe": round((sys_end - sys_start) * 1000 / probes, 3) if probes else None,
        "cpu_share_of_one_core": round((cpu_end - cpu_start) / (t_end - t_start), 3),
        "scrape_cpu_ms": round(scrape_cpu * 1000, 1),
        "peak_rss_mib": round(rss, 1),
        "db_bytes_per_result": round(size / rows, 1) if rows else None,
        "db_rows": rows,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "host_load_1m": round(load, 2),  # other work on the machine makes the lag figures worse
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between two probes of a check")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (after the warm-up)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds excluded at start (default: one interval and its jitter)"
    )
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--https", action="store_true", help="TLS on the farm (local CA, ca_file in the checks)")
    args = parser.parse_args()
    if args.warmup is None:
        # The first runs are spread over one interval without jitter, the later ones with it: from one
        # interval and its jitter on, every check's phase is uniform and the expected rate is exact.
        args.warmup = args.interval * (1 + JITTER)
    if args.checks < 1 or args.interval <= 0 or args.duration <= 0 or args.networks < 1:
        parser.error("--checks, --interval, --duration and --networks must be positive")

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: children stopped, temp folder removed

    signal.signal(signal.SIGTERM, terminate)
    root = Path(tempfile.mkdtemp(prefix="tpmon-bench-"))
    try:
        figures = run(args, root)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
