"""The page cache: one render per change of what a page shows, strong ETags and 304s, the language, never errors;
and pages that never wait on the store (issue 11): the last good rendering, with its age, when it fails or hangs."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
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
from monitor.web import page_cache, page_routes
from monitor.web.page_cache import CachedBody, PageCache

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
        monkeypatch.setitem(page_routes.PAGES, path, page_routes.Page(counted, page.paged, page.query))
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


def test_a_conditional_request_answered_before_gets_its_304_before_routing_with_the_same_headers(site: Site) -> None:
    cache = site.services.pages
    page = site.get("/", **{"accept-encoding": "identity"})
    hits = cache.hits
    answer = site.get("/", **{"accept-encoding": "identity", "if-none-match": page.headers["etag"]})
    assert answer.status_code == 304 and answer.content == b""
    assert cache.revalidated == 1 and cache.hits == hits  # from the table: the route did not run
    for name in ("etag", "cache-control", "vary", "content-language", "content-security-policy", "x-frame-options"):
        assert answer.headers[name] == page.headers[name], name
    assert "content-type" not in answer.headers and "set-cookie" not in answer.headers
    badge = site.get("/badge/alpha/optique.svg")
    again = site.get("/badge/alpha/optique.svg", **{"if-none-match": badge.headers["etag"]})
    assert again.status_code == 304 and cache.revalidated == 2
    assert again.headers["content-security-policy"] == badge.headers["content-security-policy"]  # frame-ancestors *


def test_the_304_table_never_answers_another_representation_or_an_older_stamp(site: Site) -> None:
    cache = site.services.pages
    etag = site.get("/", **{"accept-encoding": "identity"}).headers["etag"]
    english = site.get("/", **{"accept-encoding": "identity", "accept-language": "en", "if-none-match": etag})
    assert english.status_code == 200 and english.headers["content-language"] == "en"  # another page
    gzipped = site.get("/", **{"accept-encoding": "gzip", "if-none-match": etag})
    assert gzipped.status_code == 200  # its own validator
    assert cache.revalidated == 0
    site.probe("pec")  # the page changes
    changed = site.get("/", **{"accept-encoding": "identity", "if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag and cache.revalidated == 0
    site.clock.now = NOW + timedelta(minutes=1)  # a new stamp, the same page: 304 again, through the route
    again = site.get("/", **{"accept-encoding": "identity", "if-none-match": changed.headers["etag"]})
    assert again.status_code == 304 and cache.revalidated == 0


def _change(site: Site, what: str) -> None:
    """Change what the site shows, one way or another."""
    if what == "a state":
        site.target.codes["/pec"] = 500
        site.probe("pec")  # threshold 1: pec down, optique no longer operational
    elif what == "an incident":
        declarations = Declarations(site.services.store, site.services.settings, clock=site.clock)
        first = IncidentUpdate(NOW, "investigating", Bilingual("Les PEC optique échouent."))
        declarations.open_incident(
            title=Bilingual("PEC optique en panne"), impact="major", first=first, components=["line:alpha/optique"]
        )
        site.refresh()
    else:  # a reload
        text = alpha_config(site.target.url("")).replace("name: Alpha", "name: Alpha Santé")
        site.config.write_text(text, encoding="utf-8")
        assert site.services.reload() is not None


SHOWN = {  # path → what it shows after each change (its old version did not)
    "/": {"a state": "Ce qui ne marche pas", "an incident": "PEC optique en panne", "a reload": "Alpha Santé"},
    "/reseaux/alpha": {"a state": "state-down", "an incident": "PEC optique en panne", "a reload": "Alpha Santé"},
    "/api/v2/summary.json": {"a state": '"minor"', "an incident": "PEC optique en panne", "a reload": "Alpha Santé"},
    "/badge/alpha/optique.svg": {"a state": "Statut inconnu", "a reload": "Alpha Santé"},
}


@pytest.mark.parametrize(("path", "what"), [(path, what) for path, shown in SHOWN.items() for what in shown])
def test_the_validator_of_a_page_that_changed_since_gets_the_new_page_never_a_304(
    site: Site, path: str, what: str
) -> None:
    cache = site.services.pages
    site.probe("dre")
    site.probe("pec")  # both operational
    old = site.get(path)
    assert old.status_code == 200 and SHOWN[path][what] not in old.text
    validator = {"if-none-match": old.headers["etag"]}
    assert site.get(path, **validator).status_code == 304 and cache.revalidated == 1  # from the 304 table
    _change(site, what)
    new = site.get(path, **validator)  # a reader, or a CDN, asking whether its copy is still the page
    assert new.status_code == 200, f"{path} after {what}: {new.status_code}"
    assert SHOWN[path][what] in new.text and new.headers["etag"] != old.headers["etag"]
    assert site.get(path, **validator).status_code == 200  # and again: the new page's validator is not the old one
    assert site.get(path, **{"if-none-match": new.headers["etag"]}).status_code == 304


def test_a_build_begun_before_a_change_never_validates_a_copy_from_before_it(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request arriving after a change never waits for a build that read the state before it: that build's page
    (the reader's copy) would be answered 304, or 200 as if current."""
    services = site.services
    site.probe("dre")
    site.probe("pec")
    before = site.get("/", **{"accept-encoding": "identity"})
    site.clock.now = NOW + timedelta(minutes=1)  # a new stamp, the same page: the next request builds it again
    began, release = threading.Event(), threading.Event()
    calls = 0

    def as_it_was() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first build reads the state, then takes its time
            shown = services.snapshot()
            services.snapshot = lambda: shown  # type: ignore[method-assign]  # what it read, it renders
            began.set()
            assert release.wait(10)
        else:
            del services.snapshot  # the next builds read the state of now

    site.holds["/"] = as_it_was
    looked = threading.Semaphore(0)
    plain_get = services.pages.get

    def get(key: Hashable, stamp: Hashable) -> Any:
        found = plain_get(key, stamp)
        looked.release()  # from here to waiting for a build, the request does not yield to the loop
        return found

    monkeypatch.setattr(services.pages, "get", get)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(site.get, "/", **{"accept-encoding": "identity"})
        assert began.wait(10)
        site.target.codes["/pec"] = 500
        site.probe("pec")  # the state changes while that build runs
        assert looked.acquire(timeout=10)  # the first request's
        late = pool.submit(site.get, "/", **{"accept-encoding": "identity", "if-none-match": before.headers["etag"]})
        assert looked.acquire(timeout=10)  # the late one is in the page cache while the first build still runs
        release.set()
        assert first.result(10).status_code == 200  # asked before the change: the page of before is its answer
        answer = late.result(10)
    assert answer.status_code == 200, "a copy from before the change validated"
    assert "Ce qui ne marche pas" in answer.text  # asked after: the page of after
    assert answer.headers["etag"] != before.headers["etag"]


