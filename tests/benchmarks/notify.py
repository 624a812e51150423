"""Benchmark: one outage event to N confirmed subscribers of Viamedis optique (default 100,000).

Measures the time to enqueue (the transition's batch written with its outbox event, then fanned out to one
delivery per subscriber), the delivery rate of `tpmon notify run` to a local SMTP sink (aiosmtpd, in its own
process), and the sender's peak resident memory. Prints one JSON document.

    .venv/bin/python tests/benchmarks/notify.py [--subscribers 100000] [--database-url URL]

Targets (issue 14): enqueue < 10 s, >= 500 messages/s, sender RSS < 300 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from monitor.config import parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.models import ComponentRef, Source, State, Transition
from monitor.store import Store, tables
from monitor.store.outbox_store import Outbox
from monitor.store.store import Batch

SECRET = "benchmark-secret-of-the-notifications-0123456789"
CONFIG = """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique, audio]
notifications:
  public_url: https://etat.exemple.fr
  sender: etat@exemple.fr
  controller: Exemple SAS
  contact: dpo@exemple.fr
  coalesce: 100ms
"""
SINK = textwrap.dedent(
    """
    import asyncio, sys
    from aiosmtpd.controller import Controller
    count = 0
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            global count
            count += 1
            return "250 OK"
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    sys.stdin.readline()
    controller.stop()
    print(count, flush=True)
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def subscribe(store: Store, count: int) -> None:
    """`count` confirmed subscribers of viamedis/optique, inserted in bulk (the form is not what is measured)."""
    confirmed = datetime(2024, 1, 1, tzinfo=UTC)
    with store.engine.begin() as connection:
        for start in range(0, count, 10_000):
            rows = [
                {"address": f"opticien{i}@exemple.fr", "created_at": confirmed, "confirmed_at": confirmed}
                for i in range(start, min(count, start + 10_000))
            ]
            ids = connection.execute(insert(tables.subscriber).returning(tables.subscriber.c.id), rows).scalars()
            connection.execute(
                insert(tables.subscription), [{"subscriber_id": i, "scope": "viamedis/optique"} for i in ids]
            )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--batch", type=int, default=200, help="subscribers claimed at once by the sender")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up sending after this many seconds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tpmon-bench-notify-"))
    url = args.database_url or f"sqlite:///{work / 'tpmon.db'}"
    (work / "tpmon.yaml").write_text(CONFIG, encoding="utf-8")
    settings = parse_config(parse_yaml(CONFIG, "bench.yaml"), {})
    load_before = os.getloadavg()

    store = Store.open(url)
    began = time.perf_counter()
    subscribe(store, args.subscribers)
    subscribed_s = time.perf_counter() - began

    now = datetime.now(UTC) - timedelta(seconds=1)
    line = ComponentRef("line", "viamedis", "optique")
    outage = Transition(line, State.OPERATIONAL, State.DOWN, now, now, Source.PROBE)
    began = time.perf_counter()
    store.write(Batch(transitions=[outage]))  # the transition and its outbox event, one transaction
    outbox = Outbox(store)
    while outbox.fan_out(settings):
        pass
    enqueue_s = time.perf_counter() - began
    with store.engine.connect() as connection:
        queued = connection.execute(select(func.count()).select_from(tables.notification_delivery)).scalar_one()

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdin is not None
    assert sink.stdout.readline().strip() == "ready"
    env = {
        **os.environ,
        "TPMON_CONFIG": str(work / "tpmon.yaml"),
        "TPMON_DATABASE_URL": url,
        "TPMON_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "TPMON_NOTIFY_SECRET": SECRET,
    }
    command = [sys.executable, "-m", "monitor", "notify", "run", "--batch", str(args.batch), "--log-level", "error"]
    began = time.perf_counter()
    sender = subprocess.Popen(command, env=env, cwd=work)
    sent, rss = 0, 0.0
    table = tables.notification_delivery
    try:
        while time.perf_counter() - began < args.timeout:
            time.sleep(1.0)
            rss = max(rss, peak_rss_mib(sender.pid))
            with store.engine.connect() as connection:
                sent = connection.execute(select(func.count()).where(table.c.state == "sent")).scalar_one()
            if sent >= queued or sender.poll() is not None:
                break
        send_s = time.perf_counter() - began
        rss = max(rss, peak_rss_mib(sender.pid))
    finally:
        sender.terminate()
        sender.wait(timeout=30)
        sink.stdin.write("\n")
        sink.stdin.flush()
        received = int(sink.stdout.readline().strip() or 0)
        sink.wait(timeout=30)
        store.close()
    result = {
        "subscribers": args.subscribers,
        "database": url.split(":", 1)[0],
        "subscribe_bulk_seconds": round(subscribed_s, 2),
        "enqueue_seconds": round(enqueue_s, 2),
        "deliveries_queued": queued,
        "sent": sent,
        "received_by_sink": received,
        "send_seconds": round(send_s, 1),
        "messages_per_second": round(sent / send_s, 1) if send_s else None,
        "sender_peak_rss_mib": round(rss, 1),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "targets": {"enqueue_seconds": 10, "messages_per_second": 500, "sender_peak_rss_mib": 300},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
