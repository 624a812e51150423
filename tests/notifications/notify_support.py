"""Helpers of the notification suite: a real SMTP server (aiosmtpd), a webhook receiver, a config with notifications."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from targets import free_port

from monitor.config import Settings, parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.models import ComponentRef, Source, State, Transition

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
SECRET = "test-secret-of-the-notifications-0123456789"
ENV = {"TPMON_NOTIFY_SECRET": SECRET}

CONFIG = """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique, audio]
  kalixia:
    name: Kalixia
    kind: reseau_de_soins
    lines: [optique]
    depends_on:
      - {network: viamedis, flow: pec, lines: [optique]}
notifications:
  public_url: https://etat.exemple.fr
  sender: etat@exemple.fr
  controller: Exemple SAS, 1 rue de l'Exemple, Paris
  contact: dpo@exemple.fr
  coalesce: 2m
  retry_after: 30s
  max_attempts: 3
  webhook_disable_after: 1h
  lease: 1m
"""


def settings(extra: str = "") -> Settings:
    return parse_config(parse_yaml(CONFIG + extra, "test.yaml"), {"CHAT_URL": "json://127.0.0.1:1/"})


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def line_transition(line: str, previous: State, state: State, at: datetime, progress: float = 0.0) -> Transition:
    network, _, name = line.partition("/")
    return Transition(ComponentRef("line", network, name), previous, state, at, at, Source.PROBE, progress)


@dataclass
class Received:
    rcpt: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())

    @property
    def html(self) -> str:
        body = self.message.get_body(("html",))
        assert body is not None
        return str(body.get_content())


class SmtpSink:
    """A real SMTP server on 127.0.0.1 keeping every message; `refuse` makes it answer 451 (try later) or 550."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refuse: int | None = None
        sink = self

        class Handler:
            async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
                if sink.refuse is not None:
                    return f"{sink.refuse} not now"
                content = envelope.original_content or b""
                parsed = message_from_bytes(content, policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                sink.messages.append(Received([str(r) for r in envelope.rcpt_tos], parsed))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt]

    def close(self) -> None:
        self.controller.stop()


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST; answers `status` (a list is consumed first)."""

    status: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.status.pop(0) if receiver.status else receiver.default
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll with a deadline (never a sleep standing for a wait)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.02)
