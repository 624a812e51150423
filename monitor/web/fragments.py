"""Pieces of pages rendered once and shared: what several pages show alike (a line's 90 days of bars, on its page
and on its network's; a network's row of the home page's grid) is rendered once per language and reused by every
page, and from one publication to the next, while it is made of the very same objects.

A fragment is kept with the objects it was rendered from and reused only while a page hands the same ones (`is`,
never `==`): the views and readings it shows are immutable and taken again only while what they show holds (a
network's kept view, the bars kept under the history stamp), so a new object — a change — renders it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from markupsafe import Markup

__all__ = ["MAX_FRAGMENTS", "Fragments"]

T = TypeVar("T")

MAX_FRAGMENTS = 4096  # bounded by the config's lines and networks × languages in practice; past it, the oldest go


@dataclass
class Fragments:
    """Rendered fragments by name, each with the objects it was rendered from."""

    limit: int = MAX_FRAGMENTS  # past it, the least recently used go
    hits: int = 0
    renders: int = 0
    _kept: OrderedDict[Hashable, tuple[tuple[object, ...], object]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def render(self, key: Hashable, inputs: tuple[object, ...], make: Callable[[], Markup]) -> Markup:
        """The fragment `key` as `make()` renders it from `inputs` (everything it shows that may change: a page's
        language and the kind of its links go in `key`); rendered again unless it was last rendered from these
        very objects. Blocking (a page's thread)."""
        return self.keep(key, inputs, make)

    def keep(self, key: Hashable, inputs: tuple[object, ...], make: Callable[[], T]) -> T:
        """`render` for any immutable piece (a document's JSON bytes, a list of a network's components): `make()`
        again unless it was last made from these very objects; whatever `make` gives is shared, never changed."""
        with self._lock:
            found = self._kept.get(key)
        if found is not None and _same(found[0], inputs):
            self.hits += 1
            return found[1]  # type: ignore[return-value]  # made by `make` for this key: a key is one kind of piece
        made = make()
        with self._lock:
            self._kept[key] = (inputs, made)
            self._kept.move_to_end(key)
            if len(self._kept) > self.limit:
                self._kept.popitem(last=False)
            self.renders += 1
        return made


def _same(kept: tuple[object, ...], given: tuple[object, ...]) -> bool:
    return len(kept) == len(given) and all(a is b for a, b in zip(kept, given, strict=True))
