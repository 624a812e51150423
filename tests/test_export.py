"""`tpmon export DIR` as users run it, served by a plain static server and crawled from `/` and `/en/`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from targets import alpha_config, free_port, wait_for

from monitor.config import Settings, load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow
from monitor.i18n import PARIS
from monitor.models import CheckMemory, ComponentRef, Source, State, Transition
from monitor.store import Store
from monitor.store.declaration_store import Declarations
from monitor.store.store import Batch
from monitor.web.export_folder import MARKER, ExportError, swap_in
from monitor.web.feeds import feed_routes
from monitor.web.incident_pages import PER_PAGE
from monitor.web.page_routes import PAGES
from monitor.web.static_export import API_PATHS, Inventory, broken_links, expand

A = "{http://www.w3.org/2005/Atom}"
BETA = """  beta:
    name: Beta
    kind: reseau_de_soins
    lines: [optique]
    checks:
      - {name: pec, flow: pec, kind: http, url: "http://127.0.0.1:9/pec"}
"""
REFERENCES = {"a": "href", "link": "href", "script": "src", "img": "src"}
CHECKED = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # the last check the store holds: 13:00 in Paris


@dataclass
class Exported:
    root: Path
    base: str
    ids: dict[str, int]
    workdir: Path
    env: dict[str, str]
    client: httpx.Client

    def get(self, path: str) -> httpx.Response:
        return self.client.get(urljoin(self.base, path))

    def start(self, target: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "monitor", "export", str(target), "--config", "tpmon.yaml"]
        return subprocess.Popen(
            [*command, "--base-url", self.base],
            cwd=self.workdir,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def export(self, target: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """`tpmon export target` as users run it: (exit code, stdout, stderr)."""
        return finish(self.start(target, env))


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def paris(moment: datetime) -> datetime:
    return moment.astimezone(PARIS).replace(tzinfo=None)


def seed(store: Store, settings: Settings, now: datetime) -> dict[str, int]:
    """An open incident with an update, resolved ones (more than a page), maintenance windows, transitions."""
    declarations = Declarations(store, settings, clock=lambda: now)
    for number in range(PER_PAGE + 1):
        first = IncidentUpdate(now - timedelta(days=30 - number), "investigating", Bilingual(f"Lenteurs n°{number}."))
        old = declarations.open_incident(title=Bilingual(f"Lenteurs n°{number}"), impact="minor", first=first)
        declarations.resolve_incident(old.id or 0, at=now - timedelta(days=30 - number, hours=-2))
    resolved = declarations.open_incident(
        title=Bilingual("Factures rejetées", "Invoices rejected"),
        impact="minor",
        first=IncidentUpdate(now - timedelta(hours=30), "identified", Bilingual("DRE rejetées.", "DRE rejected.")),
        components=["line:alpha/pharmacie"],
    )
    declarations.resolve_incident(resolved.id or 0, at=now - timedelta(hours=20))
    first = IncidentUpdate(
        now - timedelta(hours=2),
        "identified",
        Bilingual("Les PEC échouent.", "PECs fail."),
        practitioner_consigne=Bilingual("Différez la vente.", "Postpone the sale."),
        statuses={"line:alpha/optique": declare("down")},
    )
    opened = declarations.open_incident(
        title=Bilingual("PEC optique indisponibles", "Optical PEC unavailable"), impact="major", first=first
    )
    update = IncidentUpdate(
        now - timedelta(minutes=30),
        "monitoring",
        Bilingual("Réactivation en cours.", "Reactivation under way."),
        statuses={"line:alpha/optique": declare("recovering", 0.5)},
    )
    declarations.update_incident(opened.id or 0, update)
    title = Bilingual("Bascule du serveur DRE", "DRE server switch-over")
    declarations.add_window(
        MaintenanceWindow(None, title, ("line:alpha/pharmacie",), paris(now + timedelta(days=1)), timedelta(hours=2))
    )
    declarations.add_window(
        MaintenanceWindow(
            None, Bilingual("Migration"), ("network:beta",), paris(now - timedelta(minutes=30)), timedelta(hours=2)
        )
    )
    ref = ComponentRef.parse("line:alpha/pharmacie")
    steps = [
        (State.UNKNOWN, State.OPERATIONAL, 300),
        (State.OPERATIONAL, State.DOWN, 180),
        (State.DOWN, State.OPERATIONAL, 60),
    ]
    transitions = [
        Transition(ref, before, after, now - timedelta(minutes=ago), now - timedelta(minutes=ago), Source.PROBE)
        for before, after, ago in steps
    ]
    check = ComponentRef.for_check("alpha", "pec", "pec").key  # its last result: the snapshot's age
    memory = CheckMemory(State.OPERATIONAL, now - timedelta(hours=3), last_result_at=CHECKED)
    store.write(Batch(transitions=transitions, memories={check: memory}))
    return {"open": opened.id or 0, "resolved": resolved.id or 0}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """A seeded store exported by `tpmon export`, served by `python -m http.server` until the module ends."""
    workdir = tmp_path_factory.mktemp("export")
    (workdir / "tpmon.yaml").write_text(alpha_config("http://127.0.0.1:9", extra_networks=BETA), encoding="utf-8")
    database = f"sqlite:///{workdir / 'tpmon.db'}"
    store = Store.open(database)
    with store:
        ids = seed(store, load_config(workdir / "tpmon.yaml"), datetime.now(UTC))
    port = free_port()
    env = {**os.environ, "TPMON_DATABASE_URL": database}
    client = httpx.Client(timeout=5, follow_redirects=True)
    site = Exported(workdir / "site", f"http://127.0.0.1:{port}", ids, workdir, env, client)
    code, out, err = site.export(site.root)
    assert code == 0, err
    assert re.fullmatch(r"exported \d+ files \([\d,]+ bytes\) to .+ in [\d.]+ s\n", out), out
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(site.root)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: site.get("/").status_code == 200, what="the static server")
        yield site
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


class Page(HTMLParser):
    """An HTML page's language, its same-document references and its language switch."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.references: list[str] = []
        self.switch: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang")
        if tag == "a" and "lang" in (found.get("class") or "").split():
            self.switch = found.get("href")
        reference = found.get(REFERENCES.get(tag, ""))
        if reference:
            self.references.append(reference)


