"""Atom and RSS feeds: required elements, escaping of ops text, filtering per network and line, FR/EN."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from targets import Server, Target, alpha_config, wait_for

from monitor.app import Services, create_app
from monitor.config import Settings, load_config
from monitor.declared.incidents import Incident, IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.errors import StoreError
from monitor.store.declaration_store import Declarations
from monitor.web.feeds import LIMIT, Scope, entries

A = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
BETA = """  beta:
    name: Beta
    kind: reseau_de_soins
    lines: [optique]
    checks:
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec"}}
"""
NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
XSS = '<script>alert(1)</script> <img src=x onerror="alert(1)"> **<b onmouseover=alert(1)>x</b>**'
FEEDS = ("/feed", "/reseaux/alpha/feed", "/reseaux/alpha/optique/feed")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(
        alpha_config("http://127.0.0.1:9", extra_networks=BETA.format(url="http://127.0.0.1:9")), encoding="utf-8"
    )
    settings = load_config(config)
    app = create_app(settings, database_url=f"sqlite:///{tmp_path}/t.db", schedule=False, clock=lambda: NOW)
    with TestClient(app) as test_client:
        services: Services = test_client.app_state["services"]
        declarations = Declarations(services.store, settings, clock=lambda: NOW)
        first = IncidentUpdate(
            NOW - timedelta(hours=3),
            "identified",
            Bilingual(f"Les PEC échouent. {XSS}", "PECs fail."),
            practitioner_consigne=Bilingual(f"Différez la vente. {XSS}", "Postpone the sale."),
            member_consigne=Bilingual("Gardez vos factures."),
            statuses={"line:alpha/optique": declare("down")},
        )
        title = Bilingual("PEC optique indisponibles <script>x</script>", "Optical PEC unavailable")
        opened = declarations.open_incident(title=title, impact="major", first=first)
        update = IncidentUpdate(NOW - timedelta(hours=1), "monitoring", Bilingual("Réactivation.", "Reactivation."))
        declarations.update_incident(opened.id or 0, update)
        network_wide = IncidentUpdate(NOW - timedelta(hours=2), "investigating", Bilingual("Tout Alpha est lent."))
        declarations.open_incident(
            title=Bilingual("Alpha ralenti"), impact="minor", first=network_wide, components=["network:alpha"]
        )
        beta = IncidentUpdate(NOW - timedelta(minutes=30), "investigating", Bilingual("Beta ne répond plus."))
        declarations.open_incident(
            title=Bilingual("Beta hors service"), impact="major", first=beta, components=["line:beta/optique"]
        )
        test_client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]  # the tick takes them in
        yield test_client


def atom(client: TestClient, path: str) -> ET.Element:
    answer = client.get(path)
    assert answer.status_code == 200, path
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return ET.fromstring(answer.content)


def rss(client: TestClient, path: str) -> ET.Element:
    answer = client.get(path)
    assert answer.status_code == 200, path
    assert answer.headers["content-type"] == "application/rss+xml; charset=utf-8"
    return ET.fromstring(answer.content)


def stamp(text: str | None) -> datetime:
    assert text, "a date is missing"
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


def one(parent: ET.Element, path: str) -> ET.Element:
    found = parent.findall(path)
    assert len(found) == 1, f"{path}: {len(found)} found"
    return found[0]


def text(parent: ET.Element, path: str) -> str:
    value = one(parent, path).text
    assert value and value.strip(), f"{path} is empty"
    return value


def titles(feed: ET.Element) -> list[str]:
    if feed.tag == f"{A}feed":
        return [text(e, f"{A}title") for e in feed.findall(f"{A}entry")]
    return [text(i, "title") for i in feed.findall("channel/item")]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        assert not attrs, f"<{tag}> has attributes {attrs}"


def html_tags(html: str) -> set[str]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("path", FEEDS)
def test_atom_has_every_required_element(client: TestClient, path: str) -> None:
    feed = atom(client, f"{path}.atom")
    assert feed.tag == f"{A}feed" and feed.get(XML_LANG) == "fr"
    assert text(feed, f"{A}id").startswith(("urn:", "tag:"))
    assert text(feed, f"{A}title").startswith("État du tiers payant")
    updated = stamp(text(feed, f"{A}updated"))
    assert text(feed, f"{A}author/{A}name") == "tpmon"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{A}link")}
    assert links["self"] == f"http://testserver{path}.atom"
    assert links["alternate"] == "http://testserver" + (path.removesuffix("/feed") or "/")
    items = feed.findall(f"{A}entry")
    assert items
    moments = []
    for entry in items:
        assert text(entry, f"{A}id").startswith("urn:tpmon:incident:")
        text(entry, f"{A}title")
        moments.append(stamp(text(entry, f"{A}updated")))
        link = one(entry, f"{A}link")
        assert link.get("rel") == "alternate"
        assert (link.get("href") or "").startswith("http://testserver/incidents/")
        content = one(entry, f"{A}content")
        assert content.get("type") == "html" and content.text
    assert moments == sorted(moments, reverse=True)  # newest first
    assert updated == moments[0]
    assert len({text(e, f"{A}id") for e in items}) == len(items)
    assert text(feed, f"{A}id") == text(atom(client, f"{path}.atom?lang=en"), f"{A}id")  # stable


@pytest.mark.parametrize("path", FEEDS)
def test_rss_has_every_required_element(client: TestClient, path: str) -> None:
    root = rss(client, f"{path}.rss")
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = one(root, "channel")
    for name in ("title", "link", "description"):
        text(channel, name)
    assert text(channel, "language") == "fr-FR"
    assert one(channel, f"{A}link").get("href") == f"http://testserver{path}.rss"
    items = channel.findall("item")
    assert items
    dates = []
    for item in items:
        text(item, "title")
        assert text(item, "link").startswith("http://testserver/incidents/")
        guid = one(item, "guid")
        assert guid.get("isPermaLink") == "false" and (guid.text or "").startswith("urn:tpmon:")
        published = parsedate_to_datetime(text(item, "pubDate"))
        assert published.tzinfo is not None and text(item, "pubDate").endswith(" GMT")
        dates.append(published)
        text(item, "description")
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("suffix", ["atom", "rss"])
def test_ops_text_comes_out_escaped(client: TestClient, suffix: str) -> None:
    root = ET.fromstring(client.get(f"/feed.{suffix}").content)
    assert not [e for e in root.iter() if e.tag.rsplit("}", 1)[-1].lower() in ("script", "img", "b")]
    bodies = [e.text or "" for e in root.iter() if e.tag in (f"{A}content", "description")]
    xss = next(b for b in bodies if "Les PEC échouent" in b)
    # one level of escaping is undone by the XML parser; what remains is HTML with the payload as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in xss and "<script" not in xss
    assert "&lt;img" in xss and "<img" not in xss
    assert html_tags(xss) <= {"p", "br", "ul", "li", "strong", "em", "h3"}
    assert "<h3>Consigne aux professionnels de santé</h3>" in xss and "Gardez vos factures." in xss
    # plain text; the title says what the update changed
    assert "PEC optique indisponibles <script>x</script> — Alpha · Optique\u00a0: Indisponible" in titles(root)


def test_filtering_per_network_and_line(client: TestClient) -> None:
    def incidents(path: str) -> set[str]:
        return {title.split(" — ")[0].split(" <")[0] for title in titles(atom(client, path))}

    everything = {"PEC optique indisponibles", "Alpha ralenti", "Beta hors service"}
    assert incidents("/feed.atom") == everything
    assert incidents("/reseaux/alpha/feed.atom") == {"PEC optique indisponibles", "Alpha ralenti"}
    assert incidents("/reseaux/alpha/optique/feed.atom") == {"PEC optique indisponibles", "Alpha ralenti"}
    assert incidents("/reseaux/alpha/pharmacie/feed.atom") == {"Alpha ralenti"}  # the network as a whole
    assert incidents("/reseaux/beta/feed.atom") == {"Beta hors service"}
    assert incidents("/reseaux/beta/optique/feed.atom") == {"Beta hors service"}
    assert len(titles(rss(client, "/reseaux/alpha/optique/feed.rss"))) == 3  # two updates + the network's


def test_french_by_default_english_on_request(client: TestClient) -> None:
    french = titles(atom(client, "/feed.atom"))
    assert french[0] == "Beta hors service — Analyse en cours"
    assert french[1] == "PEC optique indisponibles <script>x</script> — Surveillance"
    english = atom(client, "/feed.atom?lang=en")
    assert english.get(XML_LANG) == "en"
    assert text(english, f"{A}title") == "Tiers payant status — all networks"
    assert titles(english)[:2] == ["Beta hors service — Investigating", "Optical PEC unavailable — Monitoring"]
    contents = [e.text or "" for e in english.iter(f"{A}content")]
    assert "<h3>Advice for healthcare professionals</h3><p>Postpone the sale.</p>" in contents[-1]
    assert "Beta ne répond plus." in contents[0]  # French when ops wrote no English
    channel = one(rss(client, "/reseaux/alpha/optique/feed.rss?lang=en"), "channel")
    assert text(channel, "language") == "en" and text(channel, "title").endswith("Alpha · Optics")


@pytest.mark.parametrize(
    "path", ["/reseaux/nope/feed.atom", "/reseaux/nope/feed.rss", "/reseaux/beta/pharmacie/feed.atom"]
)
def test_unknown_network_or_line_is_a_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404 and "inconnu" in answer.text
    assert answer.headers["content-type"].startswith("text/plain")


def test_an_unreachable_store_changes_nothing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The feeds tell the site's snapshot, in memory, as the page does: the same with the database down."""
    before = client.get("/feed.rss").content

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database unreachable")

    for verb in ("incidents", "current"):
        monkeypatch.setattr(Declarations, verb, broken)
    services: Services = client.app_state["services"]
    client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]  # a tick that cannot read
    answer = client.get("/feed.rss")
    assert answer.status_code == 200 and answer.content == before
    assert len(titles(ET.fromstring(answer.content))) == 4


