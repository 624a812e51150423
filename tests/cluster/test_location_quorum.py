"""Three locations on one PostgreSQL, each probing from its own loopback address: a target that one location alone
cannot reach is not published down (the page says from where it is unreachable); two of three make it down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from targets import wait_for

from .farm_support import Instance, query

LOCATIONS = {"a": None, "b": "127.0.0.2", "c": "127.0.0.3"}  # where each location's probes leave from


class Picky:
    """HTTP on 127.0.0.1 that closes at once every connection from a refused peer address; counts who it served."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.served: dict[str, int] = {}
        self.closed: dict[str, int] = {}
        self._lock = threading.Lock()
        picky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                body = b"OK\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                peer = str(client_address[0])
                with picky._lock:
                    refused = peer in picky.refused
                    counts = picky.closed if refused else picky.served
                    counts[peer] = counts.get(peer, 0) + 1
                return not refused  # refused: the server closes the connection without a word

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def refuse(self, *peers: str) -> None:
        with self._lock:
            self.refused.update(peers)

    def count(self, peer: str, *, closed: bool) -> int:
        with self._lock:
            return (self.closed if closed else self.served).get(peer, 0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def picky() -> Iterator[Picky]:
    server = Picky()
    yield server
    server.close()


def _config(picky: Picky) -> str:
    url = f"http://127.0.0.1:{picky.port}"
    return f"""
defaults: {{interval: 2s, timeout: 1s, failure_threshold: 1, success_threshold: 1}}
jitter: 0
stale_after_intervals: 10  # a loaded machine: a location's vote outlives a late probe or a late notification
stabilization: 2s
cluster:
  heartbeat: 1s
  locations:
    b: {{source_address: 127.0.0.2}}
    c: {{source_address: 127.0.0.3}}
admin: {{enabled: false}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie]
    checks:
      - {{name: fact, flow: facturation, kind: http, url: "{url}/fact"}}
      - {{name: droits, flow: droits, kind: http, url: "{url}/droits"}}
"""


def _cell(server: Instance, kind: str, name: str) -> dict[str, Any]:
    [network] = server.status()["networks"]
    found: dict[str, Any] = next(cell for cell in network[kind] if cell["id"] == name)
    return found


def _line_downs(url: str) -> int:
    rows = query(
        url, "SELECT count(*) AS n FROM transition WHERE component_key = 'line:alpha/pharmacie' AND state = 'down'"
    )
    return int(rows[0].n)


@pytest.mark.postgres
def test_one_location_alone_cannot_reach_a_target_the_line_is_not_down_two_of_three_it_is(
    tmp_path: Path, picky: Picky, fresh_postgres_url: str
) -> None:
    url = fresh_postgres_url
    for source in filter(None, LOCATIONS.values()):  # the loopback addresses this test needs (Linux: all of 127/8)
        with socket.socket() as probe:
            probe.bind((source, 0))
    config = tmp_path / "tpmon.yaml"
    config.write_text(_config(picky), encoding="utf-8")
    picky.refuse("127.0.0.3")  # location c alone cannot reach the target
    servers: list[Instance] = []
    try:
        for location in LOCATIONS:
            (tmp_path / location).mkdir()
            servers.append(Instance(config, tmp_path / location, {"TPMON_DATABASE_URL": url}))
            servers[-1].start("--location", location)
        a, _, c = servers

        def told_from_c_only() -> bool:
            return all(
                _cell(s, "checks", "fact")["state"] == "operational"
                and _cell(s, "checks", "fact")["detail"] == "down_from:c"
                for s in servers
            )

        wait_for(told_from_c_only, timeout=90, what="every instance to tell the failure from c only")
        assert picky.count("127.0.0.3", closed=True) > 0  # c did probe, and was refused
        assert picky.count("127.0.0.1", closed=False) > 0 and picky.count("127.0.0.2", closed=False) > 0
        for server in servers:
            assert _cell(server, "lines", "pharmacie")["state"] == "operational"
        page = a.get("/reseaux/alpha/pharmacie").text
        assert "injoignable depuis c uniquement" in page
        assert "unreachable from c only" in a.get("/reseaux/alpha/pharmacie?lang=en").text
        metrics = c.get("/metrics").text  # c's own probe series, labelled with its location
        assert 'tpmon_probe_success{check="fact",flow="facturation",location="c",network="alpha"} 0.0' in metrics
        assert 'tpmon_check_state{check="fact",flow="facturation",network="alpha",state="operational"} 1.0' in metrics
        refused = picky.count("127.0.0.3", closed=True)
        wait_for(  # three more probes of each check refused to c: still not down, anywhere, at any time
            lambda: picky.count("127.0.0.3", closed=True) >= refused + 6, timeout=60, what="c to be refused again"
        )
        assert all(_cell(s, "lines", "pharmacie")["state"] == "operational" for s in servers)
        assert _line_downs(url) == 0
        assert (
            query(url, "SELECT count(*) AS n FROM transition WHERE component_key LIKE 'check:%' AND state = 'down'")[
                0
            ].n
            == 0
        )

        picky.refuse("127.0.0.2")  # b too: two locations of three
        wait_for(
            lambda: all(_cell(s, "lines", "pharmacie")["state"] == "down" for s in servers),
            timeout=90,
            what="every instance to show the line down",
        )
        assert _line_downs(url) == 1  # written once, by one instance
        assert _cell(a, "checks", "fact")["detail"] == ""
        assert "injoignable depuis" not in a.get("/reseaux/alpha/pharmacie").text
    finally:
        for server in servers:
            server.stop()


def test_a_source_address_of_another_machine_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(
        """
cluster:
  locations:
    lyon: {source_address: 192.0.2.20}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie]
    checks:
      - {name: fact, flow: facturation, kind: tcp, host: 127.0.0.1, port: 9}
""",
        encoding="utf-8",
    )
    server = Instance(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path / 'tpmon.db'}"})
    done = server.run("serve", "--config", str(config), "--location", "lyon", "--port", str(server.port))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "tpmon: cluster.locations.lyon.source_address: probes cannot connect from 192.0.2.20 "
        "(Cannot assign requested address)"
    ), done.stderr
