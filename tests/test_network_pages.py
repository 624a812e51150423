"""A network's page and a line's page over a real store, real probes on loopback, and no secret anywhere."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient
from targets import Target

from monitor.app import Services, create_app
from monitor.config import parse_config
from monitor.config.yaml_source import parse_yaml
from monitor.i18n import format_decimal, format_since
from monitor.models import ComponentRef, ProbeResult, Source, State, Transition
from monitor.runner import run_check
from monitor.store import Batch
from monitor.store.housekeeping import component_keys
from monitor.store.rollup_store import roll_up
from monitor.web.latency_chart import BOTTOM, FAIL_Y, HEIGHT, LEFT, RIGHT, TOP, WIDTH, _nice_top

NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # 13:00 in Paris
SECRET = "tok-9f8e7d6c5b4a3210"
PASSWORD = "hunter2pass"
CONFIG = """
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - name: dre
        description: Passerelle DRE
        flow: facturation
        kind: http
        url: "http://probe:${{PROBE_PASSWORD}}@127.0.0.1:{port}/dre"
        headers: {{Authorization: "Bearer ${{TOKEN}}"}}
      - {{name: pec, flow: pec, kind: http, url: "http://127.0.0.1:{port}/pec?key=${{TOKEN}}"}}
  kappa:
    name: Kappa
    kind: reseau_de_soins
    lines: [optique]
    depends_on: [{{network: alpha, flow: pec}}]
"""
OPTIQUE = ComponentRef("line", "alpha", "optique")
KAPPA_OPTIQUE = ComponentRef("line", "kappa", "optique")
DRE = ComponentRef.for_check("alpha", "facturation", "dre")
PEC = ComponentRef.for_check("alpha", "pec", "pec")
# down three days ago, back in steps of 25 % and 50 %, operational twelve hours ago
OUTAGE = [
    (NOW - timedelta(days=3), State.DOWN, 0.0),
    (NOW - timedelta(days=2), State.RECOVERING, 0.25),
    (NOW - timedelta(days=1), State.RECOVERING, 0.5),
    (NOW - timedelta(hours=12), State.OPERATIONAL, 1.0),
]


@dataclass
class Site:
    client: TestClient
    services: Services
    target: Target


def outage() -> list[Transition]:
    """Optique operational four days ago, then OUTAGE."""
    first = NOW - timedelta(days=4)
    found = [Transition(OPTIQUE, State.UNKNOWN, State.OPERATIONAL, first, first, Source.PROBE)]
    previous = State.OPERATIONAL
    for moment, state, progress in OUTAGE:
        found.append(Transition(OPTIQUE, previous, state, moment, moment, Source.PROBE, progress))
        previous = state
    return found


def silence() -> list[Transition]:
    """Kappa's optique without any signal for the whole Paris day of Monday 5 February."""
    steps = [(datetime(2024, 2, 2, tzinfo=UTC), State.OPERATIONAL), (datetime(2024, 2, 4, tzinfo=UTC), State.UNKNOWN)]
    steps.append((datetime(2024, 2, 6, tzinfo=UTC), State.OPERATIONAL))
    found, previous = [], State.UNKNOWN
    for moment, state in steps:
        found.append(Transition(KAPPA_OPTIQUE, previous, state, moment, moment, Source.PROBE))
        previous = state
    return found