def crawl(site: Exported) -> dict[str, httpx.Response]:
    """Every same-origin address reachable from `/` and `/en/`, with its answer (redirects followed)."""
    seen: dict[str, httpx.Response] = {}
    queue = ["/", "/en/"]
    while queue:
        address = queue.pop()
        if address in seen:
            continue
        answer = seen[address] = site.get(address)
        if answer.status_code != 200 or "text/html" not in answer.headers["content-type"]:
            continue
        for reference in Page(answer.text).references:
            target = urlsplit(urljoin(f"{site.base}{address}", reference))
            if f"{target.scheme}://{target.netloc}" == site.base:
                assert not target.query, f"{address} links to {reference}: a static server ignores the query"
                queue.append(target.path)
    return seen


@pytest.fixture(scope="module")
def crawled(exported: Exported) -> dict[str, httpx.Response]:
    return crawl(exported)


def test_every_link_and_source_answers_and_every_page_is_reachable(
    exported: Exported, crawled: dict[str, httpx.Response]
) -> None:
    failed = {address: answer.status_code for address, answer in crawled.items() if answer.status_code != 200}
    assert not failed
    pages = {"/" + p.relative_to(exported.root).as_posix() for p in exported.root.rglob("index.html")}
    reached = {address + "index.html" for address in crawled if address.endswith("/")}
    assert pages - reached == set(), "exported pages that no page links to"
    for expected in ("/incidents/page/2/", "/en/incidents/page/2/", "/assures/beta/", "/reseaux/beta/optique/"):
        assert expected in crawled
    assert exported.get("/incidents/page/3/").status_code == 404  # PER_PAGE + 3 incidents: two pages
    assert {"/static/style.css", "/static/refresh.js", "/static/favicon.svg", "/feed.atom"} <= set(crawled)


