"""The subscription pages in-process (answers, errors, throttles, nothing without `notifications:`), the messages
(French then English, coalesced, no tracking), signed links (forged, expired), the store down, pruning."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient
from tcp_proxy import tcp_proxy

from monitor.app import create_app
from monitor.config import parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.delivery.notifier import Notifier
from monitor.delivery.smtp_sender import SmtpSender, smtp_settings
from monitor.errors import StoreError
from monitor.models import State
from monitor.notify.events import Event
from monitor.notify.messages import Mime, events_letter
from monitor.notify.tokens import Signer
from monitor.store import Store
from monitor.store.store import Batch
from monitor.store.subscriber_store import Subscribers

from .notify_support import CONFIG, ENV, SECRET, T0, Clock, SmtpSink, line_transition, settings

SIGNER = Signer(SECRET.encode())


@pytest.fixture
def client(tmp_path: Path, smtp: SmtpSink) -> Iterator[TestClient]:
    app = create_app(
        settings(),
        database_url=f"sqlite:///{tmp_path / 't.db'}",
        environ={**ENV, "TPMON_SMTP_URL": smtp.url},
        schedule=False,
    )
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_the_form_refuses_a_bad_address_or_scope_and_names_the_field(client: TestClient) -> None:
    assert client.head("/abonnement?reseau=viamedis").status_code == 200  # refresh.js asks HEAD of every page
    form = client.get("/abonnement?reseau=viamedis")
    assert form.status_code == 200 and form.headers["cache-control"] == "no-store"
    assert 'value="viamedis" selected' in form.text and "Être prévenu" in form.text
    bad = client.post("/abonnement", data={"adresse": "pas-une-adresse", "perimetre": "viamedis"})
    assert bad.status_code == 400
    assert 'aria-invalid="true" aria-describedby="adresse-erreur"' in bad.text
    assert 'value="pas-une-adresse"' in bad.text  # what was typed is kept
    unknown = client.post("/abonnement", data={"adresse": "a@exemple.fr", "perimetre": "nowhere/optique"})
    assert unknown.status_code == 400 and "perimetre-erreur" in unknown.text
    assert client.get("/abonnement?reseau=viamedis&domaine=radiologie").status_code == 404
    english = client.get("/abonnement?lang=en")
    assert "Get notified of changes" in english.text and 'value="*" selected' in english.text


def test_a_client_over_its_limit_is_told_an_address_over_its_limit_is_not(client: TestClient) -> None:
    answers = [client.post("/abonnement", data={"adresse": "meme@exemple.fr", "perimetre": "*"}) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5  # per address: 3 per hour, silently
    assert len({a.text for a in answers}) == 1
    more = [client.post("/abonnement", data={"adresse": f"x{i}@exemple.fr", "perimetre": "*"}) for i in range(6)]
    assert [a.status_code for a in more] == [200] * 5 + [429]  # per client: 10 per hour
    assert "Trop de demandes" in more[-1].text


def test_forged_or_expired_links_change_nothing(client: TestClient) -> None:
    assert client.post("/abonnement/confirmer", data={"t": "forged"}).status_code == 400
    assert client.get("/abonnement/desinscription?t=forged").status_code == 400
    assert client.post("/abonnement/desinscription?t=forged", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    token = SIGNER.confirm_token(1, "a@exemple.fr", ("*",), "fr")
    assert SIGNER.read_confirm(token, 3600) is not None
    assert SIGNER.read_confirm(token, -1) is None  # older than its maximum age: expired
    assert SIGNER.read_confirm(token + "x", 3600) is None
    assert Signer(b"another secret of more than thirty-two characters").read_confirm(token, 3600) is None
    assert "a@exemple.fr" not in token and "a@exemple.fr" not in SIGNER.unsubscribe_token(1, "a@exemple.fr")


def test_without_notifications_there_is_no_form_no_link_and_the_footer_says_no_personal_data(
    tmp_path: Path,
) -> None:
    plain = parse_config(parse_yaml(settings().model_dump_json(exclude={"notifications"}), "x.yaml"), {})
    app = create_app(plain, database_url=f"sqlite:///{tmp_path / 't.db'}", environ={}, schedule=False)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        assert test_client.get("/abonnement").status_code == 404
        assert test_client.get("/confidentialite").status_code == 404
        home = test_client.get("/").text
        assert "/abonnement" not in home and "Ce site ne collecte aucune donnée personnelle." in home


def test_every_page_links_to_the_form_of_what_it_shows(client: TestClient) -> None:
    line = client.get("/reseaux/viamedis/optique").text
    assert 'href="/abonnement?reseau=viamedis&amp;domaine=optique"' in line
    assert 'href="/abonnement?reseau=viamedis"' in client.get("/reseaux/viamedis").text
    home = client.get("/").text
    assert 'href="/abonnement"' in home and 'href="/confidentialite"' in home
    privacy = client.get("/confidentialite").text
    assert "Exemple SAS, 1 rue de l&#39;Exemple, Paris" in privacy and "dpo@exemple.fr" in privacy


def test_a_coalesced_message_tells_every_change_in_order_in_french_then_english() -> None:
    events = [
        Event(1, "line", T0, ("line:viamedis/optique",), {"line": "viamedis/optique", "state": "down",
              "told_previous": "operational", "progress": 0.0}),
        Event(2, "line", T0 + timedelta(seconds=40), ("line:viamedis/optique",), {"line": "viamedis/optique",
              "state": "recovering", "told_previous": "down", "progress": 0.5}),
    ]  # fmt: skip
    letter = events_letter(events, settings())
    assert letter is not None
    assert letter.subject.endswith("(+1)")
    french, english = letter.text.split("--- English ---")
    down = french.index("Indisponible (avant\u00a0: Opérationnel)")  # French typography: a no-break space
    assert down < french.index("Réactivation progressive (environ 50")
    assert "lun. 12 févr. 2024, 13:00" in french  # Paris time, 24 h: the one format of a moment
    assert "Unavailable (before: Operational)" in english and "Mon 12 Feb 2024, 13:00" in english
    raw = Mime(letter, sender="etat@exemple.fr", list_id="<x>").bytes_for(
        to="a@exemple.fr", message_id="<k@exemple.fr>", unsubscribe_url="https://e.fr/d?t=a.b=c", now=T0
    )
    assert b"\r\nList-Unsubscribe: <https://e.fr/d?t=a.b=c>\r\n" in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    for kind in ("plain", "html"):  # the address survives the encoding whole, in both parts
        body = parsed.get_body((kind,))
        assert body is not None and "https://e.fr/d?t=a.b=c" in str(body.get_content())
    assert b"<img" not in raw


def test_the_store_down_keeps_the_events_waiting(fresh_postgres_url: str, smtp: SmtpSink) -> None:
    url = make_url(fresh_postgres_url)
    Store.open(fresh_postgres_url).close()  # migrated
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with Store.open(proxied, migrate=False) as store:
            subscribers = Subscribers(store)
            subscriber = subscribers.request("stored@exemple.fr", ["viamedis/optique"], "fr")
            subscribers.confirm(subscriber, lambda a: True, ["viamedis/optique"])
            clock = Clock(T0 + timedelta(days=5000))
            sender = SmtpSender(smtp_settings({"TPMON_SMTP_URL": smtp.url}))
            notifier = Notifier(store, settings, SIGNER, smtp=sender, clock=clock, environ={})
            notifier.cycle()  # the confirmation e-mail
            outage = Batch(transitions=[line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)])
            proxy.set_mode("cut")
            with pytest.raises(StoreError):
                store.write(outage)  # the writer keeps the batch and retries it (tests/store/test_writer.py)
            with pytest.raises(StoreError):
                notifier.cycle()  # the loop logs it and tries again
            proxy.set_mode("pass")
            store.write(outage)
            notifier.cycle()
            clock.advance(121)
            assert notifier.cycle().sent == {"email": 1}
            sender.close()
    assert "Optique\u00a0: Indisponible" in str(smtp.to("stored@exemple.fr")[-1].message["Subject"])


def test_unconfirmed_addresses_are_erased_when_their_link_expires(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 't.db'}") as store:
        early = Subscribers(store, clock=lambda: T0)
        early.request("jamais@exemple.fr", ["*"], "fr")
        kept = early.request("oui@exemple.fr", ["*"], "fr")
        early.confirm(kept, lambda a: True, ["*"])
        later = Subscribers(store, clock=lambda: T0 + timedelta(hours=49))
        assert later.prune_unconfirmed(timedelta(hours=48)) == 1
        assert [r.address for r in later.records()] == ["oui@exemple.fr"]


def test_pages_built_without_sending_need_no_secret(tmp_path: Path) -> None:
    """`tpmon export` writes the site from a config with notifications but sends nothing: no secret needed."""
    app = create_app(settings(), database_url=f"sqlite:///{tmp_path / 't.db'}", environ={}, schedule=False)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        assert test_client.get("/").status_code == 200
        assert test_client.get("/abonnement").status_code == 404


def test_without_its_own_address_a_message_links_to_the_sites_public_url() -> None:
    """One address for the site: `web.public_url` serves the links sent unless notifications name another."""
    own = settings()
    shared = parse_config(
        parse_yaml("web: {public_url: 'https://statut.exemple.org'}\n" + CONFIG.replace(
            "  public_url: https://etat.exemple.fr\n", ""), "test.yaml"), {})  # fmt: skip
    event = Event(1, "line", T0, ("line:viamedis/optique",), {"line": "viamedis/optique", "state": "down",
                  "told_previous": "operational", "progress": 0.0})  # fmt: skip
    for config, origin, other in (
        (own, "https://etat.exemple.fr", "statut"),
        (shared, "https://statut.exemple.org", "etat"),
    ):
        letter = events_letter([event], config)
        assert letter is not None
        assert f"{origin}/reseaux/viamedis/optique" in letter.text and f"{origin}/confidentialite" in letter.text
        assert f"{other}.exemple" not in letter.text