def test_an_incident_stored_after_the_snapshot_is_not_in_the_feed_before_the_next(client: TestClient) -> None:
    services: Services = client.app_state["services"]
    declarations = Declarations(services.store, services.settings, clock=lambda: NOW)
    first = IncidentUpdate(NOW, "investigating", Bilingual("Nouvelle panne."))
    declarations.open_incident(title=Bilingual("Gamma"), impact="minor", first=first, components=["network:alpha"])
    assert "Gamma — Analyse en cours" not in titles(atom(client, "/feed.atom"))
    client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]
    assert "Gamma — Analyse en cours" in titles(atom(client, "/feed.atom"))


def test_entries_are_bounded_and_newest_first() -> None:
    updates = tuple(
        IncidentUpdate(NOW + timedelta(minutes=i), "investigating", Bilingual(f"n°{i}"), id=i) for i in range(80)
    )
    incident = Incident(7, Bilingual("Long"), "minor", NOW, ("network:alpha",), updates)
    found = entries([incident], Scope("", "tous", "/"), "fr", "http://x")
    assert len(found) == LIMIT
    assert found[0].id == "urn:tpmon:incident:7:update:79" and found[0].link == "http://x/incidents/7"
    assert [e.updated for e in found] == sorted((e.updated for e in found), reverse=True)


