"""`tpmon serve` attacked through its web port, as anyone who reaches it can (issue 11): probes never starve,
memory stays bounded, random query strings cost nothing, and the page keeps answering other readers.

Real processes on loopback: the server runs under a file-descriptor limit (`prlimit`), the attackers are plain
sockets of this process (tests/faults/attackers.py), the targets a real HTTP server.
"""

from __future__ import annotations

import re
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from targets import Server, Target, wait_for

from .attackers import (
    EndlessHeaders,
    IdleCrowd,
    QueryStorm,
    memory_mib,
    open_fds,
    running,
    timed_get,
)

CONFIG = """
defaults: {{interval: 2s, timeout: 1900ms, failure_threshold: 1, success_threshold: 1}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {{name: portail, flow: portail_ps, kind: http, url: "{url}/portail"}}
      - {{name: dre, flow: facturation, kind: http, url: "{url}/dre"}}
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec"}}
      - {{name: droits, flow: droits, kind: tcp, host: 127.0.0.1, port: {port}}}
"""
SERVER_FILES = (256, 1024)  # the server's soft and hard RLIMIT_NOFILE: far below what the attackers open
ATTACKERS = 20_000


class LimitedServer(Server):
    """`tpmon serve` started under `prlimit --nofile=SOFT:HARD`."""

    def command(self, *args: str) -> list[str]:
        soft, hard = SERVER_FILES
        return ["prlimit", f"--nofile={soft}:{hard}", "--", sys.executable, "-m", "monitor", *args]


