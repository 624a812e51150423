"""Process plumbing shared by the probe-engine benchmark: ports, children, /proc readings, the machine's load.

Adapted from the peer harness (`procmeter.py`): CPU is utime+stime of /proc/<pid>/stat (every thread), peak
RSS is VmHWM, and the whole machine's busy time comes from /proc/stat so that a run can say how much of the
2 cores something else took meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")


REPO = Path(__file__).resolve().parent.parent.parent


def extract(ref: str, into: Path) -> Path:
    """`monitor/` of git `ref` under `into` (a baseline to measure beside this tree); the commit is checked by git,
    nothing else is touched."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "monitor"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def say(message: str) -> None:
    print(f"[probe_engine] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Call `condition` until it is true; a refused or reset connection counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, httpx.TransportError):
            if condition():
                return
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    """Signal `proc` by its pid, wait for it, kill it past `grace` seconds: never leaves a zombie."""
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


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, all its threads; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat, counted after "(comm)"


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def peak_rss_mib(pids: list[int]) -> float:
    return sum(status_kib(pid, "VmHWM") for pid in pids) / 1024


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over every CPU, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


@dataclass
class Window:
    """CPU of named process groups, the whole machine's busy time and RSS samples between start() and stop()."""

    groups: dict[str, list[int]]
    sample_every: float = 0.5
    figures: dict[str, Any] = field(default_factory=dict)
    _rss: dict[str, list[int]] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _cpu(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def _sample(self) -> None:
        while not self._stopping.is_set():
            for name, pids in self.groups.items():
                self._rss.setdefault(name, []).append(sum(status_kib(pid, "VmRSS") for pid in pids))
            self._stopping.wait(self.sample_every)

    def start(self) -> None:
        self._load0 = load_1m()
        self._host0, self._self0, self._cpu0 = host_cpu(), self_cpu(), self._cpu()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        cpu1, t1, host1, self1 = self._cpu(), time.monotonic(), host_cpu(), self_cpu()
        self._stopping.set()
        self._thread.join()
        wall = t1 - self._t0
        cores = os.cpu_count() or 1
        busy = (host1[0] - self._host0[0]) / max(1, host1[1] - self._host0[1]) * 100 * cores
        procs = {}
        for name in self.groups:
            samples = self._rss.get(name) or [0]
            procs[name] = {
                "cpu_s": round(cpu1[name] - self._cpu0[name], 3),
                "cpu_pct": round((cpu1[name] - self._cpu0[name]) / wall * 100, 1),
                "rss_window_max_mib": round(max(samples) / 1024, 1),
            }
        measured = sum(p["cpu_pct"] for p in procs.values())
        bench = (self1 - self._self0) / wall * 100
        self.figures = {
            "wall_s": round(wall, 3),
            "procs": procs,
            "bench_cpu_pct": round(bench, 1),
            "host_busy_pct_of_one_core": round(busy, 1),  # cores × 100 = every core busy
            "host_other_cpu_pct": round(busy - measured - bench, 1),  # what neither the contender nor we used
            "load_1m_before": self._load0,
            "load_1m_after": load_1m(),
        }
        return self.figures
