"""Browser fixtures: the real `tpmon demo`, its public pages found by crawling, and one shared Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import pytest
from components import missing_component
from playwright.sync_api import Browser, Locator, Page, ViewportSize, sync_playwright
from targets import free_port, wait_for

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (375, 768, 1280)
HEIGHT = 900
LANGS = ("fr", "en", "en-cookie")  # French by default; English by ?lang=en, and by the `lang` cookie alone
# The cookie serves the same document as ?lang=en: checked on a phone only, to keep the suite within ~2–3 min.
LANG_WIDTHS = [(lang, width) for lang in ("fr", "en") for width in WIDTHS] + [("en-cookie", 375)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
MAX_PAGES, MAX_DEPTH, MAX_PER_SHAPE = 40, 3, 2  # e.g. two /reseaux/{network}: same template
SKIPPED = ("/api/", "/feed", "/badge/", "/metrics", "/static/", "/healthz", "/readyz")
SKIPPED_ENDINGS = (".atom", ".rss", ".svg", ".json", ".xml", ".png", ".css", ".js")
DESIGN_PATHS = ["/", "/reseaux/{network}", "/reseaux/{network}/{line}", "/incidents", "/incidents/{incident}"]
DESIGN_PATHS += ["/assures", "/accessibilite", "/methode", "/abonnement", "/confidentialite"]


def submit(button: Locator) -> None:
    """Press a button that posts a form, and return once the page it leads to has loaded.

    A plain click returns as soon as the next page starts to arrive: a check made at once may still read the
    page before it (or half of the next one) — what made a console test fail under load."""
    with button.page.expect_navigation():
        button.click()


def chromium_executable() -> str | None:
    """$TPMON_CHROMIUM (what .ci/chromium.sh prints), else `chromium` on PATH."""
    return os.environ.get("TPMON_CHROMIUM", "").strip() or shutil.which("chromium")


class Demo:
    """`tpmon demo --port P` in a subprocess, as users run it, in its own working directory."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tpmon-browser-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "demo.log"
        with self.log.open("wb") as log:
            # with its e-mail subscriptions on: their form and the privacy notice are pages like the others
            sink = str(self.workdir / "mails")
            command = [sys.executable, "-m", "monitor", "demo", "--port", str(self.port), "--smtp-sink", sink]
            self.proc = subprocess.Popen(command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> httpx.Response:
        if self.proc.poll() is not None:
            raise AssertionError(f"tpmon demo exited {self.proc.returncode}: {self.log.read_text()}")
        return httpx.get(self.base + path, timeout=10)

    def log_tail(self, lines: int = 6) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def line_state(self, network: str, line: str) -> str | None:
        for found in self.get("/api/v1/status").json()["networks"]:
            if found["id"] == network:
                return next((ln["state"] for ln in found["lines"] if ln["id"] == line), None)
        return None

    def wait_for_the_outage(self) -> None:
        """Until Viamedis optique is down: the page then tells the February 2024 outage and its consignes."""
        # a real process's start: generous, the demo replays months of history first (slow on a loaded machine)
        wait_for(lambda: self.line_state("viamedis", "optique") == "down", timeout=300, what="Viamedis optique down")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: the demo may take 10–30 s to stop while it rolls up its history."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _page_path(base: str, page: str, href: str) -> str | None:
    """The same-origin HTML page `href` points to, as a path; None for feeds, APIs, badges, files, fragments."""
    if href.startswith(("#", "mailto:", "tel:", "javascript:")):
        return None
    url = urlsplit(urldefrag(urljoin(page, href)).url)
    if f"{url.scheme}://{url.netloc}" != base:
        return None
    path = url.path or "/"
    if path.startswith(SKIPPED) or path.endswith(SKIPPED_ENDINGS):
        return None
    return path


def _shape(path: str) -> tuple[str, int]:
    parts = [part for part in path.split("/") if part]
    return (parts[0] if parts else "", len(parts))


def _design_paths(demo: Demo) -> list[str]:
    """DESIGN's public pages, filled with the demo's own network, line and first incident."""
    incidents = demo.get("/api/v2/incidents.json").json().get("incidents", [])
    values = {"network": "viamedis", "line": "optique", "incident": incidents[0]["id"] if incidents else "1"}
    return [path.format(**values) for path in DESIGN_PATHS]


def discover_pages(demo: Demo) -> list[str]:
    """Every public HTML page: DESIGN's paths that answer 200, then a breadth-first crawl of links from `/`."""
    found: list[str] = []
    seen: set[str] = set()
    shapes: dict[tuple[str, int], int] = {}

    def visit(path: str) -> str | None:
        seen.add(path)
        response = demo.get(path)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith("text/html"):
            if path == "/":  # always tested: a broken home page must fail, not vanish from the suite
                found.append(path)
            return None
        found.append(path)
        shapes[_shape(path)] = shapes.get(_shape(path), 0) + 1
        return response.text

    frontier: list[tuple[str, str]] = []
    for path in _design_paths(demo):
        if (html := visit(path)) is not None:
            frontier.append((path, html))
    for _depth in range(MAX_DEPTH):
        following: list[tuple[str, str]] = []
        for page, html in frontier:
            parser = _Links()
            parser.feed(html)
            for href in parser.hrefs:
                link = _page_path(demo.base, demo.base + page, href)
                if link is None or link in seen or shapes.get(_shape(link), 0) >= MAX_PER_SHAPE:
                    continue
                if len(found) >= MAX_PAGES:
                    return found
                if (text := visit(link)) is not None:
                    following.append((link, text))
        frontier = following
    return found


def slug(path: str) -> str:
    """`/reseaux/viamedis/optique` -> `reseaux-viamedis-optique`; `/` -> `accueil`."""
    text = "".join(c if c.isalnum() else "-" for c in path.strip("/").lower())
    return "-".join(part for part in text.split("-") if part) or "accueil"


@dataclass
class BrowserRun:
    """What the browser suite shares: the demo, its pages, and the best-practice findings to report."""

    demo: Demo | None = None
    pages: list[str] = field(default_factory=lambda: ["/"])
    best_practice: dict[str, set[str]] = field(default_factory=dict)


_RUN = pytest.StashKey[BrowserRun]()


def _run(config: pytest.Config) -> BrowserRun:
    """Started once, at collection: the pages must be known to parametrize the tests."""
    if _RUN not in config.stash:
        run = config.stash[_RUN] = BrowserRun()
        if chromium_executable() is not None:
            run.demo = Demo()
            try:
                run.demo.wait_for_the_outage()
                run.pages = discover_pages(run.demo)
            except BaseException:
                run.demo.stop()
                raise
    return config.stash[_RUN]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every page, width and language, unless the test chose its own with @pytest.mark.parametrize."""
    chosen = {name for mark in metafunc.definition.iter_markers("parametrize") for name in mark.args[0].split(",")}
    if "page_path" in metafunc.fixturenames and "page_path" not in chosen:
        pages = _run(metafunc.config).pages
        metafunc.parametrize("page_path", pages, ids=[slug(p) for p in pages])
    wanted = {"lang", "width"} & set(metafunc.fixturenames) - chosen
    if wanted == {"lang", "width"}:  # the width varies fastest: one load of a page, three widths
        metafunc.parametrize("lang,width", LANG_WIDTHS, ids=[f"{lang}-{width}px" for lang, width in LANG_WIDTHS])
    elif wanted == {"lang"}:
        metafunc.parametrize("lang", LANGS)
    elif wanted == {"width"}:
        metafunc.parametrize("width", WIDTHS, ids=[f"{w}px" for w in WIDTHS])


def _outage_first(item: pytest.Item) -> int:
    if item.name.startswith("test_the_matrix_and_states_are_there_without_javascript"):  # the open incident's consignes
        return 0
    return 1 if item.path.name == "test_first_screen.py" else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that read the outage first: the demo's story ends it after ~8 minutes, and the whole browser
    suite takes longer than that on a loaded machine. The sort is stable: the others keep their order."""
    items.sort(key=_outage_first)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is not None and run.demo is not None:
        run.demo.stop()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None or not run.best_practice:
        return
    terminalreporter.section("axe best-practice findings (information, not failures)")
    for rule, where in sorted(run.best_practice.items()):
        terminalreporter.write_line(f"{rule}: {len(where)} page(s), e.g. {', '.join(sorted(where)[:4])}")


@pytest.fixture(scope="package")
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    """The running demo, Viamedis optique down; stopped when the browser tests are done."""
    run = _run(request.config)
    if run.demo is None:
        missing_component("Chromium is not installed: run .ci/chromium.sh (or set TPMON_CHROMIUM)")
    assert run.demo is not None
    yield run.demo
    run.demo.stop()


@pytest.fixture
def screenshot_file(page_path: str, lang: str, width: int) -> Path:
    """var/screenshots/<lang>-<width>-<slug>.png (var/ is git-ignored): to look at the pages yourself."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{lang}-{width}-{slug(page_path)}.png"


@pytest.fixture
def best_practice(request: pytest.FixtureRequest) -> dict[str, set[str]]:
    return _run(request.config).best_practice


@pytest.fixture(scope="package")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for every browser test (the demo's pages and the console's); its profile, config and cache in
    temporary directories."""
    executable = chromium_executable()
    if executable is None or not os.access(executable, os.X_OK):
        missing_component(f"Chromium not found or not executable: {executable!r}; run .ci/chromium.sh")
    home = tmp_path_factory.mktemp("chromium")
    env: dict[str, str | float | bool] = {**os.environ}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))  # Chromium writes there
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, env=env)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def browser(demo: Demo, chromium: Browser) -> Browser:
    """The shared Chromium, once the demo runs (the public pages' tests)."""
    return chromium