def earlier_results() -> list[ProbeResult]:
    """Four hours of results of both checks, some failed, with durations the chart's table must restate."""
    found = []
    for hour in range(1, 5):
        start = NOW - timedelta(hours=hour)
        for i, check in enumerate((DRE, PEC)):
            for minute in (5, 25, 45):
                ok = not (check == PEC and hour == 2 and minute == 25)
                duration = 0.05 * (i + 1) * hour + minute / 1000
                found.append(ProbeResult(check, start + timedelta(minutes=minute), duration, success=ok))
    return found


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    target = Target()
    target.codes["/pec?key=" + SECRET] = 500  # the PEC gateway fails: its detail must not leak the URL either
    text = CONFIG.format(port=target.port)
    env = {"TOKEN": SECRET, "PROBE_PASSWORD": PASSWORD}  # credentials are never written in clear in a config
    settings = parse_config(parse_yaml(text, "tpmon.yaml"), env)
    app = create_app(settings, database_url="sqlite://", schedule=False, clock=lambda: NOW, environ=env)
    try:
        with TestClient(app) as client:
            services: Services = client.app_state["services"]
            services.store.write(Batch(results=earlier_results(), transitions=outage() + silence()))
            assert client.portal is not None
            for check in settings.networks["alpha"].checks:  # real requests, with the secret header and password
                client.portal.call(run_check, "alpha", check, services.pipeline)
            assert client.portal.call(services.writer.flush)
            roll_up(services.store, component_keys(settings), NOW)
            services.history_version += 1
            yield Site(client, services, target)
    finally:
        target.close()


@pytest.fixture(autouse=True)
def french_by_default(site: Site) -> None:
    site.client.cookies.clear()  # a `?lang=en` of an earlier test is remembered by the client


class Cells(HTMLParser):
    """The text of each row of each table, and the SVG elements with their attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.svg: list[tuple[str, dict[str, str]]] = []
        self.charts: list[list[tuple[str, dict[str, str]]]] = []  # each chart's elements
        self._cell: list[str] | None = None
        self._in_svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag == "svg" and ("class", "chart") in attrs:
            self._in_svg += 1
            self.charts.append([])
        if self._in_svg:
            self.svg.append((tag, {k: v or "" for k, v in attrs}))
            self.charts[-1].append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(fold("".join(self._cell)))
            self._cell = None
        if tag == "svg" and self._in_svg:
            self._in_svg -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parsed(html: str) -> Cells:
    cells = Cells()
    cells.feed(html)
    return cells


def fold(text: str) -> str:
    """Runs of spaces and newlines as one space; no-break spaces kept (they are part of the text: `25 %`)."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def words(html: str) -> str:
    """The page's text, tags dropped, spaces folded."""
    return fold(unescape(re.sub(r"<[^>]+>", " ", html)))


def test_network_page_lists_every_line_with_its_bars_and_availability(site: Site) -> None:
    html = site.client.get("/reseaux/alpha").text
    for line in ("pharmacie", "optique"):
        assert f'href="/reseaux/alpha/{line}"' in html
    assert html.count('<ol class="days"') == 2
    assert html.count('<li class="day ') == 2 * 90
    text = words(html)
    # optique since its first transition: 24 h down, 36 h recovering (half), 12 h + 24 h operational
    assert "Disponibilité sur 90 jours\u00a0: 56,25\u00a0%" in text
    assert "Disponibilité sur 90 jours\u00a0: —" in text  # pharmacie: nothing rolled up yet, never a green 100 %
    english = words(site.client.get("/reseaux/alpha?lang=en").text)
    assert "Availability over 90 days: 56.25%" in english
    # the figure with its disruptions (each disrupted day is a keyboard stop), and the bars' scale
    disrupted = len(re.findall(r'<li class="day d-[a-z]+" tabindex="0">', html))
    assert disrupted >= 2 and f"56,25\u00a0% — {disrupted} jours perturbés" in text
    assert f"56.25% — {disrupted} days disrupted" in english
    assert text.count("il y a 90 jours aujourd'hui") == 2 and english.count("90 days ago today") == 2


def test_a_dependent_network_says_what_it_depends_on(site: Site) -> None:
    kappa = words(site.client.get("/reseaux/kappa").text)
    assert "Kappa (Optique) dépend de Alpha — Prises en charge (PEC)" in kappa
    assert "Kappa (Optics) depends on Alpha — Prior approvals (PEC)" in words(
        site.client.get("/reseaux/kappa?lang=en").text
    )
    assert "Kappa (Optique) dépend de Alpha" in words(site.client.get("/reseaux/alpha?lang=fr").text)  # both ways
    line = words(site.client.get("/reseaux/kappa/optique?lang=fr").text)
    assert "Dépend de Alpha — Prises en charge (PEC)" in line


