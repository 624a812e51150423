"""Public responses rendered once per change of what they show, served from memory with an ETag.

A response is cached under its host, path, query and language, with the `stamp` of the moment it was built: the
board's version (any shown status), the declarations' version (incidents, maintenance), the history's version
(roll-ups) and the current minute (the "last checked" line). While the stamp holds, every request is a dict
lookup; a request whose `If-None-Match` matches gets a 304 without a body.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from ..i18n import Lang, pick_lang

__all__ = ["CachedBody", "PageCache", "cached", "request_lang"]

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_ENTRIES = 4096  # paths × queries × languages; past it the cache starts again (a crawler walking ?page=)
GZIP_FROM = 1024  # bytes: below, compressing saves less than it costs
KEEP_HEADERS = ("content-type", "content-language", "vary", "access-control-allow-origin", "link", "cache-control")


def request_lang(request: Request) -> Lang:
    """`?lang=` over the `lang` cookie over Accept-Language; French by default."""
    return pick_lang(
        request.query_params.get("lang"), request.cookies.get("lang"), request.headers.get("accept-language")
    )


@dataclass(frozen=True)
class CachedBody:
    """A response as bytes, with its headers and a strong ETag computed from the bytes."""

    body: bytes
    status_code: int
    headers: tuple[tuple[str, str], ...]
    etag: str
    gzipped: bytes | None = None  # compressed once, when built; None when it would not be smaller

    @property
    def gzip_etag(self) -> str:
        """Another representation, another strong validator (RFC 9110 §8.8.3)."""
        return self.etag[:-1] + '-gz"'

    @classmethod
    def of(cls, response: Response) -> CachedBody:
        body = bytes(response.body)
        headers = tuple((k, v) for k, v in response.headers.items() if k.lower() in KEEP_HEADERS)
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_FROM else None
        if gzipped is not None and len(gzipped) >= len(body):
            gzipped = None
        return cls(body, response.status_code, headers, f'"{digest}"', gzipped)


@dataclass
class PageCache:
    """Cached responses by key, valid while the stamp they were built under is the current one."""

    stamp: Callable[[], Hashable]
    entries: dict[Hashable, tuple[Hashable, CachedBody]] = field(default_factory=dict)
    hits: int = 0
    builds: int = 0
    _locks: dict[Hashable, asyncio.Lock] = field(default_factory=dict)

    def get(self, key: Hashable, stamp: Hashable) -> CachedBody | None:
        found = self.entries.get(key)
        if found is not None and found[0] == stamp:
            self.hits += 1
            return found[1]
        return None

    def put(self, key: Hashable, stamp: Hashable, body: CachedBody) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[key] = (stamp, body)
        self.builds += 1

    def lock(self, key: Hashable) -> asyncio.Lock:
        """One build at a time per key: a burst after a change renders the page once, not once per request."""
        if len(self._locks) >= MAX_ENTRIES:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(key, asyncio.Lock())


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


def _answer(request: Request, page: CachedBody, lang: Lang) -> Response:
    headers = dict(page.headers)
    compressed = page.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", ""))
    headers["etag"] = page.gzip_etag if compressed else page.etag
    headers.setdefault("cache-control", "no-cache")  # stored, always revalidated: a status page must be fresh
    html = "text/html" in headers.get("content-type", "")
    vary = ["Accept-Language", "Cookie"] if html else []
    if page.gzipped is not None:
        vary.append("Accept-Encoding")
    if vary:
        headers["vary"] = ", ".join(vary)
    inm = request.headers.get("if-none-match", "")
    if headers["etag"] in {tag.strip().removeprefix("W/") for tag in inm.split(",")} or inm.strip() == "*":
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "content-type"})
    if compressed:
        headers["content-encoding"] = "gzip"
    body = page.gzipped if compressed and page.gzipped is not None else page.body
    response = Response(body, status_code=page.status_code, headers=headers)
    # An explicit choice on a page is remembered for the next pages (a feed or a badge asked in English is not one).
    if html and request.query_params.get("lang") == lang:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


def cached(endpoint: Endpoint) -> Endpoint:
    """Serve `endpoint`'s 200 responses from the page cache of `request.state.services`."""

    async def serve(request: Request) -> Response:
        cache: PageCache = request.state.services.pages
        lang = request_lang(request)
        # The whole query, `lang` included: feeds, badges and JSON take their language from `?lang=` alone, so
        # `/feed.atom` asked with an English cookie and `/feed.atom?lang=en` are two documents. The host too:
        # feeds and JSON documents write absolute links with the address they were asked on.
        query = tuple(sorted(request.query_params.multi_items()))
        key = (str(request.base_url), request.url.path, query, lang)
        stamp = cache.stamp()
        page = cache.get(key, stamp)
        if page is None:
            async with cache.lock(key):
                page = cache.get(key, stamp)
                if page is None:
                    response = await endpoint(request)
                    if response.status_code != 200 or not hasattr(response, "body"):
                        return response  # errors and streams are never cached
                    page = CachedBody.of(response)
                    cache.put(key, stamp, page)
        return _answer(request, page, lang)

    serve.__name__ = getattr(endpoint, "__name__", "page")
    serve.__doc__ = endpoint.__doc__
    return serve
