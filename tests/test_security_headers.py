"""Security headers on every kind of response, and pages that a CSP without inline script or style can show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from targets import Server, Target, alpha_config

from monitor.app import _App, create_app
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.models import ComponentRef, ProbeResult, Source, State, Transition
from monitor.store import Batch
from monitor.store.declaration_store import Declarations

NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
ROUTES = {
    "page": "/",
    "network": "/reseaux/alpha",
    "line": "/reseaux/alpha/optique",
    "json": "/api/v2/summary.json",
    "api": "/api/v1/networks",
    "feed": "/feed.atom",
    "badge": "/badge/alpha/optique.svg",
    "static": "/static/style.css",
    "missing page": "/reseaux/nope",
    "no route": "/nothing/here",
    "metrics": "/metrics",
    "health": "/healthz",
}
HOSTILE = 'Les PEC échouent. <script>alert(1)</script> <b onclick="alert(2)" style="color:red">gras</b>'


def directives(csp: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            found[words[0].lower()] = words[1:]
    return found


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app over a store holding latency, an outage coming back in steps and an incident with hostile text."""
    tmp = tmp_path_factory.mktemp("security")
    config = tmp / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9"), encoding="utf-8")
    settings = load_config(config)
    app = create_app(settings, database_url=f"sqlite:///{tmp}/tpmon.db", schedule=False, clock=lambda: NOW)
    with TestClient(app) as test_client:
        services = test_client.app_state["services"]
        check = ComponentRef.for_check("alpha", "pec", "pec")
        line = ComponentRef("line", "alpha", "optique")
        results = [ProbeResult(check, NOW - timedelta(minutes=20 * i), 0.1 + i / 100, True) for i in range(12)]
        story = [(State.OPERATIONAL, State.DOWN, 0.0, 5), (State.DOWN, State.RECOVERING, 0.5, 2)]
        transitions = [
            Transition(line, before, after, NOW - timedelta(hours=h), NOW, Source.PROBE, progress)
            for before, after, progress, h in story
        ]
        services.store.write(Batch(results=results, transitions=transitions))
        first = IncidentUpdate(
            NOW - timedelta(hours=1),
            "identified",
            Bilingual(HOSTILE),
            practitioner_consigne=Bilingual("[voir](javascript:alert(3)) et <img src=x onerror=alert(4)>"),
            statuses={line.key: declare("recovering", 0.5)},
        )
        Declarations(services.store, settings, clock=lambda: NOW).open_incident(
            title=Bilingual("PEC <i>optique</i>"), impact="major", first=first
        )
        assert test_client.portal is not None  # set inside `with TestClient(…)`
        test_client.portal.call(services.refresh_overrides)
        yield test_client


@pytest.mark.parametrize("path", ROUTES.values(), ids=ROUTES.keys())
def test_every_kind_of_response_carries_the_headers(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == (404 if path in ("/reseaux/nope", "/nothing/here") else 200)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    csp = directives(answer.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    if path.startswith("/badge/"):
        assert csp["frame-ancestors"] == ["*"]  # a badge may be embedded anywhere
        assert "x-frame-options" not in answer.headers
    else:
        assert csp["frame-ancestors"] == ["'none'"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert "'unsafe-inline'" not in csp.get("script-src", [])
        assert "'unsafe-eval'" not in csp.get("script-src", [])
        assert "'unsafe-inline'" not in csp.get("style-src", [])


def test_a_304_carries_them_too(client: TestClient) -> None:
    etag = client.get("/").headers["etag"]
    answer = client.get("/", headers={"if-none-match": etag})
    assert answer.status_code == 304
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


class InlineFinder(HTMLParser):
    """Everything a CSP without 'unsafe-inline' would block: inline scripts, handlers, style attributes/blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower(): value for name, value in attrs}
        if tag == "script":
            if not names.get("src"):
                self.problems.append("inline <script>")
            else:
                self.scripts.append(names["src"] or "")
        if tag == "style":
            self.problems.append("<style> block")
        for name, value in names.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            if name == "style":
                self.problems.append(f"<{tag} style=…>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:…>")


def test_templates_hold_no_inline_script_handler_or_style() -> None:
    templates = resources.files("monitor.web") / "templates"
    names = [t.name for t in templates.iterdir() if t.name.endswith(".html")]
    assert {"base.html", "index.html", "network.html", "line.html", "macros.html", "error.html"} <= set(names)
    for name in names:
        text = (templates / name).read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text, re.I), name
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), name
        assert not re.search(r"\sstyle\s*=", text, re.I), name
        assert not re.search(r"<style\b", text, re.I), name


@pytest.mark.parametrize(
    "path", ["/", "/?lang=en", "/reseaux/alpha", "/reseaux/alpha?lang=en", "/reseaux/alpha/optique", "/reseaux/nope"]
)
def test_rendered_pages_hold_no_inline_script_handler_or_style(client: TestClient, path: str) -> None:
    answer = client.get(path)
    finder = InlineFinder()
    finder.feed(answer.text)
    assert finder.problems == []
    assert finder.scripts == ["/static/refresh.js"]  # 'self', and it exists
    assert client.get(finder.scripts[0]).status_code == 200


def test_the_rendered_pages_do_hold_what_the_scan_is_about(client: TestClient) -> None:
    """The scan is not vacuous: the pages hold an inline SVG chart, a timeline, and the hostile incident, defused."""
    network = client.get("/reseaux/alpha").text
    assert '<svg class="chart"' in network
    index = client.get("/").text
    assert 'class="episode open"' in index
    assert "&lt;script&gt;alert(1)" in index and "&lt;img src=x onerror" in index  # shown as text, inert


def test_a_real_server_sends_them(tmp_path: Path, target: Target) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url("")), encoding="utf-8")
    server = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"}).start()
    try:
        for path in ("/", "/badge/alpha/optique.svg"):
            answer = server.get(path)
            assert answer.status_code == 200
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors" in answer.headers["content-security-policy"]
    finally:
        assert server.stop() == 0


def test_a_server_error_carries_the_headers_too() -> None:
    async def broken(request: object) -> None:
        raise RuntimeError("boom")

    client = TestClient(_App(routes=[Route("/broken", broken)]), raise_server_exceptions=False)
    answer = client.get("/broken")
    assert answer.status_code == 500
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "boom" not in answer.text  # no traceback to users
