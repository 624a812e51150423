"""The config's primitive values: durations, slugs, ${VAR} references, URLs and secrets, frozen mappings."""

from __future__ import annotations

import copy
import math
import re
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from .texts import Text, TextError, _, literal

__all__ = [
    "ENV_REF",
    "SLUG",
    "FrozenDict",
    "clear_credentials",
    "clear_secret_header",
    "parse_duration",
    "secret_header",
    "url_problem",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any) -> float:
    """`30s`, `500ms`, `5m`, `1h`, `1d` or a number of seconds → float seconds. Raises ValueError."""
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if math.isnan(seconds) or math.isinf(seconds):
        raise TextError(_("must be a duration like 30s, 5m or 1h{got}", got=got(value, 40)))
    return seconds


# Header names that carry credentials: their value must be a ${VAR} reference, never written in clear.
_SECRET_HEADERS = re.compile(
    r"^(authorization|proxy-authorization|cookie)$|api[-_]?key|token|secret|passw(or)?d|auth|session|credential"
    r"|access[-_]?key|private[-_]?key|signature",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9._-]*\s+")  # "Bearer ", "Basic ", "Token "…
_COOKIE_NAMES = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+=")  # `name=` before a value
_SEPARATORS = re.compile(r"^[\s;,:.=]*$")


def got(value: object, limit: int) -> Text:
    """` (got 'x')` for a short string or number (its repr at most `limit` characters), else nothing."""
    if isinstance(value, str | int | float) and len(repr(value)) <= limit:
        return _(" (got {value!r})", value=value)
    return literal("")


def url_problem(url: str) -> Text | None:
    """Why `url` cannot be probed — no host, or a port outside 1–65535 — in words that never quote it; None when
    it can."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bracketed host left open, or a port that is not a number in 0–65535
        if "IPv6" in str(exc):
            return _("has an invalid IPv6 host")
        after = url.partition("://")[2].split("/")[0].rpartition("@")[2].rpartition(":")[2]
        if after.isdigit() and len(after) <= 12:
            return _("the port {port} is not between 1 and 65535", port=after)
        if after.isdigit():
            return _("the port is not between 1 and 65535")
        return _("the port is not a number between 1 and 65535")
    if not parts.hostname:
        return _("has no host")
    if port is not None and not 1 <= port <= 65535:
        return _("the port {port} is not between 1 and 65535", port=port)
    return None


def clear_credentials(url: str) -> bool:
    """Whether `url` (as written) carries credentials in clear: `user:password@` with a password that is not a
    ${VAR} reference, or a lone `token@` that is not one."""
    if ENV_REF.fullmatch(url.strip()):
        return False  # the whole URL is a reference: its credentials, if any, are in the environment
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" not in authority:
        return False
    userinfo = authority.rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    secret = password if colon else user
    return not ENV_REF.fullmatch(secret)


def secret_header(name: str) -> bool:
    """Whether a header of this name carries credentials (Authorization, Cookie, X-API-Key, X-Auth-Token…)."""
    return bool(_SECRET_HEADERS.search(name))


def clear_secret_header(value: str) -> bool:
    """Whether a credentials header's value is written in clear: anything besides ${VAR} references, an auth
    scheme before them (`Bearer ${TOKEN}`) and cookie names (`session=${SID}`)."""
    if not value.strip():
        return False
    rest = ENV_REF.sub("\0", value)
    rest = _SCHEME.sub("", rest, count=1) if ENV_REF.search(value) else rest
    rest = _COOKIE_NAMES.sub("", rest)
    return not _SEPARATORS.match(rest.replace("\0", ""))


K = TypeVar("K")
V = TypeVar("V")


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError("the config is frozen: build a new Settings instead")


class FrozenDict(dict[K, V]):
    """A dict that refuses changes, so the config's mappings are as frozen as its models."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        return type(self)(copy.deepcopy(dict(self), memo))
