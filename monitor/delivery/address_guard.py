"""SSRF guard for webhooks: the destination is resolved when sending, and every address it resolves to must be a
public one (not loopback, private, link-local, multicast, reserved…) unless the webhook was explicitly allowed.
The request then goes to the address that was checked, so a second lookup cannot lead elsewhere."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from ..config.texts import TextError
from ..i18n import said

__all__ = ["Refused", "Resolver", "check_url", "resolve_public"]

Resolver = Callable[[str, int], list[str]]


class Refused(Exception):
    """The destination may not be reached (a permanent failure)."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without credentials; ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TextError(said("must be an http:// or https:// URL"))
    if not parts.hostname:
        raise TextError(said("has no host"))
    if parts.username or parts.password:
        raise TextError(said("must not hold credentials (the payload is signed instead)"))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TextError(said("has an invalid port")) from None
    return parts.scheme, parts.hostname, port


def _why_not_public(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, name in (
        (ip.is_loopback, "a loopback"),
        (ip.is_link_local, "a link-local"),
        (ip.is_private, "a private"),
        (ip.is_multicast, "a multicast"),
        (ip.is_unspecified, "an unspecified"),
        (ip.is_reserved, "a reserved"),
        (not ip.is_global, "a non-public"),
    ):
        if test:
            return f"{address} is {name} address"
    return None


def resolve_public(host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver) -> str:
    """The address to connect to; Refused if the name does not resolve or resolves to a forbidden address."""
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise Refused(f"cannot resolve {host}: {exc.strerror or exc}") from None
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    if not allow_private:
        for address in addresses:
            why = _why_not_public(address)
            if why is not None:
                raise Refused(f"refused: {host} resolves to {why} (allow it with --allow-private)")
    return addresses[0]
