"""Certificate facts for the TLS and HTTP probes: expiry dates of the leaf and chain, TLS error details."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["expiries", "expiry_problem", "not_after", "tls_detail"]

_UTC_TIME, _GENERALIZED_TIME, _VERSION = 0x17, 0x18, 0xA0
_DER: int | None = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", None)  # for the chain's certificate objects
_KNOWN_MAX = 4096  # certificates whose notAfter is kept: a probe sees the same few again and again
_known: dict[bytes, datetime | None] = {}


def _element(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start, end) of the DER element at `pos`; end is past its value."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def not_after(der: bytes) -> datetime | None:
    """The notAfter of a DER certificate (aware UTC), or None if it cannot be read.

    Read from the DER itself because `getpeercert()` returns nothing when verification is off.
    """
    try:
        _, tbs_pos, _ = _element(der, 0)  # Certificate
        _, pos, _ = _element(der, tbs_pos)  # TBSCertificate
        if der[pos] == _VERSION:
            pos = _element(der, pos)[2]
        for _ in range(3):  # serialNumber, signature, issuer
            pos = _element(der, pos)[2]
        _, validity, _ = _element(der, pos)
        not_before_end = _element(der, validity)[2]
        tag, start, end = _element(der, not_before_end)
        text = der[start:end].decode("ascii")
        if tag == _UTC_TIME:
            when = datetime.strptime(text, "%y%m%d%H%M%SZ")
        elif tag == _GENERALIZED_TIME:
            when = datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            return None
    except (IndexError, ValueError):
        return None
    return when.replace(tzinfo=UTC)


def _der(cert: Any) -> bytes:
    """A certificate object's DER (`public_bytes(ENCODING_DER)`), or its PEM made DER if that is refused."""
    if _DER is not None:
        with contextlib.suppress(TypeError, ValueError):
            der: bytes = cert.public_bytes(_DER)
            return der
    return ssl.PEM_cert_to_DER_cert(cert.public_bytes())


def _not_after_known(der: bytes) -> datetime | None:
    """`not_after(der)`, remembered: the same certificates come back at every probe."""
    try:
        return _known[der]
    except KeyError:
        pass
    if len(_known) >= _KNOWN_MAX:
        _known.clear()
    when = _known[der] = not_after(der)
    return when


def _chain(ssl_object: Any) -> Iterable[bytes]:
    """DER certificates of the verified chain, else of the presented one.

    Python 3.13 has `get_verified_chain()` on SSLObject, returning DER bytes; 3.11 and 3.12 have no public way
    to the chain, only the private `_sslobj`, whose methods return certificate objects, DER by their
    `public_bytes(ENCODING_DER)`. When neither exists the caller falls back to the leaf.
    """
    for owner in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        for name in ("get_verified_chain", "get_unverified_chain"):
            method = getattr(owner, name, None)
            if method is None:
                continue
            try:
                chain = method()
            except (ValueError, ssl.SSLError):
                continue
            if chain:
                return [c if isinstance(c, bytes) else _der(c) for c in chain]
    return []


def expiries(ssl_object: Any) -> tuple[datetime | None, datetime | None]:
    """(leaf notAfter, earliest notAfter in the chain) of a TLS connection; chain is the leaf's if unknown."""
    if ssl_object is None:
        return None, None
    der = ssl_object.getpeercert(binary_form=True)
    leaf = _not_after_known(der) if der else None
    dates = [when for when in map(_not_after_known, _chain(ssl_object)) if when is not None]
    return leaf, min(dates, default=leaf)


def expiry_problem(expiry: datetime | None, valid_days: int | None, now: datetime) -> str | None:
    """Why `expiry` fails a `cert_valid_days` condition, or None when it passes (or is not asked)."""
    if valid_days is None:
        return None
    if expiry is None:
        return "no TLS certificate to check"
    left = expiry - now
    if left < timedelta(0):
        return f"certificate expired {-left.days} days ago"
    if left < timedelta(days=valid_days):
        return f"certificate expires in {left.days} days (cert_valid_days {valid_days})"
    return None


def tls_detail(exc: ssl.SSLError) -> str:
    """A short, host-free account of a TLS failure, e.g. "certificate verify failed: self-signed certificate"."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # "Hostname mismatch, certificate is not valid for 'x'." names the host: keep the first clause.
        message = (exc.verify_message or "unknown reason").split(",")[0].rstrip(".")
        return f"certificate verify failed: {message}"
    reason = exc.reason or type(exc).__name__
    return f"TLS handshake failed: {reason.lower().replace('_', ' ')}"
