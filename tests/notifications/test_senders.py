"""Senders as separate processes (`tpmon notify run`): two on one PostgreSQL deliver each message once; and the data
controller's commands (`tpmon subscribers count|export|delete`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from targets import free_port

from monitor.cli import main
from monitor.models import State
from monitor.store import Store, tables
from monitor.store.store import Batch
from monitor.store.subscriber_store import Subscribers
from monitor.store.webhook_store import Webhooks

from .notify_support import CONFIG, SECRET, T0, Receiver, SmtpSink, line_transition, wait_for

SUBSCRIBERS = 120


def _subscribe(store: Store, count: int) -> list[str]:
    subscribers = Subscribers(store)
    addresses = [f"abonne{index}@exemple.fr" for index in range(count)]
    for address in addresses:
        subscriber = subscribers.request(address, ["viamedis/optique"], "fr")
        subscribers.confirm(subscriber, lambda a: True, ["viamedis/optique"])
    with store.engine.begin() as connection:
        table = tables.notification_delivery
        connection.execute(table.delete().where(table.c.kind == "confirm"))
    return addresses


@pytest.mark.postgres
def test_two_senders_on_one_postgresql_deliver_each_message_once(
    fresh_postgres_url: str, smtp: SmtpSink, receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.replace("coalesce: 2m", "coalesce: 100ms"), encoding="utf-8")
    with Store.open(fresh_postgres_url) as store:
        addresses = _subscribe(store, SUBSCRIBERS)
        Webhooks(store).add(receiver.url(), ["viamedis"], allow_private=True)
        store.write(Batch(transitions=[line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)]))
    env = {
        **os.environ,
        "TPMON_CONFIG": str(config),
        "TPMON_DATABASE_URL": fresh_postgres_url,
        "TPMON_SMTP_URL": smtp.url,
        "TPMON_NOTIFY_SECRET": SECRET,
    }
    command = [sys.executable, "-m", "monitor", "notify", "run", "--interval", "0.1", "--batch", "5"]
    logs = [tmp_path / f"sender{index}.log" for index in range(2)]
    senders = [
        subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        for log in logs
    ]
    try:
        wait_for(lambda: len(smtp.messages) >= SUBSCRIBERS, timeout=60, what="every subscriber's message")
        with Store.open(fresh_postgres_url, migrate=False) as store, store.engine.connect() as connection:
            table = tables.notification_delivery

            def settled() -> bool:
                pending = select(func.count()).where(table.c.state != "sent")
                return connection.execute(pending).scalar_one() == 0

            wait_for(settled, timeout=30, what="every delivery recorded as sent")
            owners = connection.execute(select(table.c.claimed_by).distinct()).scalars().all()
    finally:
        for sender in senders:
            sender.send_signal(signal.SIGTERM)
        for sender in senders:
            sender.wait(timeout=20)
    received = Counter(rcpt for message in smtp.messages for rcpt in message.rcpt)
    assert received == Counter(addresses)  # each one exactly once
    assert len(receiver.requests) == 1  # the webhook once too
    assert len({owner.rsplit(":", 1)[0] for owner in owners}) == 2, "both senders should have taken a share"
    assert all(sender.returncode == 0 for sender in senders), [log.read_text() for log in logs]


def test_the_data_controller_counts_exports_and_deletes_an_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    monkeypatch.setenv("TPMON_DATABASE_URL", url)
    with Store.open(url) as store:
        subscribers = Subscribers(store)
        kept = subscribers.request("Opticien@Exemple.fr", ["viamedis/optique"], "fr")
        subscribers.confirm(kept, lambda a: True, ["viamedis/optique", "viamedis"])
        subscribers.request("pas-confirme@exemple.fr", ["*"], "fr")
    assert main(["subscribers", "count", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts == {"confirmed": 1, "unconfirmed": 1, "by_scope": {"viamedis": 1, "viamedis/optique": 1}}
    assert main(["subscribers", "export", "opticien@exemple.fr"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["address"] == "opticien@exemple.fr"
    assert record["scopes"] == ["viamedis", "viamedis/optique"] and record["confirmed_at"]
    assert main(["subscribers", "delete", "OPTICIEN@exemple.fr"]) == 0
    capsys.readouterr()
    assert main(["subscribers", "delete", "opticien@exemple.fr"]) == 2
    assert "no subscriber opticien@exemple.fr" in capsys.readouterr().err
    with Store.open(url) as store, store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(tables.subscription)).scalar_one() == 0
        left = connection.execute(select(tables.notification_delivery.c.subscriber_id)).scalars().all()
        assert kept not in left  # its pending confirmation went with it


def test_serve_refuses_to_start_without_the_notifications_secrets(tmp_path: Path) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPMON_")}
    env["TPMON_DATABASE_URL"] = f"sqlite:///{tmp_path / 't.db'}"
    command = [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", str(free_port())]
    missing = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "tpmon: notifications: set TPMON_NOTIFY_SECRET (or TPMON_NOTIFY_SECRET_FILE, a file holding it) to a random "
        "secret of at least 32 characters, e.g. `openssl rand -hex 32`"
    ]
    env["TPMON_NOTIFY_SECRET"] = "too short"
    short = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert short.returncode == 2 and "shorter than 32 characters" in short.stderr
    assert "too short" not in short.stderr  # a secret is never shown