def ms(value: float | None) -> str:
    return "—" if value is None else f"{format_decimal(round(value * 1000))} ms"


def expected_hours(site: Site) -> list[list[str]]:
    """The charts' table recomputed from the raw results in the store (not from the SQL roll-up): the mean and the
    slowest of the successful probes (a failure's duration is no response time), and the failures."""
    labels = {DRE: "Passerelle DRE (Facturation)", PEC: "pec (Prises en charge (PEC))"}
    rows = []
    for check in (DRE, PEC):
        hours: dict[datetime, list[ProbeResult]] = defaultdict(list)
        for result in site.services.store.results(check, since=NOW - timedelta(hours=24)):
            hours[result.started_at.replace(minute=0, second=0, microsecond=0)].append(result)
        for hour, found in sorted(hours.items()):
            ok = [r.duration_s for r in found if r.success]
            rows.append(
                [
                    labels[check],
                    format_since(hour, NOW, "fr"),
                    ms(sum(ok) / len(ok) if ok else None),
                    ms(max(ok, default=None)),
                    f"{sum(not r.success for r in found)} / {len(found)}",
                ]
            )
    return rows


def x_hour(x: float) -> datetime:
    """The hour a chart's x coordinate stands for (points sit at the middle of their hour)."""
    start = NOW - timedelta(hours=24)
    moment = start + (x - LEFT) / (WIDTH - LEFT - RIGHT) * timedelta(hours=24)
    return moment.replace(minute=0, second=0, microsecond=0)


def test_one_small_chart_per_check_with_a_table_of_the_same_numbers(site: Site) -> None:
    page = site.client.get("/reseaux/alpha").text
    cells = parsed(page)
    assert len(cells.charts) == 2  # one per check, each an image named by its title and described in words
    for chart in cells.charts:
        svg = chart[0][1]
        assert chart[0][0] == "svg" and svg["role"] == "img"
        ids = {attrs.get("id") for tag, attrs in chart if tag in ("title", "desc")}
        assert set(svg["aria-labelledby"].split()) == ids and len(ids) == 2
    table = [row for row in cells.rows if len(row) == 5 and row[-1].count("/") == 1 and row[0] != "Sonde"]
    want = expected_hours(site)
    assert table == want
    assert len(want) == 10  # two checks × (four earlier hours + the hour of the real probe)
    assert "1 / 3" in [row[-1] for row in want]  # a failure is counted
    assert ["pec (Prises en charge (PEC))", format_since(NOW, NOW, "fr"), "—", "—", "1 / 1"] in want  # all failed
    # each chart on its own scale: its path read back into milliseconds restates the means of the successes
    labels = ("Passerelle DRE (Facturation)", "pec (Prises en charge (PEC))")
    for chart, label in zip(cells.charts, labels, strict=True):
        means = [float(row[2].removesuffix(" ms")) for row in want if row[0] == label and row[2] != "—"]
        top = _nice_top(max(means) * 1.1)
        paths = [attrs["d"] for tag, attrs in chart if tag == "path" and attrs.get("class") == "line"]
        ys = [float(y) for path in paths for y in re.findall(r"[ML][\d.]+ ([\d.]+)", path)]
        plotted = [(1 - (y - TOP) / (HEIGHT - TOP - BOTTOM)) * top for y in ys]
        assert plotted == pytest.approx(means, abs=top / 200 + 0.5)


def crosses(chart: list[tuple[str, dict[str, str]]]) -> list[float]:
    """The x of each ✕ on the failures' row of a chart."""
    found = []
    for tag, attrs in chart:
        m = re.match(r"M([\d.]+) ([\d.]+)L", attrs.get("d", "")) if tag == "path" else None
        if m and attrs.get("class") != "line" and abs(float(m[2]) - FAIL_Y) < 6:
            found.append(float(m[1]) + 4.5)
    return found