def test_a_validator_of_one_language_or_encoding_never_validates_another(site: Site) -> None:
    identity = {"accept-encoding": "identity"}
    french = site.get("/", **identity)
    english = site.get("/", **identity, **{"accept-language": "en"})
    gzipped = site.get("/", **{"accept-encoding": "gzip"})
    assert len({french.headers["etag"], english.headers["etag"], gzipped.headers["etag"]}) == 3
    for _ in range(2):  # the second time, each validator is in the 304 table
        answer = site.get("/", **identity, **{"if-none-match": english.headers["etag"]})
        assert answer.status_code == 200 and answer.headers["content-language"] == "fr"
        answer = site.get("/", **identity, **{"accept-language": "en", "if-none-match": french.headers["etag"]})
        assert answer.status_code == 200 and answer.headers["content-language"] == "en"
        answer = site.get("/", **identity, **{"if-none-match": gzipped.headers["etag"]})
        assert answer.status_code == 200 and answer.headers.get("content-encoding") is None
        answer = site.get("/", **{"accept-encoding": "gzip", "if-none-match": french.headers["etag"]})
        assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
        answer = site.get("/?lang=en", **identity, **{"if-none-match": french.headers["etag"]})
        assert answer.status_code == 200 and answer.headers["content-language"] == "en"
        site.client.cookies.clear()


