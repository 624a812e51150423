"""Consignes are dated; one older than its components' last change of state is shown as outdated, and one of a
resolved incident as withdrawn — on every surface, never as current advice (DESIGN §2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
from starlette.testclient import TestClient
from targets import alpha_config

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.store.declaration_store import Declarations

T0 = datetime(2024, 2, 8, 9, 0, tzinfo=UTC)  # 8 February, 10:00 in Paris: the consigne is written
T1 = datetime(2024, 2, 14, 8, 0, tzinfo=UTC)  # 14 February: reactivation, no new consigne
T2 = datetime(2024, 2, 19, 8, 0, tzinfo=UTC)  # 19 February: operational again, still no new consigne
PRO = "Aucune prise en charge ne peut être enregistrée : différez l'équipement."
PRO_EN = "No prior approval can be registered: postpone the purchase."
MEMBERS = "Vous devrez sans doute avancer les frais en optique."
OUTDATED_FR = "antérieure au dernier changement d'état"
OUTDATED_EN = "older than the last change of state"
NONE = Bilingual()
PAGES = ("/", "/reseaux/alpha", "/reseaux/alpha/optique", "/assures/alpha")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    client: TestClient
    services: Services
    clock: Clock
    declarations: Declarations
    incident: int = 0

    def at(self, moment: datetime) -> None:
        """Time passes to `moment`, and the app takes in what ops declared (as its tick does)."""
        self.clock.now = moment
        self.client.portal.call(self.services.refresh_overrides)  # type: ignore[union-attr]

    def update(
        self, moment: datetime, state: str, progress: float | None = None, practitioner_consigne: Bilingual = NONE
    ) -> None:
        change = IncidentUpdate(
            moment,
            "monitoring",
            Bilingual("Point de situation.", "Status update."),
            practitioner_consigne=practitioner_consigne,
            statuses={"line:alpha/optique": declare(state, progress)},
        )
        self.declarations.update_incident(self.incident, change)
        self.at(moment + timedelta(seconds=5))

    def text(self, path: str) -> str:
        """The page's HTML, its character references resolved (`d'état`, not `d&#39;état`)."""
        self.client.cookies.clear()
        answer = self.client.get(path)
        assert answer.status_code == 200, path
        return unescape(answer.text)

    def json(self, path: str) -> Any:
        answer = self.client.get(path)
        assert answer.status_code == 200, path
        return answer.json()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9"), encoding="utf-8")
    settings = load_config(config)
    clock = Clock(T0)
    app = create_app(settings, database_url=f"sqlite:///{tmp_path}/tpmon.db", schedule=False, clock=clock)
    with TestClient(app) as client:
        services: Services = client.app_state["services"]
        declarations = Declarations(services.store, settings, clock=clock)
        opened = declarations.open_incident(
            title=Bilingual("PEC optique impossibles", "Optics approvals impossible"),
            impact="major",
            first=IncidentUpdate(
                T0,
                "identified",
                Bilingual("Le service PEC est coupé.", "The PEC service is off."),
                practitioner_consigne=Bilingual(PRO, PRO_EN),
                member_consigne=Bilingual(MEMBERS),
                statuses={"line:alpha/optique": declare("down")},
            ),
        )
        found = Site(client, services, clock, declarations, opened.id or 0)
        found.at(T0 + timedelta(seconds=5))
        yield found