def test_failed_probes_are_drawn_as_failures_never_as_response_times(site: Site) -> None:
    """PEC failed once at 10:25 (Paris 11:25) and at its real probe now (HTTP 500): two ✕ on its chart; the hour of
    the real probe, without any success, is a gap in its line, not a point at the 500's few milliseconds."""
    dre, pec = parsed(site.client.get("/reseaux/alpha").text).charts
    assert crosses(dre) == []
    failed = [x_hour(x) for x in crosses(pec)]
    assert failed == [NOW - timedelta(hours=2), NOW]
    points = [float(attrs["cx"]) for tag, attrs in pec if tag == "circle"]
    assert len(points) == 4 and all(x_hour(x) < NOW for x in points)  # the four earlier hours, not the failed one
    text = words(site.client.get("/reseaux/alpha").text)
    assert "2 heures avec des échecs (✕)." in text and "Aucun échec." in text  # the charts' descriptions
    english = words(site.client.get("/reseaux/alpha?lang=en").text)
    assert "2 hours with failures (✕)." in english and "No failure." in english


def test_the_line_page_shows_its_checks_and_transitions(site: Site) -> None:
    cells = parsed(site.client.get("/reseaux/alpha/optique").text)
    checks = {row[0]: row for row in cells.rows if len(row) == 5 and row[0] in ("Passerelle DRE", "pec")}
    assert set(checks) == {"Passerelle DRE", "pec"}
    assert checks["Passerelle DRE"][1] == "Facturation" and checks["Passerelle DRE"][3].startswith(
        "réussi, lun. 12 févr., 13:00"
    )
    assert checks["pec"][3].startswith("échec, lun. 12 févr., 13:00") and "Indisponible" in checks["pec"][2]
    transitions = [row for row in cells.rows if len(row) == 4 and row[-1] == "sonde"]
    after = [row[2] for row in transitions]  # newest first
    assert after[-5:] == [
        "✓ Opérationnel",
        "↻ Réactivation progressive (50\u00a0%)",
        "↻ Réactivation progressive (25\u00a0%)",
        "✕ Indisponible",
        "✓ Opérationnel",
    ]
    text = words(site.client.get("/reseaux/alpha/optique").text)
    assert "Disponibilité sur 90 jours\u00a0: 56,25\u00a0%" in text


