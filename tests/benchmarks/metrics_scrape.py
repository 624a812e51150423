"""/metrics micro-benchmark: what one scrape costs tpmon and how long it holds up its event loop, at 1,000 to
10,000 checks, for this tree and for a baseline (by default `main`), in one run.

Not part of the test run. Usage (≈ 5 min with the baseline, most of it the baseline's 10,000-check scrapes):

    .venv/bin/python tests/benchmarks/metrics_scrape.py [--checks 1000,5000,10000] [--baseline main|none]
        [--scrapes 5] [--json FILE]

Each measurement runs in a fresh process (`--worker`), with `monitor` imported from the tree measured: this
worktree, or the baseline's `monitor/` extracted with `git archive` into a temp folder. A worker builds the
app as `tpmon serve` does (`create_app`, SQLite in memory, no scheduler; uvloop when installed), drives its
ASGI lifespan and its /metrics route in-process (no HTTP, no client: only what the route costs), and gives
every check a state held since an hour (1 % of them change before each scrape) and a probe result
(HTTP phases; a certificate expiry for one check in five) before each scrape, as a scrape period longer
than the checks' interval would. Then:

- quiet: `--scrapes` scrapes with nothing else running: CPU ms (process time, every thread: a render in a
  thread counts), wall ms, bytes; and one scrape with no new result since the previous one (`clean`);
- loaded: the same scrapes while the loop runs what probes do to it: a task measuring how late
  `asyncio.sleep(0.005)` wakes (the loop's lag), and 500 "probes" a second, each a fresh TCP connection to
  a loopback echo server in the same loop (connect, write, read, close: the system calls that give the GIL
  away and wait to get it back). `stall_ms` is the loop's longest lag during a scrape, `probe_gap_ms` the
  longest time without a probe completing, `loop_busy_ms` the most CPU the loop's thread spent while one
  sleep waited (work on the loop without a break: what a stall would be on an idle machine; a render in
  another thread stalls the loop by the GIL, which this does not count); `calm_*` the same over a window of
  `CALM_S` between scrapes.

The machine is shared: each worker says the load (1 min) and how much CPU other processes took while it ran
(`host_other_cpu_pct`, 100 = one core); compare the two trees by their ratios, measured alternately.
ONE JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meter import extract

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAG_SLEEP_S = 0.005
PROBES_PER_S = 500
CALM_S = 0.5  # the pause between two loaded scrapes, measured as the calm reference

Message = MutableMapping[str, Any]


def say(message: str) -> None:
    print(f"[metrics_scrape] {message}", file=sys.stderr, flush=True)


# --- the worker: one tree, one number of checks


async def start_lifespan(app: Any) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    """Run the app's ASGI lifespan startup as a server would; returns its state and the shutdown."""
    state: dict[str, Any] = {}
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.create_task(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {started}")

    async def stop() -> None:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task

    return state, stop


async def get(app: Any, state: dict[str, Any], path: str) -> bytes:
    """GET `path` from the ASGI app in-process; the body, or RuntimeError on a status other than 200."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
        "state": dict(state),
    }
    done = asyncio.Event()
    asked = False
    status = 0
    body: list[bytes] = []

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays until the response is over
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status}")
    return b"".join(body)


@dataclasses.dataclass
class LoopWatch:
    """The loop's lag (how late a 5 ms sleep wakes) and 500 loopback "probes" a second, with their times."""

    # (woke at, late by, the loop thread's CPU meanwhile): a wake delayed by work on the loop shows in both, one
    # delayed by the GIL (a render in another thread) or by the kernel (a busy machine) in the lateness only
    lags: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    completions: list[float] = dataclasses.field(default_factory=list)
    failures: int = 0

    async def lag(self) -> None:
        while True:
            start, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(LAG_SLEEP_S)
            woke = time.perf_counter()
            self.lags.append((woke, woke - start - LAG_SLEEP_S, time.thread_time() - cpu))

    async def probes(self, port: int) -> None:
        async def one() -> None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /\n")
                await reader.readline()
                writer.close()
                await writer.wait_closed()
                self.completions.append(time.perf_counter())
            except OSError:
                self.failures += 1

        tasks: set[asyncio.Task[None]] = set()
        period, due = 1 / PROBES_PER_S, time.perf_counter()
        while True:
            due += period
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))

    def lags_in(self, start: float, end: float) -> list[float]:
        """The lags of the sleeps due within [start, end]."""
        return [late for woke, late, _ in self.lags if start <= woke - late <= end]

    def stall(self, start: float, end: float) -> float:
        """The longest lag of a sleep that was due within [start, end]."""
        return max(self.lags_in(start, end), default=0.0)

    def busy(self, start: float, end: float) -> float:
        """The most CPU the loop's thread spent while one sleep due within [start, end] waited: the longest
        stretch of work on the loop without a break, whatever the machine's load."""
        return max((cpu for woke, late, cpu in self.lags if start <= woke - late <= end), default=0.0)

    def gap(self, start: float, end: float) -> float:
        """The longest time without a probe completing, over the gaps that overlap [start, end]."""
        times = self.completions
        return max((b - a for a, b in itertools.pairwise(times) if b >= start and a <= end), default=0.0)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"HTTP/1.0 200 OK\n" if line else b"")
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over every CPU, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def measure(checks: int, scrapes: int) -> dict[str, Any]:
    """Build the app on `checks` checks and scrape it, quiet then loaded (the worker's whole job)."""
    from workload import plan, tpmon_config

    import monitor
    from monitor.app import create_app
    from monitor.config import load_config
    from monitor.models import ComponentRef, FailureReason, ProbeResult, State

    now = datetime.now(UTC)
    host0, cpu0, wall0, load0 = host_cpu(), time.process_time(), time.monotonic(), os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="tpmon-metrics-bench-"))
    try:
        config = work / "tpmon.yaml"
        config.write_text(tpmon_config(plan(checks, 10), 10.0, "http://127.0.0.1:9", None), encoding="utf-8")
        settings = load_config(config)
        app = create_app(settings, database_url="sqlite://", schedule=False, clock=lambda: now)
        state, stop = await start_lifespan(app)
        services = state["services"]
        refs = [ComponentRef.for_check(network, check.flow, check.name) for network, check in settings.checks()]
        real = dict(services.board.statuses())
        since = now - timedelta(hours=1)

        def shown(status: Any, number: int) -> Any:
            if status.ref.kind == "check":
                return dataclasses.replace(
                    status, state=State.DOWN if number % 50 == 0 else State.OPERATIONAL, since=since
                )
            if status.ref.kind == "line" and number % 7 == 0:
                return dataclasses.replace(status, state=State.RECOVERING, since=since, progress=0.5)
            return dataclasses.replace(status, state=State.OPERATIONAL, since=since)

        statuses = {key: shown(status, n) for n, (key, status) in enumerate(real.items())}
        services.board.statuses = lambda: statuses  # what the snapshot reads (a benchmark's shortcut)
        rounds = 0

        async def next_round(paced: bool) -> None:
            """1 % of the checks change state (a new snapshot), every check gets a new probe result."""
            nonlocal rounds
            rounds += 1
            for n, key in enumerate(statuses):
                if key.startswith("check:") and n % 100 == rounds % 100:
                    status = statuses[key]
                    up = status.state is State.OPERATIONAL
                    when = now + timedelta(seconds=rounds)
                    statuses[key] = dataclasses.replace(
                        status, state=State.DOWN if up else State.OPERATIONAL, since=when
                    )
            await services.refresh_overrides()  # takes the snapshot anew
            for n, ref in enumerate(refs):
                tls = n % 5 == 0
                phases = {"resolve": 0.001, "connect": 0.002 + n % 7 / 1e4, "processing": 0.01 + rounds / 1e4}
                phases |= {"transfer": 0.0005, **({"tls": 0.02} if tls else {})}
                expiry = now + timedelta(days=90) if tls else None
                ok = n % 50 != 0
                services.metrics.observe(
                    ProbeResult(
                        ref,
                        now,
                        0.05 + n % 13 / 1e3,
                        ok,
                        None if ok else FailureReason.HTTP_STATUS,
                        status_code=200 if ok else 503,
                        phases=phases,
                        chain_expiry=expiry,
                        cert_expiry=expiry,
                    )
                )
                if paced and n % 500 == 0:
                    await asyncio.sleep(0)

        await next_round(paced=False)
        await get(app, state, "/metrics")  # the first scrape formats everything once
        quiet: list[dict[str, float]] = []
        size = 0
        for _ in range(scrapes):
            await next_round(paced=False)
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            size = len(await get(app, state, "/metrics"))
            quiet.append({"cpu_ms": (time.process_time() - cpu) * 1000, "wall_ms": (time.perf_counter() - wall) * 1000})
        cpu, wall = time.process_time(), time.perf_counter()
        await get(app, state, "/metrics")
        clean = {"cpu_ms": (time.process_time() - cpu) * 1000, "wall_ms": (time.perf_counter() - wall) * 1000}

        watch = LoopWatch()
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        background = [asyncio.create_task(watch.lag()), asyncio.create_task(watch.probes(port))]
        loaded: list[dict[str, float]] = []
        lags_scraping: list[float] = []
        lags_calm: list[float] = []
        try:
            await asyncio.sleep(0.5)
            for _ in range(scrapes):
                await next_round(paced=True)
                calm0 = time.perf_counter()
                await asyncio.sleep(CALM_S)
                calm1 = time.perf_counter()
                start = time.perf_counter()
                await get(app, state, "/metrics")
                end = time.perf_counter()
                await asyncio.sleep(0.05)  # the lag of the last sleep due in the scrape is known when it wakes
                lags_scraping += watch.lags_in(start, end)
                lags_calm += watch.lags_in(calm0, calm1)
                loaded.append(
                    {
                        "wall_ms": (end - start) * 1000,
                        "stall_ms": watch.stall(start, end) * 1000,
                        "loop_busy_ms": watch.busy(start, end) * 1000,
                        "calm_loop_busy_ms": watch.busy(calm0, calm1) * 1000,
                        "probe_gap_ms": watch.gap(start, end) * 1000,
                        "calm_stall_ms": watch.stall(calm0, calm1) * 1000,
                        "calm_probe_gap_ms": watch.gap(calm0, calm1) * 1000,
                    }
                )
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            server.close()
            await server.wait_closed()
        await stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    host1, cpu1, wall1 = host_cpu(), time.process_time(), time.monotonic()
    cores = os.cpu_count() or 1
    busy = (host1[0] - host0[0]) / max(1, host1[1] - host0[1]) * 100 * cores
    return {
        "checks": checks,
        "monitor_from": str(Path(monitor.__file__).parent),
        "bytes": size,
        "quiet": quiet,
        "clean": clean,
        "loaded": loaded,
        "lag_p99_ms_scraping": round(percentile(lags_scraping, 0.99) * 1000, 1),
        "lag_p99_ms_calm": round(percentile(lags_calm, 0.99) * 1000, 1),
        "probe_failures": watch.failures,
        "peak_rss_mib": peak_rss_mib(),
        "load_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "host_other_cpu_pct": round(busy - (cpu1 - cpu0) / (wall1 - wall0) * 100, 1),
    }


