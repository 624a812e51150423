"""Signed links and derived secrets: the expiring confirmation link, the unsubscribe link, webhook secrets.

Everything derives from one secret read from the environment (`TPMON_NOTIFY_SECRET`) or a file
(`TPMON_NOTIFY_SECRET_FILE`), never from the config. Links carry a subscriber's id and a keyed digest of its
address, never the address itself (links end up in logs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

from ..errors import MonitorError
from ..i18n import literal, said

__all__ = ["SECRET_ENV", "SECRET_FILE_ENV", "ConfirmRequest", "Signer", "load_secret"]

SECRET_ENV = "TPMON_NOTIFY_SECRET"  # noqa: S105 (the name of the variable, not a secret)
SECRET_FILE_ENV = "TPMON_NOTIFY_SECRET_FILE"  # noqa: S105
MIN_SECRET = 32  # characters


def load_secret(environ: Mapping[str, str]) -> bytes:
    """The notifications' secret from `$TPMON_NOTIFY_SECRET` or the file `$TPMON_NOTIFY_SECRET_FILE`."""
    value = environ.get(SECRET_ENV, "")
    where = SECRET_ENV
    if not value and environ.get(SECRET_FILE_ENV):
        where = environ[SECRET_FILE_ENV]
        try:
            value = Path(where).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            cannot = said(
                "notifications: cannot read {variable} ({file}): {reason}",
                variable=SECRET_FILE_ENV,
                file=where,
                reason=literal(str(exc)),
            )
            raise MonitorError(cannot) from None
    if not value:
        raise MonitorError(
            said(
                "notifications: set {variable} (or {file_variable}, a file holding it) to a random secret "
                "of at least {size} characters, e.g. `openssl rand -hex 32`",
                variable=SECRET_ENV,
                file_variable=SECRET_FILE_ENV,
                size=MIN_SECRET,
            )
        )
    if len(value) < MIN_SECRET:
        shorter = said(
            "notifications: the secret in {where} is shorter than {size} characters", where=where, size=MIN_SECRET
        )
        raise MonitorError(shorter)
    return value.encode()


@dataclass(frozen=True)
class ConfirmRequest:
    """What a confirmation link asks: which subscriber (id and address digest), the scopes, the language."""

    subscriber: int
    digest: str
    scopes: tuple[str, ...]
    lang: str


class Signer:
    """Signs and reads tpmon's links; derives webhook secrets. Holds the secret: never log or show it."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._confirm = URLSafeTimedSerializer(secret, salt="tpmon-confirm")
        self._unsubscribe = URLSafeSerializer(secret, salt="tpmon-unsubscribe")

    def __repr__(self) -> str:
        return "Signer(***)"

    def digest(self, address: str) -> str:
        """A keyed digest of an address: binds a link to it without writing it in the link."""
        mac = hmac.new(self._secret, b"address:" + address.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:12]).decode().rstrip("=")

    def confirm_token(self, subscriber: int, address: str, scopes: tuple[str, ...], lang: str) -> str:
        return self._confirm.dumps({"i": subscriber, "h": self.digest(address), "s": list(scopes), "l": lang})

    def read_confirm(self, token: str, max_age: int) -> ConfirmRequest | None:
        """The request a confirmation link carries; None if forged, damaged or older than `max_age` seconds."""
        try:
            data = self._confirm.loads(token, max_age=max_age)
            scopes = tuple(str(s) for s in data["s"])
            return ConfirmRequest(int(data["i"]), str(data["h"]), scopes, str(data.get("l", "fr")))
        except (BadData, KeyError, TypeError, ValueError):
            return None

    def unsubscribe_token(self, subscriber: int, address: str) -> str:
        """Never expires: an old message's link must still work."""
        return self._unsubscribe.dumps({"i": subscriber, "h": self.digest(address)})

    def read_unsubscribe(self, token: str) -> tuple[int, str] | None:
        try:
            data = self._unsubscribe.loads(token)
            return int(data["i"]), str(data["h"])
        except (BadData, KeyError, TypeError, ValueError):
            return None

    def webhook_secret(self, salt: str) -> str:
        """A webhook's signing secret (`whsec_…`), derived: the database alone does not hold it."""
        key = hmac.new(self._secret, b"webhook:" + salt.encode(), hashlib.sha256).digest()
        return "whsec_" + base64.b64encode(key).decode()
