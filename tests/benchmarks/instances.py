"""Several instances on one PostgreSQL: 1, 2 and 3 `tpmon serve` sharing the same checks against the nginx farm.

Not part of the test run. Usage (≈ 6 min with --quick, ≈ 8 min without):

    export TPMON_TEST_POSTGRES_URL=$(bash .ci/postgres.sh | tail -1)
    .venv/bin/python tests/benchmarks/instances.py [--quick] [--json FILE]

Ramp mode, to find what each sustains (≈ 1 min per step; stops at a count's first rate not sustained):

    .venv/bin/python tests/benchmarks/instances.py --ramp 400,600,800,1000,1200 [--checks N] [--window S]

For 1 then 2 instances, the rates (probes/s at the target: the same checks, their interval = checks / rate) in
order: a rate is sustained when the farm counts less than 1 % of its probes missed and every instance's lag p99 is
under 1 s. Two instances start at the highest rate one sustained. `sustained_ratio_2_vs_1` is the highest rate
two sustained over the highest one did (a lower bound when two sustained the last rate tried).

Needs nginx (`farm.py`). For each count of instances, a fresh schema and fresh processes on the same checks
(3,000 every 10 s; --quick: 1,000, a shorter window): the instances start one after the other,
settle (every row joined more than two heartbeats ago), run one interval of warm-up, then the window is measured.

What tells the truth here: probes are counted AT THE TARGET (nginx's access log, per path): `probes_per_s` over
the window; each arrival is dated against its check's slot (the slots of a check lie at the same instants on every
instance, `monitor.scheduler.slot_phase`): `duplicated_probes`, arrivals in a slot that already had one (two
instances probing one slot: must be 0); `late_arrivals`, those more than a second after their slot's jitter window
(`arrival_late_p99_s`: the p99 of that excess; a run later than a whole interval is seen in the next slot, whose
own run it skips); `close_arrivals`, the older measure, arrivals less than half an interval after the previous one
(a duplicate, or a late run followed by the next on time); `missed_share`, the intended probes
(checks × window / interval) that did not arrive; CPU is utime+stime of every instance over the window, per probe
counted at the target, and per instance; lag p99 is read from each instance's `tpmon_scheduler_lag_seconds` (its
window's delta, the worst instance), and `runs_per_s_per_instance` is that delta's count over the time between the
instance's two scrapes (longer than the window: its runs per second compare with `probes_per_s`, its count does
not). `load_1m` says how busy the shared cores were. ONE JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from farm import farm
from meter import cpu_seconds, free_port, say, stop, wait_until
from probe_engine import quantile, scrape, tpmon_command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from workload import JITTER, intended_probes, plan, tpmon_config

from monitor.scheduler import slot_phase

HEARTBEAT = 2.0  # seconds (cluster.heartbeat)


def schema_url(postgres_url: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with create_engine(postgres_url, poolclass=NullPool).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop(postgres_url: str, schema: str) -> None:
    with create_engine(postgres_url, poolclass=NullPool).begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def settled(url: str, count: int) -> bool:
    with create_engine(url, poolclass=NullPool).connect() as connection:
        row = connection.execute(
            text("SELECT count(*) AS n, max(joined_at) < clock_timestamp() - interval '5 seconds' AS ok FROM instance")
        ).one()
    return bool(row.n == count and row.ok)


def per_path(access_log: Path, start: float, end: float) -> dict[str, list[float]]:
    """The arrival (request start) of each probe in [start, end), by path (nginx's access log)."""
    found: dict[str, list[float]] = {}
    with access_log.open("rb") as log:
        for raw in log:
            parts = raw.split()
            if len(parts) != 5:
                continue
            began = float(parts[0]) - float(parts[1])
            if start <= began < end:
                found.setdefault(parts[3].decode(), []).append(began)
    return {path: sorted(times) for path, times in found.items()}


LATE_BEYOND = 1.0  # seconds past the end of a slot's jitter window: an arrival this late is late


def by_slot(arrivals: dict[str, list[float]], interval: float) -> tuple[int, list[float]]:
    """(arrivals in a slot that already had one, each arrival's lateness past its slot's jitter window)."""
    duplicated, late = 0, []
    window = interval * JITTER + min(0.05, interval / 8)  # the jitter and the scheduler's lattice step
    for path, times in arrivals.items():
        network, flow, name = path.strip("/").split("/")
        phase = slot_phase(f"check:{network}/{flow}/{name}", interval)
        slots = [(t - phase) // interval for t in times]
        duplicated += len(slots) - len(set(slots))
        late += [max(0.0, t - phase - slot * interval - window) for t, slot in zip(times, slots, strict=True)]
    return duplicated, late


def measure(count: int, checks: int, interval: float, window: float, postgres_url: str, root: Path) -> dict[str, Any]:
    # the interval as the config writes it ({:g}, 6 digits) and tpmon reads it: slots are counted from the epoch,
    # so 4.285714… against the 4.28571 tpmon runs at puts the slots ~1,800 s apart, every arrival "late"
    interval = float(f"{interval:g}")
    targets = plan(checks, max(1, checks // 100))
    schema, url = schema_url(postgres_url)
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        with farm(root / f"farm{count}") as nginx:
            config = root / f"tpmon{count}.yaml"
            body = tpmon_config(targets, interval, nginx.base(False), None)
            config.write_text(f"cluster: {{heartbeat: {HEARTBEAT:g}s}}\nadmin: {{enabled: false}}\n{body}")
            for index in range(count):
                workdir = root / f"n{count}-{index}"
                workdir.mkdir()
                port = free_port()
                env = {**os.environ, "TPMON_DATABASE_URL": url}
                with (workdir / "serve.log").open("wb") as log:
                    procs.append(
                        subprocess.Popen(
                            [*tpmon_command(), "serve", "--config", str(config), "--port", str(port), "--no-admin"],
                            cwd=workdir,
                            env=env,
                            stdout=log,
                            stderr=log,
                        )
                    )
                ports.append(port)
                wait_until(partial(_answers, port), 120, f"instance {index} to answer")
            wait_until(lambda: settled(url, count), 120, f"{count} settled instance(s)")
            time.sleep(interval)  # warm-up: one interval once settled (a benchmark's pace, not a test's wait)
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) for port in ports]
            before = [scrape(client) for client in clients]
            cpu_before = [cpu_seconds(proc.pid) for proc in procs]
            start = time.time()
            time.sleep(window)
            end = time.time()
            cpu = [cpu_seconds(proc.pid) - was for proc, was in zip(procs, cpu_before, strict=True)]
            after = [scrape(client) for client in clients]
            for client in clients:
                client.close()
            time.sleep(1.0)  # probes in flight at `end` are logged when they end
            arrivals = per_path(nginx.access_log, start, end)
    finally:
        for proc in procs:
            stop(proc)
        drop(postgres_url, schema)
    probes = sum(len(times) for times in arrivals.values())
    close = sum(1 for times in arrivals.values() for a, b in itertools.pairwise(times) if b - a < interval / 2)
    duplicated, late = by_slot(arrivals, interval)
    late.sort()
    intended = intended_probes(checks, interval, window)
    lags = []
    for b, a in zip(before, after, strict=True):
        delta = {le: a.lag_buckets.get(le, 0.0) - b.lag_buckets.get(le, 0.0) for le in a.lag_buckets}
        lags.append(quantile(delta, 0.99))
    return {
        "instances": count,
        "checks": checks,
        "interval_s": interval,
        "window_s": round(end - start, 1),
        "probes_per_s": round(probes / (end - start), 1),
        "intended_per_s": round(intended / window, 1),
        "missed_share": round(max(0.0, 1 - probes / intended), 4),
        "duplicated_probes": duplicated,
        "late_arrivals": sum(1 for x in late if x > LATE_BEYOND),
        "arrival_late_p99_s": round(late[int(0.99 * (len(late) - 1))], 3) if late else None,
        "close_arrivals": close,
        "cpu_ms_per_probe": round(1000 * sum(cpu) / probes, 3) if probes else None,
        "cpu_s_per_instance": [round(c, 2) for c in cpu],
        # each instance's CPU per probe of its own share (probes / instances): flat when scaling out costs nothing
        "cpu_ms_per_own_probe": [round(1000 * c * count / probes, 3) for c in cpu] if probes else None,
        "lag_p99_s": max((lag for lag in lags if lag is not None), default=None),
        "lag_p99_s_per_instance": lags,
        "runs_per_s_per_instance": [
            round((a.lag_count - b.lag_count) / ((a.sent + a.done - b.sent - b.done) / 2), 1)
            for b, a in zip(before, after, strict=True)
        ],
        "lag_buckets_per_instance": [
            {le: a.lag_buckets.get(le, 0.0) - b.lag_buckets.get(le, 0.0) for le in a.lag_buckets}
            for b, a in zip(before, after, strict=True)
        ],
        "load_1m": os.getloadavg()[0],
    }


SUSTAINED_LAG_P99 = 1.0  # seconds: above, the instances fall behind their slots
SUSTAINED_MISSED = 0.01  # share of the intended probes that did not reach the farm


def sustained(run: dict[str, Any]) -> bool:
    lag = run["lag_p99_s"]
    return lag is not None and lag < SUSTAINED_LAG_P99 and run["missed_share"] < SUSTAINED_MISSED


def ramp(rates: list[float], checks: int, window: float, postgres_url: str, root: Path) -> dict[str, Any]:
    """1 then 2 instances at rising rates: the highest each sustains, and their ratio."""
    found: dict[int, dict[str, Any]] = {}
    for count in (1, 2):
        best = found[1]["sustained_per_s"] if count == 2 else None
        steps: list[dict[str, Any]] = []
        for rate in (r for r in rates if best is None or r >= best):
            interval = checks / rate
            say(f"{count} instance(s), {checks} checks every {interval:g} s: {rate:g}/s")
            step = root / f"r{count}-{rate:g}"
            step.mkdir()
            run = measure(count, checks, interval, window, postgres_url, step)
            run["target_per_s"], run["sustained"] = rate, sustained(run)
            say(json.dumps(run))
            steps.append(run)
            if not run["sustained"]:
                break
        rate_found = max((run["target_per_s"] for run in steps if run["sustained"]), default=None)
        found[count] = {"steps": steps, "sustained_per_s": rate_found, "ceiling_found": not steps[-1]["sustained"]}
    one, two = found[1]["sustained_per_s"], found[2]["sustained_per_s"]
    return {
        "benchmark": "instances-ramp",
        "criteria": {"lag_p99_s_below": SUSTAINED_LAG_P99, "missed_share_below": SUSTAINED_MISSED},
        "checks": checks,
        "window_s": window,
        "one": found[1],
        "two": found[2],
        "sustained_ratio_2_vs_1": round(two / one, 3) if one and two else None,
        # one held none of the rates: two's over the lowest one, which one did not hold (the ratio is above it)
        "sustained_ratio_2_vs_1_above": round(two / rates[0], 3) if two and not one else None,
        "ratio_is_a_lower_bound": not found[2]["ceiling_found"],
        "duplicated_probes": sum(run["duplicated_probes"] for f in found.values() for run in f["steps"]),
        "load_1m_end": os.getloadavg()[0],
    }


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 checks, 30 s windows")
    parser.add_argument("--json", type=Path, help="also write the JSON object here")
    parser.add_argument("--ramp", type=_rates, help="rates (probes/s), e.g. 400,600,800: the highest sustained")
    parser.add_argument("--checks", type=int, help="checks (default 3,000; --quick 1,000)")
    parser.add_argument("--window", type=float, help="seconds measured per step (default 60; --quick 30)")
    args = parser.parse_args()
    postgres_url = os.environ.get("TPMON_TEST_POSTGRES_URL")
    if not postgres_url:
        print("TPMON_TEST_POSTGRES_URL is not set (bash .ci/postgres.sh)", file=sys.stderr)
        return 2
    checks, counts, window = (1000, (1, 2, 3), 30.0) if args.quick else (3000, (1, 2, 3), 60.0)
    checks, window = args.checks or checks, args.window or window
    interval = 10.0
    runs = []
    with tempfile.TemporaryDirectory(prefix="tpmon-instances-") as folder:
        if args.ramp is not None:
            return _write(ramp(args.ramp, checks, window, postgres_url, Path(folder)), args.json)
        for count in counts:
            say(f"{count} instance(s), {checks} checks every {interval:g} s")
            runs.append(measure(count, checks, interval, window, postgres_url, Path(folder)))
            say(json.dumps(runs[-1]))
    out = {
        "benchmark": "instances",
        "runs": runs,
        "duplicated_probes": sum(run["duplicated_probes"] for run in runs),
        # CPU per probe and lag: what scaling out buys on a loaded shared machine (probes/s is the intended rate
        # as long as every instance keeps up)
        "cpu_per_probe_ratio_vs_one": [
            round((run["cpu_ms_per_probe"] or 0) / (runs[0]["cpu_ms_per_probe"] or 1), 3) for run in runs
        ],
    }
    return _write(out, args.json)


def _write(out: dict[str, Any], path: Path | None) -> int:
    text_out = json.dumps(out, indent=2)
    print(text_out)
    if path is not None:
        path.write_text(text_out + "\n", encoding="utf-8")
    return 0


def _rates(value: str) -> list[float]:
    try:
        rates = sorted(float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ramp: {value!r}: comma-separated probes per second") from None
    if not rates or rates[0] <= 0:
        raise argparse.ArgumentTypeError(f"--ramp: {value!r}: rates must be positive")
    return rates


if __name__ == "__main__":
    sys.exit(main())
