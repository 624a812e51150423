"""/incidents, /incidents/{id}, /assures, /assures/{network}, /accessibilite, /methode over a seeded SQLite store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from targets import alpha_config

from monitor.app import create_app
from monitor.availability import FORMULA, UNKNOWN_RULE
from monitor.config import Settings, load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow
from monitor.i18n import PARIS
from monitor.store import Store
from monitor.store.declaration_store import Declarations

NOW = datetime(2024, 2, 12, 11, 0, tzinfo=UTC)  # a Monday, noon in Paris
OLD = 23  # resolved incidents before the two of interest: 25 in all, so a second page of 5
BETA = """
  beta:
    name: Bêta Santé
    kind: reseau_de_soins
    lines: [pharmacie, audio]
"""
XSS_TITLE = '<script>alert("title")</script> Panne <b>grave</b>'
XSS_MESSAGE = (
    "<img src=x onerror=alert(1)> [lien](javascript:alert(2)) <script>alert(3)</script> <a href=x onclick=y>a</a>"
)
PAGES = ("/incidents", "/incidents?page=2", "/assures", "/assures/alpha", "/assures/beta", "/accessibilite", "/methode")


def seed(store: Store, settings: Settings) -> dict[str, int]:
    """25 incidents (the last two open and with an XSS payload), and maintenance on beta, written as ops do."""
    declarations = Declarations(store, settings, clock=lambda: NOW)
    for n in range(OLD):
        start = NOW - timedelta(days=60 - n)
        old = declarations.open_incident(
            title=Bilingual(f"Lenteurs n° {n + 1}", f"Slowness #{n + 1}"),
            impact="minor",
            first=IncidentUpdate(start, "investigating", Bilingual("Lenteurs.", "Slowness.")),
            components=["flow:alpha/facturation"],
        )
        declarations.resolve_incident(old.id or 0, at=start + timedelta(hours=2, minutes=5))
    xss = declarations.open_incident(
        title=Bilingual(XSS_TITLE),
        impact="minor",
        first=IncidentUpdate(NOW - timedelta(days=3), "investigating", Bilingual(XSS_MESSAGE)),
        components=["network:beta"],
    )
    declarations.resolve_incident(xss.id or 0, at=NOW - timedelta(days=3) + timedelta(minutes=45))
    pec = declarations.open_incident(
        title=Bilingual("PEC optique indisponibles", "Optical PEC unavailable"),
        impact="major",
        first=IncidentUpdate(
            NOW - timedelta(hours=2),
            "identified",
            Bilingual("Les PEC échouent.", "PECs fail."),
            practitioner_consigne=Bilingual("Différez la vente.", "Postpone the sale."),
            statuses={"line:alpha/optique": declare("down"), "line:alpha/pharmacie": declare("operational")},
        ),
    )
    declarations.update_incident(
        pec.id or 0,
        IncidentUpdate(
            NOW - timedelta(minutes=30),
            "monitoring",
            Bilingual("Réactivation en cours."),  # no English: shown in French, marked lang="fr"
            member_consigne=Bilingual("Gardez la facture acquittée.", "Keep the receipted invoice."),
            statuses={"flow:alpha/pec": declare("recovering", 0.5)},
        ),
    )
    start = (NOW - timedelta(minutes=30)).astimezone(PARIS).replace(tzinfo=None)  # windows are Paris wall times
    declarations.add_window(
        MaintenanceWindow(None, Bilingual("Bascule"), ("line:beta/audio",), start, timedelta(hours=2))
    )
    return {"pec": pec.id or 0, "xss": xss.id or 0}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, int]]]:
    tmp = tmp_path_factory.mktemp("pages")
    config = tmp / "tpmon.yaml"
    config.write_text("stabilization: 45m\n" + alpha_config("http://127.0.0.1:9", extra_networks=BETA), "utf-8")
    settings = load_config(config)
    store = Store.open(f"sqlite:///{tmp}/pages.db")
    ids = seed(store, settings)
    app = create_app(settings, store=store, schedule=False, clock=lambda: NOW)
    with store, TestClient(app) as client:
        yield client, ids


class Page(HTMLParser):
    """Tags with their attributes, headings in order, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[int] = []
        self.parts: list[str] = []
        self.feed(html)
        self.text = re.sub(r"[ \t\r\n]+", " ", " ".join(self.parts))  # no-break spaces kept

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def fetch(client: TestClient, path: str) -> httpx.Response:
    """A first visit: no `lang` cookie from an earlier `?lang=en` (the module shares one client)."""
    client.cookies.clear()
    answer: httpx.Response = client.get(path)
    return answer


