"""The practitioner's first screen (issue #10), on the running demo during the February 2024 outage: the answer on
a phone's first screen, the domain filter without JavaScript, a grid that fits, English pages without French.

`TPMON_README_SCREENSHOTS=docs/screenshots` also writes the README's three screenshots there (see README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Browser, Page, ViewportSize
from targets import wait_for

from monitor.i18n import STATE_ICONS, STATE_LABELS

if TYPE_CHECKING:
    from .conftest import Demo

OpenPage = Callable[..., Page]
ROOT = Path(__file__).resolve().parents[2]
PHONE: ViewportSize = {"width": 375, "height": 812}
FRENCH_ONLY = sorted({labels["fr"] for labels in STATE_LABELS.values()} - {lb["en"] for lb in STATE_LABELS.values()})
FRENCH_ONLY += ["Que faire", "depuis le", "Passerelle PEC", "Portail PS", "Dernière vérification", "Vérification des"]
# French typography: a space (plain, no-break or narrow) before a colon or semicolon; "?" and "!" are state icons
FRENCH_SPACING = re.compile(r".{0,30}\S[ \u00a0\u202f][:;](?=\s|$).{0,20}")
ICONS = "".join(sorted(set(STATE_ICONS.values())))


def phone_home(open_page: OpenPage, **options: Any) -> Page:
    page = open_page("/", width=PHONE["width"], **options)
    page.set_viewport_size(PHONE)
    return page


def test_the_affected_rows_are_on_the_first_screen_of_a_phone(open_page: OpenPage, demo: Demo) -> None:
    page = phone_home(open_page)
    assert page.locator("h1").inner_text().strip() == "Ce qui ne marche pas maintenant"
    first = page.locator("ul.troubles > li.trouble").first
    # state (icon + word), since when, the line's link, and what to do: all inside 375 × 812, nothing to scroll
    parts = {
        "state": first.locator(".trouble-head .state"),
        "since": first.locator("ul.where .since").first,
        "line": first.locator("ul.where a").first,
        "action": first.locator(".todo"),
    }
    for name, part in parts.items():
        box = part.bounding_box()
        assert box is not None, f"the first trouble has no {name}"
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], f"{name} below the first screen: {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, f"{name} off the side: {box}"
    assert (parts["line"].get_attribute("href") or "").startswith("/reseaux/")
    assert parts["since"].inner_text().startswith("depuis le ")
    assert parts["action"].inner_text().startswith(("Que faire", "Ce que cela veut dire", "Pas de conseil"))
    state = parts["state"].inner_text()
    assert any(label["fr"] in state for label in STATE_LABELS.values()) and any(i in state for i in ICONS)

    screenshots = os.environ.get("TPMON_README_SCREENSHOTS")
    if screenshots:
        readme_screenshots(Path(screenshots), open_page, demo, page)


def readme_screenshots(folder: Path, open_page: OpenPage, demo: Demo, phone: Page) -> None:
    """The README's three pictures: the phone's first screen during the outage, the desktop home, and a line in
    progressive reactivation (the demo's story reaches one within minutes: polled, with a deadline)."""
    folder.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=folder / "telephone-panne.png")
    open_page("/", width=1280).screenshot(path=folder / "accueil-bureau.png")

    # Viamedis optique: declared recovering by the story on 14 February (SCENARIO-2024 event 15)
    wait_for(lambda: demo.line_state("viamedis", "optique") == "recovering", timeout=600, what="the reactivation")
    open_page("/reseaux/viamedis/optique", width=1280).screenshot(path=folder / "reactivation.png")


