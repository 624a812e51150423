"""Planned maintenance windows: one-off or recurring, in Europe/Paris, DST-correct (pure)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal, get_args

from ..config import Settings
from ..engine.overrides import Override
from ..errors import IncidentError
from ..i18n import PARIS, said
from ..models import Source, State
from .inputs import MAX_TITLE, Bilingual, check_components, check_text

__all__ = [
    "MAX_DURATION",
    "WEEKDAYS",
    "Frequency",
    "MaintenanceWindow",
    "Occurrence",
    "Recurrence",
    "active",
    "check_not_over",
    "check_window",
    "maintenance_lifted",
    "maintenance_overrides",
    "occurrences",
    "paris_to_utc",
    "skip_occurrence",
    "upcoming",
]

Frequency = Literal["none", "weekly", "monthly"]
FREQUENCIES: tuple[Frequency, ...] = get_args(Frequency)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
MAX_DURATION = timedelta(days=7)
DstNote = Literal["", "gap", "fold"]


@dataclass(frozen=True)
class Recurrence:
    """When a window repeats. Weekly on `weekdays`; monthly on `month_day` (months lacking it are skipped,
    as RFC 5545 does) or on the `nth` (1–5, or -1 for the last) `weekday` of the month."""

    frequency: Frequency = "none"
    weekdays: tuple[int, ...] = ()  # 0 = Monday … 6 = Sunday
    month_day: int | None = None
    nth: int | None = None
    weekday: int | None = None
    until: date | None = None  # the last local date an occurrence may start on

    def matches(self, day: date, first: date) -> bool:
        """Whether an occurrence starts on local date `day`, for a window whose first date is `first`."""
        if day < first or (self.until is not None and day > self.until):
            return False
        if self.frequency == "none":
            return day == first
        if self.frequency == "weekly":
            return day.weekday() in self.weekdays
        if self.month_day is not None:
            return day.day == self.month_day
        if day.weekday() != self.weekday:
            return False
        if self.nth == -1:
            return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
        return (day.day - 1) // 7 + 1 == self.nth

    def describe(self) -> str:
        """A short English text for the CLI: `weekly on sun`, `monthly on the last sun`, `once`."""
        until = f" until {self.until:%d/%m/%Y}" if self.until else ""
        if self.frequency == "none":
            return "once"
        if self.frequency == "weekly":
            return f"weekly on {','.join(WEEKDAYS[d] for d in self.weekdays)}{until}"
        if self.month_day is not None:
            return f"monthly on day {self.month_day}{until}"
        nth = "last" if self.nth == -1 else f"#{self.nth}"
        return f"monthly on the {nth} {WEEKDAYS[self.weekday or 0]}{until}"


@dataclass(frozen=True)
class MaintenanceWindow:
    """A planned closure of components. `start` is a Europe/Paris wall time (naive): the first occurrence's
    local date and every occurrence's local time; `duration` is elapsed time."""

    id: int | None
    title: Bilingual
    components: tuple[str, ...]
    start: datetime
    duration: timedelta
    recurrence: Recurrence = Recurrence()
    cancelled: bool = False
    skipped: tuple[date, ...] = ()  # local dates of occurrences cancelled one by one, the series going on


@dataclass(frozen=True)
class Occurrence:
    """One run of a window, in UTC; `dst` says when a DST change moved it (`gap`) or made it ambiguous (`fold`)."""

    window: MaintenanceWindow
    start: datetime
    end: datetime
    dst: DstNote = ""


def paris_to_utc(local: datetime) -> tuple[datetime, DstNote]:
    """A Europe/Paris wall time as a UTC instant, with what a DST change did to it.

    A wall time that occurs twice (last Sunday of October, 02:00–03:00) is its first occurrence (fold=0):
    a window runs once. A wall time that does not exist (last Sunday of March, 02:00–03:00) becomes the first
    valid instant after the gap (03:00 CEST): the window neither vanishes nor moves by another hour.
    """
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=PARIS, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=PARIS, fold=1).astimezone(UTC)
    if first == second:
        return first, ""
    if first.astimezone(PARIS).replace(tzinfo=None) == naive:
        return first, "fold"
    # In the gap: the change happens in (earlier, later]; find it to the second.
    earlier, later = min(first, second), max(first, second)
    after = later.astimezone(PARIS).utcoffset()
    while later - earlier > timedelta(seconds=1):
        middle = earlier + (later - earlier) / 2
        if middle.astimezone(PARIS).utcoffset() == after:
            later = middle
        else:
            earlier = middle
    return later.replace(microsecond=0), "gap"


