"""Availability history, pure: time per state from transitions, hourly and Paris-daily rollups, the formula.

The published formula (DESIGN §2): over a span, `availability = 1 − (down + ½·partial + ½·recovering) /
(time − maintenance − unknown)`; degraded and operational time count as available. Unknown time (no fresh
signal) is not in the published formula: it is left out of the denominator like maintenance, since no data
is neither uptime nor downtime, and published beside it as `coverage`, the share of the span whose state was
known. When nothing is left in the denominator the availability is None ("no data"), never 100 %.

Hours are UTC hours (Paris is a whole number of hours off UTC, so they are Paris hours too); days are
Europe/Paris calendar days, 23 h or 25 h on DST changes. A rollup's `start` is always an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal, Protocol, TypeAlias

from .i18n import PARIS, Lang
from .models import State

__all__ = [
    "EXCLUDED",
    "FORMULA",
    "HOUR",
    "PERIODS",
    "UNKNOWN_RULE",
    "WEIGHTS",
    "WINDOWS",
    "Change",
    "Period",
    "Rollup",
    "Window",
    "availability",
    "coverage",
    "period_end",
    "period_start",
    "rollups",
    "seconds_in",
    "total",
    "window_parts",
]

Period = Literal["hour", "day"]
PERIODS: tuple[Period, ...] = ("hour", "day")
WINDOWS: tuple[int, ...] = (1, 7, 30, 90)  # days (of 24 h) the page shows
HOUR = timedelta(hours=1)

# Share of the time that counts as unavailable; states absent here are left out of the denominator.
WEIGHTS: Mapping[State, float] = {
    State.OPERATIONAL: 0.0,
    State.DEGRADED: 0.0,
    State.PARTIAL: 0.5,
    State.RECOVERING: 0.5,
    State.DOWN: 1.0,
}
EXCLUDED = frozenset(set(State) - set(WEIGHTS))  # maintenance, unknown

FORMULA: Mapping[Lang, str] = {
    "fr": "disponibilité = 1 − (indisponible + ½ × partiellement indisponible + ½ × réactivation progressive)"
    " / (durée − maintenance − statut inconnu) ; perturbé compte comme disponible",
    "en": "availability = 1 − (unavailable + ½ × partially unavailable + ½ × progressive reactivation)"
    " / (time − maintenance − unknown status); degraded counts as available",
}
UNKNOWN_RULE: Mapping[Lang, str] = {
    "fr": "Le temps sans signal (statut inconnu) n'est compté ni comme disponible ni comme indisponible :"
    " il est exclu du calcul, et la couverture (part du temps où l'état était connu) est publiée à côté.",
    "en": "Time without a signal (unknown status) counts neither as up nor as down: it is left out, and the"
    " coverage (share of the time whose state was known) is published beside the availability.",
}


class Change(Protocol):
    """What a rollup needs of a transition (`models.Transition` is one)."""

    @property
    def previous(self) -> State: ...
    @property
    def state(self) -> State: ...
    @property
    def at(self) -> datetime: ...


class HasSeconds(Protocol):
    @property
    def seconds(self) -> Mapping[State, float]: ...


Seconds: TypeAlias = Mapping[State, float] | HasSeconds


def _seconds(of: Seconds) -> Mapping[State, float]:
    return of if isinstance(of, Mapping) else of.seconds


def total(of: Seconds) -> float:
    """Every second of the span, whatever the state."""
    return sum(_seconds(of).values())


def availability(of: Seconds) -> float | None:
    """The published formula (module docstring); None when no time is left in the denominator."""
    seconds = _seconds(of)
    counted = sum(seconds.get(state, 0.0) for state in WEIGHTS)
    if counted <= 0:
        return None
    lost = sum(seconds.get(state, 0.0) * weight for state, weight in WEIGHTS.items())
    return max(0.0, 1.0 - lost / counted)


def coverage(of: Seconds) -> float | None:
    """Share of the span whose state was known (not unknown); None for an empty span."""
    seconds = _seconds(of)
    whole = total(seconds)
    if whole <= 0:
        return None
    return 1.0 - seconds.get(State.UNKNOWN, 0.0) / whole


@dataclass(frozen=True)
class Rollup:
    """Seconds per state of one component over one hour (UTC) or one day (Europe/Paris), up to `now`."""

    component_key: str
    period: Period
    start: datetime  # aware UTC; a day starts at Paris midnight
    seconds: Mapping[State, float]  # every state, zeros included

    @property
    def end(self) -> datetime:
        return period_end(self.period, self.start)

    @property
    def availability(self) -> float | None:
        return availability(self.seconds)

    @property
    def coverage(self) -> float | None:
        return coverage(self.seconds)


@dataclass(frozen=True)
class Window:
    """Seconds per state of one component over [start, end), summed from rollups (never averaged ratios)."""

    component_key: str
    start: datetime
    end: datetime
    seconds: Mapping[State, float]

    @property
    def availability(self) -> float | None:
        return availability(self.seconds)

    @property
    def coverage(self) -> float | None:
        return coverage(self.seconds)

    @classmethod
    def summing(cls, component_key: str, start: datetime, end: datetime, parts: Iterable[HasSeconds]) -> Window:
        sums = dict.fromkeys(State, 0.0)
        for part in parts:
            for state, seconds in part.seconds.items():
                sums[state] += seconds
        return cls(component_key, start, end, sums)


def period_start(period: Period, moment: datetime) -> datetime:
    """The start (UTC) of the hour or Paris day holding `moment` (aware)."""
    if period == "hour":
        return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local_day = moment.astimezone(PARIS).date()
    return datetime.combine(local_day, time(0), tzinfo=PARIS).astimezone(UTC)  # midnight always exists in Paris


def period_end(period: Period, start: datetime) -> datetime:
    """The end (UTC) of the period beginning at `start`: one hour, or the next Paris midnight."""
    if period == "hour":
        return start.astimezone(UTC) + HOUR
    next_day = start.astimezone(PARIS).date() + timedelta(days=1)
    return datetime.combine(next_day, time(0), tzinfo=PARIS).astimezone(UTC)


def _segments(
    transitions: Sequence[Change], before: State, start: datetime, end: datetime
) -> Iterator[tuple[State, datetime, datetime]]:
    """(state, from, to) pieces of the timeline inside [start, end); at equal times the later transition wins."""
    state, since = before, start
    for transition in sorted(transitions, key=lambda t: t.at):  # stable: ties keep their given order
        if transition.at >= end:
            break
        if transition.at > since:
            yield state, since, transition.at
            since = transition.at
        state = transition.state
    if since < end:
        yield state, since, end


def seconds_in(transitions: Sequence[Change], before: State, start: datetime, end: datetime) -> dict[State, float]:
    """Seconds spent in each state within [start, end): `before` until the first transition, then each new state."""
    spent = dict.fromkeys(State, timedelta(0))
    for state, since, until in _segments(transitions, before, start, end):
        spent[state] += until - since
    return {state: spent[state].total_seconds() for state in State}


def rollups(
    component_key: str, transitions: Sequence[Change], before: State, period: Period, start: datetime, end: datetime
) -> list[Rollup]:
    """The rollups of the periods overlapping [start, end), counting only the time inside it.

    Called with a period boundary and `now`: whole periods, the last one cut at `now`. Called with the
    first transition of a component: its first period counts from that transition on.
    """
    begin = period_start(period, start)
    segments = list(_segments(transitions, before, start, end))
    found: list[Rollup] = []
    index = 0
    while begin < end:
        stop = min(period_end(period, begin), end)
        spent = dict.fromkeys(State, timedelta(0))
        while index < len(segments) and segments[index][1] < stop:
            state, since, until = segments[index]
            spent[state] += min(until, stop) - max(since, begin)
            if until > stop:
                break  # the rest of this segment belongs to the next period
            index += 1
        found.append(Rollup(component_key, period, begin, {state: spent[state].total_seconds() for state in State}))
        begin = period_end(period, begin)
    return found


def window_parts(window_end: datetime, days: int) -> tuple[datetime, datetime, list[tuple[Period, datetime, datetime]]]:
    """The `days` × 24 hourly periods ending with the one holding `window_end`, as few rollups as possible.

    Returns (start, end, parts); each part is a period and a range [from, until) of period starts: whole
    Paris days in the middle, hours at the ragged edges. Summing them equals summing every hour.
    """
    end = period_start("hour", window_end) + HOUR
    start = end - timedelta(days=days)
    first_midnight = period_start("day", start)
    if first_midnight < start:
        first_midnight = period_end("day", first_midnight)
    last_midnight = period_start("day", end)
    if first_midnight >= last_midnight:
        return start, end, [("hour", start, end)]
    parts: list[tuple[Period, datetime, datetime]] = [
        ("hour", start, first_midnight),
        ("day", first_midnight, last_midnight),
        ("hour", last_midnight, end),
    ]
    return start, end, [part for part in parts if part[1] < part[2]]