@pytest.fixture
def server(tmp_path: Path, target: Target) -> Iterator[LimitedServer]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=target.url(""), port=target.port), encoding="utf-8")
    srv = LimitedServer(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"})
    srv.start()
    wait_for(lambda: srv.status()["networks"][0]["state"] == "operational", what="every check up")
    yield srv
    srv.stop()


def pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def probe_results(server: Server) -> dict[str, float]:
    """tpmon_probes_total summed by result, as /metrics says."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "tpmon_probes_total":
                result = sample.labels["result"]
                totals[result] = totals.get(result, 0.0) + sample.value
    return totals


def never_left_operational(server: Server) -> list[str]:
    """Every check's stored transitions since the start: the states it went to."""
    states = []
    for check in ("portail_ps/portail", "facturation/dre", "pec/pec", "droits/droits"):
        history = server.get(f"/api/v1/history/check:alpha/{check}").json()
        states += [t["to"] for t in history["transitions"]]
    return states


def test_twenty_thousand_idle_connections_never_starve_the_probes(server: LimitedServer, target: Target) -> None:
    """The issue's attack: idle half-sent requests used to take every descriptor, probes then failed with
    "Too many open files" and healthy networks went down on the public page."""
    before = probe_results(server)
    hits = sum(target.hits.values())
    attack = IdleCrowd(server.port, ATTACKERS, processes=2)  # 10,000 each: a process here may hold 20,000 at most
    try:
        assert attack.opened() == ATTACKERS
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as reader:
            for path in ("/", "/reseaux/alpha", "/api/v2/summary.json", "/api/v1/status"):
                answer, seconds = timed_get(reader, path)
                assert answer.status_code == 200, path
                assert seconds < 1.0, (path, seconds)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.admin_port}", timeout=5) as operator:
            answer, seconds = timed_get(operator, "/healthz")  # the public port's flood took none of its room
            assert answer.status_code == 200 and seconds < 1.0, seconds
        assert open_fds(pid(server)) < SERVER_FILES[1]  # the listener's cap held: descriptors were left over
        # probes go on meanwhile: at least two more rounds of the three HTTP checks
        wait_for(lambda: sum(target.hits.values()) >= hits + 6, what="two more rounds of probes")
    finally:
        attack.close()
    # the soft limit was raised to the hard one, and the connection caps derived from what probes leave over
    log = server.log.read_text()
    budget = re.search(r"public listener: at most (\d+) connections \(file descriptors: limit (\d+), (\d+) kept", log)
    admin = re.search(r"operators' listener: at most (\d+) connections", log)
    assert budget is not None and admin is not None, log
    assert int(budget.group(2)) == SERVER_FILES[1]
    room = SERVER_FILES[1] - int(budget.group(3))
    assert int(admin.group(1)) == max(16, room // 8)  # the operators' share, apart from the public one
    assert int(budget.group(1)) == room - int(admin.group(1)) < 2048
    after = probe_results(server)
    failed = {result: n - before.get(result, 0.0) for result, n in after.items() if result != "success"}
    assert not any(failed.values()), f"probes failed during the attack: {failed}"
    assert after["success"] > before["success"]
    assert set(never_left_operational(server)) == {"operational"}


def test_endless_request_heads_are_cut_and_memory_stays_bounded(server: LimitedServer) -> None:
    """One unfinished 50 MB header used to cost 50 MB; ten of them 500 MB."""
    rss_before, _ = memory_mib(pid(server))
    floods = [EndlessHeaders(server.port, limit=30 * 2**20) for _ in range(20)]
    for flood in floods:
        flood.start()
    for flood in floods:
        flood.join(60)
        flood.stop.set()
    rss, peak = memory_mib(pid(server))
    print(f"RSS before {rss_before:.0f} MiB, after {rss:.0f} MiB, peak {peak:.0f} MiB")
    assert peak < 200
    for flood in floods:
        assert flood.answer.startswith(b"HTTP/1.1 431 "), flood.answer[:80]
        assert flood.sent < 16 * 2**20  # cut early: past the head cap, only the sockets' buffers took more
    # an honest request with a large but reasonable head (cookies of a shared domain) is still served
    cookie = "; ".join(f"c{i}={'v' * 100}" for i in range(60))  # ≈ 6 kB
    assert server.get("/").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{server.port}/", headers={"Cookie": cookie}, timeout=5).status_code == 200


def test_random_query_strings_are_served_from_the_cache_without_slowing_readers(server: LimitedServer) -> None:
    """`/reseaux/x?<random>` used to rebuild the page for each request: 5,342 → 66 req/s, every reader slowed."""
    base = f"http://127.0.0.1:{server.port}"
    page = "/reseaux/alpha"
    plain = {"Accept-Encoding": "identity"}
    first = httpx.get(base + page, headers=plain, timeout=5)
    assert first.status_code == 200
    seconds: list[float] = []
    with running(QueryStorm(base, page, connections=4)) as storm, httpx.Client(base_url=base, timeout=5) as reader:
        wait_for(lambda: storm.done >= 200, what="the storm under way")
        for _ in range(200):
            answer, took = timed_get(reader, "/")
            assert answer.status_code == 200
            seconds.append(took)
    last = httpx.get(base + page, headers=plain, timeout=5)
    print(
        f"storm: {storm.done} requests; reader p50 {statistics.median(seconds) * 1000:.1f} ms,"
        f" max {max(seconds) * 1000:.1f} ms (timings: tests/benchmarks/web_storm.py)"
    )
    assert storm.statuses == {200: storm.done} and last.status_code == 200
    # one document, whatever the query: the storm's answers are the page's own cached rendering (which may change
    # while the probes go on: a new state during the storm is a new version, a random query never is)
    assert 1 <= len(storm.etags) <= 3, storm.etags
    assert max(seconds) < 1.0


SLOW_LIMITS = """
web: {{max_connections: 16, header_timeout: 1s, keepalive_timeout: 1s, send_timeout: 1s, max_header_bytes: 4096}}
"""


@pytest.fixture
def strict(tmp_path: Path, target: Target) -> Iterator[LimitedServer]:
    """A server with small limits, so that their effects show within a second."""
    config = tmp_path / "strict.yaml"
    config.write_text(SLOW_LIMITS.format() + CONFIG.format(url=target.url(""), port=target.port), encoding="utf-8")
    srv = LimitedServer(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/strict.db"})
    srv.start()
    yield srv
    srv.stop()


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closes `sock` (reads EOF or a reset), or None if it stays open `within` seconds."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - start


def test_a_slow_request_head_and_an_idle_connection_are_closed(strict: LimitedServer) -> None:
    slow = socket.create_connection(("127.0.0.1", strict.port))
    silent = socket.create_connection(("127.0.0.1", strict.port))
    idle = socket.create_connection(("127.0.0.1", strict.port))
    with slow, silent, idle:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # then one header line a while: slowloris
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 ")  # answered, then kept alive…
        for sock in (slow, silent, idle):
            seconds = closed_by_server(sock, within=10)
            assert seconds is not None and seconds < 5  # …until 1 s of silence; the heads had 1 s to arrive


def tcp_state(sock: socket.socket) -> int:
    """The kernel's state of `sock` (struct tcp_info's first byte): 1 established, 7 closed (a reset came)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def test_a_reader_that_takes_nothing_of_the_answers_is_cut_off(strict: LimitedServer) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.connect(("127.0.0.1", strict.port))
        sock.sendall(b"GET /reseaux/alpha HTTP/1.1\r\nHost: x\r\n\r\n" * 200)  # pipelined, never read
        wait_for(lambda: tcp_state(sock) == 7, timeout=10, what="the server to reset the connection")
    assert strict.get("/healthz").status_code == 200


def test_the_operators_listener_has_the_same_limits_and_its_own_room(strict: LimitedServer) -> None:
    """A flood of the public port never takes the operators' connections; their port cuts what the public one does."""
    public = [socket.create_connection(("127.0.0.1", strict.port)) for _ in range(40)]  # past the public cap
    with socket.create_connection(("127.0.0.1", strict.admin_port)) as slow:
        try:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # slowloris on the operators' port
            answer = httpx.get(f"http://127.0.0.1:{strict.admin_port}/healthz", timeout=5)
            assert answer.status_code == 200
            seconds = closed_by_server(slow, within=10)
            assert seconds is not None and seconds < 5
        finally:
            for sock in public:
                sock.close()
    for port in (strict.port, strict.admin_port):  # a head over the cap that comes whole, in one chunk
        with socket.create_connection(("127.0.0.1", port)) as big:
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: " + b"a" * 8192 + b"\r\n\r\n")
            assert big.recv(4096).startswith(b"HTTP/1.1 431 "), port
        with socket.create_connection(("127.0.0.1", port)) as fair:  # under it, two pipelined in one chunk
            fair.sendall((b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: " + b"a" * 3000 + b"\r\n\r\n") * 2)
            answers = b""
            while answers.count(b"HTTP/1.1 200 ") < 2:
                more = fair.recv(65536)
                assert more, answers
                answers += more


def test_a_request_body_that_never_comes_whole_is_cut(strict: LimitedServer) -> None:
    """The operators' sign-in reads its body: one trickled forever used to hold the connection (and its room)."""
    with socket.create_connection(("127.0.0.1", strict.admin_port)) as sock:
        head = (
            b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        )
        sock.sendall(head + b'{"name": ')
        seconds = closed_by_server(sock, within=10)
        assert seconds is not None and seconds < 5  # header_timeout (1 s) for the body too
    assert httpx.get(f"http://127.0.0.1:{strict.admin_port}/healthz", timeout=5).status_code == 200


def test_past_the_connection_cap_the_longest_idle_connection_makes_room(strict: LimitedServer) -> None:
    held = [socket.create_connection(("127.0.0.1", strict.port)) for _ in range(16)]
    try:
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        answer = strict.get("/healthz")  # the 17th: the first idle one is closed for it
        assert answer.status_code == 200
        assert closed_by_server(held[0], within=0.5) is not None
        assert closed_by_server(held[-1], within=0.2) is None  # the newest ones stay
    finally:
        for sock in held:
            sock.close()


def test_a_file_limit_too_low_for_the_probes_is_one_line_before_anything_starts(tmp_path: Path, target: Target) -> None:
    config = tmp_path / "tight.yaml"
    config.write_text("max_concurrency: 2048\n" + CONFIG.format(url=target.url(""), port=target.port), encoding="utf-8")
    srv = LimitedServer(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tight.db"})
    done = srv.run("serve", "--config", str(config), "--port", str(srv.port))
    assert done.returncode == 2, done
    assert done.stderr.startswith("tpmon: file descriptors: the limit is 1024 and probes (max_concurrency 2048)")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
