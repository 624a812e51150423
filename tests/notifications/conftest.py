"""Fixtures of the notification suite: a real SMTP server and a webhook receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .notify_support import Receiver, SmtpSink


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()
