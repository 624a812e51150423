"""Staff sessions: random ids kept server-side as digests, idle and absolute expiry, the cookie, and CSRF tokens.

The console and the sign-in endpoints use these; a session is a row in the store, so it can be revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "COOKIE",
    "SECURE_COOKIE",
    "SessionClock",
    "Stage",
    "csrf_token",
    "csrf_valid",
    "new_session_id",
    "session_digest",
    "set_cookie_header",
]

COOKIE = "tpmon_session"
SECURE_COOKIE = "__Host-tpmon_session"  # the browser keeps it only over HTTPS, for this host, on path /
Stage = Literal["enrol", "full"]  # enrol: password right, the second factor still to set up; full: signed in
TOUCH_EVERY = timedelta(seconds=60)  # a session's last use is written at most this often


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_digest(session_id: str) -> str:
    """What the store keeps: a stolen database copy gives no usable session."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_id: str) -> str:
    """The session's CSRF token: derived from its id (a keyed hash), so nothing more is stored, and it cannot be
    computed without the cookie a cross-site page never reads."""
    return hmac.new(session_id.encode("utf-8", "surrogatepass"), b"tpmon csrf v1", hashlib.sha256).hexdigest()


def csrf_valid(session_id: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session_id), given or "")


@dataclass(frozen=True)
class SessionClock:
    """When a session ends: `idle` after its last use, and `lifetime` after sign-in whatever happens."""

    idle: timedelta
    lifetime: timedelta

    def ends_at(self, created_at: datetime, last_seen_at: datetime) -> datetime:
        return min(created_at + self.lifetime, last_seen_at + self.idle)

    def live(self, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        return now < self.ends_at(created_at, last_seen_at)

    @staticmethod
    def due_touch(last_seen_at: datetime, now: datetime) -> bool:
        return now - last_seen_at >= TOUCH_EVERY


def set_cookie_header(session_id: str, *, secure: bool, max_age: int | None) -> tuple[str, str]:
    """The Set-Cookie header of a session (or of its removal when `max_age` is 0): HttpOnly, SameSite=Strict,
    Path=/, and Secure with the `__Host-` prefix behind HTTPS."""
    name = SECURE_COOKIE if secure else COOKIE
    parts = [f"{name}={session_id}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "set-cookie", "; ".join(parts)
