"""Phase timings of an HTTP probe, from httpcore's `trace` request extension."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpcore

__all__ = ["HTTP_PHASES", "HttpPhases"]

HTTP_PHASES = ("resolve", "connect", "tls", "processing", "transfer")

# httpcore event (without .started/.complete/.failed) → the phase it times
_TIMED = {
    "connection.connect_tcp": "connect",
    "connection.start_tls": "tls",
}
# the first event of each step → what a timeout detail says the probe was doing
_STAGES = {
    "connection.connect_tcp": "while connecting",
    "connection.start_tls": "in the TLS handshake",
    "http11.send_request_headers": "while sending the request",
    "http11.receive_response_headers": "waiting for the response headers",
    "http11.receive_response_body": "while reading the body",
}


class HttpPhases:
    """Accumulates phase durations over every request of one probe (redirects included).

    On a fresh connection (wire.py) `resolve`, `connect` and `tls` are timed by the probe itself (`resolve`
    is 0 for an IP literal); through the keep-alive client (`reuse_connection`) httpcore's trace times
    `connect` and `tls`, and `resolve` stays 0 (httpcore resolves inside `connect_tcp`).
    `processing` runs from sending the request headers to receiving the response headers;
    `transfer` is added by the probe around its (capped) body read.
    """

    def __init__(self) -> None:
        self.totals = dict.fromkeys(HTTP_PHASES, 0.0)
        self.stage = "while connecting"
        self._started: dict[str, float] = {}
        self._tcp: httpcore.AsyncNetworkStream | None = None

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """The httpcore trace callback: `event` is like "connection.connect_tcp.started"."""
        now = time.perf_counter()
        step, _, state = event.rpartition(".")
        if state == "started":
            self._started[step] = now
            self.stage = _STAGES.get(step, self.stage)
            return
        if step == "connection.connect_tcp" and state == "complete":
            stream = info.get("return_value")
            self._tcp = stream if isinstance(stream, httpcore.AsyncNetworkStream) else None
        start = self._started.pop(step, None)
        if start is None:
            return
        if step in _TIMED:
            self.totals[_TIMED[step]] += now - start
        elif step == "http11.receive_response_headers" and state == "complete":
            sent = self._started.pop("http11.send_request_headers", start)
            self.totals["processing"] += now - sent
        elif step == "http11.send_request_headers":
            self._started[step] = start  # keep it: processing is measured from here

    async def abandon(self) -> None:
        """After a timeout: close the TCP stream if the TLS handshake was under way.

        httpcore closes that stream on errors but not on cancellation (httpcore 1.0 `start_tls`
        catches only Exception), which would leave the socket open until garbage collection.
        """
        stream, self._tcp = self._tcp, None
        if stream is not None and self.stage == _STAGES["connection.start_tls"]:
            with contextlib.suppress(OSError):  # a broken socket: nothing left to release
                await stream.aclose()

    def add(self, phase: str, seconds: float) -> None:
        """Add time measured by the probe itself (the body transfer)."""
        self.totals[phase] += seconds

    def as_dict(self) -> dict[str, float]:
        """A copy of the totals, in seconds."""
        return dict(self.totals)
