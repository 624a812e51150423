"""Public responses rendered once per change of what they show, served from memory with an ETag.

A response is cached under its host, path, query and language, with the `stamp` of the moment it was built: the
board's version (any shown status), the declarations' version (incidents, maintenance), the history's version
(roll-ups) and the current minute (the "last checked" line). While the stamp holds, every request is a dict
lookup; a request whose `If-None-Match` matches gets a 304 without a body.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from ..i18n import Lang, pick_lang

__all__ = ["CachedBody", "PageCache", "cached", "request_lang"]

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_ENTRIES = 4096  # paths × queries × languages; past it the cache starts again (a crawler walking ?page=)
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

    @classmethod
    def of(cls, response: Response) -> CachedBody:
        body = bytes(response.body)
        headers = tuple((k, v) for k, v in response.headers.items() if k.lower() in KEEP_HEADERS)
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        return cls(body, response.status_code, headers, f'"{digest}"')


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


def _answer(request: Request, page: CachedBody, lang: Lang) -> Response:
    headers = dict(page.headers)
    headers["etag"] = page.etag
    headers.setdefault("cache-control", "no-cache")  # stored, always revalidated: a status page must be fresh
    html = "text/html" in headers.get("content-type", "")
    if html:
        headers["vary"] = "Accept-Language, Cookie"
    inm = request.headers.get("if-none-match", "")
    if page.etag in {tag.strip().removeprefix("W/") for tag in inm.split(",")} or inm.strip() == "*":
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "content-type"})
    response = Response(page.body, status_code=page.status_code, headers=headers)
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