def check_window(window: MaintenanceWindow, settings: Settings) -> MaintenanceWindow:
    """The window with its components deduplicated, or IncidentError naming the field at fault."""
    check_text("title", window.title, required=True, limit=MAX_TITLE, line=True)
    if not window.components:
        raise IncidentError("components", said("name at least one component"))
    components = check_components("components", window.components, settings)
    if window.start.tzinfo is not None:
        raise IncidentError("start", said("is a Europe/Paris wall time, given without an offset"))
    if not timedelta(0) < window.duration <= MAX_DURATION:
        raise IncidentError("duration", said("must be more than 0 and at most {days} days", days=MAX_DURATION.days))
    rule = window.recurrence
    if rule.frequency not in FREQUENCIES:
        raise IncidentError(
            "recurrence",
            said("{frequency!r} is not one of {allowed}", frequency=rule.frequency, allowed=", ".join(FREQUENCIES)),
        )
    if rule.frequency == "weekly" and (not rule.weekdays or not set(rule.weekdays) <= set(range(7))):
        raise IncidentError("weekdays", said("a weekly window needs days among {days}", days=",".join(WEEKDAYS)))
    if rule.frequency == "monthly":
        by_day, by_weekday = rule.month_day is not None, rule.nth is not None and rule.weekday is not None
        if by_day == by_weekday:
            raise IncidentError("recurrence", said("a monthly window needs either a day of month or an nth weekday"))
        if by_day and not 1 <= (rule.month_day or 0) <= 31:
            raise IncidentError("month_day", said("must be between 1 and 31"))
        if by_weekday and (rule.nth not in (1, 2, 3, 4, 5, -1) or rule.weekday not in range(7)):
            raise IncidentError(
                "nth", said("must be 1 to 5 or last, on a weekday among {days}", days=",".join(WEEKDAYS))
            )
    if rule.until is not None and rule.until < window.start.date():
        raise IncidentError("until", said("is before the start"))
    return MaintenanceWindow(
        window.id, window.title, components, window.start, window.duration, rule, window.cancelled, window.skipped
    )


def check_not_over(window: MaintenanceWindow, now: datetime) -> None:
    """IncidentError naming `start` for a one-off window that would already be over at `now`."""
    if window.recurrence.frequency == "none" and not occurrences(window, now, datetime(9999, 1, 1, tzinfo=UTC)):
        raise IncidentError("start", said("this one-off window would already be over"))


def skip_occurrence(window: MaintenanceWindow, day: date) -> MaintenanceWindow:
    """The window without its occurrence starting on local date `day`, or IncidentError naming `date`."""
    if window.cancelled:
        raise IncidentError("id", said("maintenance window {id} is already cancelled", id=window.id))
    if window.recurrence.frequency == "none":
        raise IncidentError("date", said("a one-off window has a single occurrence: cancel the window itself"))
    if not window.recurrence.matches(day, window.start.date()):
        raise IncidentError("date", said("no occurrence of this window starts on {day:%d/%m/%Y} (Paris)", day=day))
    if day in window.skipped:
        raise IncidentError("date", said("the occurrence of {day:%d/%m/%Y} is already cancelled", day=day))
    return replace(window, skipped=tuple(sorted((*window.skipped, day))))


def occurrences(window: MaintenanceWindow, start: datetime, end: datetime) -> list[Occurrence]:
    """The window's occurrences overlapping [start, end) (aware instants), oldest first, in UTC."""
    if window.cancelled or end <= start:
        return []
    first = window.start.date()
    if window.recurrence.frequency == "none":
        days: Iterable[date] = (first,)
    else:
        # An occurrence starting up to `duration` (plus a day of offsets) before `start` may still overlap it.
        begin = max(first, start.astimezone(PARIS).date() - timedelta(days=window.duration.days + 2))
        stop = end.astimezone(PARIS).date() + timedelta(days=1)
        days = (begin + timedelta(days=n) for n in range((stop - begin).days + 1))
    found = []
    for day in days:
        if not window.recurrence.matches(day, first) or day in window.skipped:
            continue
        at, dst = paris_to_utc(datetime.combine(day, window.start.time()))
        occurrence = Occurrence(window, at, at + window.duration, dst)
        if occurrence.end > start and occurrence.start < end:
            found.append(occurrence)
    return found


def active(windows: Iterable[MaintenanceWindow], now: datetime) -> list[Occurrence]:
    """The occurrences running at `now` (start ≤ now < end), by start."""
    running = [o for w in windows for o in occurrences(w, now, now + timedelta(microseconds=1)) if o.start <= now]
    return sorted(running, key=lambda o: (o.start, o.window.id or 0))


def upcoming(windows: Iterable[MaintenanceWindow], now: datetime, horizon: timedelta) -> list[Occurrence]:
    """The occurrences starting after `now` and within `horizon`, soonest first: shown before they start."""
    later = [o for w in windows for o in occurrences(w, now, now + horizon) if o.start > now]
    return sorted(later, key=lambda o: (o.start, o.window.id or 0))


def maintenance_overrides(windows: Iterable[MaintenanceWindow], now: datetime) -> dict[str, Override]:
    """Status-engine overrides for every component of a running occurrence, since its start.

    When several running windows name a component, the one that started first wins (then the lowest id):
    the component has been in maintenance since then.
    """
    found: dict[str, Override] = {}
    for occurrence in active(windows, now):
        for key in occurrence.window.components:
            detail = f"maintenance:{occurrence.window.id}"
            found.setdefault(key, Override(State.MAINTENANCE, occurrence.start, Source.MAINTENANCE, None, detail))
    return found


def maintenance_lifted(
    windows: Iterable[MaintenanceWindow], now: datetime, lookback: timedelta = timedelta(days=7)
) -> dict[str, datetime]:
    """When each window's last occurrence ended (within `lookback`), by override detail (``maintenance:2``):
    what a window hid is shown from its end, not from when its end was noticed."""
    ended: dict[str, datetime] = {}
    for window in windows:
        past = [o.end for o in occurrences(window, now - lookback, now) if o.end <= now]
        if past:
            ended[f"maintenance:{window.id}"] = max(past)
    return ended
