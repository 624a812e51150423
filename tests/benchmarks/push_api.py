"""Push benchmark: partners' pushes on `tpmon serve`'s operators' listener, loaded with wrk on loopback.

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/push_api.py [--duration 20] [--connections 32] [--checks 200]
                                                   [--database-url URL]

Writes a config of `--checks` push checks over 10 networks and one token per check (scoped to it, as partners
get them), starts `tpmon serve` as users do (the public listener, the operators' one, the scheduler, the push
inbox folding signals into the board every tick), then runs wrk for `--duration` seconds: every request is a
`POST /api/v1/push/{network}/{flow}/{check}` with its check's token, round-robin over the checks (a Lua script
counts the answers' status codes). The per-token rate is raised so that the limiter runs on every push but
refuses none (wrk sends as fast as the server answers). After the run, the store is asked how many signals it
holds: an accepted push (202) is a committed one. Prints ONE JSON object on stdout (pushes/s, p50/p90/p99, the
server's CPU, the machine's load before and after), progress on stderr.

Needs wrk: `apt-get install -y --no-install-recommends wrk`. --database-url must name an empty database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from web import cpu_seconds, parse_wrk, process_figures, tpmon_command

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: free ports
from targets import free_port

from monitor.staff.tokens import digest, new_token, public_prefix
from monitor.store import Store
from monitor.store.tables import push_signal
from monitor.store.token_store import create_token

TARGET = {"pushes_per_s": 1000, "p99_ms": 50}
FLOWS = ("portail_ps", "droits", "pec", "facturation", "paiements")
WRK_SCRIPT = """local threads = {}
local paths, tokens = {}, {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  statuses = {}
  for line in io.lines(args[1]) do
    local path, token = line:match("^(%S+) (%S+)$")
    table.insert(paths, path) table.insert(tokens, "Bearer " .. token)
  end
  index = math.random(#paths)
end
function request()
  index = index % #paths + 1
  return wrk.format("POST", paths[index], {["Authorization"] = tokens[index], ["Content-Length"] = "0"})
end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do io.write(string.format("status %d %d\\n", code, count)) end
  end
end
"""


def say(message: str) -> None:
    print(f"[push] {message}", file=sys.stderr, flush=True)


def config_yaml(checks: int, rate: int) -> tuple[str, list[str]]:
    """10 networks sharing `checks` push checks; the paths of the checks."""
    networks: dict[str, list[str]] = {f"net{n:02d}": [] for n in range(10)}
    paths = []
    for i in range(checks):
        network, flow = f"net{i % 10:02d}", FLOWS[i % len(FLOWS)]
        networks[network].append(f"      - {{name: p{i:04d}, flow: {flow}, kind: push, interval: 1m}}")
        paths.append(f"/api/v1/push/{network}/{flow}/p{i:04d}")
    body = "".join(
        f"  {name}:\n    name: {name}\n    kind: operateur\n    lines: [pharmacie, optique]\n    checks:\n"
        + "\n".join(lines)
        + "\n"
        for name, lines in networks.items()
    )
    return f"admin: {{push_per_minute: {rate}}}\nnetworks:\n{body}", paths


def make_tokens(url: str, paths: list[str]) -> list[str]:
    """One token per check, scoped to it, as `tpmon token create --scope push:NETWORK/FLOW/CHECK` makes them."""
    secrets = []
    with Store.open(url) as store:
        with store.engine.connect() as connection:
            if connection.execute(select(func.count()).select_from(push_signal)).scalar_one():
                raise SystemExit("the database already holds push signals: give an empty database")
        for path in paths:
            scope = "push:" + path.removeprefix("/api/v1/push/")
            secret = new_token()
            create_token(store, digest=digest(secret), prefix=public_prefix(secret), label="bench", scopes=[scope],
                         created_by="bench", expires_at=None)  # fmt: skip
            secrets.append(secret)
    return secrets


@contextlib.contextmanager
def serving(root: Path, config: Path, url: str) -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    port, admin = free_port(), free_port()
    env = {**os.environ, "TPMON_DATABASE_URL": url}
    env.pop("TPMON_CONFIG", None)
    command = [*tpmon_command("auto", "auto"), "serve", "--config", str(config), "--port", str(port)]
    command += ["--admin-port", str(admin), "--pid-file", str(root / "tpmon.pid"), "--log-level", "warning"]
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"tpmon serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{admin}/healthz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("tpmon serve not ready within 120 s")
            time.sleep(0.2)
        yield port, admin, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        say(f"tpmon serve stopped (exit {proc.returncode})")


def wrk(url: str, targets: Path, args: argparse.Namespace, seconds: float, pid: int) -> dict[str, Any]:
    script = Path(tempfile.gettempdir()) / f"tpmon-push-bench-{os.getpid()}.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    command += [url, "--", str(targets)]
    before = cpu_seconds(pid)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    script.unlink(missing_ok=True)
    if os.waitstatus_to_exitcode(status) != 0 or "Requests/sec" not in output:
        raise SystemExit(f"wrk failed: {output}")
    figures = parse_wrk(output)
    statuses: dict[str, int] = {}
    for code, count in re.findall(r"^status (\d+) (\d+)$", output, re.M):  # one line per code and wrk thread
        statuses[code] = statuses.get(code, 0) + int(count)
    figures["statuses"] = statuses
    server = cpu_seconds(pid) - before
    accepted = statuses.get("202", 0)
    figures["accepted"] = accepted
    figures["accepted_per_s"] = round(accepted / seconds, 1)
    figures["server_cpu_share"] = round(server / seconds, 2)
    figures["server_cpu_us_per_push"] = round(server * 1e6 / figures["requests"]) if figures["requests"] else None
    figures["wrk_cpu_share"] = round((usage.ru_utime + usage.ru_stime) / seconds, 2)
    return figures


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    url = args.database_url or f"sqlite:///{root}/tpmon.db"
    text, paths = config_yaml(args.checks, rate=1_000_000)
    config = root / "tpmon.yaml"
    config.write_text(text, encoding="utf-8")
    secrets = make_tokens(url, paths)
    targets = root / "targets.txt"
    targets.write_text("".join(f"{p} {s}\n" for p, s in zip(paths, secrets, strict=True)), encoding="utf-8")
    with serving(root, config, url) as (_, admin, proc):
        base = f"http://127.0.0.1:{admin}"
        first = httpx.post(f"{base}{paths[0]}", headers={"Authorization": f"Bearer {secrets[0]}"}, timeout=10)
        if first.status_code != 202:
            raise SystemExit(f"a first push was refused: {first.status_code} {first.text}")
        say(f"warming up for {args.warmup:g} s")
        wrk(base, targets, args, args.warmup, proc.pid)
        load_before = round(os.getloadavg()[0], 2)
        say(f"loading {len(paths)} push checks with wrk for {args.duration:g} s ({args.connections} connections)")
        figures = wrk(base, targets, args, args.duration, proc.pid)
        load_after = round(os.getloadavg()[0], 2)
        process = process_figures(proc.pid)
    with Store.open(url, migrate=False) as store, store.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(push_signal)).scalar_one()
    return {
        "benchmark": "push_api",
        "target": TARGET,
        "met": figures["accepted_per_s"] >= TARGET["pushes_per_s"] and (figures["p99_ms"] or 1e9) < TARGET["p99_ms"],
        "database": url.split(":", 1)[0],
        "push_checks": len(paths),
        "tokens": len(secrets),
        "connections": args.connections,
        "wrk_threads": args.threads,
        "duration_s": args.duration,
        **figures,
        "signals_stored": stored,  # the warm-up's, this run's and the first: every 202 is in the store
        "server": process,
        "host": {
            "cpus": os.cpu_count(),
            "load_1m_before": load_before,
            "load_1m_after": load_after,  # other work on the machine skews every figure
            "python": platform.python_version(),
            "uvicorn": version("uvicorn"),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--checks", type=int, default=200, help="push checks, one token each (default 200)")
    parser.add_argument("--database-url", help="an empty database (default: a SQLite file in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tpmon-push-bench-") as folder:
        figures = run(args, Path(folder))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