def test_a_request_with_two_language_headers_never_lends_its_validator_to_a_request_with_one(site: Site) -> None:
    identity = [("accept-encoding", "identity")]
    twice = site.client.get("/", headers=[*identity, ("accept-language", "en"), ("accept-language", "fr")])
    assert twice.headers["content-language"] == "en"  # the first header line is the one read
    asked = site.client.get(
        "/", headers=[*identity, ("accept-language", "fr"), ("if-none-match", twice.headers["etag"])]
    )
    assert asked.status_code == 200 and asked.headers["content-language"] == "fr"


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

    monkeypatch.setattr(site.services.store, "_read", broken)  # every read of the store fails
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
    same = site.get("/")  # the same cached page and representation as /?lang=fr: its cookie was said once only
    assert same.headers["content-language"] == "fr" and "set-cookie" not in same.headers


@pytest.mark.parametrize("path", ["/", "/reseaux/alpha", "/a%3Fb", "/é t", "/x?y#z", "/back\\slash"])
def test_the_cache_key_names_a_path_as_starlette_does(path: str) -> None:
    scope = {"type": "http", "path": path, "query_string": b"", "headers": [], "server": ("127.0.0.1", 80)}
    assert page_cache._path(scope) == Request(scope).url.path


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


def test_a_hostile_host_is_never_written_into_a_document_nor_multiplies_the_cache(site: Site) -> None:
    builds = site.services.pages.builds
    for hostile in ("evil.example", "evil.example:8080", "attacker.example.net", "[::1]:1234", "x" * 300):
        for path in ("/feed.atom", "/feed.rss", "/api/v2/summary.json", "/api/v2/incidents.json"):
            answer = site.get(path, host=hostile)
            assert answer.status_code == 200
            assert "evil" not in answer.text and "attacker" not in answer.text and "1234" not in answer.text
            assert "http://testserver" in answer.text  # the address the connection reached
    assert site.services.pages.builds == builds + 4  # one document each, whatever the Host
    local = site.get("/feed.atom", host="localhost").text
    assert 'href="http://localhost/feed.atom"' in local  # loopback is trusted: a local reader follows its links


def test_allowed_hosts_are_named_and_public_url_wins_over_any_host(site: Site) -> None:
    config = alpha_config(site.target.url(""))
    site.config.write_text("web: {allowed_hosts: [status.example.org, tpmon.example.net]}\n" + config, "utf-8")
    assert site.services.reload() is not None
    one = site.get("/feed.atom", host="status.example.org").text
    other = site.get("/feed.atom", host="tpmon.example.net").text
    assert 'href="http://status.example.org/feed.atom"' in one
    assert "tpmon.example.net" in other and "status.example.org" not in other
    assert "evil.example" not in site.get("/feed.atom", host="evil.example").text
    site.config.write_text("web: {public_url: 'https://etat.example.fr/'}\n" + config, "utf-8")
    assert site.services.reload() is not None
    for host in ("status.example.org", "evil.example", "localhost"):
        feed = site.get("/feed.atom?lang=en", host=host).text
        assert 'href="https://etat.example.fr/feed.atom?lang=en"' in feed
        assert host not in feed
        summary = site.get("/api/v2/summary.json", host=host).json()
        assert summary["page"]["url"] == "https://etat.example.fr"


def test_unknown_query_parameters_name_the_same_page(site: Site) -> None:
    first = site.get("/reseaux/alpha")
    for query in ("utm_source=sms", "x=1&y=2", "page=3", "lang=xx", "a" * 1000):
        again = site.get(f"/reseaux/alpha?{query}")
        assert again.status_code == 200 and again.headers["etag"] == first.headers["etag"], query
    assert site.renders["/reseaux/{network}"] == 1
    # a list's page number is part of what it names; other parameters are not
    assert site.get("/incidents?page=1&utm_source=x").status_code == 200
    assert site.get("/incidents?page=1").status_code == 200
    assert site.renders["/incidents"] == 1


