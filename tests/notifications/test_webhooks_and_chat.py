"""Webhooks and chat channels with real receivers on loopback: Standard Webhooks signatures checked by the receiver's
side of the `standardwebhooks` package, payloads checked against the documented schema, retries, auto-disable, the
SSRF guard, the `tpmon webhook` commands, and Apprise posting to a local `json://` receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import jsonschema_rs
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from monitor.cli import main
from monitor.declared.incidents import IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.delivery.notifier import Notifier
from monitor.models import State
from monitor.notify.payloads import schema
from monitor.notify.tokens import Signer
from monitor.store import Store
from monitor.store.declaration_store import Declarations
from monitor.store.outbox_store import Outbox
from monitor.store.store import Batch
from monitor.store.webhook_store import Webhooks

from .notify_support import CONFIG, SECRET, T0, Clock, Receiver, line_transition, settings

SIGNER = Signer(SECRET.encode())
VALIDATOR = jsonschema_rs.validator_for(schema())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 't.db'}")
    yield opened
    opened.close()


def outage(store: Store, line: str = "viamedis/optique") -> None:
    store.write(Batch(transitions=[line_transition(line, State.OPERATIONAL, State.DOWN, T0)]))


def test_webhooks_are_signed_documented_and_scoped(store: Store, receiver: Receiver) -> None:
    hooks = Webhooks(store)
    optique = hooks.add(receiver.url("/optique"), ["viamedis/optique"], allow_private=True)
    hooks.add(receiver.url("/audio"), ["viamedis/audio"], allow_private=True)
    clock = Clock()
    notifier = Notifier(store, settings, SIGNER, clock=clock, environ={})
    outage(store)
    first = IncidentUpdate(T0, "investigating", Bilingual("PEC impossibles"), Bilingual("Facture acquittée."))
    Declarations(store, settings(), clock=clock).open_incident(
        title=Bilingual("Cyberattaque"), impact="major", first=first, components=["line:viamedis/optique"]
    )
    report = notifier.cycle()
    assert report.sent == {"webhook": 2}  # webhooks are told at once, not coalesced
    assert [r.path for r in receiver.requests] == ["/optique", "/optique"]  # /audio is not concerned
    verifier = Verifier(SIGNER.webhook_secret(optique.salt))
    payloads = [verifier.verify(r.body, r.headers) for r in receiver.requests]  # raises if the signature is wrong
    for payload in payloads:
        VALIDATOR.validate(payload)
    line, incident = payloads
    assert line["type"] == "line.changed"
    assert line["data"]["state"] == "down" and line["data"]["previous"] == "operational"
    assert line["data"]["url"] == "https://etat.exemple.fr/reseaux/viamedis/optique"
    assert incident["type"] == "incident.opened"
    assert incident["data"]["practitioner_consigne"]["fr"] == "Facture acquittée."
    assert receiver.requests[0].headers["webhook-id"] == f"tpmon-{line['data']['event_id']}"
    with pytest.raises(Exception, match="signature"):
        Verifier(SIGNER.webhook_secret("another salt")).verify(receiver.requests[0].body, receiver.requests[0].headers)


def test_a_failed_webhook_is_retried_with_the_same_id_and_a_dead_one_disabled(store: Store, receiver: Receiver) -> None:
    hook = Webhooks(store).add(receiver.url(), ["*"], allow_private=True)
    clock = Clock()
    notifier = Notifier(store, settings, SIGNER, clock=clock, environ={})
    receiver.status = [500]
    outage(store)
    assert notifier.cycle().failed == {"webhook": 1}
    assert notifier.cycle().sent == {}  # backing off
    clock.advance(31)
    assert notifier.cycle().sent == {"webhook": 1}
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]  # the receiver can drop the duplicate

    receiver.default = 503  # from now on it always fails, while the line keeps flapping
    for step in range(6):
        state, previous = (State.DOWN, State.OPERATIONAL) if step % 2 == 0 else (State.OPERATIONAL, State.DOWN)
        store.write(Batch(transitions=[line_transition("viamedis/audio", previous, state, clock())]))
        notifier.cycle()
        clock.advance(1200)
    assert Webhooks(store).get(hook.id).enabled is False  # failing for more than webhook_disable_after (1 h)
    dead = Outbox(store, clock=clock).dead_letters()
    assert dead and {letter.channel for letter in dead} == {"webhook"}
    assert any("disabled" in letter.last_error for letter in dead)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_destinations_are_refused_when_sending(store: Store, receiver: Receiver, host: str) -> None:
    Webhooks(store).add(receiver.url().replace("127.0.0.1", host), ["*"])  # not allowed to be private
    notifier = Notifier(store, settings, SIGNER, clock=Clock(), environ={})
    outage(store)
    assert notifier.cycle().failed == {"webhook": 1}
    assert receiver.requests == []
    [dead] = Outbox(store).dead_letters()  # a refused destination is final
    assert "loopback address" in dead.last_error


def test_chat_channels_go_through_apprise(store: Store, receiver: Receiver) -> None:
    environ = {"CHAT_URL": f"json://127.0.0.1:{receiver.port}/chat"}
    extra = "  chat:\n    - {name: ops, url: '${CHAT_URL}', scopes: [viamedis/optique]}\n"
    configured = settings(extra)
    clock = Clock()
    notifier = Notifier(store, lambda: configured, SIGNER, clock=clock, environ=environ)
    outage(store)
    store.write(Batch(transitions=[line_transition("viamedis/optique", State.DOWN, State.RECOVERING, T0, 0.4)]))
    notifier.cycle()
    assert receiver.requests == []  # coalesced: within the window
    clock.advance(121)
    assert notifier.cycle().sent == {"chat": 1}
    [posted] = receiver.requests
    body = posted.json()
    assert posted.path == "/chat"
    assert "Viamedis — Optique\u00a0: Indisponible" in body["message"]
    assert "Réactivation progressive (environ 40\u00a0% des demandes aboutissent)" in body["message"]
    assert "Progressive reactivation" in body["message"]


def test_the_webhook_commands(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("TPMON_CONFIG", str(config))
    monkeypatch.setenv("TPMON_DATABASE_URL", f"sqlite:///{tmp_path / 't.db'}")
    monkeypatch.setenv("TPMON_NOTIFY_SECRET", SECRET)
    assert main(["webhook", "add", receiver.url(), "--scope", "viamedis/optique", "--allow-private"]) == 0
    added = capsys.readouterr().out
    secret = added.split("signing secret (shown once, give it to the receiver): ", 1)[1].strip()
    assert main(["webhook", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(h["id"], h["scopes"]) for h in listed] == [(1, ["viamedis/optique"])]
    assert secret not in json.dumps(listed)
    assert main(["webhook", "test", "1"]) == 0
    [request] = receiver.requests
    payload = Verifier(secret).verify(request.body, request.headers)
    VALIDATOR.validate(payload)
    assert payload["type"] == "test"
    assert main(["webhook", "add", "ftp://exemple.fr/x"]) == 2
    assert main(["webhook", "add", receiver.url(), "--scope", "nowhere"]) == 2
    assert "unknown network 'nowhere'" in capsys.readouterr().err
    assert main(["webhook", "remove", "1"]) == 0
    assert main(["webhook", "remove", "1"]) == 2  # NotFound: one line
    capsys.readouterr()


def test_dead_letters_are_listed_and_retried_from_the_command_line(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TPMON_DATABASE_URL", f"sqlite:///{tmp_path / 't.db'}")
    with Store.open(f"sqlite:///{tmp_path / 't.db'}") as store:
        Webhooks(store).add(receiver.url(), ["*"])  # loopback, not allowed: a dead letter
        outage(store)
        Notifier(store, settings, SIGNER, clock=Clock(T0 + timedelta(hours=1)), environ={}).cycle()
    assert main(["notify", "list", "--failed"]) == 0
    out = capsys.readouterr().out
    assert "webhook 1" in out and "loopback address" in out
    assert main(["notify", "retry"]) == 0
    assert "1 dead letter(s) back in the queue" in capsys.readouterr().out
    assert main(["notify", "list"]) == 0
    assert "webhook 1" in capsys.readouterr().out
