"""The fault proxy itself: it forwards, cuts and hangs as the tests that rely on it expect."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from tcp_proxy import TcpProxy, tcp_proxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def _roundtrip(proxy: TcpProxy, timeout: float = 2.0) -> bytes:
    """What comes back for b"ping"; b"" when the proxy closed the connection (orderly or by a reset)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as sock:
        try:
            sock.sendall(b"ping")
            return sock.recv(1024)
        except (ConnectionResetError, BrokenPipeError):
            return b""


def _read(sock: socket.socket) -> bytes:
    try:
        return sock.recv(10)
    except ConnectionResetError:
        return b""


def test_pass_forwards_both_ways(echo_port: int) -> None:
    with tcp_proxy("127.0.0.1", echo_port) as proxy:
        assert _roundtrip(proxy) == b"ping"


def test_hang_stops_an_open_connection_too(echo_port: int) -> None:
    with tcp_proxy("127.0.0.1", echo_port) as proxy, socket.create_connection(("127.0.0.1", proxy.port), 2) as sock:
        sock.sendall(b"a")
        assert sock.recv(10) == b"a"
        proxy.set_mode("hang")
        sock.settimeout(0.3)
        sock.sendall(b"b")
        with pytest.raises(TimeoutError):
            sock.recv(10)


def test_hang_accepts_and_never_answers(echo_port: int) -> None:
    with tcp_proxy("127.0.0.1", echo_port) as proxy:
        proxy.set_mode("hang")
        with pytest.raises(TimeoutError):
            _roundtrip(proxy, timeout=0.3)


def test_cut_closes_open_connections_and_refuses_new_ones(echo_port: int) -> None:
    with tcp_proxy("127.0.0.1", echo_port) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        sock.sendall(b"a")
        assert sock.recv(10) == b"a"
        proxy.set_mode("cut")
        sock.settimeout(2)
        assert _read(sock) == b""  # closed by the proxy
        sock.close()
        assert _roundtrip(proxy) == b""
        proxy.set_mode("pass")
        assert _roundtrip(proxy) == b"ping"
