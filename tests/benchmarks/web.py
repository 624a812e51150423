"""Web benchmark: `tpmon serve` over 400 days of history for 330 checks, loaded with wrk on loopback.

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/web.py [--duration 10] [--connections 32] [--database-url URL]

Builds the data (tests/benchmarks/web_data.py: 10 networks × 11 lines × 3 checks, 400 days of history
through the real board, store and roll-up), starts a loopback HTTP target that every check probes (so the
scheduler, store writer and housekeeper run during the load as in production), starts `tpmon serve` as
users do, then for each page: one GET (status, ETag), a warm-up, and `wrk --latency` for `--duration`
seconds; when the page has an ETag, the same again with `If-None-Match` (a Lua script counts the answers'
status codes: all must be 304). Prints ONE JSON object on stdout, progress on stderr. Exits non-zero when
it cannot set up (wrk missing, database not empty, server not ready) and when a conditional answer is not
a 304 (a wrong answer: `all_304` false in the JSON, the page named on stderr), never because a target is missed.

Needs wrk: `apt-get install -y --no-install-recommends wrk`. --database-url must name an empty database,
e.g. a fresh PostgreSQL one: `runuser -u postgres -- psql -c 'CREATE DATABASE tpmon_bench'` then
`--database-url postgresql+psycopg://postgres:postgres@127.0.0.1:5432/tpmon_bench`.
`--servers auto:auto asyncio:h11 …` measures several servers in turn on the same store: `asyncio:h11`
is uvicorn's pure-Python loop and parser instead of uvloop and httptools (through a shim around
`tpmon serve`), to measure what they bring.
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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from web_data import build, config_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared loopback target
from targets import Target, free_port

from monitor.config import load_config
from monitor.store import Store
from monitor.store.database import mask
from monitor.store.tables import transition

PATHS = ("/", "/reseaux/viamedis", "/api/v2/summary.json")
SHIM = """import sys, uvicorn
loop, http = sys.argv[1:3]
init = uvicorn.Config.__init__
def forced(self, *args, **kwargs):
    init(self, *args, **{**kwargs, "loop": loop, "http": http})
uvicorn.Config.__init__ = forced
from monitor.cli import main
sys.exit(main(sys.argv[3:]))
"""


# wrk: counts each answer's status code, optionally sends If-None-Match (wrk's Lua API, one state per thread)
WRK_SCRIPT = """local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} if args[1] then wrk.headers["If-None-Match"] = args[1] end end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do io.write(string.format("status %d %d\\n", code, count)) end
  end
end
"""
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[web] {message}", file=sys.stderr, flush=True)


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise SystemExit(f"wrk printed a latency this script cannot read: {text!r}")
    number, unit = found.groups()
    return round(float(number) * UNITS[unit], 3)


def _needed(pattern: str, output: str) -> str:
    """The first group of `pattern` in wrk's output, which must be there."""
    found = re.search(pattern, output)
    if found is None:
        raise SystemExit(f"wrk printed no {pattern!r}:\n{output}")
    return found.group(1)


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests per second, p50/p90/p99 (ms), errors and status counts from `wrk --latency` and WRK_SCRIPT."""
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", output, re.M))
    latency = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", output, re.M)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx_3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    statuses: Counter[str] = Counter()  # one line per thread and status code
    for code, n in re.findall(r"^status (\d+) (\d+)$", output, re.M):
        statuses[code] += int(n)
    return {
        "req_per_s": float(_needed(r"Requests/sec:\s+([\d.]+)", output)),
        "requests": int(_needed(r"(\d+) requests in", output)),
        **{f"p{q}_ms": _ms(percentiles[q]) if q in percentiles else None for q in ("50", "90", "99")},
        "max_ms": _ms(latency.group(3)) if latency else None,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx_3xx": int(non_2xx_3xx.group(1)) if non_2xx_3xx else 0,
        "statuses": dict(statuses),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime and stime, every thread


def process_figures(pid: int) -> dict[str, Any]:
    """RSS and peak RSS (MiB), and whether uvloop and httptools are loaded in the process."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {
        "rss_mib": round(int(status["VmRSS"].split()[0]) / 1024, 1),
        "peak_rss_mib": round(int(status["VmHWM"].split()[0]) / 1024, 1),
        "uvloop_loaded": "/uvloop/" in maps,
        "httptools_loaded": "/httptools/" in maps,
    }


# wrk asks for no encoding, so it gets the uncompressed page: its ETag is the one to send (gzip has its own)
IDENTITY = {"Accept-Encoding": "identity"}


