"""Test helpers: a real HTTP target on loopback whose answers the test changes, and a `tpmon serve` process."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 unless the machine says otherwise)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports for test servers are taken below the ephemeral range: a port the kernel handed out by `bind(0)` is one it
# also hands out as the source port of an outgoing connection (a probe, a client of another test), which can take
# it between `free_port()` and the server's own bind — the server then exits at startup (uvicorn exits 1 when its
# operators' listener cannot bind). Below the range only servers take ports. The two CI lanes
# (TPMON_TEST_LANE, set by .ci/test) each have their own half; a process hands its ports out in turn.
_PORT_SPAN = 6000
_LANE = os.environ.get("TPMON_TEST_LANE", "")
_PORT_LOW = max(1024, _ephemeral_low() - 2 * _PORT_SPAN) + (_PORT_SPAN if _LANE == "1" else 0)
_PORT_SPAN_HERE = _PORT_SPAN if _LANE in ("0", "1") else 2 * _PORT_SPAN
_next_port = [random.randrange(_PORT_SPAN_HERE)]
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nobody listens on or connects from, taken below the ephemeral range (see above)."""
    with _ports_lock:
        for _ in range(_PORT_SPAN_HERE):
            port = _PORT_LOW + _next_port[0] % _PORT_SPAN_HERE
            _next_port[0] += 1
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError(f"no free port in {_PORT_LOW}-{_PORT_LOW + _PORT_SPAN_HERE - 1}")


class Target:
    """An HTTP server on 127.0.0.1: `codes[path]` is the status each path answers (default 200); `hits[path]`
    counts the requests, `times(path)` says when each came (monotonic seconds)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target.lock:
                    target.hits[self.path] = target.hits.get(self.path, 0) + 1
                    target.arrivals.setdefault(self.path, []).append(time.monotonic())
                code = target.codes.get(self.path, 200)
                body = b'{"status": "ok"}' if code < 400 else b"<h1>Maintenance en cours</h1>"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def times(self, path: str) -> list[float]:
        with self.lock:
            return list(self.arrivals.get(path, []))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Callable[[], Any], *, timeout: float = 40.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns a truthy value; a deadline, not a sleep-and-hope (generous: a busy CI)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


# A deadline for a real process to start, not a speed claim: on the shared 2-core machine under load, imports and
# migrations have taken more than 15 s.
START_WITHIN = 60.0


class Server:
    """`tpmon serve` in a subprocess, as users run it."""

    def __init__(self, config: Path, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.admin_port = free_port()  # the operators' listener: never the default 8081, shared by every test
        self.config = config
        self.workdir = workdir
        self.env = {**os.environ, **env}
        self.pid_file = workdir / "tpmon.pid"
        self.log = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "monitor", *args]

    def start(self, *extra: str) -> Server:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(
                    "serve",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    "--pid-file",
                    str(self.pid_file),
                    "--admin-port",
                    str(self.admin_port),
                    *extra,
                ),
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.wait_started(START_WITHIN)
        return self

    def wait_started(self, within: float) -> None:
        """Poll /healthz until it answers; a start that does not is killed (never left running) and fails."""
        try:
            wait_for(
                lambda: self.get("/healthz").status_code == 200 or self._died(),
                timeout=within,
                what="tpmon serve to answer",
            )
        except AssertionError:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            raise

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"tpmon serve exited {self.proc.returncode}: {self.log.read_text()}")
        return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/api/v1/status").json()
        return data

    def component(self, network: str, kind: str, name: str) -> dict[str, Any]:
        for net in self.status()["networks"]:
            if net["id"] == network:
                for item in net[kind]:
                    if item["id"] == name:
                        found: dict[str, Any] = item
                        return found
        raise KeyError(f"{network}/{kind}/{name}")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.proc = None
        if code != 0:  # shown with the test's failure: the server's own words on why it ended so
            sys.stderr.write(f"tpmon serve exited {code}; the end of {self.log}:\n{self.log.read_text()[-4000:]}\n")
        return code


def interrupt(proc: subprocess.Popen[bytes], within: float = 30.0) -> int:
    """Ctrl-C `proc`, and its exit code; one still running `within` s later is killed (its code then says so):
    a failed stop never leaves a process running behind the suite."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def alpha_config(url: str, *, extra_checks: str = "", extra_networks: str = "") -> str:
    """A config with the operator `alpha` (pharmacie, optique) probing `url`/dre and `url`/pec every second."""
    return f"""
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {{name: dre, flow: facturation, kind: http, url: "{url}/dre"}}
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec"}}
{extra_checks}{extra_networks}"""
