"""What the fault suite throws at `tpmon serve`: idle half-sent requests, endless headers, random query strings.

Plain sockets and threads, no server-side help: each attacker is what anyone who reaches the web port can do.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import secrets
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux; Python 3.12 names it
HALF_SENT = b"GET / HTTP/1.1\r\nHost: x\r\nX-a: "  # a request head that never ends


def raise_own_file_limit(wanted: int) -> int:
    """Raise this process's soft (and, as root, hard) RLIMIT_NOFILE towards `wanted`; the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):  # only root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of `pid` in MiB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


class IdleConnections:
    """`count` connections to 127.0.0.1:`port`, each sending HALF_SENT and nothing more, held until `close`."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.sockets: list[socket.socket] = []
        self.sent = 0

    def open(self, deadline: float, in_flight: int = 256) -> None:
        """Open them all (or until `deadline`, a monotonic time), at most `in_flight` handshakes at a time (more
        only overflows the server's accept queue and waits for SYN retries); one the server closed still counts."""
        with selectors.DefaultSelector() as selector:
            while (len(self.sockets) < self.count or selector.get_map()) and time.monotonic() < deadline:
                while len(self.sockets) < self.count and len(selector.get_map()) < in_flight:
                    sock = socket.socket()
                    sock.setblocking(False)
                    # from 127.0.0.2–127.0.0.17: Linux's search for a free source port slows down as one address's
                    # 28,000 fill up (20,000 connections took 45 s from 127.0.0.1 alone)
                    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    sock.bind((f"127.0.0.{2 + len(self.sockets) % 16}", 0))
                    if sock.connect_ex(("127.0.0.1", self.port)) not in (0, errno.EINPROGRESS):
                        sock.close()
                        break
                    self.sockets.append(sock)
                    selector.register(sock, selectors.EVENT_WRITE)
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj  # type: ignore[assignment]
                    selector.unregister(sock)
                    with contextlib.suppress(OSError):  # refused or closed already: it still took an accept
                        sock.send(HALF_SENT)
                        self.sent += 1

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


class IdleCrowd:
    """`count` idle half-sent connections held by `processes` child processes (one process may not be allowed
    that many descriptors: its hard limit is the machine's), until `close`."""

    def __init__(self, port: int, count: int, processes: int) -> None:
        self.port, self.count = port, count
        share = -(-count // processes)
        self.children = [
            subprocess.Popen(
                [sys.executable, __file__, "idle", str(port), str(min(share, count - i * share))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]

    def opened(self) -> int:
        """Wait until every child holds its connections (60 s at most); how many they opened."""
        total = 0
        for child in self.children:
            assert child.stdout is not None
            line = child.stdout.readline()  # "opened N", printed once every connection is up
            total += int(line.split()[1]) if line.startswith("opened ") else 0
        return total

    def close(self) -> None:
        for child in self.children:
            assert child.stdin is not None
            child.stdin.close()  # the child closes its sockets and exits
        for child in self.children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


def _hold_idle(port: int, count: int) -> None:
    """A child of IdleCrowd: open `count` idle connections, say so, hold them until stdin closes."""
    raise_own_file_limit(count + 256)
    crowd = IdleConnections(port, count)
    crowd.open(deadline=time.monotonic() + 60)
    print(f"opened {len(crowd.sockets)}", flush=True)
    sys.stdin.read()
    crowd.close()


class EndlessHeaders(threading.Thread):
    """One connection sending a request head that grows by `chunk` bytes until `limit` or until the server stops
    reading it; `refused` tells whether the server closed or answered it (and what it answered)."""

    def __init__(self, port: int, limit: int, chunk: int = 64 * 1024) -> None:
        super().__init__(daemon=True)
        self.port, self.limit, self.chunk = port, limit, chunk
        self.sent = 0
        self.answer = b""
        self.stop = threading.Event()

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Flood: ")
                filler = b"a" * self.chunk
                while self.sent < self.limit and not self.stop.is_set():
                    sock.sendall(filler)
                    self.sent += len(filler)
            except OSError:
                pass  # the server closed the connection: what it answered, if anything, is still to read
            with contextlib.suppress(OSError):
                self.answer = sock.recv(4096)


class QueryStorm(threading.Thread):
    """Requests `path?<random>` over `connections` keep-alive connections until stopped; counts the answers."""

    def __init__(self, base: str, path: str, connections: int = 4) -> None:
        super().__init__(daemon=True)
        self.base, self.path, self.connections = base, path, connections
        self.done = 0
        self.statuses: dict[int, int] = {}
        self.etags: set[str] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        workers = [threading.Thread(target=self._work, daemon=True) for _ in range(self.connections)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _work(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                query = f"{secrets.token_hex(4)}={secrets.token_hex(8)}&utm_source={secrets.token_hex(3)}"
                try:
                    answer = client.get(f"{self.path}?{query}", headers={"Accept-Encoding": "identity"})
                except httpx.HTTPError:
                    continue
                with self._lock:
                    self.done += 1
                    self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                    if "etag" in answer.headers:
                        self.etags.add(answer.headers["etag"])


@contextlib.contextmanager
def running(thread: QueryStorm) -> Iterator[QueryStorm]:
    thread.start()
    try:
        yield thread
    finally:
        thread.stop.set()
        thread.join(15)


def timed_get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    answer = client.get(path)
    return answer, time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1] == "idle":
        _hold_idle(int(sys.argv[2]), int(sys.argv[3]))
