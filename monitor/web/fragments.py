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

from markupsafe import Markup

__all__ = ["MAX_FRAGMENTS", "Fragments"]

MAX_FRAGMENTS = 4096  # bounded by the config's lines and networks × languages in practice; past it, the oldest go


@dataclass
class Fragments:
    """Rendered fragments by name, each with the objects it was rendered from."""

    hits: int = 0
    renders: int = 0
    _kept: OrderedDict[Hashable, tuple[tuple[object, ...], Markup]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def render(self, key: Hashable, inputs: tuple[object, ...], make: Callable[[], Markup]) -> Markup:
        """The fragment `key` as `make()` renders it from `inputs` (everything it shows that may change: a page's
        language and the kind of its links go in `key`); rendered again unless it was last rendered from these
        very objects. Blocking (a page's thread)."""
        with self._lock:
            found = self._kept.get(key)
        if found is not None and _same(found[0], inputs):
            self.hits += 1
            return found[1]
        html = make()
        with self._lock:
            self._kept[key] = (inputs, html)
            self._kept.move_to_end(key)
            if len(self._kept) > MAX_FRAGMENTS:
                self._kept.popitem(last=False)
            self.renders += 1
        return html


def _same(kept: tuple[object, ...], given: tuple[object, ...]) -> bool:
    return len(kept) == len(given) and all(a is b for a, b in zip(kept, given, strict=True))
