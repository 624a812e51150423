"""Badges: the state in words for every state, screen-reader text, escaping, WCAG contrast, 404."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.i18n import STATE_LABELS, Lang
from monitor.models import State
from monitor.store.declaration_store import Declarations
from monitor.web.badges import BACKGROUNDS, FOREGROUND, LEFT, badge_svg, text_width

S = "{http://www.w3.org/2000/svg}"
CONFIG = """
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {name: pec, flow: pec, kind: http, url: "http://127.0.0.1:9/pec"}
"""
NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)


def luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of `#rrggbb`."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def visible_texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{S}text") if t.get("aria-hidden") != "true"]


def test_the_contrast_computation_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the classic AA limit grey


@pytest.mark.parametrize("background", [LEFT, *BACKGROUNDS.values()])
def test_text_has_at_least_4_5_to_1_on_every_background(background: str) -> None:
    assert contrast(FOREGROUND, background) >= 4.5


def test_every_state_has_its_own_colour() -> None:
    assert set(BACKGROUNDS) == set(State)
    assert len(set(BACKGROUNDS.values())) == len(State)


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("state", list(State))
def test_the_state_word_is_always_there(state: State, lang: Lang) -> None:
    svg = ET.fromstring(badge_svg("Alpha", "Optique", state, lang))
    word = STATE_LABELS[state][lang]
    assert svg.tag == f"{S}svg" and svg.get("role") == "img"
    assert visible_texts(svg) == ["Alpha · Optique", word]
    sentence = f"Alpha · Optique\u00a0: {word}" if lang == "fr" else f"Alpha · Optique: {word}"
    assert svg.get("aria-label") == sentence
    assert svg.findtext(f"{S}title") == sentence
    fills = {r.get("fill") for r in svg.iter(f"{S}rect")}
    assert BACKGROUNDS[state] in fills and LEFT in fills


def test_width_follows_the_text() -> None:
    short = ET.fromstring(badge_svg("A", "B", State.DOWN, "fr"))
    long = ET.fromstring(badge_svg("Almerys Santé", "Audioprothèse", State.RECOVERING, "fr"))
    assert int(short.get("width") or 0) < int(long.get("width") or 0)
    assert int(long.get("width") or 0) >= text_width("Almerys Santé · Audioprothèse") + text_width("Réactivation")
    rects = [r for r in long.iter(f"{S}rect") if r.get("x") is not None]
    assert rects and int(rects[0].get("x") or 0) >= text_width("Almerys Santé · Audioprothèse")


def test_names_are_escaped() -> None:
    document = badge_svg('<script>alert(1)</script>"', "<img src=x onerror=alert(1)>", State.DOWN, "fr")
    svg = ET.fromstring(document)
    assert not [e for e in svg.iter() if e.tag.rsplit("}", 1)[-1] in ("script", "img")]
    assert b"<script" not in document and b"<img" not in document
    assert visible_texts(svg)[0] == '<script>alert(1)</script>" · <img src=x onerror=alert(1)>'


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_config(config)
    app = create_app(settings, database_url="sqlite://", schedule=False, clock=lambda: NOW)
    with TestClient(app) as test_client:
        services: Services = test_client.app_state["services"]
        first = IncidentUpdate(
            NOW, "identified", Bilingual("PEC KO."), statuses={"line:alpha/optique": declare("down")}
        )
        declarations = Declarations(services.store, settings, clock=lambda: NOW)
        declarations.open_incident(title=Bilingual("PEC optique"), impact="major", first=first)
        assert test_client.portal is not None  # set inside `with TestClient(…)`
        test_client.portal.call(services.refresh_overrides)
        yield test_client


def test_the_route_serves_the_line_state(client: TestClient) -> None:
    answer = client.get("/badge/alpha/optique.svg")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert answer.headers["cache-control"] == "max-age=60"
    svg = ET.fromstring(answer.content)
    assert visible_texts(svg) == ["Alpha · Optique", "Indisponible"]
    english = ET.fromstring(client.get("/badge/alpha/optique.svg?lang=en").content)
    assert visible_texts(english) == ["Alpha · Optics", "Unavailable"]
    unknown = ET.fromstring(client.get("/badge/alpha/pharmacie.svg").content)  # no probe ran: never green
    assert visible_texts(unknown)[1] == "Statut inconnu"


@pytest.mark.parametrize("path", ["/badge/nope/optique.svg", "/badge/alpha/dentaire.svg", "/badge/alpha/nope.svg"])
def test_unknown_network_or_line_is_a_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404 and "inconnu" in answer.text


def test_badges_inlined_in_one_page_do_not_share_a_clip_path() -> None:
    """SVG ids are global to the page that inlines the badges: equal ids made every badge clip to the first."""
    import xml.etree.ElementTree as ET

    from monitor.models import State
    from monitor.web.badges import badge_svg

    ids = set()
    for state in State:
        root = ET.fromstring(badge_svg("Viamedis", "Optique", state, "fr"))
        [clip] = [e for e in root.iter() if e.tag.endswith("clipPath")]
        ids.add(clip.get("id"))
    assert len(ids) == len(State)
