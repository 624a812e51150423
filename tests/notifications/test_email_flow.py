"""E-mail subscriptions end to end, with `tpmon serve` as users run it and a real SMTP server (aiosmtpd): ask,
confirm, be told of an outage, unsubscribe in one click (RFC 8058) — and a kill -9 between commit and send."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from targets import Server, Target, alpha_config

from .notify_support import SECRET, SmtpSink, wait_for

ADDRESS = "opticien@exemple.fr"


def notifications(port: int, *, coalesce: str = "1s", lease: str = "1m") -> str:
    return f"""
notifications:
  public_url: http://127.0.0.1:{port}
  sender: etat@exemple.fr
  controller: Exemple SAS
  contact: dpo@exemple.fr
  coalesce: {coalesce}
  lease: {lease}
  retry_after: 1s
"""


@pytest.fixture
def server(tmp_path: Path, smtp: SmtpSink, target: Target) -> Iterator[Server]:
    env = {
        "TPMON_SMTP_URL": smtp.url,
        "TPMON_NOTIFY_SECRET": SECRET,
        "TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
    }
    running = Server(tmp_path / "tpmon.yaml", tmp_path, env)
    running.config.write_text(alpha_config(target.url("")) + notifications(running.port), encoding="utf-8")
    yield running
    running.stop()


def database(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.workdir / "t.db")


def link(text: str, path: str) -> str:
    found = re.search(rf"(http://127\.0\.0\.1:\d+{re.escape(path)}\?t=[\w.\-]+)", text)
    assert found is not None, f"no {path} link in:\n{text}"
    return found.group(1)


def test_subscribe_confirm_be_told_and_unsubscribe_in_one_click(server: Server, smtp: SmtpSink, target: Target) -> None:
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    form = httpx.get(base + "/abonnement?reseau=alpha&domaine=optique")
    assert form.status_code == 200
    assert 'value="alpha/optique" selected' in form.text
    asked = httpx.post(base + "/abonnement", data={"adresse": ADDRESS, "perimetre": "alpha/optique"})
    assert asked.status_code == 200 and "Vérifiez votre boîte" in asked.text
    # The same answer for an address already known and for another one: nothing tells them apart.
    again = httpx.post(base + "/abonnement", data={"adresse": ADDRESS, "perimetre": "alpha/optique"})
    other = httpx.post(base + "/abonnement", data={"adresse": "autre@exemple.fr", "perimetre": "alpha/optique"})
    assert asked.text == again.text == other.text

    wait_for(lambda: len(smtp.to(ADDRESS)) == 2, what="two confirmation e-mails")
    confirmation = smtp.to(ADDRESS)[0]
    assert "Confirmez votre abonnement" in str(confirmation.message["Subject"])
    assert "changements de\u00a0: Alpha — Optique." in confirmation.text
    assert "changes of: Alpha — Optics." in confirmation.text
    assert ADDRESS not in link(confirmation.text, "/abonnement/confirmer")  # links never carry the address
    confirm_url = link(confirmation.text, "/abonnement/confirmer")
    page = httpx.get(confirm_url)  # a mail scanner following the link confirms nothing
    assert page.status_code == 200 and '<form class="confirm" method="post"' in page.text
    with database(server) as db:
        assert db.execute("SELECT confirmed_at FROM subscriber WHERE address = ?", (ADDRESS,)).fetchone() == (None,)
    token = confirm_url.split("t=", 1)[1]
    done = httpx.post(base + "/abonnement/confirmer", data={"t": token})
    assert done.status_code == 200 and "Abonnement confirmé" in done.text and "Alpha — Optique" in done.text

    target.codes["/dre"] = target.codes["/pec"] = 503  # invoicing and PEC fail: optique is down
    wait_for(lambda: len(smtp.to(ADDRESS)) == 3, what="the outage e-mail")
    told = smtp.to(ADDRESS)[2]
    subject = str(told.message["Subject"])
    assert "Alpha — Optique" in subject and "Indisponible" in subject
    assert "Indisponible (avant\u00a0: Opérationnel)" in told.text and "Unavailable (before: Operational)" in told.text
    assert f"{base}/reseaux/alpha/optique" in told.text and f'href="{base}/reseaux/alpha/optique"' in told.html
    assert "<img" not in told.html  # no tracking pixel
    assert set(re.findall(r'href="([^"]+)"', told.html)) <= {
        f"{base}/reseaux/alpha/optique",
    }  # no redirect links: the footer's addresses are written out, not linked
    assert str(told.message["Message-ID"]).endswith("@exemple.fr>")
    assert told.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(told.message["List-Unsubscribe"]).strip("<>")
    assert unsubscribe.startswith(base + "/abonnement/desinscription?t=")

    # RFC 8058: the mail client POSTs `List-Unsubscribe=One-Click` to that address, nothing else
    left = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200
    with database(server) as db:
        assert db.execute("SELECT count(*) FROM subscriber WHERE address = ?", (ADDRESS,)).fetchone() == (0,)
        events_before = db.execute("SELECT count(*) FROM notification_event").fetchone()[0]
    target.codes["/dre"] = target.codes["/pec"] = 200  # it comes back: an event, told to nobody
    with database(server) as db:
        wait_for(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM notification_event WHERE dispatched_at IS NOT NULL AND id > 0"
                ).fetchone()[0]
                > events_before
            ),
            what="the recovery fanned out",
        )
    assert len(smtp.to(ADDRESS)) == 3


def test_kill_9_between_commit_and_send_delivers_exactly_once_after_restart(
    tmp_path: Path, smtp: SmtpSink, target: Target
) -> None:
    env = {
        "TPMON_SMTP_URL": smtp.url,
        "TPMON_NOTIFY_SECRET": SECRET,
        "TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
    }
    server = Server(tmp_path / "tpmon.yaml", tmp_path, env)
    # a long coalescing window: the event is committed, its delivery waits — then the process is killed
    config = alpha_config(target.url("")) + notifications(server.port, coalesce="4s", lease="2s")
    server.config.write_text(config, encoding="utf-8")
    result = server.run("db", "upgrade")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("INSERT INTO subscriber (address, created_at, confirmed_at) VALUES (?, '2024-01-01', '2024-01-01')",
                   (ADDRESS,))  # fmt: skip
        db.execute("INSERT INTO subscription (subscriber_id, scope) VALUES (1, 'alpha/optique')")
    target.codes["/dre"] = target.codes["/pec"] = 503
    server.start()
    try:

        def pending() -> int:
            with sqlite3.connect(tmp_path / "t.db") as db:
                row = db.execute("SELECT count(*) FROM notification_delivery WHERE state = 'pending'").fetchone()
                return int(row[0])

        wait_for(lambda: pending() == 1, what="the outage's delivery committed")
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        server.proc = None
        assert smtp.to(ADDRESS) == []  # committed, not sent

        server.start()
        wait_for(lambda: len(smtp.to(ADDRESS)) == 1, what="the delivery after the restart")

        def settled() -> bool:
            with sqlite3.connect(tmp_path / "t.db") as db:
                return db.execute("SELECT state FROM notification_delivery").fetchall() == [("sent",)]

        wait_for(settled, what="the delivery recorded as sent")
        assert len(smtp.to(ADDRESS)) == 1
        assert "Indisponible" in str(smtp.to(ADDRESS)[0].message["Subject"])
    finally:
        server.stop()
