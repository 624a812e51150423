"""The operators' console in Chromium, against a real `tpmon serve` (two listeners): sign-in with password and a TOTP
code computed here, enrolment through the QR page, lockout, CSRF refusals, an editor held to its network in the
console and in the API, an incident opened, updated (recovering 50 %) and resolved then read on the public page;
and axe on every console page at 375 and 1280 px."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize
from targets import Server, wait_for

from .conftest import HEIGHT, SCREENSHOTS, submit
from .test_accessibility import describe, is_wcag, run_axe

PASSWORD = "une phrase de passe solide"
CONFIG = """
defaults: {interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}
admin: {push_per_minute: 600}
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {name: operateur, flow: pec, kind: push, interval: 1m}
  almerys:
    name: Almerys
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {name: operateur, flow: pec, kind: push, interval: 1m}
"""


@dataclass
class Account:
    name: str
    secret: str = ""
    last_step: int = -1

    def code(self) -> str:
        """The code of the first time step not used yet (the server refuses a step used before)."""
        totp = pyotp.TOTP(self.secret)
        step = max(int(time.time()) // 30, self.last_step + 1)
        assert step <= int(time.time()) // 30 + 1, "two sign-ins of one account within one step: use another one"
        self.last_step = step
        return totp.at(step * 30)


@dataclass
class Console:
    """`tpmon serve`, its two addresses, and the commands ops run beside it."""

    server: Server
    admin_url: str
    accounts: dict[str, Account] = field(default_factory=dict)

    def tpmon(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            self.server.command(*args, "--config", str(self.server.config)),
            cwd=self.server.workdir,
            env=self.server.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_user(self, name: str, role: str, *networks: str) -> Account:
        options = [f"--network={n}" for n in networks]
        self.tpmon("user", "add", name, "--role", role, *options, "--password-stdin", stdin=PASSWORD + "\n")
        self.accounts[name] = Account(name)
        return self.accounts[name]

    def token(self, *scopes: str) -> str:
        out = self.tpmon("token", "create", "--label", "test", *(f"--scope={s}" for s in scopes))
        found = re.search(r"^(tpm_[A-Za-z0-9_-]{43})$", out, re.M)
        assert found, out
        return found.group(1)

    def public(self, path: str) -> httpx.Response:
        return self.server.get(path)

    def line(self, network: str, line: str) -> dict[str, Any]:
        return self.server.component(network, "lines", line)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, chromium: Browser) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    config = folder / "tpmon.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    server = Server(config, folder, {"TPMON_DATABASE_URL": f"sqlite:///{folder}/tpmon.db"}).start()
    found = Console(server, f"http://127.0.0.1:{server.admin_port}")
    wait_for(lambda: httpx.get(found.admin_url + "/healthz").text == "ok", what="the operators' listener")
    try:
        yield found
    finally:
        server.stop()


def new_page(browser: Browser, console: Console, *, width: int = 1280, javascript: bool = True) -> Page:
    viewport: ViewportSize = {"width": width, "height": HEIGHT}
    context = browser.new_context(viewport=viewport, locale="fr-FR", bypass_csp=True, java_script_enabled=javascript)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(console.admin_url + "/connexion")
    return page


def sign_in(page: Page, console: Console, account: Account, *, code: str | None = None) -> None:
    """Password and code; at the first sign-in, the enrolment page's key read and its first code typed."""
    page.goto(console.admin_url + "/connexion")
    page.get_by_label("Identifiant").fill(account.name)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    if account.secret:
        page.get_by_label("Code à 6 chiffres de l'application d'authentification").fill(code or account.code())
    submit(page.get_by_role("button", name="Se connecter"))
    if not account.secret:
        assert page.locator("h1").inner_text() == "Configurer le second facteur"
        assert page.locator(".qr svg").count() == 1  # the QR code, drawn as SVG
        account.secret = page.locator("#cle").inner_text().replace(" ", "")
        page.get_by_label("Code à 6 chiffres").fill(account.code())
        submit(page.get_by_role("button", name="Activer et entrer"))


def signed_in_page(browser: Browser, console: Console, account: Account, *, width: int = 1280) -> Page:
    page = new_page(browser, console, width=width)
    sign_in(page, console, account)
    assert page.locator("h1").inner_text() == "États en cours", page.content()[:2000]
    return page