def test_the_home_pages_line_filter_is_its_own_page_and_an_unknown_one_a_404_never_kept(site: Site) -> None:
    assert page_routes.PAGES["/"].query == ("domaine",)  # what the home page reads, so what its key holds
    home = site.get("/")
    optique, pharmacie = site.get("/?domaine=optique"), site.get("/?domaine=pharmacie")
    assert (home.status_code, optique.status_code, pharmacie.status_code) == (200, 200, 200)
    assert len({home.headers["etag"], optique.headers["etag"], pharmacie.headers["etag"]}) == 3
    assert "<title>Optique — " in optique.text and "<title>Pharmacie — " in pharmacie.text
    assert "<title>Optique" not in home.text and "<title>Pharmacie" not in optique.text
    assert site.renders["/"] == 3
    # each a cached page of its own, other parameters dropped from its key
    assert site.get("/?domaine=optique&utm_source=sms").headers["etag"] == optique.headers["etag"]
    assert site.get("/").headers["etag"] == home.headers["etag"]
    assert site.renders["/"] == 3
    # an unknown line: a 404 each time, never a cache entry (a flood of them does not grow the cache)
    kept = len(site.services.pages)
    for value in ("nope", "nope", "OPTIQUE", "optique%00", "x" * 500):
        missing = site.get(f"/?domaine={value}")
        assert missing.status_code == 404 and "etag" not in missing.headers, value
    assert len(site.services.pages) == kept
    assert site.renders["/"] == 3 + 5


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


# --- late pages: the store cut or hung -----------------------------------------------------------------------

NOTICE_FR = "Données du lun. 12 févr. 2024, 13:00 : cette page n'a pas pu être recalculée à temps"
NOTICE_EN = "Data as of Mon 12 Feb 2024, 13:00: this page could not be computed again in time"


