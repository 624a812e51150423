"""The target farm: one nginx (a child process, its own config in a temp folder) that counts what it receives.

Adapted from the peer harness (`farm.py`). Any path answers; the checks of both contenders use
`/<network>/<flow>/<check>`: `portail_ps` paths answer an HTML login page, `pec` paths a JSON document, the
others `OK`. Three listeners on free 127.0.0.1 ports: plain HTTP, HTTPS (a certificate of a local trustme CA)
and a status port with `stub_status` alone. The probes are counted HERE, never by the prober:

- `stub_status` "requests": every request read by nginx (the status port's own reads included: one per read);
- the access log of the two probe listeners (written unbuffered), one line per probe:
  `<end, epoch s with ms> <request_time s> <port> <uri> <status>`, which also tells which checks were
  probed and when, so that a stall of the prober (no arrivals for a while) is seen from the target.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from meter import cpu_seconds, free_port, say, stop, wait_until

PORTAL_BODY = "<!doctype html><title>Portail</title><h1>Connexion</h1><form>identifiant</form>"
PEC_BODY = '{"status": "UP", "components": [{"name": "pec", "state": "running"}]}'
PLAIN_BODY = "OK\n"
_STUB = re.compile(r"\n\s*(\d+)\s+(\d+)\s+(\d+)")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise SystemExit("nginx is missing: apt-get install -y --no-install-recommends nginx-light")
    return found


def make_ca(root: Path) -> tuple[Path, Path]:
    """(server key+chain PEM, CA PEM) of a fresh local CA, for 127.0.0.1 and localhost."""
    import trustme

    ca = trustme.CA()
    server = root / "server.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(server))
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


def nginx_config(root: Path, http_port: int, https_port: int, status_port: int, server_pem: Path) -> str:
    temp = "\n    ".join(
        f"{name}_temp_path {root / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    locations = f"""
        location ~ ^/[^/]+/portail_ps/ {{ default_type text/html; return 200 '{PORTAL_BODY}'; }}
        location ~ ^/[^/]+/pec/ {{ default_type application/json; return 200 '{PEC_BODY}'; }}
        location / {{ default_type text/plain; return 200 '{PLAIN_BODY}'; }}"""
    return f"""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65535;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    server_tokens off;
    keepalive_timeout 5s;
    log_format probes '$msec $request_time $server_port $request_uri $status';
    {temp}
    server {{
        listen 127.0.0.1:{http_port} backlog=4096;
        access_log {root / "access.log"} probes;{locations}
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl backlog=4096;
        ssl_certificate {server_pem};
        ssl_certificate_key {server_pem};
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log {root / "access.log"} probes;{locations}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        access_log off;
        location = /nginx_status {{ stub_status; }}
    }}
}}
"""


@dataclass(frozen=True)
class Mark:
    """Where the target's counters stood at one instant."""

    at: float  # epoch seconds (the access log's clock)
    stub_requests: int
    log_offset: int


@dataclass
class Arrivals:
    """The probes the target received between two marks."""

    stub: int  # stub_status delta, our own reads taken out
    times: list[float]  # arrival (request start) of each logged probe in the window, sorted
    uris: set[str]
    statuses: dict[str, int]


class Farm:
    """A running nginx farm; `base(https)` gives the URL prefix of each listener."""

    def __init__(self, root: Path, proc: subprocess.Popen[bytes], ports: tuple[int, int, int], ca_file: Path) -> None:
        self.root, self.proc, self.ca_file = root, proc, ca_file
        self.http_port, self.https_port, self.status_port = ports
        self.access_log = root / "access.log"
        self._status = httpx.Client(base_url=f"http://127.0.0.1:{self.status_port}", timeout=5, trust_env=False)

    def base(self, https: bool) -> str:
        return f"https://127.0.0.1:{self.https_port}" if https else f"http://127.0.0.1:{self.http_port}"

    def pids(self) -> list[int]:
        from meter import children_of

        return [self.proc.pid, *children_of(self.proc.pid)]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def stub_requests(self) -> int:
        """nginx's count of requests read so far, this read included."""
        found = _STUB.search(self._status.get("/nginx_status").text)
        if found is None:
            raise RuntimeError("unexpected stub_status answer")
        return int(found.group(3))

    def mark(self) -> Mark:
        at = time.time()
        requests = self.stub_requests()
        size = self.access_log.stat().st_size if self.access_log.exists() else 0
        return Mark(at, requests, size)

    def arrivals(self, start: Mark, end: Mark, settle: float = 0.3) -> Arrivals:
        """What arrived in [start.at, end.at): the stub delta, and the access log lines whose request began then.

        A probe still in flight at `end` is logged when it ends: wait `settle` seconds before reading.
        """
        time.sleep(settle)
        times: list[float] = []
        uris: set[str] = set()
        statuses: dict[str, int] = {}
        with self.access_log.open("rb") as log:
            log.seek(start.log_offset)
            for raw in log:
                parts = raw.split()
                if len(parts) != 5:
                    continue
                began = float(parts[0]) - float(parts[1])
                if start.at <= began < end.at:
                    times.append(began)
                    uris.add(parts[3].decode())
                    code = parts[4].decode()
                    statuses[code] = statuses.get(code, 0) + 1
        times.sort()
        return Arrivals(end.stub_requests - start.stub_requests - 1, times, uris, statuses)

    def close(self) -> None:
        self._status.close()


@contextlib.contextmanager
def farm(root: Path) -> Iterator[Farm]:
    """nginx on three free loopback ports (HTTP, HTTPS, status), stopped and waited for on exit."""
    root.mkdir(parents=True, exist_ok=True)
    server_pem, ca_file = make_ca(root)
    ports = (free_port(), free_port(), free_port())
    while len(set(ports)) < 3:
        ports = (free_port(), free_port(), free_port())
    config = root / "nginx.conf"
    config.write_text(nginx_config(root, *ports, server_pem), encoding="utf-8")
    log = (root / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    farm = Farm(root, proc, ports, ca_file)
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited {proc.returncode}: {(root / 'error.log').read_text()}")
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True

        wait_until(answers, 15, "nginx")
        say(f"nginx farm: http :{ports[0]}, https :{ports[1]}, stub_status :{ports[2]} (pid {proc.pid})")
        yield farm
    finally:
        farm.close()
        stop(proc, signal.SIGTERM, 10)  # TERM: fast shutdown of the master and its worker
        log.close()


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time without any arrival that overlaps [start, end] (0 when nothing arrived around it)."""
    first = max(0, bisect.bisect_left(times, start) - 1)
    last = min(len(times), bisect.bisect_right(times, end) + 1)
    around = times[first:last]
    return max((b - a for a, b in itertools.pairwise(around)), default=0.0)
