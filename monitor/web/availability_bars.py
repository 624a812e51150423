"""Availability bars: one per Paris day over the last 90 days, from the daily (and today's hourly) roll-ups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup

from ..availability import Window, period_start
from ..i18n import PARIS, Lang
from ..models import State, worst
from ..store.rollup_store import rollups_of
from ..store.store import Store
from .page_cache import PageCache
from .render import Links, render_macro

__all__ = ["DAYS", "Day", "LineBars", "day_bars", "kept_bars", "line_bars"]

DAYS = 90


@dataclass(frozen=True)
class Day:
    """One day of one component: availability (None: no data or only maintenance), its worst state, coverage."""

    day: date
    availability: float | None
    worst: State | None  # None: nothing recorded that day
    coverage: float | None

    @property
    def notable(self) -> bool:
        """Worth a keyboard stop: anything but a plain operational day."""
        return self.worst is not None and self.worst is not State.OPERATIONAL


@dataclass(frozen=True)
class LineBars:
    key: str
    days: list[Day]
    overall: Window  # the whole period, seconds summed (never an average of daily ratios)

    @property
    def disrupted(self) -> int:
        """How many days were not plainly operational: said next to the figure ("100 % — 10 jours perturbés")."""
        return sum(1 for day in self.days if day.notable)


def _day(day: date, window: Window) -> Day:
    seen = [state for state, seconds in window.seconds.items() if seconds > 0]
    return Day(day, window.availability, worst(seen) if seen else None, window.coverage)


def line_bars(store: Store, key: str, now: datetime, days: int = DAYS) -> LineBars:
    """`days` bars ending today (Paris); today is summed from its hourly roll-ups so far."""
    today_start = period_start("day", now)
    first_day = now.astimezone(PARIS).date() - timedelta(days=days - 1)
    first_start = period_start("day", datetime(first_day.year, first_day.month, first_day.day, 12, tzinfo=PARIS))
    daily = {r.start: r for r in rollups_of(store, key, "day", first_start, today_start)}
    hours = rollups_of(store, key, "hour", today_start, now + timedelta(hours=1))
    result: list[Day] = []
    parts = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        start = period_start("day", datetime(day.year, day.month, day.day, 12, tzinfo=PARIS))
        if start == today_start:
            window = Window.summing(key, start, now, hours)
            parts.extend(hours)
        else:
            rollup = daily.get(start)
            window = Window.summing(key, start, start + timedelta(days=1), [rollup] if rollup else [])
            if rollup:
                parts.append(rollup)
        result.append(_day(day, window))
    return LineBars(key, result, Window.summing(key, first_start, now, parts))


def kept_bars(pages: PageCache, store: Store, key: str, now: datetime) -> LineBars:
    """Blocking: the bars of line `key`, read once while the roll-ups hold (the history stamp), for every page
    and language and across the publications of the board's changes (none of which changes a roll-up)."""
    return pages.reuse(("bars", key), lambda: line_bars(store, key, now), history=True)


def day_bars(pages: PageCache, bars: LineBars, label: str, lang: Lang) -> Markup:
    """The bars as its line's page and its network's show them, rendered once per language while they are the same
    bars (kept: the same object)."""
    links = Links(lang)  # the bars hold no link
    return pages.fragments.render(
        ("day bars", bars.key, lang),
        (bars, label),
        lambda: render_macro("macros.html", "day_bars", lang, links, bars, label),
    )
