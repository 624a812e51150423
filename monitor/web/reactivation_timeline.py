"""Reactivation timelines: for a line that went down, down since → each recovering step → back (or not yet)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..models import State, Transition

__all__ = ["Episode", "Step", "episodes"]


@dataclass(frozen=True)
class Step:
    at: datetime
    state: State
    progress: float  # 0–1, meaningful when recovering


@dataclass
class Episode:
    """One outage of one component: its first `down` or `partial`, what followed, and when it ended (None: still
    going)."""

    key: str
    started: datetime
    steps: list[Step] = field(default_factory=list)
    ended: datetime | None = None

    @property
    def open(self) -> bool:
        return self.ended is None

    @property
    def progress(self) -> float:
        """How far the reactivation went: 1 when back, else the last recovering step's share (0 if none)."""
        if self.ended is not None:
            return 1.0
        recovering = [s.progress for s in self.steps if s.state is State.RECOVERING]
        return recovering[-1] if recovering else 0.0


_BACK = (State.OPERATIONAL, State.DEGRADED)  # degraded works: tiers payant is possible again


_OUT = (State.DOWN, State.PARTIAL, State.RECOVERING)  # an outage, partial or not, or the way back from one


def episodes(transitions: Iterable[Transition], since: datetime) -> list[Episode]:
    """Every outage that was going on at some time since `since`, from the components' transitions.

    An episode starts when a component goes `down` or `partial` (or is first seen recovering: a reopening
    declared after an outage tpmon did not see) and ends when it is operational (or degraded) again; what
    happens in between (recovering steps, partial, down again) are its steps. Maintenance and unknown do not
    start an episode. Oldest first.
    """
    ordered = sorted(transitions, key=lambda t: (t.at, t.recorded_at))
    going: dict[str, Episode] = {}
    found: list[Episode] = []
    for transition in ordered:
        key, state = transition.ref.key, transition.state
        episode = going.get(key)
        if episode is None:
            if state in _OUT:
                episode = Episode(key, transition.at, [Step(transition.at, state, transition.progress)])
                going[key] = episode
                found.append(episode)
            continue
        if state in _BACK:
            episode.ended = transition.at
            episode.steps.append(Step(transition.at, State.OPERATIONAL, 1.0))
            del going[key]
        else:
            episode.steps.append(Step(transition.at, state, transition.progress))
    return [e for e in found if e.ended is None or e.ended >= since]
