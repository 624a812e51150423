"""The derived transitions an instance saw while it did not lead, kept until it leads again.

Only the leader writes the changes of flows, lines and networks. An instance whose lead is lost because its own
connection failed (a cut database: nobody writes then) goes on deriving them: if it takes the lead back and the
store shows each of those components exactly as it left them, nobody wrote in between, and its transitions of the
gap are the true chain — written as they happened, not one change made up from the stored state to the board's
(which would drop a line that went down and came back meanwhile). If another leader wrote in between, or if the
store shows anything else, they are dropped: the new leader makes up the difference as before
(`app._take_lead`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from ..models import ComponentStatus, State, Transition

__all__ = ["LeadGap"]

HELD_PER_COMPONENT = 64  # a component changing more often than this in one gap is made up at taking the lead


class LeadGap:
    """`lost` when the lead goes, `hold` each derived transition not written, `adopted` when another leader's
    statuses arrive, `resume` when the lead is taken again."""

    def __init__(self) -> None:
        self._left: dict[str, tuple[State, datetime | None]] = {}  # each derived component as the lead left it
        self._held: dict[str, list[Transition]] = {}

    def lost(self, statuses: Iterable[ComponentStatus]) -> None:
        """The lead is gone: what this instance wrote last of each derived component (the board, now)."""
        self._left = {s.ref.key: (s.state, s.since) for s in statuses if not s.ref.key.startswith("check:")}
        self._held = {}

    def hold(self, transition: Transition) -> None:
        """A derived transition this instance did not write (it does not lead)."""
        key = transition.ref.key
        if key not in self._left:
            return
        held = self._held.setdefault(key, [])
        if len(held) >= HELD_PER_COMPONENT:
            del self._left[key], self._held[key]
            return
        held.append(transition)

    def adopted(self, keys: Iterable[str]) -> None:
        """Another leader wrote these: what this instance derived of them is not the story."""
        for key in keys:
            self._left.pop(key, None)
            self._held.pop(key, None)

    def resume(self, stored: Mapping[str, ComponentStatus]) -> list[Transition]:
        """The held transitions of every component the store shows as the lead left it (in the order they
        happened); everything else is forgotten."""
        found: list[Transition] = []
        for key, held in self._held.items():
            status = stored.get(key)
            if status is None or not held or held[0].previous != status.state:
                continue
            if (status.state, _at(status.since)) == _left(self._left.get(key)):
                found.extend(held)
        self._left, self._held = {}, {}
        return sorted(found, key=lambda t: t.recorded_at)


def _at(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _left(left: tuple[State, datetime | None] | None) -> tuple[State, float | None] | None:
    return None if left is None else (left[0], _at(left[1]))