def test_every_json_document_parses_and_is_served_as_json(exported: Exported) -> None:
    documents = sorted("/" + p.relative_to(exported.root).as_posix() for p in exported.root.rglob("*.json"))
    assert {"/api/v2/summary.json", "/api/v2/incidents/unresolved.json", "/api/v1/status.json"} <= set(documents)
    assert "/api/v1/networks/alpha/lines/optique.json" in documents
    assert f"/api/v1/incidents/{exported.ids['open']}.json" in documents
    for address in documents:
        answer = exported.get(address)
        assert answer.headers["content-type"] == "application/json", address
        json.loads(answer.content)
    summary = exported.get("/api/v2/summary.json").json()
    assert summary["page"]["url"] == exported.base  # the origin given to --base-url, not the in-process one
    assert [i["name"] for i in summary["incidents"]] == ["PEC optique indisponibles"]
    upcoming = exported.get("/api/v2/scheduled-maintenances/upcoming.json").json()["scheduled_maintenances"]
    assert [m["name"] for m in upcoming] == ["Bascule du serveur DRE"]


def test_feeds_parse_with_atom_required_elements_and_their_links_answer(exported: Exported) -> None:
    atoms = [path.replace("{network}", "alpha").replace("{line}", "optique") for path, _ in feed_routes()]
    pages: set[str] = set()
    for address in [a for a in atoms if a.endswith(".atom")]:
        feed = ET.fromstring(exported.get(address).content)
        assert feed.tag == f"{A}feed", address
        for element in (feed, *feed.findall(f"{A}entry")):
            for required in ("id", "title", "updated"):
                assert (element.findtext(f"{A}{required}") or "").strip(), f"{address}: {required} missing"
        links = {link.get("href") or "" for link in feed.iter(f"{A}link") if link.get("rel") == "alternate"}
        assert links and all(link.startswith(exported.base) for link in links)
        pages.update(links)
    assert pages and all(exported.get(link).status_code == 200 for link in pages), pages
    entries = ET.fromstring(exported.get("/feed.atom").content).findall(f"{A}entry")
    assert any(e.findtext(f"{A}title", "").startswith("PEC optique indisponibles") for e in entries)
    rss = ET.fromstring(exported.get("/reseaux/alpha/optique/feed.rss").content)
    assert rss.tag == "rss" and rss.findtext("channel/title") and rss.findall("channel/item")


def test_languages_and_the_switch_between_twins(crawled: dict[str, httpx.Response]) -> None:
    pages = {a: Page(r.text) for a, r in crawled.items() if "text/html" in r.headers.get("content-type", "")}
    assert len(pages) > 20
    for address, page in pages.items():
        english = address.startswith("/en/")
        assert page.lang == ("en" if english else "fr"), address
        twin = page.switch
        assert twin == (address.removeprefix("/en") if english else "/en" + address), address
        assert twin in pages and pages[twin].switch == address, f"{address} ⇄ {twin}"


def test_every_page_says_how_old_the_snapshot_is(crawled: dict[str, httpx.Response]) -> None:
    pages = {
        address: answer.text for address, answer in crawled.items() if "text/html" in answer.headers["content-type"]
    }
    english = [address for address in pages if address.startswith("/en/")]
    assert english and len(pages) > len(english)
    for address, html in pages.items():
        said = (
            "Snapshot of Mon 12 Feb 2024, 13:00 (last check): it may be out of date."
            if address in english
            else "Instantané du lun. 12 févr. 2024, 13:00 (dernière vérification)\u00a0: peut être périmé."
        )
        assert said in html, address
    assert "Tout fonctionne" not in pages["/"] or "13:00" in pages["/"]  # never green without a date