def test_the_line_page_offers_its_feed_at_the_top(site: Site) -> None:
    page = site.client.get("/reseaux/alpha/optique").text
    link = '<a href="/reseaux/alpha/optique/feed.atom" type="application/atom+xml">Suivre ce domaine (flux Atom)</a>'
    assert link in page and page.index(link) < page.index("<h2")  # before any section: the first thing to follow
    feed = site.client.get("/reseaux/alpha/optique/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    assert "Follow this line (Atom feed)" in site.client.get("/reseaux/alpha/optique?lang=en").text


@pytest.mark.parametrize(
    "path", ["/reseaux/nope", "/reseaux/nope/optique", "/reseaux/alpha/nope", "/reseaux/kappa/pharmacie"]
)
def test_unknown_networks_and_lines_are_404_pages(site: Site, path: str) -> None:
    answer = site.client.get(path)
    assert answer.status_code == 404
    assert "Page introuvable" in answer.text and 'href="/"' in answer.text


def test_no_url_header_or_secret_from_the_config_appears_anywhere(site: Site) -> None:
    assert site.target.hits.get("/dre") and site.target.hits.get("/pec?key=" + SECRET)  # the probes did run
    pages = [
        "/",
        "/reseaux/alpha",
        "/reseaux/alpha/optique",
        "/reseaux/alpha/pharmacie",
        "/reseaux/kappa",
        "/reseaux/kappa/optique",
        "/api/v2/summary.json",
        "/api/v2/components.json",
        "/api/v1/networks",
        "/api/v1/networks/alpha",
        "/feed.atom",
        "/reseaux/alpha/optique/feed.atom",
        "/badge/alpha/optique.svg",
        "/metrics",
    ]
    port = str(site.target.port)
    for page in pages:
        for lang in ("fr", "en"):
            answer = site.client.get(f"{page}?lang={lang}")
            assert answer.status_code == 200, page
            for secret in (SECRET, PASSWORD, "${TOKEN}", "Bearer", "probe:", f"127.0.0.1:{port}", f":{port}/"):
                assert secret not in answer.text, (page, lang, secret)


def test_the_overview_shows_the_progressive_reactivation(site: Site) -> None:
    html = site.client.get("/").text
    [article] = re.findall(r'<article class="episode closed".*?</article>', html, re.S)
    assert "Alpha — Optique" in words(article) and "rétabli" in words(article)
    steps = re.findall(r'<li class="step state-(\w+)">', article)
    assert steps == ["down", "recovering", "recovering", "operational"]
    text = words(article)
    assert (
        text.index("Interruption — Indisponible")
        < text.index("25\u00a0%")
        < text.index("50\u00a0%")
        < text.index("Rétabli")
    )
    assert 'class="progress p25"' in article and 'class="progress p50"' in article
    english = words(site.client.get("/?lang=en").text)
    assert "Alpha — Optics restored" in english and "Outage — Unavailable" in english


def test_the_english_timeline_has_english_punctuation(site: Site) -> None:
    assert "Progressive reactivation: 25%" in words(site.client.get("/?lang=en").text)


def test_a_day_without_any_signal_is_not_called_maintenance(site: Site) -> None:
    html = site.client.get("/reseaux/kappa").text
    tips = re.findall(r'<li class="day d-unknown"[^>]*>\s*<span class="tip">(.*?)</span>', html, re.S)
    [tip] = [t for t in tips if t.startswith("lun. 5 févr. 2024")]  # the 4th and 6th are partly unknown
    assert "Statut inconnu" in tip
    assert "maintenance" not in tip


def test_a_state_seen_since_tpmons_first_sight_of_it_is_said_since_at_least(site: Site) -> None:
    """Pharmacie was never seen before the first probes at NOW (tpmon's first start here): its start is not an
    event, and no page says 'depuis le' as if it were; optique was seen in other states before (the stored
    outage), so its change at NOW is one."""
    pharmacie = words(site.client.get("/reseaux/alpha/pharmacie").text)
    assert "Depuis au moins le lun. 12 févr. 2024, 13:00." in pharmacie
    assert "Depuis le lun. 12 févr. 2024" not in pharmacie
    assert "Since at least Mon 12 Feb 2024, 13:00." in words(site.client.get("/reseaux/alpha/pharmacie?lang=en").text)
    optique = words(site.client.get("/reseaux/alpha/optique?lang=fr").text)
    assert "Depuis le lun. 12 févr. 2024, 13:00." in optique and "Depuis au moins" not in optique
    network = words(site.client.get("/reseaux/alpha?lang=fr").text)  # its status and its flows, first seen at NOW
    assert "État actuel depuis au moins le lun. 12 févr. 2024, 13:00" in network
    assert "depuis au moins le lun. 12 févr., 13:00" in network and "depuis le lun. 12 févr., 13:00" not in network
    home = words(site.client.get("/?lang=fr").text)
    assert "Alpha Optique depuis le lun. 12 févr., 13:00" in home  # a change after earlier states: a real start


def test_the_menu_says_where_the_reader_is(site: Site) -> None:
    """ "Networks" is the current section on a network's pages (`aria-current="true"`), the current page on the home
    (`"page"`); an incident list is "Incidents"; no other entry is marked."""
    expected = {
        "/": ("/", "page"),
        "/reseaux/alpha": ("/", "true"),
        "/reseaux/alpha/optique": ("/", "true"),
        "/incidents": ("/incidents", "page"),
        "/methode": ("/methode", "page"),
    }
    for path, marked in expected.items():
        page = site.client.get(path).text
        menu = page[page.index('<nav aria-label="Menu principal">') :]
        menu = menu[: menu.index("</nav>")]
        assert re.findall(r'<a href="([^"]+)" aria-current="(\w+)"', menu) == [marked], path
