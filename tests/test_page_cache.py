"""The page cache: one render per change of what a page shows, strong ETags and 304s, the language, never errors."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from targets import Target, alpha_config

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.errors import StoreError
from monitor.models import ComponentRef, Source, State, Transition
from monitor.runner import run_check
from monitor.store import Batch
from monitor.store.declaration_store import Declarations
from monitor.store.rollup_store import roll_up
from monitor.web import page_routes

NOW = datetime(2024, 2, 12, 12, 0, 5, tzinfo=UTC)  # 5 s into a minute


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    client: TestClient
    services: Services
    clock: Clock
    config: Path
    target: Target
    renders: Counter[str] = field(default_factory=Counter)  # builder calls by route path
    holds: dict[str, Callable[[], None]] = field(default_factory=dict)  # run before a route's builder

    def get(self, path: str, **headers: str) -> Any:
        return self.client.get(path, headers=headers)

    def probe(self, check: str) -> None:
        """Run one check of `alpha` through the real pipeline, against the loopback target."""
        found = next(c for c in self.services.settings.networks["alpha"].checks if c.name == check)
        assert self.client.portal is not None
        self.client.portal.call(run_check, "alpha", found, self.services.pipeline)

    def refresh(self) -> None:
        assert self.client.portal is not None
        self.client.portal.call(self.services.refresh_overrides)


@pytest.fixture
def site(tmp_path: Path, target: Target, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    renders: Counter[str] = Counter()
    holds: dict[str, Callable[[], None]] = {}
    for path, page in list(page_routes.PAGES.items()):

        def counted(*args: Any, _path: str = path, _builder: Callable[..., Any] = page.build) -> Any:
            renders[_path] += 1
            if _path in holds:
                holds[_path]()
            return _builder(*args)

        # the routes are made from PAGES by create_app
        monkeypatch.setitem(page_routes.PAGES, path, page_routes.Page(counted, page.paged))
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url("")), encoding="utf-8")
    clock = Clock(NOW)
    app = create_app(
        load_config(config),
        database_url=f"sqlite:///{tmp_path}/tpmon.db",
        schedule=False,
        clock=clock,
        config_path=str(config),
    )
    with TestClient(app) as client:
        yield Site(client, client.app_state["services"], clock, config, target, renders, holds)


def served_twice(site: Site, path: str = "/", route: str = "/") -> int:
    """Ask for `path` twice; how many renders of its `route` that took."""
    before = site.renders[route]
    for _ in range(2):
        assert site.get(path).status_code == 200
    return site.renders[route] - before


def test_the_second_request_is_served_without_rendering(site: Site) -> None:
    first = site.get("/")
    assert first.status_code == 200 and site.renders["/"] == 1
    builds, hits = site.services.pages.builds, site.services.pages.hits
    second = site.get("/")
    assert second.content == first.content
    assert site.renders["/"] == 1
    assert (site.services.pages.builds, site.services.pages.hits) == (builds, hits + 1)


def test_a_probe_result_that_changes_a_state_renders_once_one_that_does_not_renders_nothing(site: Site) -> None:
    site.get("/")
    site.probe("dre")
    site.probe("pec")  # unknown → operational
    assert served_twice(site) == 1
    assert site.get("/").text.count('<td class="state-operational">') == 2  # pharmacie and optique
    site.probe("pec")  # operational again: nothing shown changed
    assert served_twice(site) == 0
    site.target.codes["/pec"] = 500
    site.probe("pec")  # threshold 1: down, and optique is no longer operational
    assert served_twice(site) == 1
    assert site.get("/").text.count('<td class="state-operational">') == 1


def test_an_incident_declared_then_refreshed_renders_once_an_idle_tick_renders_nothing(site: Site) -> None:
    assert "Aucun incident en cours." in site.get("/").text
    site.refresh()  # a tick with nothing new
    assert served_twice(site) == 0
    declarations = Declarations(site.services.store, site.services.settings, clock=site.clock)
    first = IncidentUpdate(NOW, "investigating", Bilingual("Les PEC optique échouent."))
    declarations.open_incident(title=Bilingual("PEC optique en panne"), impact="major", first=first)
    assert served_twice(site) == 0  # written to the store, not yet read: the page does not query the store
    site.refresh()
    assert served_twice(site) == 1
    assert "PEC optique en panne" in site.get("/").text


def test_a_history_bump_renders_the_network_page_again_with_the_fresh_roll_ups(site: Site) -> None:
    network = ("/reseaux/alpha", "/reseaux/{network}")
    assert served_twice(site, *network) == 1
    line = ComponentRef("line", "alpha", "optique")
    yesterday = NOW - timedelta(days=1)
    outage = [
        Transition(line, State.UNKNOWN, State.OPERATIONAL, yesterday, yesterday, Source.PROBE),
        Transition(line, State.OPERATIONAL, State.DOWN, yesterday + timedelta(hours=1), yesterday, Source.PROBE),
        Transition(line, State.DOWN, State.OPERATIONAL, yesterday + timedelta(hours=2), yesterday, Source.PROBE),
    ]
    site.services.store.write(Batch(transitions=outage))
    roll_up(site.services.store, [line], NOW)
    assert served_twice(site, *network) == 0  # the roll-ups are read when housekeeping says so
    assert "d-down" not in site.get("/reseaux/alpha").text
    site.services.history_version += 1  # what housekeeping does after its roll-ups
    assert served_twice(site, *network) == 1
    assert served_twice(site, *network) == 0
    assert site.get("/reseaux/alpha").text.count('class="day d-down"') == 1


def test_a_config_reload_renders_once_with_the_new_config(site: Site) -> None:
    site.get("/")
    site.config.write_text(
        alpha_config(site.target.url("")).replace("name: Alpha", "name: Alpha Santé"), encoding="utf-8"
    )
    assert site.services.reload() is not None
    assert served_twice(site) == 1
    assert "Alpha Santé" in site.get("/").text


def test_the_minute_passing_renders_once(site: Site) -> None:
    site.get("/")
    site.clock.now = NOW + timedelta(seconds=50)  # same minute
    assert served_twice(site) == 0
    site.clock.now = NOW + timedelta(seconds=60)  # the next one
    assert served_twice(site) == 1


def test_a_burst_after_a_change_renders_once(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.get("/")
    site.services.history_version += 1
    burst = 8
    arrived = threading.Condition()
    asked = 0
    plain_get = site.services.pages.get

    def counting_get(key: Hashable, stamp: Hashable) -> Any:
        nonlocal asked
        with arrived:
            asked += 1
            arrived.notify_all()
        return plain_get(key, stamp)

    def until_all_arrived() -> None:  # the render runs in a worker thread: it may block
        with arrived:
            assert arrived.wait_for(lambda: asked >= burst, timeout=10), f"only {asked} requests arrived"

    monkeypatch.setattr(site.services.pages, "get", counting_get)
    # The render holds until every request has looked in the cache: all the others then wait behind it.
    site.holds["/"] = until_all_arrived
    before = site.renders["/"]
    with ThreadPoolExecutor(burst) as pool:
        answers = list(pool.map(lambda _: site.get("/"), range(burst)))
    assert [a.status_code for a in answers] == [200] * burst
    assert len({a.headers["etag"] for a in answers}) == 1
    assert site.renders["/"] - before == 1


def test_etag_is_strong_and_stable_for_the_same_body(site: Site) -> None:
    first = site.get("/")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    site.clock.now = NOW + timedelta(minutes=1)  # a new render of the same content
    again = site.get("/")
    assert site.renders["/"] == 2
    assert again.content == first.content and again.headers["etag"] == etag
    site.probe("dre")  # new content: a new tag
    assert site.get("/").headers["etag"] != etag


@pytest.mark.parametrize(
    "header",
    ["{tag}", "W/{tag}", '"other", {tag}', '"other",W/{tag} ', "*"],
    ids=["exact", "weak", "list", "weak-in-list", "star"],
)
def test_if_none_match_answers_304_without_a_body(site: Site, header: str) -> None:
    etag = site.get("/").headers["etag"]
    answer = site.get("/", **{"if-none-match": header.format(tag=etag)})
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["etag"] == etag
    assert "content-type" not in answer.headers


def test_a_stale_tag_gets_the_page(site: Site) -> None:
    etag = site.get("/").headers["etag"]
    site.probe("pec")
    answer = site.get("/", **{"if-none-match": etag})
    assert answer.status_code == 200 and answer.headers["etag"] != etag and answer.content


def test_errors_are_never_cached(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(2):
        missing = site.get("/reseaux/nope")
        assert missing.status_code == 404 and "etag" not in missing.headers
    assert site.renders["/reseaux/{network}"] == 2
    builds = site.services.pages.builds

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("cannot read from the database")

    monkeypatch.setattr(site.services.store, "transitions", broken)
    unavailable = site.get("/reseaux/alpha/optique")
    assert unavailable.status_code == 503 and "etag" not in unavailable.headers
    monkeypatch.undo()
    assert site.get("/reseaux/alpha/optique").status_code == 200  # the 503 was not kept
    assert site.renders["/reseaux/{network}/{line}"] == 2
    assert site.services.pages.builds == builds + 1


def test_lang_query_sets_the_cookie_which_then_selects_english(site: Site) -> None:
    english = site.get("/?lang=en")
    assert english.headers["content-language"] == "en" and '<html lang="en">' in english.text
    assert "lang=en" in english.headers["set-cookie"]
    assert "samesite=lax" in english.headers["set-cookie"].lower()
    again = site.get("/")  # the client sends the cookie back
    assert again.headers["content-language"] == "en" and "set-cookie" not in again.headers
    french = site.get("/?lang=fr")  # the query wins over the cookie, and is remembered
    assert french.headers["content-language"] == "fr" and "lang=fr" in french.headers["set-cookie"]
    assert site.get("/").headers["content-language"] == "fr"


def test_a_badge_or_feed_asked_in_english_sets_no_cookie(site: Site) -> None:
    for path in ("/badge/alpha/optique.svg?lang=en", "/feed.atom?lang=en", "/api/v2/summary.json?lang=en"):
        answer = site.get(path)
        assert answer.status_code == 200 and "set-cookie" not in answer.headers, path
    assert site.get("/").headers["content-language"] == "fr"


def test_accept_language_selects_english_french_by_default(site: Site) -> None:
    assert site.get("/").headers["content-language"] == "fr"
    english = site.get("/", **{"accept-language": "en-GB,en;q=0.9"})
    assert english.headers["content-language"] == "en" and "By network and service line" in english.text
    assert "set-cookie" not in english.headers  # only an explicit choice is remembered


def test_html_varies_on_language_json_does_not(site: Site) -> None:
    vary = site.get("/").headers["vary"].lower()
    assert "accept-language" in vary and "cookie" in vary
    assert "cookie" not in site.get("/api/v2/summary.json").headers.get("vary", "").lower()


def test_a_feed_asked_in_english_is_english_whatever_was_cached_before(site: Site) -> None:
    # the feeds pick their language from ?lang= only: the cookie must not make /feed.atom and
    # /feed.atom?lang=en share one cache entry
    site.client.cookies.set("lang", "en")
    assert 'xml:lang="fr"' in site.get("/feed.atom").text
    assert 'xml:lang="en"' in site.get("/feed.atom?lang=en").text


def test_a_feed_names_the_host_it_was_asked_on(site: Site) -> None:
    one = site.get("/feed.atom", host="status.example.org").text
    other = site.get("/feed.atom", host="tpmon.example.net").text
    assert "status.example.org" in one
    assert "tpmon.example.net" in other and "status.example.org" not in other


def test_a_json_document_is_cached_too(site: Site) -> None:
    first = site.get("/api/v2/summary.json")
    builds = site.services.pages.builds
    second = site.get("/api/v2/summary.json", **{"if-none-match": first.headers["etag"]})
    assert second.status_code == 304 and site.services.pages.builds == builds


def test_pages_are_compressed_once_for_clients_that_accept_gzip(site: Site) -> None:
    plain = site.client.get("/", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    raw = site.client.get("/", headers={"accept-encoding": "br, gzip;q=0.8"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.text == plain.text  # the same page, decoded by the client
    assert int(raw.headers["content-length"]) < len(plain.content) / 2
    assert "accept-encoding" in raw.headers["vary"].lower() and "accept-encoding" in plain.headers["vary"].lower()
    # two representations, two strong validators; each answers 304 to its own tag only
    assert raw.headers["etag"] != plain.headers["etag"]
    assert site.get("/", **{"if-none-match": raw.headers["etag"], "accept-encoding": "gzip"}).status_code == 304
    assert site.get("/", **{"if-none-match": raw.headers["etag"], "accept-encoding": "identity"}).status_code == 200
    assert site.get("/", **{"accept-encoding": "gzip;q=0"}).headers.get("content-encoding") is None
    assert site.renders["/"] == 1  # compressed when built, not per request
