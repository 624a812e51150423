"""A conditional request the page cache answered before, under the same stamp, gets its 304 here: before routing,
before the request object, before any middleware (only the security headers are added, as on every answer).

The page cache remembers, per request as sent (path, query, and the headers its answer depends on), the stamp it
was answered under, its ETag and the headers of its 304. While that stamp is the current one, an If-None-Match
naming that ETag is answered from the table; anything else goes the usual way (which may then remember it).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .page_cache import PageCache, etag_matches, revalidation_key
from .security_headers import security_headers

__all__ = ["Revalidation"]


class Revalidation:
    """Pure ASGI, outermost on the public app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            services = scope.get("state", {}).get("services")
            cache: PageCache | None = getattr(services, "pages", None)
            if cache is not None and cache.validators:
                key, inm = revalidation_key(scope)
                found = cache.validators.get(key) if inm is not None else None
                if (
                    found is not None
                    and inm is not None
                    and found.stamp == cache.stamp()
                    and etag_matches(inm.decode("latin-1"), found.etag)
                ):
                    cache.revalidated += 1
                    headers = found.headers + security_headers(scope["path"])
                    await send({"type": "http.response.start", "status": 304, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
        await self.app(scope, receive, send)