OpenPage = Callable[..., Page]


def load_page(
    browser: Browser,
    demo: Demo,
    path: str,
    *,
    width: int = 1280,
    lang: str = "fr",
    bypass_csp: bool = True,
    javascript: bool = True,
) -> Page:
    """A fresh context (a French browser) with `path` loaded in `lang`: fr, en (?lang=en) or en-cookie."""
    viewport: ViewportSize = {"width": width, "height": HEIGHT}
    context = browser.new_context(
        viewport=viewport, bypass_csp=bypass_csp, java_script_enabled=javascript, locale="fr-FR"
    )
    if lang == "en-cookie":
        context.add_cookies([{"name": "lang", "value": "en", "url": demo.base}])
    page = context.new_page()
    query = "?lang=en" if lang == "en" else ""
    response = page.goto(demo.base + path + query, wait_until="load")
    status = response.status if response is not None else None
    assert status == 200, f"{path}{query} answered {status}; the demo's log ends with:\n{demo.log_tail()}"
    return page


@pytest.fixture
def open_page(browser: Browser, demo: Demo) -> Iterator[OpenPage]:
    """`open_page(path, width=, lang=, bypass_csp=, javascript=)`: a fresh context, the page loaded in it."""
    pages: list[Page] = []

    def load(path: str, **options: Any) -> Page:
        pages.append(load_page(browser, demo, path, **options))
        return pages[-1]

    yield load
    for page in pages:
        page.context.close()


class LastPage:
    """The last page loaded, kept while tests only change the width: a load costs more than a resize."""

    def __init__(self, browser: Browser, demo: Demo) -> None:
        self.browser, self.demo = browser, demo
        self.key: tuple[str, str] | None = None
        self.page: Page | None = None

    def at(self, path: str, lang: str, width: int) -> Page:
        if self.page is None or self.key != (path, lang):
            self.close()
            self.page, self.key = load_page(self.browser, self.demo, path, width=width, lang=lang), (path, lang)
        self.page.set_viewport_size({"width": width, "height": HEIGHT})
        return self.page

    def close(self) -> None:
        if self.page is not None:
            self.page.context.close()
            self.page = None


@pytest.fixture(scope="package")
def last_page(browser: Browser, demo: Demo) -> Iterator[LastPage]:
    pages = LastPage(browser, demo)
    yield pages
    pages.close()
