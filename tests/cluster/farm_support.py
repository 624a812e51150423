"""A loopback target farm that counts, per path, when each request arrived; and a fleet of `tpmon serve`."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from targets import Server, wait_for


class Farm:
    """HTTP on 127.0.0.1: every path answers 200 (or `codes[path]`); `arrivals[path]` are the epoch seconds of its
    requests (when their connection was accepted), counted here, never by the prober."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                with farm._lock:
                    arrived = farm._accepted.pop(id(self.request), None) or time.time()
                    farm.arrivals.setdefault(self.path, []).append(arrived)
                code = farm.codes.get(self.path, 200)
                body = b"OK\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Accepting(ThreadingHTTPServer):
            def get_request(self) -> tuple[Any, Any]:
                """Dated when accepted, before a thread is started to read it: on a loaded machine that start may
                lag, and the probe's arrival is its connection."""
                request, address = super().get_request()
                with farm._lock:
                    farm._accepted[id(request)] = time.time()
                return request, address

            def shutdown_request(self, request: Any) -> None:
                with farm._lock:
                    farm._accepted.pop(id(request), None)  # a connection that sent no GET: its id may be reused
                super().shutdown_request(request)

        self._accepted: dict[int, float] = {}
        self.server = Accepting(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def between(self, path: str, start: float, end: float) -> list[float]:
        with self._lock:
            return [t for t in self.arrivals.get(path, []) if start <= t < end]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fleet_config(farm: Farm, checks: int, *, interval: str, heartbeat: str) -> str:
    """One network whose `checks` HTTP checks each probe their own path of the farm (/c00, /c01…)."""
    flows = ("portail_ps", "pec", "facturation", "droits")
    lines = "\n".join(
        f'      - {{name: c{i:02d}, flow: {flows[i % 4]}, kind: http, url: "{farm.url(f"/c{i:02d}")}"}}'
        for i in range(checks)
    )
    return f"""
defaults: {{interval: {interval}, timeout: 1s, failure_threshold: 1, success_threshold: 1}}
jitter: 0
stabilization: 2s
cluster: {{heartbeat: {heartbeat}}}
admin: {{enabled: false}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
{lines}
"""


class Instance(Server):
    """`tpmon serve` with a start deadline for a loaded machine, and stopped for sure (SIGKILL after 20 s)."""

    def start(self, *extra: str) -> Instance:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command("serve", "--config", str(self.config), "--port", str(self.port), "--no-admin", *extra),
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        wait_for(lambda: self.get("/healthz").status_code == 200 or self._died(), timeout=90, what="serve to answer")
        return self

    def stop(self) -> int:
        try:
            return super().stop()
        except subprocess.TimeoutExpired:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=20)
            self.proc = None
            raise


@contextmanager
def fleet(config: Path, root: Path, url: str, count: int, *extra: str) -> Iterator[list[Instance]]:
    """`count` instances of `tpmon serve` on the database at `url`, started one after the other, all stopped."""
    servers: list[Instance] = []
    try:
        for index in range(count):
            workdir = root / f"instance{index}"
            workdir.mkdir()
            servers.append(Instance(config, workdir, {"TPMON_DATABASE_URL": url}))
            servers[-1].start(*extra)
        yield servers
    finally:
        for server in servers:
            server.stop()


def query(url: str, sql: str) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)).all())
    finally:
        engine.dispose()


def missed_runs(server: Server) -> float:
    """Probe runs the instance's scheduler missed or coalesced (late past their grace, or the previous one ran)."""
    found = 0.0
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(("tpmon_scheduler_missed_runs_total ", "tpmon_scheduler_coalesced_runs_total ")):
            found += float(line.split()[1])
    return found