def cut(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every read and write of the store fails, as with a database that refuses connections."""
    monkeypatch.setattr(site.services.store, "engine", create_engine("sqlite:////nonexistent-tpmon-dir/tpmon.db"))


LATE_PAGES = ("/reseaux/alpha", "/reseaux/alpha/optique", "/incidents", "/api/v1/history/line:alpha/optique")
# the snapshot's (states, open and recent incidents, maintenance): never the store
FROM_MEMORY = (
    "/?lang=fr",
    "/api/v2/summary.json",
    "/api/v2/incidents.json",
    "/feed.atom",
    "/api/v1/status",
    "/badge/alpha/optique.svg",
)


def test_with_the_store_cut_every_page_is_its_last_rendering_with_its_age(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.probe("dre")
    site.probe("pec")
    first = {path: site.get(path) for path in LATE_PAGES}
    assert {path: a.status_code for path, a in first.items()} == dict.fromkeys(LATE_PAGES, 200)
    cut(site, monkeypatch)
    site.clock.now = NOW + timedelta(minutes=3)  # every page is due again: they read the store, which fails
    for path in LATE_PAGES:
        late = site.get(path)
        assert late.status_code == 200, path
        assert late.headers["age"] == "180", path
        if late.headers["content-type"].startswith("text/html"):
            assert NOTICE_FR in late.text, path
            assert late.text.count('class="notice aged"') == 1
        else:
            assert late.content == first[path].content, path  # a document as it was: its own dates say when
    for path in FROM_MEMORY:  # what needs no store is built afresh, at once
        fresh = site.get(path)
        assert fresh.status_code == 200 and "age" not in fresh.headers, path
    never = site.get("/reseaux/alpha?lang=en")  # never rendered in English: nothing to fall back on
    assert never.status_code == 503 and "age" not in never.headers


def test_a_late_page_is_rebuilt_once_the_store_answers_again(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    path = "/reseaux/alpha/optique"
    assert site.get(path).status_code == 200
    renders = site.renders["/reseaux/{network}/{line}"]

    cut(site, monkeypatch)
    site.clock.now = NOW + timedelta(minutes=1)
    late = site.get(path)
    assert "age" in late.headers and NOTICE_FR in late.text
    assert site.renders["/reseaux/{network}/{line}"] == renders + 1  # tried once…
    assert "age" in site.get(path).headers
    assert site.renders["/reseaux/{network}/{line}"] == renders + 1  # …and not again at once for every reader
    monkeypatch.undo()
    site.client.portal.call(_forget_failures, site.services.pages)  # type: ignore[union-attr]
    fresh = site.get(path)
    assert fresh.status_code == 200 and "age" not in fresh.headers and "notice aged" not in fresh.text


async def _forget_failures(cache: PageCache) -> None:
    """What RETRY_AFTER seconds do."""
    cache._failed.clear()


def held_until(event: threading.Event) -> Callable[[], None]:
    """A builder hold: the build sits there (as on a hung store) until `event` is set."""

    def hold() -> None:
        event.wait(30)

    return hold


def test_with_the_store_hung_a_page_answers_from_memory_while_its_build_waits(site: Site) -> None:
    path = "/reseaux/alpha"
    site.get(f"{path}?lang=fr")
    site.get(f"{path}?lang=en")
    released = threading.Event()
    site.holds["/reseaux/{network}"] = held_until(released)  # the build sits on a hung store
    site.services.writer.stats.db_up = False  # known down: no waiting at all
    try:
        site.clock.now = NOW + timedelta(minutes=1)
        late = site.get(f"{path}?lang=fr")
        assert late.status_code == 200 and late.headers["age"] == "60" and NOTICE_FR in late.text
        english = site.get(f"{path}?lang=en")
        assert NOTICE_EN in english.text and english.headers["content-language"] == "en"
        # every other reader meanwhile: the same, and no second build is started
        assert site.get(f"{path}?lang=fr").headers["age"] == "60"
        assert site.renders["/reseaux/{network}"] == 4  # 2 first, then one per language, held
    finally:
        site.services.writer.stats.db_up = True
        released.set()


def test_a_build_that_runs_late_makes_one_reader_wait_not_every_one(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung store before it is known down: the first reader waits FRESH_WAIT, the next ones do not wait."""
    path = "/reseaux/alpha?lang=fr"
    site.get(path)
    released = threading.Event()
    site.holds["/reseaux/{network}"] = held_until(released)
    monkeypatch.setattr(page_cache, "FRESH_WAIT", 0.2)
    try:
        site.clock.now = NOW + timedelta(minutes=1)
        first = site.get(path)
        assert first.headers["age"] == "60" and NOTICE_FR in first.text
        key = ("/reseaux/alpha", (), "fr", False, "")
        assert key in site.services.pages._overdue  # …so the next readers get it at once
        assert site.get(path).headers["age"] == "60"
        assert site.renders["/reseaux/{network}"] == 2
    finally:
        released.set()
    fresh = wait_until_fresh(site, path)
    assert NOTICE_FR not in fresh.text and site.renders["/reseaux/{network}"] == 2


def wait_until_fresh(site: Site, path: str) -> Any:
    """The page once its background build is done (the test client's loop finishes it)."""
    from targets import wait_for

    return wait_for(lambda: (a := site.get(path)).status_code == 200 and "age" not in a.headers and a, what="fresh")


def test_a_page_never_rendered_cannot_be_late_it_is_a_503_with_retry_after(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = threading.Event()
    site.holds["/reseaux/{network}"] = held_until(released)
    monkeypatch.setattr(page_cache, "FRESH_WAIT", 0.2)
    site.services.writer.stats.db_up = False
    try:
        answer = site.get("/reseaux/alpha")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert answer.headers["cache-control"] == "no-store"
    finally:
        site.services.writer.stats.db_up = True
        released.set()


# --- the cache itself, in one event loop --------------------------------------------------------------------------


def body(text: str) -> Response:
    return PlainTextResponse(text)


async def test_one_build_per_key_and_new_keys_are_admitted_within_a_bound() -> None:
    cache = PageCache(lambda: 1)
    gate = asyncio.Event()
    started: list[str] = []

    def build(name: str) -> Any:
        async def run() -> Response:
            started.append(name)
            await gate.wait()
            return body(name)

        return run

    same = [asyncio.create_task(cache.fresh_or_last(("/a", (), "fr"), 1, build("a"), "fr")) for _ in range(5)]
    others = [
        asyncio.create_task(cache.fresh_or_last((f"/n{i}", (), "fr"), 1, build(f"n{i}"), "fr"))
        for i in range(page_cache.MAX_NEW_BUILDS + 3)
    ]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert started.count("a") == 1  # five requests, one build
    busy = [t.result() for t in others if t.done()]
    assert len(busy) == 4  # past MAX_NEW_BUILDS new keys at once: refused at once, not queued
    assert all(isinstance(b, Response) and b.status_code == 503 for b in busy)
    gate.set()
    answers = await asyncio.gather(*same)
    assert {a[0].body for a in answers if isinstance(a, tuple)} == {b"a"}
    assert cache.builds == 1 + page_cache.MAX_NEW_BUILDS - 1


async def test_the_tables_are_bounded_and_a_query_flood_never_evicts_a_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(page_cache, "MAX_QUERIED", 8)
    monkeypatch.setattr(page_cache, "MAX_PAGES", 4)
    cache = PageCache(lambda: 1)
    page = CachedBody.of(body("page"))
    cache.put(("/", (), "fr"), 1, page)
    for i in range(100):
        cache.put(("/api/v1/incidents", (("offset", str(i)),), "fr"), 1, page)
    assert cache.get(("/", (), "fr"), 1) is page
    assert len(cache) == 1 + 8
    for i in range(3):
        cache.put((f"/p{i}", (), "fr"), 1, page)
    cache.get(("/", (), "fr"), 1)  # used: the least recently used page goes first, not this one
    cache.put(("/p9", (), "fr"), 1, page)
    assert cache.get(("/", (), "fr"), 1) is page
    assert cache.get(("/p0", (), "fr"), 1) is None


def _reader(reads: list[str]) -> Callable[[str], Callable[[], str]]:
    """`read(value)`: a reading that gives `value` and notes it in `reads` each time it is made."""

    def read(value: str) -> Callable[[], str]:
        def run() -> str:
            reads.append(value)
            return value

        return run

    return read


def test_a_read_is_reused_under_one_stamp_read_again_under_the_next_and_a_failed_one_not_kept() -> None:
    stamp = [1]
    cache = PageCache(lambda: stamp[0])
    reads: list[str] = []

    read = _reader(reads)

    assert cache.reuse("k", read("first")) == "first"
    assert cache.reuse("k", read("second")) == "first"  # the same stamp: not read again
    assert cache.reuse("other", read("other")) == "other"
    stamp[0] = 2  # what pages show changed: every reading is read again
    assert cache.reuse("k", read("third")) == "third"
    assert reads == ["first", "other", "third"]
    assert cache.reuses == 1

    def failing() -> str:
        raise StoreError("down")

    with pytest.raises(StoreError):
        cache.reuse("broken", failing)
    assert cache.reuse("broken", read("back")) == "back"  # the failure was not kept
    reads.clear()
    for number in range(page_cache.MAX_REUSED + 1):  # bounded: the oldest readings go
        cache.reuse(number, read(str(number)))
    assert cache.reuse(0, read("again")) == "again" and len(cache._readings.values) <= page_cache.MAX_REUSED
    refused = cache.reuse("partial", read("partial"), keep=lambda value: False)  # e.g. not stored yet
    assert refused == "partial" and cache.reuse("partial", read("whole")) == "whole"


def test_a_reading_of_the_history_is_kept_across_changes_of_the_board_and_read_again_when_the_history_moves() -> None:
    """The bars (roll-ups) are kept while the board changes (a publication per change), read again as soon as the
    history stamp moves (a housekeeping run, the next minute, another config): never yesterday's bars."""
    board, history = [1], [("config", 7, 100)]
    cache = PageCache(lambda: (board[0], history[0]), history_stamp=lambda: history[0])
    reads: list[str] = []

    read = _reader(reads)

    assert cache.reuse("bars", read("monday"), history=True) == "monday"
    board[0] = 2  # a change of the board: pages change, the roll-ups do not
    assert cache.reuse("bars", read("again"), history=True) == "monday"
    assert cache.reuse("results", read("results"), history=False) == "results"
    history[0] = ("config", 8, 100)  # housekeeping stored fresh roll-ups
    assert cache.reuse("bars", read("fresh"), history=True) == "fresh"
    history[0] = ("config", 8, 101)  # the next minute (a new day, roll-ups another instance wrote)
    assert cache.reuse("bars", read("next minute"), history=True) == "next minute"
    assert reads == ["monday", "results", "fresh", "next minute"]
    plain = PageCache(lambda: board[0])  # without a history stamp: kept under the page stamp
    assert plain.reuse("bars", read("a"), history=True) == "a"
    board[0] = 3
    assert plain.reuse("bars", read("b"), history=True) == "b"
