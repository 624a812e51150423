"""The mandatory second factor: TOTP (RFC 6238, pyotp), with a replay guard on the time step."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

__all__ = ["ISSUER", "STEP", "matching_step", "new_secret", "provisioning_uri"]

ISSUER = "tpmon"
STEP = 30  # seconds: what every authenticator app uses
_DRIFT = 1  # steps accepted either side of now: a clock 30 s off still signs in


def new_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app reads (the console shows it as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: datetime, *, after: int | None = None) -> int | None:
    """The time step whose code `code` is (now ± 1 step), if it is later than `after`; else None.

    Remembering the step of each accepted code refuses its reuse: a code seen over a shoulder or replayed
    from a log is worth nothing once used.
    """
    digits = code.strip().replace(" ", "")
    if len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - _DRIFT, current + _DRIFT + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None
