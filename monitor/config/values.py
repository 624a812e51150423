"""The config's primitive values: durations, slugs, ${VAR} references and frozen mappings."""

from __future__ import annotations

import copy
import math
import re
from typing import Any, NoReturn, TypeVar

__all__ = ["ENV_REF", "SLUG", "FrozenDict", "parse_duration"]

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
        shown = f" (got {value!r})" if isinstance(value, str | int | float) and len(repr(value)) <= 40 else ""
        raise ValueError(f"must be a duration like 30s, 5m or 1h{shown}")
    return seconds


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
