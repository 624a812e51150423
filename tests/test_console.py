"""The console on the operators' listener, in process (the browser tests run it in Chromium): CSRF before and after
sign-in, where a signed-out visit goes, refusals naming the field, nothing published before its preview, an editor
and a viewer held to their rights, garbage forms never a 5xx, the audit log exported as JSON lines."""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyotp
import pytest
from operators_support import PASSWORD, Listener, listener, make_token, make_user
from starlette.testclient import TestClient

from monitor.store.audit_store import audit_events
from monitor.store.declaration_store import Declarations
from monitor.store.staff_store import StaffStore

INCIDENT = {
    "title.fr": "PEC optique indisponibles",
    "impact": "major",
    "status": "investigating",
    "message.fr": "Les PEC échouent.",
    "component-0": "line:viamedis/optique",
    "state-0": "down",
}


def csrf_of(html: str) -> str:
    found: list[str] = re.findall(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found[-1]  # the page's form (the first may be the sign-out form's)


def sign_in(ops: Listener, name: str, role: str = "admin", networks: tuple[str, ...] = ()) -> TestClient:
    """An account made as `tpmon user add` makes it, enrolled and signed in through the console's forms."""
    make_user(ops.store, name, role, networks)
    client = ops.client
    client.cookies.clear()
    page = client.get("/connexion")
    answer = client.post("/connexion", data={"csrf": csrf_of(page.text), "name": name, "password": PASSWORD})
    assert answer.status_code == 200 and "Configurer le second facteur" in answer.text, answer.text[:500]
    secret = re.search(r'id="cle">([^<]+)<', answer.text)
    assert secret is not None
    code = pyotp.TOTP(secret.group(1).replace(" ", "")).at(ops.clock())
    done = client.post("/connexion/second-facteur", data={"csrf": csrf_of(answer.text), "code": code})
    assert done.status_code == 200 and "États en cours" in done.text
    return client


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Listener]:
    with listener(tmp_path) as found:
        yield found


def post_form(client: TestClient, path: str, form: dict[str, str]) -> tuple[int, str]:
    page = client.get(path)
    answer = client.post(path, data={"csrf": csrf_of(page.text), **form})
    return answer.status_code, answer.text


def test_sign_in_refuses_a_form_without_its_presession_token(ops: Listener) -> None:
    make_user(ops.store, "ada")
    answer = ops.client.post("/connexion", data={"name": "ada", "password": PASSWORD})
    assert answer.status_code == 403 and "Formulaire refusé" in answer.text
    ops.client.cookies.clear()
    page = ops.client.get("/connexion")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    other_origin = ops.client.post(
        "/connexion",
        data={"csrf": csrf_of(page.text), "name": "ada", "password": PASSWORD},
        headers={"Origin": "https://ailleurs.example"},
    )
    assert other_origin.status_code == 403
    assert [e.action for e in audit_events(ops.store)] == []  # refused before any try: nothing counted