def worker(tree: Path, checks: int, scrapes: int) -> None:
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(HERE))
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        found = runner.run(measure(checks, scrapes))
    found["loop"] = "uvloop" if loop_factory else "asyncio"
    print(json.dumps(found))


# --- the driver: every tree, every number of checks


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    quiet, loaded = run["quiet"], run["loaded"]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(row[key] for row in rows), 1)

    def top(rows: list[dict[str, float]], key: str) -> float:
        return round(max(row[key] for row in rows), 1)

    return {
        "bytes": run["bytes"],
        "cpu_ms_median": med(quiet, "cpu_ms"),
        "cpu_ms_max": top(quiet, "cpu_ms"),
        "wall_ms_median": med(quiet, "wall_ms"),
        "clean_cpu_ms": round(run["clean"]["cpu_ms"], 1),
        "stall_ms_median": med(loaded, "stall_ms"),
        "stall_ms_max": top(loaded, "stall_ms"),
        "probe_gap_ms_max": top(loaded, "probe_gap_ms"),
        "loop_busy_ms_max": top(loaded, "loop_busy_ms"),
        "calm_loop_busy_ms_max": top(loaded, "calm_loop_busy_ms"),
        "calm_stall_ms_max": top(loaded, "calm_stall_ms"),
        "calm_probe_gap_ms_max": top(loaded, "calm_probe_gap_ms"),
        "lag_p99_ms_scraping": run["lag_p99_ms_scraping"],
        "lag_p99_ms_calm": run["lag_p99_ms_calm"],
        "loaded_wall_ms_median": med(loaded, "wall_ms"),
        "peak_rss_mib": run["peak_rss_mib"],
        "load_1m": run["load_1m"],
        "host_other_cpu_pct": run["host_other_cpu_pct"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--checks", default="1000,5000,10000", help="numbers of checks, comma-separated")
    parser.add_argument("--scrapes", type=int, default=5, help="scrapes of each kind per measurement")
    parser.add_argument("--baseline", default="main", help="git ref measured beside this tree; 'none' to skip")
    parser.add_argument("--json", type=Path, help="also write the JSON object to this file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the tree a worker imports monitor from
    args = parser.parse_args()
    counts = [int(c) for c in args.checks.split(",")]
    if args.worker is not None:
        worker(args.worker, counts[0], args.scrapes)
        return 0
    if args.scrapes < 1 or min(counts) < 1:
        parser.error("--checks and --scrapes must be positive")
    temp = Path(tempfile.mkdtemp(prefix="tpmon-metrics-trees-"))
    started = time.monotonic()
    try:
        trees = {"this": REPO}
        revisions = {"this": _git("rev-parse", "HEAD") + ("+dirty" if _git("status", "--porcelain", "monitor") else "")}
        if args.baseline != "none":
            trees["baseline"] = extract(args.baseline, temp / "baseline")
            revisions["baseline"] = f"{args.baseline} {_git('rev-parse', args.baseline)}"
        out: dict[str, Any] = {
            "benchmark": "metrics_scrape",
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "revisions": revisions,
            "python": platform.python_version(),
            "cores": os.cpu_count(),
            "load_1m_start": round(os.getloadavg()[0], 2),
            "runs": [],
        }
        order = ["baseline", "this"] if "baseline" in trees else ["this"]
        for checks in counts:
            for name in order:
                say(f"{name}: {checks} checks (load {os.getloadavg()[0]:.1f})")
                command = [sys.executable, __file__, "--worker", str(trees[name]), "--checks", str(checks)]
                done = subprocess.run(
                    [*command, "--scrapes", str(args.scrapes)],
                    capture_output=True,
                    text=True,
                    check=False,
                    cwd=temp,
                )
                if done.returncode != 0:
                    say(done.stderr[-3000:])
                    return 1
                run = json.loads(done.stdout)
                if not run["monitor_from"].startswith(str(trees[name])):
                    raise RuntimeError(f"{name}: monitor imported from {run['monitor_from']}")
                run["tree"] = name
                out["runs"].append(run)
                figures = summarize(run)
                say(f"{name}: {checks} checks: {figures}")
        out["summary"] = {
            str(checks): {run["tree"]: summarize(run) for run in out["runs"] if run["checks"] == checks}
            for checks in counts
        }
        if "baseline" in trees:
            for both in out["summary"].values():
                mine, theirs = both["this"], both["baseline"]
                both["ratio_this_to_baseline"] = {
                    key: round(mine[key] / theirs[key], 3) if theirs[key] else None
                    for key in ("bytes", "cpu_ms_median", "wall_ms_median", "stall_ms_max", "probe_gap_ms_max")
                }
        out["load_1m_end"] = round(os.getloadavg()[0], 2)
        out["duration_s"] = round(time.monotonic() - started)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    text = json.dumps(out, ensure_ascii=False)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
