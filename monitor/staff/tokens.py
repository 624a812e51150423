"""Machine tokens: random, shown once, kept as a SHA-256 digest, named in lists and the audit by a public prefix.

A fast hash is enough here, unlike passwords: a token carries 256 random bits, so no dictionary and no brute
force can find it from its digest, and a fast digest lets every push find its token by an index lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from .roles import Principal, Scope

__all__ = ["PREFIX", "KnownToken", "digest", "looks_like_token", "new_token", "public_prefix"]

PREFIX = "tpm_"
_SHOWN = 12  # "tpm_" and 8 random characters: enough to tell tokens apart, 48 of their 256 bits
_SHAPE = re.compile(r"^tpm_[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    """`tpm_` and 43 URL-safe characters (32 random bytes): usable in a path (Uptime Kuma's push URL)."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a token (hex SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(text: str) -> bool:
    return bool(_SHAPE.fullmatch(text))


def public_prefix(secret: str) -> str:
    """The part of a token shown in lists and in the audit trail: `tpm_` and its first 8 characters."""
    return secret[:_SHOWN]


@dataclass(frozen=True)
class KnownToken:
    """A live token as the server holds it in memory: its digest, scopes and expiry; `id` None for a config token."""

    id: int | None
    prefix: str
    label: str
    scopes: tuple[Scope, ...]
    expires_at: datetime | None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    @property
    def principal(self) -> Principal:
        return Principal(f"token:{self.prefix}", self.scopes)

    @property
    def only_check(self) -> Scope | None:
        """The one push check this token is scoped to, if that is all it may do (what Kuma's URL needs)."""
        return self.scopes[0] if len(self.scopes) == 1 and self.scopes[0].check else None
