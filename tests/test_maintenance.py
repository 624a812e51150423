"""Maintenance windows: recurrence, DST on both changes in Europe/Paris, overrides, precedence over declarations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ops_support import HOUR, OPTIQUE, PEC, SETTINGS, T0, incident

from monitor.board import Board
from monitor.declared.incidents import declared_overrides
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import (
    MaintenanceWindow,
    Recurrence,
    active,
    check_window,
    maintenance_overrides,
    occurrences,
    paris_to_utc,
    upcoming,
)
from monitor.engine.overrides import Overrides
from monitor.errors import IncidentError
from monitor.models import ComponentRef, ComponentStatus, ProbeResult, Source, State

PARIS = ZoneInfo("Europe/Paris")
SUNDAYS = Recurrence("weekly", weekdays=(6,))


def window(
    start: str, *, hours: float = 1, rule: Recurrence = SUNDAYS, id: int = 1, **fields: Any
) -> MaintenanceWindow:
    values: dict[str, Any] = {"components": (OPTIQUE,), "cancelled": False} | fields
    title = Bilingual("Maintenance du portail")
    return MaintenanceWindow(
        id,
        title,
        values["components"],
        datetime.fromisoformat(start),
        timedelta(hours=hours),
        rule,
        values["cancelled"],
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize(
    ("wall", "expected", "note"),
    [
        ("2024-03-31 02:30", "2024-03-31 01:00", "gap"),  # does not exist: the end of the gap, 03:00 CEST
        ("2025-03-30 02:30", "2025-03-30 01:00", "gap"),
        ("2024-03-31 02:00", "2024-03-31 01:00", "gap"),
        ("2024-03-31 01:59", "2024-03-31 00:59", ""),  # CET, just before
        ("2024-03-31 03:00", "2024-03-31 01:00", ""),  # CEST, just after
        ("2024-10-27 02:30", "2024-10-27 00:30", "fold"),  # occurs twice: the first one, CEST
        ("2025-10-26 02:30", "2025-10-26 00:30", "fold"),
        ("2024-10-27 03:00", "2024-10-27 02:00", ""),
        ("2024-07-14 02:30", "2024-07-14 00:30", ""),
        ("2024-01-14 02:30", "2024-01-14 01:30", ""),
    ],
)
def test_paris_wall_times_to_utc_on_dst_changes(wall: str, expected: str, note: str) -> None:
    assert paris_to_utc(datetime.fromisoformat(wall)) == (utc(expected), note)


@pytest.mark.parametrize(("year", "change"), [(2024, date(2024, 3, 31)), (2025, date(2025, 3, 30))])
def test_weekly_0230_in_march_neither_vanishes_nor_runs_twice(year: int, change: date) -> None:
    weekly = window(f"{change - timedelta(weeks=2)} 02:30")
    found = occurrences(
        weekly, utc(f"{change - timedelta(weeks=2)} 00:00"), utc(f"{change + timedelta(weeks=1)} 23:00")
    )
    assert [local(o.start) for o in found] == [
        f"{change - timedelta(weeks=2)} 02:30 CET",
        f"{change - timedelta(weeks=1)} 02:30 CET",  # the week before: 02:30 local
        f"{change} 03:00 CEST",  # 02:30 does not exist: starts at the first valid instant after the gap
        f"{change + timedelta(weeks=1)} 02:30 CEST",  # the week after: 02:30 local again
    ]
    assert [o.dst for o in found] == ["", "", "gap", ""]
    assert all(o.end - o.start == HOUR for o in found)  # keeps its duration
    assert local(found[2].end) == f"{change} 04:00 CEST"


@pytest.mark.parametrize(("year", "change"), [(2024, date(2024, 10, 27)), (2025, date(2025, 10, 26))])
def test_weekly_0230_in_october_runs_once_at_the_first_0230(year: int, change: date) -> None:
    weekly = window(f"{change - timedelta(weeks=1)} 02:30")
    found = occurrences(
        weekly, utc(f"{change - timedelta(weeks=1)} 00:00"), utc(f"{change + timedelta(weeks=1)} 23:00")
    )
    assert [local(o.start) for o in found] == [
        f"{change - timedelta(weeks=1)} 02:30 CEST",
        f"{change} 02:30 CEST",  # once, the first 02:30 (fold=0)
        f"{change + timedelta(weeks=1)} 02:30 CET",
    ]
    assert [o.dst for o in found] == ["", "fold", ""]
    on_the_day = found[1]
    assert on_the_day.end - on_the_day.start == HOUR and local(on_the_day.end) == f"{change} 02:30 CET"
    second_0245 = datetime.combine(change, datetime.min.time(), PARIS).replace(hour=2, minute=45, fold=1)
    assert maintenance_overrides([weekly], second_0245.astimezone(UTC)) == {}  # no second run
    first_0245 = second_0245.replace(fold=0)
    assert maintenance_overrides([weekly], first_0245.astimezone(UTC))[OPTIQUE].since == on_the_day.start


@pytest.mark.parametrize("day", ["2024-03-31", "2025-03-30", "2024-10-27", "2025-10-26"])
def test_a_one_off_window_on_a_dst_night_happens_exactly_once(day: str) -> None:
    once = window(f"{day} 02:30", hours=2, rule=Recurrence())
    found = occurrences(once, utc(f"{day} 00:00") - timedelta(days=3), utc(f"{day} 00:00") + timedelta(days=3))
    assert len(found) == 1 and found[0].end - found[0].start == 2 * HOUR
    assert local(found[0].start) == (f"{day} 03:00 CEST" if day.split("-")[1] == "03" else f"{day} 02:30 CEST")


@given(
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 12, 31)),
    minute=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_a_daily_window_happens_once_every_day_at_its_wall_time_or_right_after_a_gap(day: date, minute: int) -> None:
    wall = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
    every_day = window(wall.isoformat(), hours=0.5, rule=Recurrence("weekly", weekdays=tuple(range(7))))
    start = datetime.combine(day, datetime.min.time(), PARIS).astimezone(UTC)
    found = [
        o for o in occurrences(every_day, start, start + timedelta(days=1)) if o.start.astimezone(PARIS).date() == day
    ]
    assert len(found) == 1
    shown = found[0].start.astimezone(PARIS).replace(tzinfo=None)
    if found[0].dst == "gap":
        assert shown.minute == 0 and shown > wall and shown - wall <= HOUR
    else:
        assert shown == wall
    assert found[0].end - found[0].start == timedelta(minutes=30)


def test_monthly_rules_day_of_month_nth_and_last_weekday_until() -> None:
    def starts(rule: Recurrence, first: str = "2024-01-01 22:00") -> list[str]:
        found = occurrences(window(first, rule=rule), utc("2024-01-01 00:00"), utc("2025-01-01 00:00"))
        return [o.start.astimezone(PARIS).strftime("%m-%d") for o in found]

    assert starts(Recurrence("monthly", month_day=31)) == [
        "01-31",
        "03-31",
        "05-31",
        "07-31",
        "08-31",
        "10-31",
        "12-31",
    ]
    last_sundays = starts(Recurrence("monthly", nth=-1, weekday=6))
    assert "03-31" in last_sundays and "10-27" in last_sundays and len(last_sundays) == 12
    assert starts(Recurrence("monthly", nth=2, weekday=1, until=date(2024, 3, 31))) == ["01-09", "02-13", "03-12"]
    assert starts(Recurrence("monthly", nth=5, weekday=4)) == ["03-29", "05-31", "08-30", "11-29"]  # fifth Fridays
    assert starts(Recurrence("weekly", weekdays=(0, 3), until=date(2024, 1, 11)), "2024-01-03 22:00") == [
        "01-04",
        "01-08",
        "01-11",
    ]


def test_active_upcoming_and_cancelled() -> None:
    now = utc("2024-02-14 12:00")
    soon = window("2024-02-15 20:00", rule=Recurrence(), id=2)
    running = window("2024-02-14 12:30", hours=2, rule=Recurrence(), id=3)  # 11:30–13:30 UTC
    later = window("2024-04-01 20:00", rule=Recurrence(), id=4)
    cancelled = window("2024-02-14 20:00", rule=Recurrence(), id=5, cancelled=True)
    windows = [later, soon, running, cancelled]
    assert [o.window.id for o in upcoming(windows, now, timedelta(days=30))] == [2]  # shown before it starts
    assert [o.window.id for o in active(windows, now)] == [3]
    assert occurrences(cancelled, now - timedelta(days=1), now + timedelta(days=1)) == []
    assert upcoming(windows, now, timedelta(days=60))[-1].window.id == 4
    assert active([running], utc("2024-02-14 13:30")) == []  # the end is exclusive
    assert active([running], utc("2024-02-14 11:30"))[0].window.id == 3  # the start inclusive


def test_maintenance_overrides_the_window_that_started_first() -> None:
    now = utc("2024-02-14 12:00")
    first = window("2024-02-14 11:00", hours=4, rule=Recurrence(), id=7, components=(OPTIQUE, PEC))
    second = window("2024-02-14 12:30", hours=4, rule=Recurrence(), id=6)
    found = maintenance_overrides([second, first], now)
    assert set(found) == {OPTIQUE, PEC}
    assert found[OPTIQUE].state is State.MAINTENANCE and found[OPTIQUE].source is Source.MAINTENANCE
    assert found[OPTIQUE].since == utc("2024-02-14 10:00") and found[OPTIQUE].detail == "maintenance:7"


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"title": Bilingual("")}, "title.fr", "must not be empty"),
        ({"title": Bilingual("a\nb")}, "title.fr", "single line"),
        ({"components": ()}, "components", "at least one"),
        ({"components": ("line:viamedis/xyz",)}, "components", "unknown component 'line:viamedis/xyz'"),
        ({"start": datetime(2024, 3, 31, 2, 30, tzinfo=UTC)}, "start", "without an offset"),
        ({"duration": timedelta(0)}, "duration", "more than 0"),
        ({"duration": timedelta(days=8)}, "duration", "at most 7 days"),
        ({"recurrence": Recurrence("weekly")}, "weekdays", "needs days"),
        ({"recurrence": Recurrence("monthly")}, "recurrence", "either a day of month or an nth weekday"),
        ({"recurrence": Recurrence("monthly", month_day=32)}, "month_day", "between 1 and 31"),
        ({"recurrence": Recurrence("monthly", nth=6, weekday=1)}, "nth", "1 to 5 or last"),
        ({"recurrence": Recurrence("weekly", (6,), until=date(2024, 1, 1))}, "until", "before the start"),
        # a frequency its type forbids, as a form or the API may send it
        ({"recurrence": Recurrence("daily")}, "recurrence", "'daily' is not one of none, weekly, monthly"),  # type: ignore[arg-type]
    ],
)
def test_check_window_refuses_bad_windows_naming_the_field(fields: dict[str, Any], field: str, says: str) -> None:
    base = window("2024-03-31 02:30", components=(OPTIQUE, OPTIQUE, PEC))
    assert check_window(base, SETTINGS).components == (OPTIQUE, PEC)
    values = {**base.__dict__, **fields}
    with pytest.raises(IncidentError) as raised:
        check_window(MaintenanceWindow(**values), SETTINGS)
    assert raised.value.field == field and says in raised.value.problem


def board_status(board: Board) -> ComponentStatus:
    status = board.get(OPTIQUE)
    assert status is not None
    return status


def shown(board: Board) -> tuple[State, Source]:
    return board_status(board).state, board_status(board).source


def test_precedence_maintenance_over_declared_over_probes() -> None:
    board = Board(SETTINGS, T0)
    for flow in ("portail_ps", "pec", "facturation", "droits"):
        for n in range(2):
            board.record(ProbeResult(ComponentRef.for_check("viamedis", flow, flow), T0 + n * HOUR / 60, 0.1, True), T0)
    assert shown(board) == (State.OPERATIONAL, Source.PROBE)

    declared = declared_overrides([incident((OPTIQUE, State.DOWN))])
    board.set_overrides(Overrides(declared=declared), T0 + HOUR)
    assert shown(board) == (State.DOWN, Source.DECLARED)

    planned = window("2024-02-12 14:00", hours=2, rule=Recurrence(), components=("network:viamedis",))
    now = T0 + 2 * HOUR
    board.set_overrides(Overrides(declared=declared, maintenance=maintenance_overrides([planned], now)), now)
    assert shown(board) == (State.MAINTENANCE, Source.MAINTENANCE)
    assert board_status(board).detail == "maintenance:1" and board_status(board).since == utc("2024-02-12 13:00")

    after = T0 + 4 * HOUR  # the window ended: the declaration shows again
    board.set_overrides(Overrides(declared=declared, maintenance=maintenance_overrides([planned], after)), after)
    assert shown(board) == (State.DOWN, Source.DECLARED)
    board.set_overrides(Overrides(), after + HOUR)  # resolved: back to what the probes say
    assert shown(board)[1] is Source.PROBE