def test_sign_in_with_password_and_a_totp_code(chromium: Browser, console: Console) -> None:
    zoe = console.add_user("zoe", "viewer")
    page = signed_in_page(chromium, console, zoe)  # enrolment: QR page, first code
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["tpmon_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    submit(page.get_by_role("button", name="Se déconnecter"))
    assert page.locator("h1").inner_text() == "Connexion à la console"
    page.goto(console.admin_url + "/incidents")  # signed out: back to the sign-in page
    assert page.locator("h1").inner_text() == "Connexion à la console"

    totp, now = pyotp.TOTP(zoe.secret), time.time()
    valid = {totp.at(now + delta) for delta in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    sign_in(page, console, zoe, code=wrong)
    assert "Connexion refusée" in page.locator(".form-error").inner_text()
    sign_in(page, console, zoe)  # the code of the next step: signed in
    assert page.locator("h1").inner_text() == "États en cours"
    assert "zoe" in page.locator(".who").inner_text()
    page.context.close()
    listed = json.loads(console.tpmon("user", "list", "--json"))
    assert next(u for u in listed if u["name"] == "zoe")["second_factor"] == "enrolled"


def test_an_account_is_locked_after_repeated_failures(chromium: Browser, console: Console) -> None:
    console.add_user("bob", "viewer")
    page = new_page(chromium, console)
    for _ in range(5):
        page.get_by_label("Identifiant").fill("bob")
        page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
        submit(page.get_by_role("button", name="Se connecter"))
        assert "Connexion refusée" in page.locator(".form-error").inner_text()
    page.get_by_label("Identifiant").fill("bob")
    page.get_by_label("Mot de passe").fill(PASSWORD)  # the right password now: still refused, with the same words
    submit(page.get_by_role("button", name="Se connecter"))
    assert page.locator("h1").inner_text() == "Connexion à la console"
    assert "Connexion refusée" in page.locator(".form-error").inner_text()
    listed = json.loads(console.tpmon("user", "list", "--json"))
    assert next(u for u in listed if u["name"] == "bob")["locked_until"] is not None
    audit = json.loads(console.tpmon("audit", "list", "--action", "account.locked", "--json"))
    assert [e["target"] for e in audit] == ["user:bob"]
    page.context.close()


def _new_incident_form(page: Page, console: Console, title: str, component: str, state: str) -> None:
    page.goto(console.admin_url + "/incidents/nouveau")
    page.locator("#f-title-fr").fill(title)
    page.locator("#f-impact").select_option("major")
    page.locator("#f-message-fr").fill("Les prises en charge échouent.")
    page.locator("#f-component-0").select_option(component)
    page.locator("#f-state-0").select_option(state)


def test_forms_refuse_a_missing_or_wrong_csrf_token(chromium: Browser, console: Console) -> None:
    carl = console.add_user("carl", "admin")
    page = signed_in_page(chromium, console, carl)
    _new_incident_form(page, console, "Essai CSRF", "line:viamedis/pharmacie", "down")
    page.evaluate("document.querySelector('form.console-form input[name=csrf]').value = 'forged'")
    submit(page.get_by_role("button", name="Prévisualiser"))
    assert page.locator("h1").inner_text() == "Formulaire refusé"
    # the write API with the session cookie but without the CSRF header: refused too
    answer = page.evaluate(
        """async () => (await fetch('/api/v1/incidents', {method: 'POST', headers: {'content-type': 'application/json'},
            body: JSON.stringify({title: {fr: 'x'}, impact: 'minor', message: {fr: 'x'}})})).status"""
    )
    assert answer == 403
    # the sign-in form too carries a token: posted without it, refused
    other = new_page(chromium, console)
    other.evaluate("document.querySelector('input[name=csrf]').remove()")
    other.get_by_label("Identifiant").fill("carl")
    other.get_by_label("Mot de passe").fill(PASSWORD)
    submit(other.get_by_role("button", name="Se connecter"))
    assert other.locator("h1").inner_text() == "Formulaire refusé"
    assert not console.public("/api/v1/incidents").json()["incidents"]  # nothing was opened
    page.context.close()
    other.context.close()


def test_an_editor_of_viamedis_cannot_touch_almerys(chromium: Browser, console: Console) -> None:
    almerys = console.token("write:almerys")
    opened = httpx.post(
        console.admin_url + "/api/v1/incidents",
        headers={"Authorization": f"Bearer {almerys}"},
        json={"title": {"fr": "Almerys PEC"}, "impact": "major", "message": {"fr": "En cours d'analyse."},
              "statuses": [{"component": "line:almerys/optique", "state": "down"}]},
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    number = opened.json()["id"]
    eve = console.add_user("eve", "editor", "viamedis")
    page = signed_in_page(chromium, console, eve)

    page.goto(console.admin_url + "/incidents/nouveau")
    offered = page.locator("#f-component-0 option").evaluate_all("options => options.map(o => o.value)")
    assert "line:viamedis/optique" in offered and not [v for v in offered if "almerys" in v]

    page.goto(f"{console.admin_url}/incidents/{number}")
    assert "Lecture seule" in page.locator(".notice").inner_text()
    assert page.locator("form.console-form").count() == 0
    csrf = page.locator("input[name=csrf]").first.input_value()
    forged = page.evaluate(
        """async ([number, csrf]) => (await fetch('/incidents/' + number, {method: 'POST',
            body: new URLSearchParams({csrf: csrf, status: 'resolved', 'message.fr': 'fin', action: 'preview'})}))
            .status""",
        [number, csrf],
    )
    assert forged == 403  # the console refuses the post its page did not offer
    api = page.evaluate(
        """async ([number, csrf]) => (await fetch('/api/v1/incidents/' + number + '/resolve', {method: 'POST',
            headers: {'X-CSRF-Token': csrf}})).status""",
        [number, csrf],
    )
    assert api == 403  # and so does the API, for the same session
    mine = page.evaluate(
        """async (csrf) => (await fetch('/api/v1/incidents', {method: 'POST',
            headers: {'X-CSRF-Token': csrf, 'content-type': 'application/json'},
            body: JSON.stringify({title: {fr: 'x'}, impact: 'minor', message: {fr: 'x'},
                                  statuses: [{component: 'network:almerys', state: 'down'}]})})).status""",
        csrf,
    )
    assert mine == 403
    assert console.public(f"/api/v1/incidents/{number}").json()["status"] != "resolved"
    page.context.close()


def _preview_then_publish(page: Page) -> None:
    submit(page.get_by_role("button", name="Prévisualiser"))
    assert page.locator("#apercu-titre").is_visible(), page.locator("main").inner_text()[:1500]
    submit(page.get_by_role("button", name="Publier"))
    assert "Publié" in page.locator(".done").inner_text()


def test_open_update_and_resolve_an_incident_then_read_it_on_the_public_page(
    chromium: Browser, console: Console
) -> None:
    ada = console.accounts.get("ada") or console.add_user("ada", "admin")
    page = signed_in_page(chromium, console, ada)
    _new_incident_form(page, console, "PEC optique indisponibles", "line:viamedis/optique", "down")
    page.locator("#f-practitioner_consigne-fr").fill("Appliquez le tiers payant sur la part obligatoire seulement.")
    submit(page.get_by_role("button", name="Prévisualiser"))
    assert page.locator("#apercu-titre").count() == 1, page.locator("main").inner_text()[:1500]
    preview = page.locator(".preview-page")
    assert "PEC optique indisponibles" in preview.inner_text() and "Indisponible" in preview.inner_text()
    assert not console.public("/api/v1/incidents").json()["incidents"] or all(
        i["title"]["fr"] != "PEC optique indisponibles" for i in console.public("/api/v1/incidents").json()["incidents"]
    )  # previewed, not published
    submit(page.get_by_role("button", name="Publier"))
    assert "Publié" in page.locator(".done").inner_text()
    number = int(page.url.split("/incidents/")[1].split("?")[0])
    wait_for(lambda: console.line("viamedis", "optique")["state"] == "down", what="optique down on the public side")
    home = console.public("/").text
    assert "PEC optique indisponibles" in home and "part obligatoire" in home

    page.locator("#f-status").select_option("monitoring")
    page.locator("#f-message-fr").fill("Optique réactivée à 50 %.")
    page.locator("#f-component-0").select_option("line:viamedis/optique")
    page.locator("#f-state-0").select_option("recovering")
    page.locator("#f-progress-0-slider").fill("50")  # the slider; its number follows
    assert page.locator("#f-progress-0").input_value() == "50"
    _preview_then_publish(page)
    wait_for(lambda: console.line("viamedis", "optique")["state"] == "recovering", what="recovering")
    assert console.line("viamedis", "optique")["progress"] == 0.5
    public = console.public(f"/incidents/{number}").text
    assert "Optique réactivée à 50 %." in public and "50\u00a0%" in public

    page.locator("#f-status").select_option("resolved")
    page.locator("#f-message-fr").fill("Service rétabli.")
    _preview_then_publish(page)
    wait_for(lambda: console.line("viamedis", "optique")["source"] != "declared", what="the declaration lifted")
    answer = console.public(f"/api/v1/incidents/{number}").json()
    assert answer["status"] == "resolved" and len(answer["updates"]) == 3
    assert "Résolu" in console.public(f"/incidents/{number}").text
    trail = json.loads(console.tpmon("audit", "list", "--action", "incident", "--json"))
    mine = [e for e in trail if e["target"] == f"incident:{number}"]
    assert [(e["action"], e["actor"], e["listener"]) for e in mine] == [
        ("incident.resolve", "user:ada", "console"),
        ("incident.update", "user:ada", "console"),
        ("incident.open", "user:ada", "console"),
    ]
    page.context.close()


CONSOLE_PAGES = ["/", "/incidents", "/incidents/nouveau", "/incidents/{incident}", "preview", "/maintenance",
                 "/signaux", "/jetons", "token created", "/comptes", "/journal", "refused"]  # fmt: skip


@pytest.fixture(scope="module")
def admin_context(chromium: Browser, console: Console) -> Iterator[BrowserContext]:
    ada = console.accounts.get("ada") or console.add_user("ada", "admin")
    page = signed_in_page(chromium, console, ada)
    yield page.context
    page.context.close()


def _no_violation(page: Page, where: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-") or "accueil"
    page.screenshot(path=SCREENSHOTS / f"console-{width}-{name}.png", full_page=True)
    failures = [v for v in run_axe(page) if is_wcag(v)]
    assert not failures, describe(failures, f"{where} ({width} px)")


def _open_incident_number(console: Console) -> int:
    """An open incident on viamedis, with a declared status and consignes: its page shows every part."""
    listed = [i for i in console.public("/api/v1/incidents").json()["incidents"] if i["status"] != "resolved"]
    mine = [i for i in listed if any("viamedis" in c for c in i.get("components", []))]
    if mine:
        return int(mine[0]["id"])
    opened = httpx.post(
        console.admin_url + "/api/v1/incidents",
        headers={"Authorization": f"Bearer {console.token('write:viamedis')}"},
        json={"title": {"fr": "Pharmacie lente", "en": "Slow pharmacy"}, "impact": "minor",
              "message": {"fr": "Les PEC sont lentes."},
              "practitioner_consigne": {"fr": "Réessayez plus tard.", "en": "Retry later."},
              "statuses": [{"component": "line:viamedis/pharmacie", "state": "degraded"}]},
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    return int(opened.json()["id"])


@pytest.mark.parametrize("where", CONSOLE_PAGES)
def test_console_pages_pass_axe_at_375_and_1280(admin_context: BrowserContext, console: Console, where: str) -> None:
    page = admin_context.new_page()
    try:
        if where == "preview":
            _new_incident_form(page, console, "Aperçu accessible", "line:viamedis/pharmacie", "recovering")
            page.locator("#f-progress-0").fill("30")
            submit(page.get_by_role("button", name="Prévisualiser"))
            assert page.locator("#apercu-titre").is_visible()
        elif where == "token created":
            page.goto(console.admin_url + "/jetons")
            page.get_by_label("Usage (a-z, 0-9, . _ -, sans donnée personnelle)").fill("axe")
            page.get_by_label("Droits, séparés par des espaces").fill("push:viamedis/pec/operateur")
            submit(page.get_by_role("button", name="Créer"))
            assert page.locator("#nouveau-jeton").inner_text().startswith("tpm_")
        elif where == "refused":
            page.goto(console.admin_url + "/incidents/nouveau")
            page.evaluate("document.querySelector('form.console-form input[name=csrf]').value = 'forged'")
            submit(page.get_by_role("button", name="Prévisualiser"))
            assert page.locator("h1").inner_text() == "Formulaire refusé"
        else:
            path = where.format(incident=_open_incident_number(console) if "{incident}" in where else 0)
            response = page.goto(console.admin_url + path)
            assert response is not None and response.status == 200, path
        for width in (375, 1280):
            page.set_viewport_size({"width": width, "height": HEIGHT})
            _no_violation(page, where, width)
    finally:
        page.close()


def test_sign_in_and_enrolment_pages_pass_axe(chromium: Browser, console: Console) -> None:
    dan = console.add_user("dan", "viewer")
    page = new_page(chromium, console, width=375)
    _no_violation(page, "/connexion", 375)
    page.set_viewport_size({"width": 1280, "height": HEIGHT})
    _no_violation(page, "/connexion", 1280)
    page.get_by_label("Identifiant").fill(dan.name)
    page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    submit(page.get_by_role("button", name="Se connecter"))
    _no_violation(page, "/connexion refused", 1280)
    page.get_by_label("Identifiant").fill(dan.name)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    submit(page.get_by_role("button", name="Se connecter"))
    assert page.locator("h1").inner_text() == "Configurer le second facteur"
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": HEIGHT})
        _no_violation(page, "/connexion/second-facteur", width)
    page.goto(console.admin_url + "/connexion?lang=en")
    _no_violation(page, "/connexion en", 375)
    page.context.close()


def test_the_console_is_in_english_too(admin_context: BrowserContext, console: Console) -> None:
    page = admin_context.new_page()
    try:
        page.goto(console.admin_url + "/incidents/nouveau?lang=en")
        assert page.locator("h1").inner_text() == "Declare an incident"
        assert page.evaluate("document.documentElement.lang") == "en"
        page.goto(console.admin_url + "/")  # the choice is kept (a cookie)
        assert page.locator("h1").inner_text() == "Current states"
        _no_violation(page, "/ en", 375)
        page.goto(console.admin_url + "/?lang=fr")
    finally:
        page.close()


def test_tokens_accounts_maintenance_and_the_audit_log_from_the_console(
    admin_context: BrowserContext, console: Console
) -> None:
    page = admin_context.new_page()
    try:
        page.goto(console.admin_url + "/jetons")
        page.get_by_label("Usage (a-z, 0-9, . _ -, sans donnée personnelle)").fill("partenaire")
        page.get_by_label("Droits, séparés par des espaces").fill("push:viamedis/pec/operateur")
        submit(page.get_by_role("button", name="Créer"))
        secret = page.locator("#nouveau-jeton").inner_text()
        pushed = httpx.post(f"{console.admin_url}/api/v1/push/viamedis/pec/operateur",
                            headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
        assert pushed.status_code == 202, pushed.text
        page.goto(console.admin_url + "/signaux")
        row = page.locator("tr", has_text="pec / operateur").first
        assert "Viamedis" in row.inner_text() and f"token:{secret[:12]}" in row.inner_text()
        page.goto(console.admin_url + "/jetons")
        submit(page.get_by_role("button", name=f"Révoquer {secret[:12]}"))
        refused = httpx.post(f"{console.admin_url}/api/v1/push/viamedis/pec/operateur",
                             headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
        assert refused.status_code == 401

        page.goto(console.admin_url + "/comptes")
        page.get_by_label("Identifiant (pas une adresse de courriel)").fill("felix")
        page.get_by_label("Rôle").select_option("editor")
        page.get_by_label("Viamedis").check()
        page.get_by_label("Mot de passe initial (12 caractères au moins)").fill(PASSWORD)
        submit(page.get_by_role("button", name="Ajouter"))
        submit(page.get_by_role("button", name="Désactiver — felix"))
        listed = json.loads(console.tpmon("user", "list", "--json"))
        assert next(u for u in listed if u["name"] == "felix") == {
            "name": "felix", "role": "editor", "networks": ["viamedis"], "disabled": True,
            "second_factor": "pending", "locked_until": None}  # fmt: skip

        page.goto(console.admin_url + "/maintenance")
        page.get_by_label("Viamedis — domaine Optique").check()
        page.locator("#m-title-fr").fill("Mise à jour du serveur")
        start = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)).strftime("%Y-%m-%dT22:00")
        page.locator("#m-start").fill(start)
        page.locator("#m-duration").fill("2h")
        submit(page.get_by_role("button", name="Enregistrer"))
        assert "Maintenance enregistrée" in page.locator(".done").inner_text()
        upcoming = console.public("/api/v1/maintenance").json()["upcoming"]
        assert "Mise à jour du serveur" in json.dumps(upcoming, ensure_ascii=False)

        page.goto(console.admin_url + "/journal")
        text = page.locator("table").inner_text()
        for action in ("token.create", "token.revoke", "user.add", "user.disable", "maintenance.add"):
            assert action in text
        with page.expect_download() as download:
            page.get_by_role("link", name="Exporter tout le journal (JSON lines)").click()
        lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines]
        mine = [(e["action"], e["actor"], e["listener"]) for e in events if e["actor"] == "user:ada"]
        assert ("user.disable", "user:ada", "console") in mine and ("token.revoke", "user:ada", "console") in mine
        assert secret not in "\n".join(lines) and PASSWORD not in "\n".join(lines)
    finally:
        page.close()