def test_the_domain_filter_works_without_javascript_and_stays_in_the_address(open_page: OpenPage) -> None:
    page = phone_home(open_page, javascript=False)
    page.locator("nav.filter").get_by_role("link", name="Optique", exact=True).click()
    page.wait_for_load_state()
    assert page.url.endswith("/?domaine=optique")
    assert page.locator("nav.filter [aria-current=page]").inner_text() == "Optique"
    links = page.locator("ul.troubles a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert links, "the outage touches optique: the filtered page must list it"
    assert all(href.endswith("/optique") for href in links), links
    assert page.locator("h1").inner_text().startswith("Optique")


def test_the_grid_fits_a_desktop_and_becomes_a_list_on_a_phone(open_page: OpenPage) -> None:
    page = open_page("/", width=1280)
    wrap = page.evaluate(
        "() => { const w = document.querySelector('.matrix-wrap'); return [w.scrollWidth, w.clientWidth]; }"
    )
    assert wrap[1] > 0 and wrap[0] <= wrap[1], f"the grid scrolls sideways at 1280 px: {wrap}"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280
    columns = page.locator("table.matrix thead th").count()
    assert columns == 12, f"{columns} columns: the network and the 11 service lines"
    # an icon never wraps away from its word: the icon and the first letters of the word sit on one line
    split = page.evaluate(
        """() => [...document.querySelectorAll('table.matrix .state')].filter(el => {
             const icon = el.querySelector('.icon'), word = icon.nextSibling;
             const range = document.createRange();
             range.setStartBefore(icon); range.setEnd(word, Math.min(2, word.textContent.length));
             const rects = [...range.getClientRects()].filter(r => r.height > 0);  // one line: they overlap
             return Math.max(...rects.map(r => r.top)) >= Math.min(...rects.map(r => r.bottom));
           }).map(el => el.innerText)"""
    )
    assert not split, f"icon and word on two lines: {split[:5]}"
    page.set_viewport_size(PHONE)
    assert not page.locator(".matrix-wrap").is_visible() and page.locator(".by-line").is_visible()


def test_english_pages_have_neither_french_typography_nor_french_labels(open_page: OpenPage, page_path: str) -> None:
    page = open_page(page_path, width=375, lang="en")
    text = page.evaluate("document.body.innerText")
    spacing = [m.group(0) for line in text.splitlines() if (m := FRENCH_SPACING.search(line))]
    assert not spacing, f"{page_path}: French spacing in English: {spacing[:5]}"
    # French words of the site itself (an ops text written in French alone is the ops' choice, shown as is)
    french = [word for word in FRENCH_ONLY if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text)]
    assert not french, f"{page_path}: French labels on an English page: {french}"


def test_the_latency_charts_read_on_a_phone(open_page: OpenPage) -> None:
    """Viamedis during the outage: one small chart per check, labels of 11 px at least on a 375 px phone, the
    failed probes drawn as ✕ (not as response times), nothing wider than the screen."""
    page = open_page("/reseaux/viamedis", width=375)
    charts = page.locator("ul.charts svg.chart")
    assert charts.count() >= 4, "one chart per probed check of Viamedis"
    sizes: list[float] = page.evaluate(
        """() => [...document.querySelectorAll('svg.chart text')].map(text => {
             const svg = text.ownerSVGElement;
             const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
             return parseFloat(getComputedStyle(text).fontSize) * scale;
           })"""
    )
    assert sizes and min(sizes) >= 11, f"chart labels of {min(sizes):.1f} px on a phone"
    assert page.locator("svg.chart .fails path").count() > 0, "the outage's failed probes are drawn as ✕"
    described = charts.evaluate_all("els => els.map(svg => svg.querySelector('desc').textContent)")
    assert any("échec" in text for text in described), described  # the ✕ said in words too
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 375 + 1


def test_the_export_of_the_demo_says_how_old_it_is(browser: Browser, demo: Demo, tmp_path: Path) -> None:
    """`tpmon export` of the running demo's store: the first screen of the exported home, on a phone, opens with
    the snapshot's age (the time of its last check), in French and in English; never green without a date."""
    folder = tmp_path / "site"
    env = {
        **os.environ,
        "TPMON_DATABASE_URL": f"sqlite:///{demo.workdir / 'var' / 'demo' / 'tpmon.db'}",
        "TPMON_DEMO_HTTP": "http://127.0.0.1:9",  # the config's probe targets: an export probes nothing
        "TPMON_DEMO_TLS": "https://127.0.0.1:9",
    }
    command = [sys.executable, "-m", "monitor", "export", "--config", str(ROOT / "config" / "demo.yaml"), str(folder)]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    context = browser.new_context(viewport=PHONE, locale="fr-FR")
    try:
        for index, said in [
            ("index.html", r"Instantané du \w+\.? \d+(er)? \w+\.? 2024, \d\d:\d\d \(dernière vérification\)"),
            ("en/index.html", r"Snapshot of \w+ \d+ \w+ 2024, \d\d:\d\d \(last check\): it may be out of date\."),
        ]:
            page = context.new_page()
            page.goto((folder / index).as_uri())
            banner = page.locator(".snapshot")
            assert re.search(said, banner.inner_text()), banner.inner_text()
            box = banner.bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    finally:
        context.close()