def test_the_incident_page_shows_the_incident(exported: Exported) -> None:
    french = exported.get(f"/incidents/{exported.ids['open']}/").text
    assert "PEC optique indisponibles" in french and "Réactivation en cours." in french
    assert "Différez la vente." in french
    english = exported.get(f"/en/incidents/{exported.ids['open']}/").text
    assert "Optical PEC unavailable" in english and "Reactivation under way." in english
    assert "Invoices rejected" in exported.get(f"/en/incidents/{exported.ids['resolved']}/").text
    missing = (exported.root / "404.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in missing and "Page introuvable" in missing


def test_a_second_export_replaces_the_first_and_foreign_folders_are_refused(exported: Exported) -> None:
    leftover = exported.root / "reseaux" / "gone" / "index.html"
    leftover.parent.mkdir()
    leftover.write_text("from a network since removed", encoding="utf-8")
    code, _, err = exported.export(exported.root)
    assert code == 0, err
    assert not leftover.exists() and (exported.root / MARKER).is_file()
    assert exported.get("/").status_code == 200  # the server's folder is the new export
    assert not [p.name for p in exported.workdir.iterdir() if p.name.startswith(".site.")]  # no staging left

    foreign = exported.workdir / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine", encoding="utf-8")
    a_file = exported.workdir / "a-file"
    a_file.write_text("mine", encoding="utf-8")
    targets = (foreign, a_file, exported.workdir / "no" / "such" / "parent")
    for target, process in [(target, exported.start(target)) for target in targets]:
        code, _, err = finish(process)
        assert code == 2, (target, err)
        assert err.startswith("tpmon: ") and err.count("\n") == 1, err
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"] and a_file.read_text() == "mine"


def test_without_base_url_the_links_start_with_the_configs_public_url(exported: Exported) -> None:
    config = exported.workdir / "public.yaml"
    config.write_text("web: {public_url: 'https://etat.exemple.fr'}\n" + alpha_config("http://127.0.0.1:9"), "utf-8")
    target = exported.workdir / "public-site"
    command = [sys.executable, "-m", "monitor", "export", str(target), "--config", str(config)]
    env, cwd = exported.env, exported.workdir
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((target / "api" / "v2" / "summary.json").read_text(encoding="utf-8"))
    assert summary["page"]["url"] == "https://etat.exemple.fr"
    assert 'href="https://etat.exemple.fr/feed.atom"' in (target / "feed.atom").read_text(encoding="utf-8")


def test_an_unreadable_store_is_one_line_and_exit_2(exported: Exported) -> None:
    env = {**exported.env, "TPMON_DATABASE_URL": f"sqlite:///{exported.workdir}/missing/dir/tpmon.db"}
    code, _, err = exported.export(exported.workdir / "elsewhere", env)
    assert code == 2 and err.startswith("tpmon: ") and err.count("\n") == 1, err
    assert not (exported.workdir / "elsewhere").exists()


def test_every_path_pattern_can_be_enumerated() -> None:
    """A new page, feed or API path with a parameter the exporter cannot list fails here, not in production."""
    inventory = Inventory({"alpha": ("pharmacie", "optique"), "beta": ("optique",)}, (1, 2))
    for pattern in [*PAGES, *API_PATHS, *(path for path, _ in feed_routes())]:
        addresses = [address for address, _ in expand(pattern, inventory)]
        assert addresses and all("{" not in address for address in addresses), pattern
    assert [a for a, _ in expand("/reseaux/{network}/{line}", inventory)] == [
        "/reseaux/alpha/pharmacie",
        "/reseaux/alpha/optique",
        "/reseaux/beta/optique",
    ]
    with pytest.raises(ExportError, match=r"\{component\}"):
        expand("/api/v1/history/{component}", inventory)


def test_broken_links_finds_missing_targets_and_queries(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "style.css").write_text("", encoding="utf-8")
    (tmp_path / "index.html").write_text(
        '<link href="/static/style.css"><a href="/reseaux/x/">x</a><a href="/?lang=en">en</a>'
        '<a href="https://example.org/">out</a><a href="mailto:a@b.c">m</a><a href="#top">top</a>'
        '<img src="/static/missing.svg">',
        encoding="utf-8",
    )
    assert broken_links(tmp_path, "http://127.0.0.1:8080") == [
        "/index.html → /reseaux/x/",
        "/index.html → /?lang=en",
        "/index.html → /static/missing.svg",
    ]


def test_the_swap_replaces_the_folder_in_one_step_readable_by_a_web_server(tmp_path: Path) -> None:
    target, staged = tmp_path / "site", tmp_path / ".site.new"
    target.mkdir()
    (target / MARKER).write_text("{}", encoding="utf-8")
    (target / "index.html").write_text("old", encoding="utf-8")
    staged.mkdir(mode=0o700)  # as mkdtemp makes it
    (staged / "index.html").write_text("new", encoding="utf-8")
    misses, reading, stop = [], threading.Event(), threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                (target / "index.html").read_text(encoding="utf-8")
            except FileNotFoundError as exc:
                misses.append(exc)
            reading.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        reading.wait(timeout=5)
        swap_in(staged, target)
    finally:
        stop.set()
        reader.join()
    assert not misses and (target / "index.html").read_text(encoding="utf-8") == "new"
    assert not staged.exists() and [p.name for p in tmp_path.iterdir()] == ["site"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
