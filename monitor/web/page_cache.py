"""Public responses rendered once per change of what they show, served from memory with an ETag — and from
memory still, with their age, when they cannot be rendered again in time (issue 11).

A response is cached under what names it: its path, the query parameters its route reads (any other is dropped:
`?utm_source=…` or a random string names the same page), its language and, for documents with absolute URLs,
their public origin. It carries the `stamp` of the moment it was built: the board's version (any shown status),
the declarations' version, the history's version (roll-ups) and the current minute (the "last checked" line).
While the stamp holds, a request is a dict lookup; one whose `If-None-Match` matches gets a 304 without a body.

When the stamp has moved, one build per key runs (single flight) on the cache's own small thread pool, never the
default executor that the probes resolve names on. A request waits for it a short while; past that, or when the
store is known down, it gets the last good rendering with an `Age` header and, on a page, a visible "données du …"
notice, while the build goes on in the background (and once a reader has waited for a build in vain, the next
ones get the last rendering at once, until the build ends). The cache is bounded: pages without query parameters
and pages with them are kept in two LRU tables, so a flood of distinct queries never evicts `/` or `/reseaux/…`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import ipaddress
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Scope

from ..config import WebSettings
from ..i18n import Lang, format_datetime, pick_lang
from .fragments import Fragments

__all__ = [
    "CachedBody",
    "PageCache",
    "Prepared",
    "Validator",
    "cached",
    "etag_matches",
    "prepare",
    "public_origin",
    "request_lang",
    "revalidation_key",
]

log = logging.getLogger("tpmon.web")

Endpoint = Callable[[Request], Awaitable[Response]]
P = ParamSpec("P")
T = TypeVar("T")

MAX_PAGES = 2048  # keys without query parameters: bounded by the config's pages × languages in practice
MAX_QUERIED = 256  # keys with some (`?page=N`, API parameters): what a crawler or an attacker can vary
BUILD_THREADS = 4  # builds (and their store reads) run here, off the loop and off the default executor
MAX_NEW_BUILDS = 16  # builds at once of keys never built before; past it a new key gets 503 (Retry-After: 1)
FRESH_WAIT = 1.0  # seconds a request waits for a rebuild when it has an older rendering to fall back on
DEGRADED_WAIT = 0.05  # the same while the store is down or a recent build was late
FIRST_WAIT = 10.0  # seconds a request with nothing to fall back on waits (1 s while degraded), then 503
FAILED_FOR = 10.0  # seconds a build that failed for want of the store keeps every page from waiting long
RETRY_AFTER = 5.0  # seconds before a build that failed for want of the store is tried again for a page
GZIP_FROM = 1024  # bytes: below, compressing saves less than it costs
KEEP_HEADERS = ("content-type", "content-language", "vary", "access-control-allow-origin", "link", "cache-control")
AGE_MARK = b"<!--tpmon:age-->"  # where base.html lets the age of a late page be said
AGE_NOTICE = {
    "fr": "Données du {at} : cette page n'a pas pu être recalculée à temps (base de données de tpmon lente ou "
    "injoignable) ; l'état a pu changer depuis.",
    "en": "Data as of {at}: this page could not be computed again in time (tpmon's database is slow or "
    "unreachable); the state may have changed since.",
}
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_PIECES = 65536  # the documents' pieces: a few per check, line and network of the config × languages
MAX_REUSED = 1024  # readings `reuse` keeps under one stamp
MAX_VALIDATORS = 4096  # requests remembered for a 304 without routing; past it, the table starts again
_VARYING = (b"host", b"cookie", b"accept-language", b"accept-encoding")  # what a cached answer depends on


def revalidation_key(scope: Mapping[str, Any]) -> tuple[Hashable, bytes | None]:
    """(what names a request's answer exactly, its If-None-Match): the path and query as sent, the headers a
    cached answer depends on (language, encoding, the Host of an absolute URL), the scheme and the address."""
    found: dict[bytes, tuple[bytes, ...]] = {}
    inm: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            inm = value if inm is None else inm + b", " + value  # several lines are one list (RFC 9110 §5.3)
        elif name in _VARYING:
            found[name] = (*found.get(name, ()), value)  # every line, in order: the app reads the first
    server = scope.get("server")
    key = (
        scope["path"],
        scope["query_string"],
        tuple(found.get(name) for name in _VARYING),
        scope.get("scheme"),
        tuple(server) if server else None,
    )
    return key, inm


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: any listed tag, weak or not, equal to `etag`; or `*`."""
    return etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")} or if_none_match.strip() == "*"


@dataclass(frozen=True)
class Validator:
    """How a request was last answered: under which stamp, with which ETag, and the headers of its 304."""

    stamp: Hashable
    etag: str
    headers: list[tuple[bytes, bytes]]


def request_lang(request: Request) -> Lang:
    """`?lang=` over the `lang` cookie over Accept-Language; French by default."""
    return pick_lang(
        request.query_params.get("lang"), request.cookies.get("lang"), request.headers.get("accept-language")
    )


def _split_host(header: str) -> tuple[str, int | None] | None:
    """(host, port) of a Host header, host lowercased; None when it is not one."""
    header = header.strip().lower()
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else None)
    else:
        host, _, port_text = header.partition(":")
    if port_text is None or (port_text and not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5)):
        return None
    return (host, int(port_text) if port_text else None) if host else None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def public_origin(request: Request) -> str:
    """The origin of the absolute URLs written in a document: never taken from a hostile `Host` header.

    The export's `--base-url`, else the config's `web.public_url`, else the request's Host when it names a host
    of `web.allowed_hosts` or loopback (with no port or the listener's own), else the address the connection
    reached (a server's own address: never one a client chose).
    """
    exported: str | None = request.scope.get("state", {}).get("public_origin")  # (request.state raises: slower)
    if exported:
        return exported
    web: WebSettings = request.state.services.settings.web
    if web.public_url:
        return web.public_url
    server = request.scope.get("server")  # a list from some ASGI servers: a tuple for the memo
    host, https = request.headers.get("host", ""), request.scope.get("scheme") == "https"
    return _origin(web, host, https, (str(server[0]), int(server[1])) if server else None)