def test_a_signed_out_visit_goes_to_the_sign_in_page_and_comes_back_only_to_the_console(ops: Listener) -> None:
    answer = ops.client.get("/incidents", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/connexion?suite=/incidents"
    make_user(ops.store, "ada")
    page = ops.client.get("/connexion?suite=//ailleurs.example/x")
    assert 'name="suite" value="/"' in page.text


def test_the_session_cookie_is_httponly_and_samesite_strict(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    session = client.cookies.get("tpmon_session")
    assert session
    page = client.get("/")
    assert "no-store" in page.headers["cache-control"]
    assert page.headers["x-frame-options"] == "DENY"


def test_a_refusal_names_the_field_and_publishes_nothing(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    status, html = post_form(client, "/incidents/nouveau", {**INCIDENT, "title.fr": "", "action": "preview"})
    assert status == 422
    assert 'href="#f-title-fr">title.fr</a>' in html and 'id="f-title-fr"' in html
    assert re.search(r'id="f-title-fr"[^>]*aria-invalid="true"', html)
    status, html = post_form(client, "/incidents/nouveau", {**INCIDENT, "state-0": "recovering", "progress-0": "150"})
    assert status == 422 and "doit être comprise entre 0 et 100" in html  # said in French, as the page
    assert Declarations(ops.store, ops.settings).incidents() == []


def test_nothing_is_published_before_its_preview(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    status, html = post_form(client, "/incidents/nouveau", {**INCIDENT, "action": "publish"})
    assert status == 200 and "Aperçu de la page publique" in html  # a publish without preview: a preview
    previewed = re.search(r'name="previewed" value="([^"]+)"', html)
    assert previewed is not None
    changed = {**INCIDENT, "title.fr": "Autre titre", "action": "publish", "previewed": previewed.group(1)}
    status, html = post_form(client, "/incidents/nouveau", changed)
    assert status == 200 and "Le formulaire a changé depuis" in html  # changed since: previewed again
    assert Declarations(ops.store, ops.settings).incidents() == []
    fresh = re.search(r'name="previewed" value="([^"]+)"', html)
    assert fresh is not None
    page = client.get("/incidents/nouveau")
    done = client.post(
        "/incidents/nouveau",
        data={"csrf": csrf_of(page.text), **changed, "previewed": fresh.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/incidents/1?publie=1"
    stored = Declarations(ops.store, ops.settings).incidents()
    assert [i.title.fr for i in stored] == ["Autre titre"]
    [event] = audit_events(ops.store, action="incident")
    assert (event.actor, event.listener, event.action) == ("user:ada", "console", "incident.open")
    listed = client.get("/incidents")
    assert listed.status_code == 200 and "Analyse en cours" in listed.text and "Autre titre" in listed.text


def test_an_editor_is_offered_only_its_networks_and_refused_the_others(ops: Listener) -> None:
    token = make_token(ops.store, "write:almerys")
    opened = ops.client.post(
        "/api/v1/incidents",
        headers={"Authorization": f"Bearer {token}"},
        json={"title": {"fr": "Almerys"}, "impact": "minor", "message": {"fr": "x"}, "components": ["network:almerys"]},
    )
    assert opened.status_code == 201
    client = sign_in(ops, "eve", "editor", ("viamedis",))
    page = client.get("/incidents/nouveau").text
    assert (
        "line:viamedis/optique" in page and "almerys" not in page.split('id="f-component-0"')[1].split("</select>")[0]
    )
    status, html = post_form(client, "/incidents/nouveau", {**INCIDENT, "component-0": "network:almerys"})
    assert status == 403 and "almerys" in html
    shown = client.get("/incidents/1").text
    assert "Lecture seule" in shown and 'action="/incidents/1' not in shown
    status, _ = post_form(client, "/incidents/1", {"status": "resolved", "message.fr": "fin", "action": "preview"})
    assert status == 403
    csrf = csrf_of(shown)
    api = client.post("/api/v1/incidents/1/resolve", headers={"X-CSRF-Token": csrf})
    assert api.status_code == 403
    missing = client.post("/api/v1/incidents/1/resolve")
    assert missing.status_code == 403 and missing.json()["field"] == "csrf"
    assert [i.is_open for i in Declarations(ops.store, ops.settings).incidents()] == [True]
    assert client.get("/jetons").status_code == 403 and client.get("/comptes").status_code == 403


def test_a_viewer_reads_and_writes_nothing(ops: Listener) -> None:
    client = sign_in(ops, "val", "viewer")
    assert client.get("/incidents").status_code == 200
    assert client.get("/incidents/nouveau").status_code == 403
    assert 'href="/jetons"' not in client.get("/").text
    status, _ = post_form(client, "/maintenance", {"title.fr": "x", "component:network:viamedis": "on"})
    assert status in (403, 422)
    assert Declarations(ops.store, ops.settings).windows() == []


@pytest.mark.parametrize("path", ["/incidents/nouveau", "/maintenance", "/jetons", "/comptes", "/incidents/1"])
def test_garbage_forms_never_answer_5xx(ops: Listener, path: str) -> None:
    client = sign_in(ops, "ada")
    post_form(client, "/incidents/nouveau", {**INCIDENT, "action": "preview"})
    names = [*INCIDENT, "title.en", "progress-0", "progress-0-slider", "component-1", "state-1", "start", "duration",
             "frequency", "weekday-mon", "component:line:viamedis/optique", "label", "scopes", "expires", "name",
             "role", "password", "network-viamedis", "action", "previewed", "impact"]  # fmt: skip
    rng = random.Random(path)
    alphabet = string.printable + "éà€\u202e\x00🙂"
    csrf = csrf_of(client.get(path if path != "/incidents/1" else "/incidents/nouveau").text)
    for _ in range(40):
        form = {rng.choice(names): "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(8)}
        answer = client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code < 500, (form, answer.text[:300])
    big = client.post(path, data={"csrf": csrf, "message.fr": "x" * 70_000})
    assert big.status_code == 413


def test_the_audit_log_is_exported_as_json_lines(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    answer = client.get("/journal.jsonl")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/jsonl")
    assert "attachment" in answer.headers["content-disposition"]
    events = [json.loads(line) for line in answer.text.splitlines()]
    assert [(e["action"], e["actor"], e["listener"]) for e in events] == [
        ("session.open", "user:ada", "console"),
        ("mfa.enrol", "user:ada", "console"),
    ]  # oldest first; the account was made by the test without the CLI's audit
    assert PASSWORD not in answer.text


def test_a_weekly_window_planned_one_occurrence_cancelled_then_the_series(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    form = {"title.fr": "Mise à jour hebdomadaire", "component:line:viamedis/optique": "on",
            "start": "2024-02-18T02:00", "duration": "2h", "frequency": "weekly", "weekday-sun": "on"}  # fmt: skip
    page = client.get("/maintenance")
    done = client.post("/maintenance", data={"csrf": csrf_of(page.text), **form}, follow_redirects=False)
    assert done.status_code == 303, done.text[:800]
    [window] = Declarations(ops.store, ops.settings).windows()
    assert window.recurrence.describe() == "weekly on sun" and window.components == ("line:viamedis/optique",)
    page = client.get("/maintenance").text
    assert 'action="/maintenance/1/occurrences/2024-02-18/annulation"' in page
    client.post("/maintenance/1/occurrences/2024-02-18/annulation", data={"csrf": csrf_of(page)})
    assert Declarations(ops.store, ops.settings).window(1).skipped == (date(2024, 2, 18),)
    client.post("/maintenance/1/annulation", data={"csrf": csrf_of(page)})
    assert Declarations(ops.store, ops.settings).window(1).cancelled
    trail = [(e.action, e.actor, e.listener) for e in audit_events(ops.store, action="maintenance")]
    assert trail == [("maintenance.cancel", "user:ada", "console"),
                     ("maintenance.cancel_occurrence", "user:ada", "console"),
                     ("maintenance.add", "user:ada", "console")]  # fmt: skip


def test_a_window_without_a_component_or_a_start_is_refused_by_name(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    status, html = post_form(client, "/maintenance", {"title.fr": "x", "start": "2024-02-18T02:00", "duration": "2h"})
    assert status == 422 and "components" in html
    status, html = post_form(
        client,
        "/maintenance",
        {"title.fr": "x", "component:network:viamedis": "on", "start": "demain", "duration": "2h"},
    )
    assert status == 422 and "start" in html
    assert Declarations(ops.store, ops.settings).windows(include_cancelled=True) == []


def test_an_account_still_to_enrol_is_sent_to_its_second_factor(ops: Listener) -> None:
    make_user(ops.store, "ada")
    page = ops.client.get("/connexion")
    ops.client.post("/connexion", data={"csrf": csrf_of(page.text), "name": "ada", "password": PASSWORD})
    answer = ops.client.get("/incidents", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/connexion/second-facteur"


def test_behind_https_the_cookies_are_secure_and_host_only(ops: Listener) -> None:
    make_user(ops.store, "ada")
    with TestClient(ops.client.app, base_url="https://127.0.0.1:8081") as secure:
        page = secure.get("/connexion")
        assert page.headers["set-cookie"].startswith("__Host-tpmon_presession=")
        assert "Secure" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
        answer = secure.post(
            "/connexion", data={"csrf": csrf_of(page.text), "name": "ada", "password": PASSWORD}, follow_redirects=False
        )
        assert answer.status_code == 303
        session = answer.headers["set-cookie"]
        assert session.startswith("__Host-tpmon_session=")
        assert all(part in session for part in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"))


def test_form_refusals_and_refused_pages_are_in_french_and_in_english_when_asked(ops: Listener) -> None:
    client = sign_in(ops, "ada")
    short = {"name": "bob", "role": "admin", "password": "short"}
    status, html = post_form(client, "/comptes", short)
    assert status == 422 and "au moins 12 caractères (une phrase de quelques mots convient)" in html, html[-1500:]
    assert "at least 12" not in html
    status, html = post_form(client, "/jetons", {"label": "gatus", "scopes": "push:viamedis/pec/nope"})
    assert status == 422 and "aucune vérification viamedis/pec/nope dans la config" in html
    status, html = post_form(client, "/maintenance", {"title.fr": "x", "start": "2024-02-18T02:00", "duration": "2h"})
    assert status == 422 and "choisissez au moins un composant" in html
    csrf = csrf_of(client.get("/comptes").text)
    own = client.post("/comptes/ada/desactiver", data={"csrf": csrf})
    assert own.status_code == 409 and "un administrateur ne peut pas désactiver son propre compte" in own.text
    nowhere = client.post("/maintenance/x/annulation", data={"csrf": csrf})
    assert nowhere.status_code == 404 and "aucune fenêtre &#39;x&#39;" in nowhere.text
    nothing = client.post("/comptes/ada/oublier", data={"csrf": csrf})
    assert nothing.status_code == 404 and "aucune action &#39;oublier&#39;" in nothing.text
    client.get("/?lang=en")  # the console's language, as the site's: ?lang= then its cookie
    status, html = post_form(client, "/comptes", short)
    assert status == 422 and "at least 12 characters (a passphrase of a few words is good)" in html
    status, html = post_form(client, "/jetons", {"label": "gatus", "scopes": "push:viamedis/pec/nope"})
    assert status == 422 and "no check viamedis/pec/nope in the config" in html
    assert StaffStore(ops.store).users()[0].name == "ada" and len(StaffStore(ops.store).users()) == 1
