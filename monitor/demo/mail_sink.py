"""`tpmon demo --smtp-sink DIR`: a local SMTP server (aiosmtpd) that keeps every message tpmon sends as a `.eml`
file in DIR, in order, and says each one in the terminal — what a subscriber would have received. Nothing leaves
the machine; no page lists addresses."""

from __future__ import annotations

import re
import socket
import threading
import unicodedata
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["MailSink"]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class MailSink:
    """Started and stopped by the demo; `url` is what TPMON_SMTP_URL gets."""

    def __init__(self, folder: Path, announce: Callable[[str], None], host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.announce = announce
        self.count = 0
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.eml"):
            old.unlink()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.keep(bytes(envelope.original_content or b""), [str(r) for r in envelope.rcpt_tos])
                return "250 OK"

        self.port = _free_port(host)
        self.url = f"smtp://{host}:{self.port}"
        self._controller = Controller(Handler(), hostname=host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def keep(self, content: bytes, recipients: list[str]) -> None:
        message = message_from_bytes(content, policy=policy.default)
        subject = str(message.get("Subject", ""))
        with self._lock:
            self.count += 1
            number = self.count
        plain = unicodedata.normalize("NFKD", subject.removeprefix("[État du tiers payant]").lower())
        slug = re.sub(r"[^a-z0-9]+", "-", plain.encode("ascii", "ignore").decode()).strip("-")[:60]
        (self.folder / f"{number:03d}-{slug or 'message'}.eml").write_bytes(content)
        date = str(message.get("Date", ""))
        self.announce(f"✉ {number:03d} {date} → {', '.join(recipients)}\n    {subject}")