@functools.lru_cache(maxsize=256)  # per request it is a lookup; varied Host headers only churn these 256
def _origin(web: WebSettings, host_header: str, https: bool, server: tuple[str, int] | None) -> str:
    scheme, default = ("https", 443) if https else ("http", 80)
    server = server or ("127.0.0.1", default)
    named = _split_host(host_header)
    if named is not None:
        host, port = named
        if (host in web.allowed_hosts or host in LOOPBACK) and port in (None, server[1]):
            return f"{scheme}://{_bracketed(host)}" + (f":{port}" if port not in (None, default) else "")
    address = str(server[0])
    with contextlib.suppress(ValueError):  # else a name given by the ASGI server (the test client's): kept
        address = str(ipaddress.ip_address(address))
    return f"{scheme}://{_bracketed(address)}" + (f":{server[1]}" if server[1] != default else "")


@dataclass(frozen=True)
class CachedBody:
    """A response as bytes, with its headers and a strong ETag computed from the bytes."""

    body: bytes
    status_code: int
    headers: tuple[tuple[str, str], ...]
    etag: str
    gzipped: bytes | None = None  # compressed once, when built; None when it would not be smaller
    # each representation (gzip or not) as it goes on the wire, made at its first request (see `prepare`)
    prepared: dict[bool, Prepared] = field(default_factory=dict, compare=False, repr=False)

    @property
    def gzip_etag(self) -> str:
        """Another representation, another strong validator (RFC 9110 §8.8.3)."""
        return self.etag[:-1] + '-gz"'

    @classmethod
    def of(cls, response: Response) -> CachedBody:
        headers = tuple((k, v) for k, v in response.headers.items() if k.lower() in KEEP_HEADERS)
        return cls.from_bytes(bytes(response.body), response.status_code, headers)

    @classmethod
    def from_bytes(cls, body: bytes, status_code: int, headers: tuple[tuple[str, str], ...]) -> CachedBody:
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_FROM else None
        if gzipped is not None and len(gzipped) >= len(body):
            gzipped = None
        return cls(body, status_code, headers, f'"{digest}"', gzipped)

    def aged(self, built_at: datetime, lang: Lang) -> CachedBody:
        """This response served late: a page says from when its data is; any other body is unchanged."""
        if AGE_MARK not in self.body:
            return self
        text = AGE_NOTICE[lang].format(at=format_datetime(built_at, lang))
        notice = f'<p class="notice aged" role="status">{text}</p>'.encode()
        return CachedBody.from_bytes(self.body.replace(AGE_MARK, notice, 1), self.status_code, self.headers)


