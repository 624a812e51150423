"""Security headers on every response: a CSP without inline script, no sniffing, a discreet referrer.

Badges may be embedded anywhere (frame-ancestors *); everything else refuses to be framed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders", "security_headers"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_BADGE_CSP = "default-src 'none'; frame-ancestors *"  # a badge is a plain SVG, embeddable anywhere
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
]


# what each kind of response gets (made once: a request only filters out what its endpoint set itself)
_PAGE_EXTRA = [*_COMMON, (b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY")]
_BADGE_EXTRA = [*_COMMON, (b"content-security-policy", _BADGE_CSP.encode())]


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every response at `path` carries (the same list each time: do not change it)."""
    return _BADGE_EXTRA if path.startswith("/badge/") else _PAGE_EXTRA


class SecurityHeaders:
    """Pure ASGI (no per-request task): adds the headers unless the endpoint set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
