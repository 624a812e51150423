"""The offline simulator: each network's endpoints on loopback, behaving as real portals did in the scenario.

A plain asyncio HTTP/1.1 server (and the same over TLS), so that it can do what real portals do and a
framework would hide: answer 503s, show a maintenance banner on a 200 login page, answer slowly, or
reset the connection. What an endpoint does is read from the scenario at the virtual clock's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from datetime import datetime

from .certs import DemoCerts
from .scenario import Mode, Scenario

__all__ = ["SLOW_SECONDS", "Simulator"]

log = logging.getLogger("tpmon.demo.simulator")

SLOW_SECONDS = 1.5  # an overloaded portal: slower than the demo checks' `degraded_after` (1 s)
_HEAD_LIMIT = 8192

_LOGIN = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{name} — Espace professionnels de santé</title></head>
<body><header><h1>{name}</h1><p>Espace professionnels de santé (simulation tpmon, hors ligne)</p></header>
{banner}<main><h2>Connexion</h2><p>Ce portail est simulé : aucun identifiant n'est demandé ni accepté.</p></main>
</body></html>"""
_BANNER = (
    '<div class="bandeau" role="alert"><strong>Maintenance en cours</strong> — le service est '
    "momentanément interrompu. Merci de votre compréhension.</div>"
)


class Simulator:
    """Serves `/{network}/{endpoint}` over HTTP and HTTPS; an endpoint's behaviour follows the scenario."""

    def __init__(self, scenario: Scenario, clock: Callable[[], datetime], names: dict[str, str]) -> None:
        self.scenario = scenario
        self.clock = clock
        self.names = names  # network id → display name, for the login pages
        self.hits = 0
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, certs: DemoCerts, host: str = "127.0.0.1") -> tuple[str, str]:
        """Listen on two free loopback ports; returns the base URLs (http, https)."""
        plain = await asyncio.start_server(self._serve, host, 0, reuse_address=True)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(certs.cert_file, certs.key_file)
        secure = await asyncio.start_server(self._serve, host, 0, ssl=tls, reuse_address=True)
        self._servers = [plain, secure]
        ports = [server.sockets[0].getsockname()[1] for server in self._servers]
        return f"http://{host}:{ports[0]}", f"https://{host}:{ports[1]}"

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.LimitOverrunError):
            pass  # the prober went away or spoke nonsense: nothing to do
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if len(head) > _HEAD_LIMIT:
            return
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        path = parts[1] if len(parts) == 3 else "/"
        self.hits += 1
        network, _, endpoint = path.strip("/").partition("/")
        key = f"{network}/{endpoint}"
        if network not in self.names or not endpoint:
            await self._send(writer, 404, "text/plain", "not found")
            return
        mode: Mode = self.scenario.mode(key, self.clock())
        if mode == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:  # an abortive close: the prober sees a connection reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if mode == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if mode == "down":
            await self._send(writer, 503, "text/html; charset=utf-8", "<h1>Service temporairement indisponible</h1>")
        elif endpoint in ("dre", "droits", "visiodroits") or endpoint.startswith("pec"):
            await self._send(writer, 200, "application/json", json.dumps({"status": "ok", "service": endpoint}))
        else:
            name = html.escape(self.names[network])
            page = _LOGIN.format(name=name, banner=_BANNER if mode == "banner" else "")
            await self._send(writer, 200, "text/html; charset=utf-8", page)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, media: str, body: str) -> None:
        data = body.encode("utf-8")
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {media}\r\nContent-Length: {len(data)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + data)
        await writer.drain()