@dataclass
class Entry:
    """A cached rendering: under which stamp and when it was built; its late variant made once, if needed."""

    stamp: Hashable
    page: CachedBody
    built_at: datetime
    aged: CachedBody | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Readings:
    """What `reuse` keeps, and the stamp it was read under."""

    stamp: Hashable = None
    values: dict[Hashable, Any] = field(default_factory=dict)


@dataclass
class PageCache:
    """Cached responses by key, fresh while the stamp they were built under is the current one."""

    stamp: Callable[[], Hashable]
    store_up: Callable[[], bool] = lambda: True
    clock: Callable[[], datetime] = _utc_now
    hits: int = 0
    builds: int = 0
    late_served: int = 0
    _pages: OrderedDict[Hashable, Entry] = field(default_factory=OrderedDict)
    _queried: OrderedDict[Hashable, Entry] = field(default_factory=OrderedDict)
    _building: dict[Hashable, asyncio.Task[CachedBody | Response]] = field(default_factory=dict)
    _building_stamps: dict[Hashable, Hashable] = field(default_factory=dict)  # the stamp each running build began at
    _new_building: int = 0
    _failed: dict[Hashable, float] = field(default_factory=dict)  # key → loop time of its last failed build
    _failing_until: float = 0.0
    _overdue: set[Hashable] = field(default_factory=set)  # keys whose running build a request gave up waiting for
    _pool: ThreadPoolExecutor | None = None
    # request as sent → how it was answered: a conditional request answered from here skips routing (revalidation.py)
    validators: dict[Hashable, Validator] = field(default_factory=dict)
    revalidated: int = 0
    reuses: int = 0  # reads `reuse` answered without reading again
    # what only the history (roll-ups) changes: the config, the history's version, the minute; None: `stamp`
    history_stamp: Callable[[], Hashable] | None = None
    _readings: _Readings = field(default_factory=_Readings)  # under `stamp`
    _history_readings: _Readings = field(default_factory=_Readings)  # under `history_stamp`
    _reuse_lock: threading.Lock = field(default_factory=threading.Lock)
    fragments: Fragments = field(default_factory=Fragments)  # pieces several pages show alike, rendered once
    # pieces of the JSON and SVG documents (a check's JSON, a network's components…): one per check and line, so a
    # table of their own, which neither evicts the pages' fragments nor is evicted by them
    pieces: Fragments = field(default_factory=lambda: Fragments(limit=MAX_PIECES))

    def reuse(
        self, key: Hashable, read: Callable[[], T], keep: Callable[[T], bool] | None = None, *, history: bool = False
    ) -> T:
        """Blocking: `read()` once per stamp — what several pages, and each page in both languages, read alike
        (a network's last results, a line's transitions, its roll-ups) is read once while what pages show has
        not changed. The reading is no older than the stamp it is kept under (the stamp is taken first), as
        old at most as the pages cached under that stamp; a failed read is not kept, nor one `keep` refuses (it
        is read again next time: e.g. results the writer has not stored yet). With `history`, kept while
        `history_stamp` holds: a reading of the roll-ups alone (a line's bars), which no change of the board makes
        out of date, is read once across the publications of many changes, not once per change."""
        readings = self._history_readings if history else self._readings
        stamp = (self.history_stamp or self.stamp)() if history else self.stamp()
        with self._reuse_lock:
            if readings.stamp != stamp:
                readings.stamp, readings.values = stamp, {}
            elif key in readings.values:
                self.reuses += 1
                return readings.values[key]  # type: ignore[no-any-return]
        value = read()
        if keep is not None and not keep(value):
            return value
        with self._reuse_lock:
            if readings.stamp == stamp:
                if len(readings.values) >= MAX_REUSED and key not in readings.values:
                    readings.values.clear()  # many keys under one stamp (results changing): never more than this
                readings.values.setdefault(key, value)
        return value

    def remember(self, key: Hashable, validator: Validator) -> None:
        if len(self.validators) >= MAX_VALIDATORS and key not in self.validators:
            self.validators.clear()  # varied headers churn it; the pages themselves are never evicted by it
        self.validators[key] = validator

    # --- the tables ----------------------------------------------------------------------------------------------
    def _table(self, key: Hashable) -> OrderedDict[Hashable, Entry]:
        queried = isinstance(key, tuple) and len(key) > 1 and bool(key[1])
        return self._queried if queried else self._pages

    def entry(self, key: Hashable) -> Entry | None:
        """The last rendering under `key`, whatever its stamp."""
        return self._table(key).get(key)

    def get(self, key: Hashable, stamp: Hashable) -> CachedBody | None:
        """The rendering under `key` if it was built under `stamp`."""
        table = self._table(key)
        found = table.get(key)
        if found is not None and found.stamp == stamp:
            table.move_to_end(key)
            self.hits += 1
            return found.page
        return None

    def put(self, key: Hashable, stamp: Hashable, page: CachedBody) -> None:
        table = self._table(key)
        table[key] = Entry(stamp, page, self.clock())
        table.move_to_end(key)
        if len(table) > (MAX_QUERIED if table is self._queried else MAX_PAGES):
            table.popitem(last=False)  # the least recently used
        self.builds += 1

    def __len__(self) -> int:
        return len(self._pages) + len(self._queried)

    # --- building ------------------------------------------------------------------------------------------------
    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args)` on the builds' own threads (blocking work of a build: rendering, store reads)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(BUILD_THREADS, thread_name_prefix="tpmon-page")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    @property
    def degraded(self) -> bool:
        """The store is down, or a build failed for want of it lately: a request does not wait long then."""
        return not self.store_up() or asyncio.get_running_loop().time() < self._failing_until

    async def fresh_or_last(
        self, key: Hashable, stamp: Hashable, build: Callable[[], Awaitable[Response]], lang: Lang
    ) -> tuple[CachedBody, int | None] | Response:
        """The rendering under `stamp` (built now, once per key), with None; or, when that cannot be had in time,
        the last one with its age in seconds; or the response the build gave when there is no page to give."""
        last = self.entry(key)
        loop = asyncio.get_running_loop()
        if last is not None and key in self._overdue:
            return self._late(key, last, lang)  # a reader already waited for this build in vain: no one else waits
        degraded = self.degraded
        if last is not None:
            wait = DEGRADED_WAIT if degraded else FRESH_WAIT
        else:
            wait = FRESH_WAIT if degraded else FIRST_WAIT
        deadline = loop.time() + wait
        task = self._building.get(key)
        try:
            if task is not None and self._building_stamps.get(key) != stamp:
                # begun before this request, under an older stamp: its page may show the state before what this
                # request's stamp says (and validate a reader's copy from then); it ends, then this stamp's is built
                try:
                    await asyncio.wait_for(asyncio.shield(task), wait)
                except TimeoutError:
                    raise  # still running: late, as for any build
                except Exception:  # noqa: S110 - a build that raised (logged by its task): this one is tried
                    pass
                last = self.entry(key)
                task = self._building.get(key)  # begun since by a request of this stamp or a newer one: joined
            if task is None:
                failed = self._failed.get(key)
                if last is not None and failed is not None and loop.time() - failed < RETRY_AFTER:
                    return self._late(key, last, lang)  # it failed just now for want of the store: not yet again
                if last is None and self._new_building >= MAX_NEW_BUILDS:
                    return PlainTextResponse(_BUSY, status_code=503, headers={"Retry-After": "1", **_NO_STORE})
                task = self._start(key, stamp, build, new=last is None)
            outcome = await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - loop.time()))
        except TimeoutError:
            if key in self._building:
                self._overdue.add(key)
            if last is not None:
                return self._late(key, last, lang)
            return PlainTextResponse(_LATE, status_code=503, headers={"Retry-After": "5", **_NO_STORE})
        if isinstance(outcome, CachedBody):
            return outcome, None
        if outcome.status_code == 503 and last is not None:  # the store failed it: the last rendering will do
            return self._late(key, last, lang)
        return outcome

    def _start(
        self, key: Hashable, stamp: Hashable, build: Callable[[], Awaitable[Response]], *, new: bool
    ) -> asyncio.Task[CachedBody | Response]:
        async def building() -> CachedBody | Response:
            try:
                response = await build()
            finally:
                self._building.pop(key, None)
                self._building_stamps.pop(key, None)
                self._overdue.discard(key)
                if new:
                    self._new_building -= 1
            if response.status_code == 200 and hasattr(response, "body"):
                page = CachedBody.of(response)
                self.put(key, stamp, page)
                self._failed.pop(key, None)
                return page
            if response.status_code == 503:  # the endpoints' answer when the store fails them
                self._failing_until = asyncio.get_running_loop().time() + FAILED_FOR
                if len(self._failed) >= MAX_PAGES:
                    self._failed.clear()
                self._failed[key] = asyncio.get_running_loop().time()
            return response  # errors and streams are never cached

        if new:
            self._new_building += 1
        task = asyncio.get_running_loop().create_task(building())
        task.add_done_callback(_log_crash)
        self._building[key] = task
        self._building_stamps[key] = stamp
        return task

    def _late(self, key: Hashable, entry: Entry, lang: Lang) -> tuple[CachedBody, int]:
        if entry.aged is None:
            entry.aged = entry.page.aged(entry.built_at, lang)
        self.late_served += 1
        return entry.aged, max(0, int((self.clock() - entry.built_at).total_seconds()))


_BUSY = "Trop de pages à calculer en même temps ; réessayez / too many pages being computed at once; try again\n"
_LATE = "La page n'a pas pu être calculée à temps ; réessayez / the page could not be computed in time; try again\n"
_NO_STORE = {"Cache-Control": "no-store"}


def _log_crash(task: asyncio.Task[Any]) -> None:
    """A build that raised: its waiters got the error; one nobody waited for anymore is logged, not lost."""
    if not task.cancelled() and task.exception() is not None:
        log.error("a page build failed", exc_info=task.exception())


def _accepts_gzip(header: str) -> bool:
    """`gzip` (or `*`) in Accept-Encoding with a quality above zero."""
    for part in header.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=")
            try:
                return not params.strip().startswith("q=") or float(quality) > 0
            except ValueError:
                return False
    return False


@dataclass(frozen=True)
class Prepared:
    """One representation of a cached response as it goes on the wire: its validator and its raw headers, for a 200
    and for a 304 (made once per representation: a cache hit then encodes no header again)."""

    etag: str
    ok: list[tuple[bytes, bytes]]
    not_modified: list[tuple[bytes, bytes]]
    html: bool  # a page (not a feed, a badge or JSON): an explicit `?lang=` on it is remembered


def _headers(page: CachedBody, compressed: bool, age: int | None) -> dict[str, str]:
    """The headers of `page` as served (gzipped or not, late or not), but Content-Encoding and Content-Length."""
    headers = dict(page.headers)
    headers["etag"] = page.gzip_etag if compressed else page.etag
    headers.setdefault("cache-control", "no-cache")  # stored, always revalidated: a status page must be fresh
    if age is not None:
        headers["age"] = str(age)  # RFC 9111 §5.1: served late, from memory
    vary = ["Accept-Language", "Cookie"] if "text/html" in headers.get("content-type", "") else []
    if page.gzipped is not None:
        vary.append("Accept-Encoding")
    if vary:
        headers["vary"] = ", ".join(vary)
    return headers


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def prepare(page: CachedBody, compressed: bool, age: int | None = None) -> Prepared:
    """`page`'s representation (gzip or identity) ready to send: a 304 carries its headers but the body's type."""
    headers = _headers(page, compressed, age)
    not_modified = _raw({k: v for k, v in headers.items() if k != "content-type"})
    if compressed:
        headers["content-encoding"] = "gzip"
    body = page.gzipped if compressed and page.gzipped is not None else page.body
    headers["content-length"] = str(len(body))
    html = "text/html" in headers.get("content-type", "")
    return Prepared(headers["etag"], _raw(headers), not_modified, html)


class _Sent(Response):
    """A response whose raw headers are already made (Starlette's Response would encode them again)."""

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers  # a copy of its own: set_cookie appends to it
        self.body = body
        self.background = None


def _answer(request: Request, page: CachedBody, lang: Lang, age: int | None, remember: Hashable = None) -> Response:
    """The response to `request` from `page`; with `remember` (the stamp `page` is fresh under), its 304 headers are
    kept for the next conditional request as sent (revalidation.py answers it without routing)."""
    compressed = page.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", ""))
    if age is None:  # the usual case: made once per representation
        ready = page.prepared.get(compressed)
        if ready is None:
            ready = page.prepared[compressed] = prepare(page, compressed)
        if remember is not None:
            cache: PageCache = request.state.services.pages
            cache.remember(revalidation_key(request.scope)[0], Validator(remember, ready.etag, ready.not_modified))
    else:
        ready = prepare(page, compressed, age)
    inm = request.headers.get("if-none-match")
    if inm and etag_matches(inm, ready.etag):
        return _Sent(304, list(ready.not_modified))
    body = page.gzipped if compressed and page.gzipped is not None else page.body
    response = _Sent(page.status_code, list(ready.ok), body)
    # An explicit choice on a page is remembered for the next pages (a feed or a badge asked in English is not one).
    if ready.html and request.query_params.get("lang") == lang:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


def _path(scope: Scope) -> str:
    """`request.url.path` without building the URL (it showed in the profile of a cache hit): the same string."""
    path: str = scope["path"]
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def cached(
    endpoint: Endpoint, *, params: Sequence[str] = (), absolute: bool = False, always_fresh: bool = False
) -> Endpoint:
    """Serve `endpoint`'s 200 responses from the page cache of `request.state.services`.

    `params`: the query parameters the endpoint reads besides `lang` (every other is dropped from the key);
    `absolute`: its documents hold absolute URLs, so their public origin is part of the key;
    `always_fresh`: build it for every request (one build at a time still), the cache only a fallback.
    """
    wanted = tuple(params)

    async def serve(request: Request) -> Response:
        cache: PageCache = request.state.services.pages
        lang = request_lang(request)
        # `lang` always: feeds, badges and JSON take their language from `?lang=` alone, so `/feed.atom` asked with
        # an English cookie and `/feed.atom?lang=en` are two documents (and the key's language is the page's).
        query = request.query_params
        named = tuple((name, query[name]) for name in wanted if name in query)
        key = (_path(request.scope), named, lang, query.get("lang") == "en", public_origin(request) if absolute else "")
        stamp = cache.stamp()
        page = None if always_fresh else cache.get(key, stamp)
        age: int | None = None
        if page is None:
            outcome = await cache.fresh_or_last(key, stamp, lambda: endpoint(request), lang)
            if isinstance(outcome, Response):
                return outcome
            page, age = outcome
        entry = cache.entry(key)
        fresh = not always_fresh and entry is not None and entry.page is page and entry.stamp == stamp
        return _answer(request, page, lang, age, stamp if fresh else None)

    serve.__name__ = getattr(endpoint, "__name__", "page")
    serve.__doc__ = endpoint.__doc__
    return serve
