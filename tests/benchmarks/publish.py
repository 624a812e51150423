"""Publishing benchmark: `tpmon serve` with `web.publish_dir` at ~1,000 checks, nginx serving the folder.

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/publish.py [--quick] [--networks 30] [--interval 30] [--changes 10]
        [--duration 10]

Starts a loopback HTTP target, `tpmon serve` (empty SQLite store) probing `--networks` × 11 lines × 3 checks
(30 → 990 checks) every `--interval` seconds and publishing into a folder, and Debian's nginx serving that folder
(plain HTTP on loopback, the root, `try_files` and types of config/nginx-tpmon-published.conf). Then:

1. the first publication: how long until the whole folder is there (watched in the folder: the export's marker,
   never by scraping the server), and the scheduler's lag meanwhile;
2. the publish delay: `--changes` times, one network's target fails (then comes back); the delay is the published
   JSON file's modification time minus the transition's time it states (`since`) — what the board decided to
   what a reader of the folder gets — and the same for the network's page and the home page written with it; for
   its line pages (French and English), from each line's own change to its page showing it, the last of them —
   all watched at once every 20 ms (`watch_change`); a file not seen within 60 s is named in `publish_late` and
   the run goes on;
3. the scheduler's lag (p50/p99 from `tpmon_scheduler_lag_seconds`) while nothing changes, and during a storm of
   changes (a network flipping every second), i.e. while the publisher renders and writes;
4. wrk (`--duration` s, `--connections`) on `/` and `/api/v2/summary.json`: nginx serving the files, then the
   live server (which is still probing), req/s and p99, and the server's CPU per request.

Prints ONE JSON object on stdout, progress on stderr. Needs wrk and nginx (`.ci/nginx.sh`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from web import cpu_seconds, run_wrk
from web_data import LINE_FLOWS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared loopback target
from targets import Target, free_port

from monitor.web.export_folder import sync_folder
from monitor.web.publisher import write_atomically

PATHS = ("/", "/api/v2/summary.json")
NGINX = """daemon off;
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {site};
        index index.html;
        charset utf-8;
        types {{ text/html html; text/css css; application/javascript js; application/json json;
                application/atom+xml atom; application/rss+xml rss; image/svg+xml svg; }}
        etag on;
        add_header Cache-Control "no-cache" always;
        location / {{ try_files $uri $uri.json $uri/ =404; }}
        error_page 404 /404.html;
    }}
}}
"""


def say(message: str) -> None:
    print(f"[publish] {message}", file=sys.stderr, flush=True)


def config_yaml(target: str, site: Path, networks: int, interval: int) -> str:
    out = [
        f"web: {{public_url: 'https://etat.exemple.fr', publish_dir: '{site}'}}",
        "stabilization: 1s",
        f"defaults: {{interval: {interval}s, timeout: 2s, failure_threshold: 1, success_threshold: 1}}",
        "networks:",
    ]
    for number in range(networks):
        slug = f"reseau-{number:02d}"
        out += [
            f"  {slug}:",
            f"    name: Réseau {number}",
            "    kind: operateur",
            f"    lines: [{', '.join(LINE_FLOWS)}]",
        ]
        out.append("    checks:")
        for line, flows in LINE_FLOWS.items():
            for flow in flows:
                url = f"{target}/{slug}/{line}/{flow}"
                out.append(f'      - {{name: {line}-{flow}, flow: {flow}, kind: http, url: "{url}"}}')
    return "\n".join(out) + "\n"


def metric(port: int, name: str) -> float:
    """A metric's value on the server (0 while it does not answer yet)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    except httpx.HTTPError:
        return 0.0
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def lag_buckets(port: int) -> dict[float, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {
        float(bound) if bound != "+Inf" else float("inf"): float(count)
        for bound, count in re.findall(r'^tpmon_scheduler_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)
    }


def quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50 and p99 (upper bucket bounds, ms) of the probes started between two readings of the histogram."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0

    def at(q: float) -> float | None:
        for bound, count in counts:
            if total and count >= q * total:
                return round(bound * 1000, 1)
        return None

    return {"probes": int(total), "p50_ms_at_most": at(0.5), "p99_ms_at_most": at(0.99)}


def flip(target: Target, network: str, down: bool) -> None:
    for line, flows in LINE_FLOWS.items():
        for flow in flows:
            path = f"/{network}/{line}/{flow}"
            if down:
                target.codes[path] = 503
            else:
                target.codes.pop(path, None)


def published_state(site: Path, network: str) -> tuple[str, float, float] | None:
    """(state, since as a timestamp, the file's mtime) of the published network JSON."""
    path = site / "api" / "v1" / "networks" / f"{network}.json"
    try:
        data = json.loads(path.read_bytes())
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    return data["state"], datetime.fromisoformat(data["since"]).timestamp(), mtime


def watch_change(site: Path, network: str, down: bool, flipped: float, timeout: float = 60) -> dict[str, Any]:
    """From the flip, every 20 ms, everything a change of `network` publishes, watched at once (a file looked at only
    after another was waited for would be seen at a later rewrite, its delay overstated):

    - the network's JSON: its first write showing the network down (or back), `since` and mtime;
    - its page and the home page: their first mtime at or after that JSON's (written after it, in one publication);
    - each line page (French and English) of a line whose `since` in that JSON is after the flip: the first time it
      shows that state, its mtime.

    Each delay is an mtime minus the `since` it publishes. What is not seen within `timeout` s is left out and named
    in `late` (the run goes on: a late page is a figure, not the end of the measure)."""
    pages = [(line, lang) for line in LINE_FLOWS for lang in ("", "en")]
    others = {"network_page": site / "reseaux" / network / "index.html", "home_page": site / "index.html"}
    found: tuple[str, float, float] | None = None
    seen: dict[str, float] = {}
    lines: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found is None:
            state = published_state(site, network)
            if state is not None and (state[0] == "down") == down:
                found = state
        try:
            entries = {
                e["id"]: e for e in json.loads((site / "api/v1/networks" / f"{network}.json").read_bytes())["lines"]
            }
        except (OSError, ValueError):
            entries = {}
        changed = set()
        for line, lang in pages:
            entry = entries.get(line)
            if entry is None or entry["since"] is None:
                continue
            since = datetime.fromisoformat(entry["since"]).timestamp()
            if since < flipped - 1:
                continue
            changed.add((line, lang))
            if (line, lang) in lines:
                continue
            page = site / lang / "reseaux" / network / line / "index.html"
            with contextlib.suppress(OSError):
                if f'answer state-{entry["state"]}"' in page.read_text(encoding="utf-8"):
                    lines[line, lang] = round(page.stat().st_mtime - since, 3)
        if found is not None:
            for name, page in others.items():
                with contextlib.suppress(OSError):
                    if name not in seen and (mtime := page.stat().st_mtime) >= found[2]:
                        seen[name] = round(mtime - found[1], 3)
            if len(seen) == len(others) and changed <= lines.keys():
                break
        time.sleep(0.02)
    late = [] if found is not None else ["json"]
    late += [name for name in others if name not in seen]
    late += [f"{lang or 'fr'}/{line}" for line, lang in sorted(changed - lines.keys())] if found is not None else []
    delays: dict[str, Any] = {"late": late}
    if found is not None:
        delays["json"] = round(found[2] - found[1], 3)
        delays.update(seen)
        if changed <= lines.keys():
            delays["line_pages"] = max([lines[key] for key in changed], default=0.0)
    return delays


def wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


@contextlib.contextmanager
def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    target = Target()
    site = root / "site"
    figures: dict[str, Any] = {"checks": args.networks * 33, "networks": args.networks, "interval_s": args.interval}
    try:
        config = root / "tpmon.yaml"
        config.write_text(config_yaml(target.url(""), site, args.networks, args.interval), encoding="utf-8")
        port = free_port()
        env = {**os.environ, "TPMON_DATABASE_URL": f"sqlite:///{root / 'tpmon.db'}"}
        env.pop("TPMON_CONFIG", None)
        tpmon = [str(Path(sys.executable).with_name("tpmon")), "serve", "--config", str(config), "--port", str(port)]
        tpmon += ["--pid-file", str(root / "tpmon.pid"), "--log-level", "warning", "--no-admin"]
        started = time.monotonic()
        with process(tpmon, root / "serve.log", env) as server:
            wait(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 120, "the server")
            listening = round(time.monotonic() - started, 1)
            before = lag_buckets(port)
            wait((site / ".tpmon-export").is_file, 600, "first publication")  # written last, swapped in
            files = sum(1 for path in site.rglob("*") if path.is_file())
            figures["first_publication"] = {
                "seconds_from_start": round(time.monotonic() - started, 1),
                "server_listening_at_s": listening,
                "files": files,
                "scheduler_lag_meanwhile": quantiles(before, lag_buckets(port)),
            }
            say(f"first publication: {figures['first_publication']}")
            networks = [f"reseau-{number:02d}" for number in range(args.networks)]
            wait(
                lambda: all((found := published_state(site, n)) and found[0] != "unknown" for n in networks),
                300,
                "every network published with a known state",
            )

            delays: dict[str, list[float]] = {
                "json": [],
                "network_page": [],
                "home_page": [],
                "line_pages": [],
                "every_page": [],
            }
            late: list[dict[str, Any]] = []
            for change in range(args.changes):
                network = networks[change % len(networks)]
                for down in (True, False):
                    flipped = time.time()
                    flip(target, network, down)
                    seen = watch_change(site, network, down, flipped)
                    if seen["late"]:
                        late.append({"network": network, "down": down, "not_within_60_s": seen["late"]})
                        say(f"{network} {'down' if down else 'back'}: not published within 60 s: {seen['late']}")
                    for name in ("json", "network_page", "home_page", "line_pages"):
                        if name in seen:
                            delays[name].append(seen[name])
                    if not seen["late"]:
                        delays["every_page"].append(
                            max(seen["json"], seen["network_page"], seen["home_page"], seen["line_pages"])
                        )
                    wait(lambda n=network, d=down: (s := published_state(site, n)) and (s[0] == "down") == d, 120,
                         f"{network} published {'down' if down else 'back'}")  # fmt: skip
            figures["publish_late"] = late
            figures["publish_delay_s"] = {
                name: {"changes": len(found), "max": max(found), "median": sorted(found)[len(found) // 2], "all": found}
                for name, found in delays.items()
                if found
            }
            say(f"publish delay: {figures['publish_delay_s']}")

            before = lag_buckets(port)
            time.sleep(args.duration)
            quiet = quantiles(before, lag_buckets(port))
            written = metric(port, "tpmon_publish_files_written_total")
            before = lag_buckets(port)
            ends = time.monotonic() + args.duration
            flips = 0
            while time.monotonic() < ends:  # a storm: a network flips every second, in turn
                network = networks[flips % len(networks)]
                flip(target, network, flips // len(networks) % 2 == 0)
                flips += 1
                time.sleep(1)
            storm = quantiles(before, lag_buckets(port))
            storm["files_written"] = int(metric(port, "tpmon_publish_files_written_total") - written)
            figures["scheduler_lag"] = {"quiet": quiet, "publishing_storm": storm, "flips": flips}
            say(f"scheduler lag: {figures['scheduler_lag']}")
            for network in networks:
                flip(target, network, False)

            nginx_port = free_port()
            nginx_root = root / "nginx"
            nginx_root.mkdir()
            conf = nginx_root / "nginx.conf"
            conf.write_text(NGINX.format(root=nginx_root, port=nginx_port, site=site), encoding="utf-8")
            binary = shutil.which("nginx") or "/usr/sbin/nginx"
            with process([binary, "-p", str(nginx_root), "-c", str(conf)], root / "nginx.log") as nginx:
                wait(lambda: _answers(f"http://127.0.0.1:{nginx_port}/"), 30, "nginx")
                served: dict[str, Any] = {}
                for name, base, pid in (
                    ("nginx_files", f"http://127.0.0.1:{nginx_port}", nginx.pid),
                    ("live_server", f"http://127.0.0.1:{port}", server.pid),
                ):
                    served[name] = {}
                    for path in PATHS:
                        run_wrk(base + path, args, None, seconds=2)
                        result = run_wrk(base + path, args, None, seconds=args.duration, pid=pid)
                        served[name][path] = {
                            key: result[key]
                            for key in ("req_per_s", "p50_ms", "p99_ms", "non_2xx_3xx", "socket_errors")
                        }
                        say(f"{name} {path}: {served[name][path]}")
                figures["served"] = served
            figures["tpmon_cpu_s"] = round(cpu_seconds(server.pid), 1)
            figures["atomic_write_ms_per_file"] = write_costs(root / "writes")
            say(f"atomic writes: {figures['atomic_write_ms_per_file']}")
            figures["publish_failures"] = metric(port, "tpmon_publish_failures_total")
    finally:
        target.close()
    return figures


def write_costs(folder: Path, files: int = 200, size: int = 35_000) -> dict[str, float]:
    """ms per file written into `folder` (the published folder's filesystem): without fsync (write, rename), as the
    publisher writes a batch (the bytes fsynced before the rename, the folder once), and one file alone (its
    folder too)."""
    body = b"x" * size
    folder.mkdir()

    def plain(relative: str) -> None:
        temporary = folder / f".{relative}.tmp"
        temporary.write_bytes(body)
        os.replace(temporary, folder / relative)

    found = {}
    for name, write in (
        ("no_fsync", plain),
        ("batch", lambda relative: write_atomically(folder, relative, body, 0o644, sync=False)),
        ("alone", lambda relative: write_atomically(folder, relative, body, 0o644)),
    ):
        started = time.perf_counter()
        for number in range(files):
            write(f"{name}-{number}.html")
        if name == "batch":
            sync_folder(folder)
        found[name] = round((time.perf_counter() - started) / files * 1000, 3)
    return found


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=5).status_code == 200
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--networks", type=int, default=30, help="networks of 33 checks (default 30: 990 checks)")
    parser.add_argument("--interval", type=int, default=30, help="seconds between probes of a check (default 30)")
    parser.add_argument("--changes", type=int, default=10, help="networks taken down then up, one at a time")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each lag window and wrk run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--quick", action="store_true", help="10 networks (330 checks), 3 changes, 4 s windows")
    args = parser.parse_args()
    if args.quick:
        args.networks, args.changes, args.duration = 10, 3, 4.0
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            say(f"{tool} is missing: apt-get install -y --no-install-recommends {tool}")
            return 2

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: nginx, server and target stopped

    signal.signal(signal.SIGTERM, terminate)
    root = Path(tempfile.mkdtemp(prefix="tpmon-publish-bench-"))
    load = round(os.getloadavg()[0], 2)
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
    figures["machine"] = {
        "cores": os.cpu_count(),
        "host_load_1m_before": load,
        "host_load_1m_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