def run_wrk(url: str, args: argparse.Namespace, etag: str | None, seconds: float, pid: int = 0) -> dict[str, Any]:
    """One wrk run; with `pid`, its figures and the server's and wrk's CPU.

    With `etag`, WRK_SCRIPT sends it and counts the status codes. Not without: a Lua `response` callback
    makes wrk buffer every body, which halves its rate on a 150 kB page (measured), so plain runs count
    only wrk's own "Non-2xx or 3xx responses".
    """
    script = Path(tempfile.gettempdir()) / f"tpmon-web-bench-{os.getpid()}.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--latency"]
    command += [url] if etag is None else ["-s", str(script), url, "--", etag]
    server_cpu = cpu_seconds(pid) if pid else 0.0
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # wrk's own CPU time
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    script.unlink(missing_ok=True)
    if proc.returncode != 0 or "Requests/sec" not in output:
        raise SystemExit(f"wrk failed ({proc.returncode}): {output}")
    if not pid:
        return {}
    figures = parse_wrk(output)
    if figures["p50_ms"] is None:
        say(f"wrk printed no latency distribution:\n{output}")
    server_cpu = cpu_seconds(pid) - server_cpu
    figures["server_cpu_share"] = round(server_cpu / seconds, 2)  # below ~0.9 under load: other work took the CPU
    requests = figures["requests"]
    figures["server_cpu_us_per_request"] = round(server_cpu * 1e6 / requests) if requests else None
    figures["wrk_cpu_share"] = round((usage.ru_utime + usage.ru_stime) / seconds, 2)
    return figures