def get(client: TestClient, path: str, status: int = 200) -> Page:
    answer = fetch(client, path)
    assert answer.status_code == status, (path, answer.status_code)
    return Page(answer.text)


def test_history_newest_first_with_names_dates_and_durations(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = seeded
    page = get(client, "/incidents")
    titles = [unescape(a.get("href") or "") for a in page.all("a") if (a.get("href") or "").startswith("/incidents/")]
    assert titles[:3] == [f"/incidents/{ids['pec']}", f"/incidents/{ids['xss']}", f"/incidents/{ids['xss'] - 1}"]
    assert "Historique des incidents" in page.text and page.headings.count(1) == 1
    assert "Majeur" in page.text and "Surveillance" in page.text and "Mineur" in page.text
    assert "lun. 12 févr. 2024, 10:00" in page.text  # the open incident's start, Paris time
    assert (
        "en cours depuis 2\u00a0h" in page.text and "2\u00a0h 05\u00a0min" in page.text and "45\u00a0min" in page.text
    )
    assert "Alpha — Facturation" in page.text and "Bêta Santé" in page.text
    assert "line:" not in page.text and "flow:" not in page.text and "network:" not in page.text
    english = get(client, "/incidents?lang=en")
    assert "Incident history" in english.text and "Major" in english.text and "Monitoring" in english.text
    assert "Mon 12 Feb 2024, 10:00" in english.text and "Alpha — Invoicing" in english.text
    assert "ongoing for 2\u00a0h" in english.text


def test_twenty_a_page_then_a_second_page_and_404_for_any_other(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = seeded
    first, second = get(client, "/incidents"), get(client, "/incidents?page=2")
    assert len(first.all("article")) == 20 and len(second.all("article")) == OLD + 2 - 20
    assert [a["href"] for a in first.all("a") if a.get("rel") == "next"] == ["/incidents?page=2"]
    assert not [a for a in first.all("a") if a.get("rel") == "prev"]
    assert [a["href"] for a in second.all("a") if a.get("rel") == "prev"] == ["/incidents"]
    assert not [a for a in second.all("a") if a.get("rel") == "next"]
    assert "Lenteurs n° 5" in second.text and "Lenteurs n° 5" not in first.text  # the 5 oldest
    assert "Lenteurs n° 6" in first.text and "Lenteurs n° 6" not in second.text
    for bad in ("99", "3", "0", "-1", "abc", "02", "2.0", "1e3", "9" * 40, ""):
        answer = fetch(client, f"/incidents?page={bad}")
        assert answer.status_code == 404, bad
        assert "Page introuvable" in answer.text and answer.headers["content-type"].startswith("text/html")


def test_an_incident_with_its_components_and_updates_newest_first(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = seeded
    page = get(client, f"/incidents/{ids['pec']}")
    text = page.text
    assert page.headings[0] == 1 and page.headings.count(1) == 1
    assert "PEC optique indisponibles" in text and "Majeur" in text and "En cours" in text
    assert "Alpha — Optique" in text and "Alpha — Pharmacie" in text and "Alpha — Prises en charge (PEC)" in text
    assert "Réactivation progressive\u00a0: 50\u00a0%" in text and "Indisponible" in text
    assert text.index("Réactivation en cours.") < text.index("Les PEC échouent.")  # newest first, and it says so
    assert "La plus récente en premier." in text
    assert "Différez la vente." in text and "Gardez la facture acquittée." in text
    headers = page.all("th")
    assert headers and all(th.get("scope") in ("col", "row") for th in headers)
    assert {a.get("href") for a in page.all("a")} >= {"/reseaux/alpha/optique", "/reseaux/alpha", "/incidents"}
    english = fetch(client, f"/incidents/{ids['pec']}?lang=en").text
    assert "Optical PEC unavailable" in english and "Progressive reactivation: 50%" in english
    assert "Postpone the sale." in english and "Newest first." in english
    assert '<div class="ops-text" lang="fr"><p>Réactivation en cours.</p></div>' in english  # French, said so
    assert '<div class="ops-text"><p>PECs fail.</p></div>' in english


def test_a_resolved_incident_and_unknown_ids(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, ids = seeded
    page = get(client, f"/incidents/{ids['xss'] - 1}")
    assert "Résolu" in page.text and "2\u00a0h 05\u00a0min" in page.text and "ne s'appliquent plus" in page.text
    for bad in ("999", "0", "abc", "-1", "01", "1.0", "9" * 40):
        answer = fetch(client, f"/incidents/{bad}")
        assert answer.status_code == 404 and "Page introuvable" in answer.text, bad
    assert "Page not found" in fetch(client, "/incidents/999?lang=en").text


@pytest.mark.parametrize("path", ["/incidents", "/incidents/{xss}"])
def test_script_in_a_title_or_message_never_reaches_the_page(
    seeded: tuple[TestClient, dict[str, int]], path: str
) -> None:
    client, ids = seeded
    html = fetch(client, path.format(**ids)).text
    page = Page(html)
    assert [s.get("src") for s in page.all("script")] == ["/static/refresh.js"]
    assert not page.all("img") and not page.all("b")
    assert not [attrs for _, attrs in page.tags if any(name.startswith("on") for name in attrs)]
    assert not [a for a in page.all("a") if "javascript" in (a.get("href") or "").lower()]
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; Panne &lt;b&gt;grave&lt;/b&gt;" in html
    if path != "/incidents":
        assert "<title>&lt;script&gt;" in html and "alert(3)" in page.text  # shown as text, inert


def test_members_choose_their_network_by_a_link(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = seeded
    page = get(client, "/assures")
    assert "Quel réseau figure sur votre carte de tiers payant\u00a0?" in page.text
    assert {"/assures/alpha", "/assures/beta"} <= {a.get("href") for a in page.all("a")}
    # each network's state: Alpha has optique down and pharmacie working, so it is partly unavailable (DESIGN §2)
    assert re.search(r"Alpha [^—]*Partiellement indisponible — à vérifier\u00a0: Optique", page.text)
    english = get(client, "/assures?lang=en")
    assert "Which network is on your tiers-payant card?" in english.text
    assert get(client, "/assures/nope", 404).headings == [1]


def _answer(html: str, line: str) -> str:
    found = re.search(rf'<li class="answer[^"]*">\s*<h3>{line}</h3>(.*?)</li>', html, re.S)
    assert found, line
    return re.sub(r"[ \t\r\n]+", " ", unescape(re.sub(r"<[^>]+>", " ", found.group(1)))).strip()


def test_members_see_per_line_whether_they_pay_upfront(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = seeded
    html = fetch(client, "/assures/alpha").text
    assert _answer(html, "Optique").startswith("✕ Avance de frais probable")
    assert _answer(html, "Pharmacie").startswith("✓ Tiers payant disponible")
    assert html.index("<h3>Optique</h3>") < html.index("<h3>Pharmacie</h3>")  # what a member must know, first
    text = Page(html).text
    assert "facture acquittée" in text and "complémentaire santé" in text
    assert "Gardez la facture acquittée." in text  # the open incident's consigne for members
    assert "https://www.cybermalveillance.gouv.fr/" in html and "17Cyber" in text
    assert "mots de passe ou coordonnées bancaires" in text
    beta = fetch(client, "/assures/beta").text
    assert _answer(beta, "Audioprothèse").startswith("? Incertain")  # maintenance
    assert _answer(beta, "Pharmacie").startswith("? Incertain")  # no signal at all
    assert "Gardez la facture acquittée." not in beta  # alpha's incident is not beta's
    english = fetch(client, "/assures/alpha?lang=en").text
    assert _answer(english, "Optics").startswith("✕ You will probably pay upfront")
    assert _answer(english, "Pharmacy").startswith("✓ Tiers payant available")
    assert '<strong lang="fr">facture acquittée</strong>' in english and "Keep the receipted invoice." in english


def test_accessibility_statement_says_what_was_tested_and_what_was_not(
    seeded: tuple[TestClient, dict[str, int]],
) -> None:
    client, _ = seeded
    text = get(client, "/accessibilite").text
    assert "audit manuel complet" in text and "non conforme" in text
    assert "axe-core" in text and "375, 768 et 1280" in text and "Défenseur des droits" in text
    assert "tableau" in text and "aucune donnée personnelle" in text
    english = get(client, "/accessibilite?lang=en").text
    assert "non-compliant" in english and "full manual RGAA audit" in english and "Remedies" in english


def test_method_publishes_the_formula_and_the_running_config(seeded: tuple[TestClient, dict[str, int]]) -> None:
    client, _ = seeded
    text = get(client, "/methode").text
    assert FORMULA["fr"] in text and UNKNOWN_RULE["fr"] in text
    assert "45\u00a0min" in text  # stabilization from this config, not DESIGN's default of 30 min
    assert "après 1 échec consécutif et redevient opérationnelle après 1 succès consécutif" in text  # the config's
    assert "intervalle entre deux mesures\u00a0: 1\u00a0s" in text and "Bêta Santé" not in text  # no dependency
    assert text.index("une maintenance en cours") < text.index("un statut déclaré") < text.index("une dépendance")
    for label in ("Opérationnel", "Perturbé", "Partiellement indisponible", "Indisponible", "Réactivation progressive"):
        assert label in text
    assert "Portail professionnels de santé ou Prises en charge (PEC)" in text  # optique's requirement
    assert "une majorité des points de mesure le voient indisponible" in text  # no quorum configured
    assert "Points de mesure de ce site" not in text  # one location, not named
    english = get(client, "/methode?lang=en").text
    assert FORMULA["en"] in english and UNKNOWN_RULE["en"] in english and "45\u00a0min" in english
    assert "Several vantage points" in english and "unreachable from lyon only" in english


def test_method_says_the_quorum_and_the_locations_of_the_config(tmp_path: Path) -> None:
    config = tmp_path / "tpmon.yaml"
    cluster = "cluster:\n  location: paris\n  quorum: 2\n  locations:\n    lyon: {}\n    marseille: {}\n"
    config.write_text(cluster + alpha_config("http://127.0.0.1:9"), "utf-8")
    settings = load_config(config)
    store = Store.open(f"sqlite:///{tmp_path}/method.db")
    with store, TestClient(create_app(settings, store=store, schedule=False, clock=lambda: NOW)) as client:
        text = get(client, "/methode").text
        english = get(client, "/methode?lang=en").text
    assert "que si au moins 2 points de mesure le voient indisponible" in text and "une majorité" not in text
    assert "Points de mesure de ce site\u00a0: lyon, marseille, paris." in text
    assert "only when at least 2 locations see it down" in english
    assert "Locations of this site: lyon, marseille" in english


@pytest.mark.parametrize("path", PAGES)
def test_no_field_asks_anything_and_headings_go_in_order(seeded: tuple[TestClient, dict[str, int]], path: str) -> None:
    client, _ = seeded
    for lang in ("fr", "en"):
        separator = "&" if "?" in path else "?"
        page = get(client, f"{path}{separator}lang={lang}")
        assert not [tag for tag, _ in page.tags if tag in ("input", "form", "select", "textarea", "button")]
        assert page.headings[0] == 1 and page.headings.count(1) == 1, path
        assert all(b - a <= 1 for a, b in zip(page.headings, page.headings[1:], strict=False)), (path, page.headings)
        assert all(th.get("scope") in ("col", "row") for th in page.all("th"))
        assert not [attrs for _, attrs in page.tags if "style" in attrs]
        assert [s.get("src") for s in page.all("script")] == ["/static/refresh.js"]  # no inline script (CSP)


def test_members_see_an_information_once_in_a_neutral_style_below_the_answer(tmp_path: Path) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9", extra_networks=BETA), "utf-8")
    settings = load_config(config)
    store = Store.open(f"sqlite:///{tmp_path}/notice.db")
    declarations = Declarations(store, settings, clock=lambda: NOW)
    declarations.open_incident(
        title=Bilingual("Alerte hameçonnage", "Phishing alert"),
        impact="none",  # an information for everyone, not an outage
        first=IncidentUpdate(NOW - timedelta(hours=1), "identified", Bilingual("Faux courriels.", "Fake e-mails.")),
    )
    declarations.open_incident(
        title=Bilingual("PEC optique indisponibles"),
        impact="major",
        first=IncidentUpdate(NOW - timedelta(hours=2), "identified", Bilingual("Les PEC échouent.")),
        components=["line:alpha/optique"],
    )
    app = create_app(settings, store=store, schedule=False, clock=lambda: NOW)
    with store, TestClient(app) as client:
        html = fetch(client, "/assures/alpha").text
    assert html.count("Alerte hameçonnage") == 1  # once: not also listed among the incidents' advice
    notice = html.index('<aside class="notice"')
    assert html.index("Alerte hameçonnage") > notice > html.index('id="lines-title"')  # below the answer
    assert html.count('class="phishing"') == 0 and html.count('class="members-phishing"') == 1  # said once
    text = Page(html).text
    assert "PEC optique indisponibles" in text
    assert "Cet incident ne donne pas de conseil propre aux assurés\u00a0: les conseils généraux" in text