class Consignes(HTMLParser):
    """For each piece of visible text, the class of the innermost consigne block around it ("" outside)."""

    VOID: ClassVar[set[str]] = {"br", "img", "hr", "meta", "link", "input", "wbr", "source", "col", "area", "embed"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[str] = []  # per open element: its consigne class, or "" inherited
        self.texts: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        classes = dict(attrs).get("class") or ""
        own = classes if classes.split(" ")[0] == "consigne" else ""
        self.stack.append(own or (self.stack[-1] if self.stack else ""))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.texts.append((data, self.stack[-1] if self.stack else ""))

    def around(self, text: str) -> list[str]:
        return [where for data, where in self.texts if text in data]


def blocks(html: str, text: str) -> list[str]:
    """The class of the consigne block around each occurrence of `text` ("" when none is around it)."""
    return Consignes(html).around(text)


def test_a_consigne_written_during_the_outage_is_current_then_dated_and_outdated_after_the_next_change(
    site: Site,
) -> None:
    for path in PAGES:
        html = site.text(path)
        shown = blocks(html, PRO if path != "/assures/alpha" else MEMBERS)
        assert shown and set(shown) == {"consigne consigne-current"}, (path, shown)
        assert "Consigne du jeu. 8 févr. 2024, 10:00" in html, path
        assert OUTDATED_FR not in html, path

    site.update(T1, "recovering", 0.5)  # the line changes state; the consigne of 8 February stays as it was
    for path in PAGES:
        html = site.text(path)
        shown = blocks(html, PRO if path != "/assures/alpha" else MEMBERS)
        assert shown and set(shown) == {"consigne consigne-outdated"}, (path, shown)
        assert f"Consigne du jeu. 8 févr. 2024, 10:00, {OUTDATED_FR}" in html, path
        english = site.text(path + ("&" if "?" in path else "?") + "lang=en")
        assert f"Advice of Thu 8 Feb 2024, 10:00, {OUTDATED_EN}" in english, path

    site.update(T2, "operational")  # "Opérationnel" days later: never the outage's advice as current
    for path in PAGES:
        html = site.text(path)
        shown = blocks(html, PRO if path != "/assures/alpha" else MEMBERS)
        assert shown and set(shown) == {"consigne consigne-outdated"}, (path, shown)


def test_a_new_consigne_after_the_change_is_current_and_dated(site: Site) -> None:
    site.update(T1, "recovering", 0.5, practitioner_consigne=Bilingual("Réessayez : une demande sur deux passe."))
    html = site.text("/reseaux/alpha/optique")
    assert set(blocks(html, "Réessayez : une demande sur deux passe.")) == {"consigne consigne-current"}
    assert "Consigne du mer. 14 févr. 2024, 09:00" in html
    assert PRO not in html  # replaced: the latest consigne is the one shown
    assert set(blocks(html, MEMBERS)) == {"consigne consigne-outdated"}  # the members' one was not renewed


def test_the_incident_page_dates_each_consigne_and_withdraws_them_once_resolved(site: Site) -> None:
    site.update(T1, "recovering", 0.5)
    html = site.text(f"/incidents/{site.incident}")
    assert set(blocks(html, PRO)) == {"consigne consigne-outdated"}
    site.declarations.resolve_incident(site.incident, at=T2)
    site.at(T2 + timedelta(seconds=5))
    html = site.text(f"/incidents/{site.incident}")
    assert set(blocks(html, PRO)) == {"consigne consigne-withdrawn"}
    assert "Consigne retirée\u00a0: l'incident est résolu." in html
    english = site.text(f"/incidents/{site.incident}?lang=en")
    assert "Advice withdrawn: the incident is resolved." in english
    for path in PAGES:  # a resolved incident is no longer on these pages at all
        assert PRO not in site.text(path), path


def test_the_json_says_when_each_consigne_was_written_and_whether_it_still_stands(site: Site) -> None:
    def v1() -> dict[str, Any]:
        found: dict[str, Any] = site.json(f"/api/v1/incidents/{site.incident}")
        return found

    def statuspage() -> dict[str, Any]:
        [found] = site.json("/api/v2/incidents.json")["incidents"]
        return dict(found)

    assert v1()["practitioner_consigne_at"] == "2024-02-08T09:00:00+00:00"
    assert v1()["practitioner_consigne_standing"] == "current"
    assert statuspage()["tpmon_practitioner_consigne_at"] == "2024-02-08T10:00:00.000+01:00"
    assert statuspage()["tpmon_practitioner_consigne_standing"] == "current"
    site.update(T1, "recovering", 0.5)
    for answer, prefix in ((v1(), ""), (statuspage(), "tpmon_")):
        assert answer[f"{prefix}practitioner_consigne_standing"] == "outdated"
        assert answer[f"{prefix}member_consigne_standing"] == "outdated"
    [summary] = site.json("/api/v2/summary.json")["incidents"]
    assert summary["tpmon_practitioner_consigne_standing"] == "outdated"
    site.declarations.resolve_incident(site.incident, at=T2)
    site.at(T2 + timedelta(seconds=5))
    assert v1()["practitioner_consigne_standing"] == "withdrawn"
    assert statuspage()["tpmon_member_consigne_standing"] == "withdrawn"


def test_the_feed_entry_of_a_change_without_new_consigne_says_the_earlier_ones_are_outdated(site: Site) -> None:
    site.update(T1, "recovering", 0.5)
    feed = ET.fromstring(site.client.get("/feed.atom").content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    newest, oldest = feed.findall("a:entry", ns)
    newest_html = newest.findtext("a:content", "", ns)
    assert "Consignes précédentes (jeu. 8 févr. 2024, 10:00)" in newest_html
    assert "antérieures à ce changement d'état" in newest_html
    assert "Consignes précédentes" not in oldest.findtext("a:content", "", ns)