def tpmon_command(loop: str, http: str) -> list[str]:
    """`tpmon` as installed beside this interpreter; through the shim when the loop or parser is forced."""
    if loop != "auto" or http != "auto":
        return [sys.executable, "-c", SHIM, loop, http]
    script = Path(sys.executable).with_name("tpmon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def build_store(url: str, config: Path, days: int, workers: int) -> tuple[dict[str, Any], datetime]:
    """Build the data into the (empty) database at `url`; its figures, and when its last result was taken."""
    settings = load_config(config)
    with Store.open(url) as store:
        with store.engine.connect() as connection:
            if connection.execute(select(func.count()).select_from(transition)).scalar_one():
                raise SystemExit(f"{mask(url)} already holds transitions: give an empty database")
        say(f"building {len(settings.checks())} checks × {days} days of history")
        built = build(store, settings, datetime.now(UTC), days=days, workers=workers)
        size = store.size_bytes()
    say(f"built in {sum(built.seconds.values()):.1f} s: {built}")
    assert built.ends_at is not None
    figures = {
        "networks": len(settings.networks),
        "lines_per_network": len(next(iter(settings.networks.values())).lines),
        "checks": len(settings.checks()),
        "checks_are": "3 per line, each on one of 3 flows the line relies on (checks hang on flows in the config)",
        "intervals_s": sorted({check.interval for _, check in settings.checks()}),
        "days": days,
        "results_stored": built.results_stored,
        "transitions": built.transitions,
        "rollups": built.rollups,
        "incidents": built.incidents,
        "seconds": {phase: round(s, 1) for phase, s in built.seconds.items()},
        "total_s": round(sum(built.seconds.values()), 1),
        "database_mib": None if size is None else round(size / 2**20),
    }
    return figures, built.ends_at


@contextlib.contextmanager
def serving(root: Path, config: Path, url: str, loop: str, http: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, "TPMON_DATABASE_URL": url}
    env.pop("TPMON_CONFIG", None)
    command = [*tpmon_command(loop, http), "serve", "--config", str(config), "--port", str(port)]
    command += ["--pid-file", str(root / "tpmon.pid"), "--log-level", "warning", "--no-admin"]
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"tpmon serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("tpmon serve not ready within 300 s")
            time.sleep(0.2)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        say(f"tpmon serve stopped (exit {proc.returncode})")


def same_minute(seconds: float) -> None:
    """Wait for the next minute if fewer than `seconds` are left in this one (pages change every minute)."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 1)


def measure(base: str, path: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """Status, size and ETag of one GET; a warm-up and a wrk run; the same with If-None-Match if it has an ETag."""
    first = httpx.get(base + path, headers=IDENTITY, timeout=30)
    etag = first.headers.get("etag")
    figures: dict[str, Any] = {"status": first.status_code, "bytes": len(first.content), "etag": etag}
    say(f"{path}: {first.status_code}, {len(first.content)} bytes, ETag {etag}")
    run_wrk(base + path, args, None, seconds=args.warmup)
    figures["plain"] = run_wrk(base + path, args, None, seconds=args.duration, pid=pid)
    if etag is None or first.status_code != 200:
        figures["conditional"] = None  # no validator: nothing to send back
        return figures
    # The ETag changes with the page, at least every minute ("last checked"): take it and run inside one minute.
    seconds = min(args.duration, 50.0)
    same_minute(args.warmup + seconds + 2)
    etag = httpx.get(base + path, headers=IDENTITY, timeout=30).headers.get("etag")
    check = httpx.get(base + path, headers={"If-None-Match": etag or "", **IDENTITY}, timeout=30)
    run_wrk(base + path, args, etag, seconds=args.warmup)
    conditional: dict[str, Any] = {"etag": etag, "single_status": check.status_code}
    conditional.update(run_wrk(base + path, args, etag, seconds=seconds, pid=pid))
    # The page did not change: every answer must be a 304 (wrk counted by WRK_SCRIPT), or the validator is wrong.
    conditional["all_304"] = check.status_code == 304 and conditional["statuses"] == {"304": conditional["requests"]}
    if not conditional["all_304"]:
        say(
            f"{path}: conditional answers NOT all 304: one GET got {check.status_code}, "
            f"wrk counted {conditional['statuses']} of {conditional['requests']} requests"
        )
    figures["conditional"] = conditional
    return figures


def settle(port: int, checks: int, timeout: float) -> float:
    """Seconds until every check has been probed by the server (the board then holds live results only)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        probed = {
            (sample.labels["network"], sample.labels["check"])
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "tpmon_probes_total" and sample.value > 0
        }
        if len(probed) >= checks:
            return round(time.monotonic() - began, 1)
        time.sleep(1)
    raise SystemExit(f"not every check was probed within {timeout:g} s")


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    target = Target()
    try:
        config = root / "tpmon.yaml"
        config.write_text(config_yaml(target.url("")), encoding="utf-8")
        url = args.database_url or f"sqlite:///{root / 'tpmon.db'}"
        data, ends_at = build_store(url, config, args.days, args.workers)
        figures: dict[str, Any] = {"data": data, "runs": []}
        for variant in args.servers:  # one after the other on the same store, which the probes keep filling
            loop, http = variant.split(":")
            with serving(root, config, url, loop, http) as (port, proc):
                ready = (datetime.now(UTC) - ends_at).total_seconds()
                server = {"loop": loop, "http": http, **process_figures(proc.pid)}
                server["ready_after_last_result_s"] = round(ready, 1)
                say(f"{variant} ready on port {port} (pid {proc.pid}), {ready:.0f} s after the last stored result")
                server["settle_s"] = settle(port, data["checks"], timeout=180)
                say(f"every check probed live; wrk -t{args.threads} -c{args.connections}")
                load = round(os.getloadavg()[0], 2)
                pages = {path: measure(f"http://127.0.0.1:{port}", path, proc.pid, args) for path in args.paths}
                after = process_figures(proc.pid)
                ends_at = datetime.now(UTC)
            figures["runs"].append({"server": server, "host_load_1m_before": load, "pages": pages, "after": after})
        figures["target_hits"] = sum(target.hits.values())
    finally:
        target.close()
    figures["wrk"] = {"threads": args.threads, "connections": args.connections, "duration_s": args.duration}
    figures["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("uvicorn", "starlette", "uvloop", "httptools", "jinja2", "sqlalchemy")},
        "database": (args.database_url or "sqlite:///tmp").split(":", 1)[0],
        "host_load_1m_after": round(os.getloadavg()[0], 2),  # other work on the machine skews every figure
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="an EMPTY database (default: a SQLite file in a temp folder)")
    parser.add_argument("--days", type=int, default=400, help="days of history (default 400)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of the wrk run before each measure")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the server gets a core)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the roll-up")
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["auto:auto"],
        choices=[f"{loop}:{http}" for loop in ("auto", "asyncio", "uvloop") for http in ("auto", "h11", "httptools")],
        help="servers measured in turn, as LOOP:HTTP (uvicorn's options; default auto:auto, as `tpmon serve`)",
    )
    parser.add_argument("--paths", nargs="+", default=list(PATHS), help=f"pages to load (default {' '.join(PATHS)})")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (config, database, server log)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        say("wrk is missing: apt-get install -y --no-install-recommends wrk")
        return 2

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: server and target stopped

    signal.signal(signal.SIGTERM, terminate)
    root = Path(tempfile.mkdtemp(prefix="tpmon-web-bench-"))
    try:
        figures = run(args, root)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    not_304 = [
        f"{run['server']['loop']}:{run['server']['http']} {path}"
        for run in figures["runs"]
        for path, page in run["pages"].items()
        if page["conditional"] is not None and not page["conditional"]["all_304"]
    ]
    if not_304:
        say(f"FAILED: conditional answers must all be 304, they were not on: {', '.join(not_304)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