def test_a_running_server_publishes_a_declared_incident(tmp_path: Path, target: Target) -> None:
    """`tpmon serve` as users run it; ops open an incident through the CLI; the feeds carry it."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url(""), extra_networks=BETA.format(url=target.url(""))), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/e2e.db"}).start()
    try:
        assert not ET.fromstring(srv.get("/reseaux/alpha/optique/feed.atom").content).findall(f"{A}entry")
        opened = srv.run(
            *("incident", "open", "--config", str(config), "--title", "PEC optique indisponibles"),
            *("--impact", "major", "--declare", "line:alpha/optique=down", "--message", "Les PEC échouent <b>."),
        )
        assert opened.returncode == 0, opened.stderr

        def entry_titles(path: str) -> list[str]:
            return titles(ET.fromstring(srv.get(path).content))

        found = wait_for(lambda: entry_titles("/reseaux/alpha/optique/feed.atom"), what="the feed entry")
        assert found == ["PEC optique indisponibles — Alpha · Optique\u00a0: Indisponible"]  # what it changed
        assert entry_titles("/feed.rss") == found
        assert entry_titles("/reseaux/beta/feed.rss") == [] and entry_titles("/reseaux/alpha/pharmacie/feed.atom") == []
        answer = srv.get("/reseaux/alpha/optique/feed.rss")
        assert answer.headers["content-type"] == "application/rss+xml; charset=utf-8"
        assert "Les PEC échouent &amp;lt;b&amp;gt;." in answer.text
        assert srv.get("/reseaux/alpha/nope/feed.atom").status_code == 404
    finally:
        assert srv.stop() == 0


def test_an_entry_title_says_what_its_update_changed() -> None:
    settings = Settings.model_validate(
        {"networks": {"viamedis": {"name": "Viamedis", "kind": "operateur", "lines": ["optique", "audio"]}}}
    )
    statuses = {"line:viamedis/optique": declare("recovering", 0.5), "line:viamedis/audio": declare("down")}
    update = IncidentUpdate(NOW, "monitoring", Bilingual("Reprise."), statuses=statuses)
    incident = Incident(3, Bilingual("PEC Viamedis", "Viamedis PEC"), "major", NOW, tuple(statuses), (update,))
    [french] = entries([incident], Scope("", "tous", "/"), "fr", "http://x", settings)
    assert french.title == (
        "PEC Viamedis — Viamedis · Optique\u00a0: Réactivation progressive (50\u00a0%)"
        "\u00a0; Viamedis · Audioprothèse\u00a0: Indisponible"
    )
    [english] = entries([incident], Scope("", "all", "/"), "en", "http://x", settings)
    assert (
        english.title
        == "Viamedis PEC — Viamedis · Optics: Progressive reactivation (50%); Viamedis · Hearing aids: Unavailable"
    )
    # an update that declares nothing keeps its phase
    quiet = Incident(
        4,
        Bilingual("Lenteurs"),
        "minor",
        NOW,
        ("network:viamedis",),
        (IncidentUpdate(NOW, "identified", Bilingual("x")),),
    )
    assert (
        entries([quiet], Scope("", "tous", "/"), "fr", "http://x", settings)[0].title == "Lenteurs — Cause identifiée"
    )
