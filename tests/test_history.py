"""Availability history: time per state, hourly and Paris-daily rollups (DST), the formula, windows summing seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.availability import (
    EXCLUDED,
    FORMULA,
    UNKNOWN_RULE,
    WEIGHTS,
    Rollup,
    Window,
    availability,
    coverage,
    period_end,
    period_start,
    rollups,
    seconds_in,
    total,
    window_parts,
)
from monitor.models import ComponentRef, Source, State, Transition

LINE = ComponentRef("line", "viamedis", "optique")
T0 = datetime(2024, 2, 12, 10, 0, tzinfo=UTC)
OP, DEG, PART, DOWN, REC, MAINT, UNK = (
    State.OPERATIONAL,
    State.DEGRADED,
    State.PARTIAL,
    State.DOWN,
    State.RECOVERING,
    State.MAINTENANCE,
    State.UNKNOWN,
)


def at(minutes: float, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes)


def timeline(*steps: tuple[float, State], base: datetime = T0, first: State = UNK) -> list[Transition]:
    """Transitions at `minutes` after `base`, each from the state before it."""
    found, previous = [], first
    for minutes, state in steps:
        found.append(Transition(LINE, previous, state, at(minutes, base), at(minutes, base), Source.PROBE))
        previous = state
    return found


def only(**seconds: float) -> dict[State, float]:
    return {state: seconds.get(state.value, 0.0) for state in State}


def test_an_outage_across_an_hour_boundary_is_split_between_the_hours() -> None:
    steps = timeline((0, OP), (50, DOWN), (80, OP))
    ten, eleven = rollups(LINE.key, steps, UNK, "hour", T0, at(120))
    assert (ten.start, ten.end, eleven.start) == (T0, at(60), at(60))
    assert ten.seconds == only(operational=50 * 60, down=10 * 60)
    assert eleven.seconds == only(operational=40 * 60, down=20 * 60)
    assert ten.availability == pytest.approx(50 / 60)
    assert eleven.availability == pytest.approx(40 / 60)


def test_the_last_period_is_cut_at_now_and_the_state_before_the_first_transition_counts() -> None:
    (hour,) = rollups(LINE.key, timeline((15, DOWN), first=OP), OP, "hour", T0, at(45))
    assert hour.seconds == only(operational=15 * 60, down=30 * 60)
    assert total(hour) == 45 * 60


def test_the_first_period_counts_from_start_when_it_is_not_a_boundary() -> None:
    """How a component's history begins: from its first transition, not as unknown before it."""
    steps = timeline((20, OP), (70, DOWN))
    ten, eleven = rollups(LINE.key, steps, UNK, "hour", at(20), at(90))
    assert (ten.start, ten.seconds) == (T0, only(operational=40 * 60))
    assert eleven.seconds == only(operational=10 * 60, down=20 * 60)
    (day,) = rollups(LINE.key, steps, UNK, "day", at(20), at(90))
    assert day.start == datetime(2024, 2, 11, 23, tzinfo=UTC)
    assert day.seconds == only(operational=50 * 60, down=20 * 60)


def test_transitions_before_the_range_set_its_first_state_and_ties_keep_the_later_one() -> None:
    steps = timeline((-30, DOWN), (-10, OP), (20, DEG), (20, DOWN))
    assert seconds_in(steps, UNK, T0, at(60)) == only(operational=20 * 60, down=40 * 60)
    assert seconds_in([], MAINT, T0, at(60)) == only(maintenance=3600)
    assert seconds_in(steps, UNK, at(60), at(60)) == only()


def test_maintenance_is_left_out_of_the_denominator() -> None:
    assert availability(only(maintenance=1800, down=1800)) == 0.0
    assert availability(only(maintenance=1800, operational=1800)) == 1.0
    assert availability(only(maintenance=3000, operational=300, down=300)) == pytest.approx(0.5)
    assert availability(only(maintenance=3600)) is None


def test_partial_and_recovering_weigh_half_degraded_nothing() -> None:
    assert availability(only(partial=3600, operational=3600)) == pytest.approx(0.75)
    assert availability(only(recovering=3600, operational=3600)) == pytest.approx(0.75)
    assert availability(only(degraded=3600)) == 1.0
    assert availability(only(down=1, partial=2, recovering=2, degraded=5)) == pytest.approx(1 - 3 / 10)
    assert dict(WEIGHTS) == {OP: 0.0, DEG: 0.0, PART: 0.5, REC: 0.5, DOWN: 1.0}


def test_unknown_is_neither_up_nor_down_and_shows_as_coverage() -> None:
    assert {MAINT, UNK} == EXCLUDED
    mixed = only(unknown=1800, operational=900, down=900)
    assert availability(mixed) == pytest.approx(0.5)
    assert coverage(mixed) == pytest.approx(0.5)
    assert availability(only(unknown=3600)) is None  # no data is not 100 %
    assert coverage(only(unknown=3600)) == 0.0
    assert coverage(only(maintenance=3600)) == 1.0  # maintenance is known
    assert coverage(only()) is None
    for lang in ("fr", "en"):
        assert FORMULA[lang] and UNKNOWN_RULE[lang]


@pytest.mark.parametrize(
    ("day", "utc_start", "hours"),
    [
        (datetime(2024, 3, 31, 12, tzinfo=UTC), datetime(2024, 3, 30, 23, tzinfo=UTC), 23),
        (datetime(2024, 10, 27, 12, tzinfo=UTC), datetime(2024, 10, 26, 22, tzinfo=UTC), 25),
        (datetime(2024, 2, 12, 12, tzinfo=UTC), datetime(2024, 2, 11, 23, tzinfo=UTC), 24),
        (datetime(2024, 7, 14, 12, tzinfo=UTC), datetime(2024, 7, 13, 22, tzinfo=UTC), 24),
    ],
    ids=["spring-23h", "autumn-25h", "winter", "summer"],
)
def test_days_are_paris_calendar_days_of_23_24_or_25_hours(day: datetime, utc_start: datetime, hours: int) -> None:
    assert period_start("day", day) == utc_start
    assert period_start("day", utc_start) == utc_start
    assert period_start("day", utc_start - timedelta(microseconds=1)) < utc_start
    end = period_end("day", utc_start)
    assert end - utc_start == timedelta(hours=hours)
    steps = timeline((60, DOWN), (180, OP), base=utc_start + timedelta(hours=5), first=OP)
    (daily,) = rollups(LINE.key, steps, OP, "day", utc_start, end)
    assert daily.start == utc_start
    assert daily.seconds == only(operational=(hours - 2) * 3600, down=2 * 3600)
    hourly = rollups(LINE.key, steps, OP, "hour", utc_start, end)
    assert len(hourly) == hours
    assert Window.summing(LINE.key, utc_start, end, hourly).seconds == daily.seconds


def test_hours_are_utc_hours_whatever_the_offset() -> None:
    moment = datetime(2024, 10, 27, 2, 30, tzinfo=UTC)
    assert period_start("hour", moment) == datetime(2024, 10, 27, 2, tzinfo=UTC)
    assert period_end("hour", period_start("hour", moment)) == datetime(2024, 10, 27, 3, tzinfo=UTC)


def test_a_window_sums_seconds_never_averages_ratios() -> None:
    start = datetime(2024, 2, 11, 23, tzinfo=UTC)
    # Day one: known for one hour only, down all of it. Day two: operational all day.
    one = Rollup(LINE.key, "day", start, only(down=3600, unknown=23 * 3600))
    two = Rollup(LINE.key, "day", period_end("day", start), only(operational=24 * 3600))
    window = Window.summing(LINE.key, start, two.end, [one, two])
    assert window.seconds == only(down=3600, unknown=23 * 3600, operational=24 * 3600)
    assert window.availability == pytest.approx(24 / 25)  # the mean of the ratios would say 0.5
    assert window.coverage == pytest.approx(25 / 48)


@pytest.mark.parametrize(
    "end",
    [
        datetime(2024, 2, 12, 10, 17, tzinfo=UTC),
        datetime(2024, 2, 11, 23, 0, tzinfo=UTC),  # the first hour of a Paris day
        datetime(2024, 3, 31, 21, 59, tzinfo=UTC),  # the last hour of a 23 h day
        datetime(2024, 11, 2, 4, 0, tzinfo=UTC),  # a 90-day window holds the 25 h day
        datetime(2024, 10, 27, 1, 30, tzinfo=UTC),  # inside the repeated hour
    ],
)
@pytest.mark.parametrize("days", [1, 7, 30, 90])
def test_window_parts_cover_exactly_the_hours_of_the_window(end: datetime, days: int) -> None:
    start, stop, parts = window_parts(end, days)
    assert stop == period_start("hour", end) + timedelta(hours=1)
    assert stop - start == timedelta(days=days)
    covered: list[datetime] = []
    for period, since, until in parts:
        moment = since
        while moment < until:
            following = period_end(period, moment)
            if period == "day":
                assert period_start("day", moment) == moment and following <= until
            while moment < following:
                covered.append(moment)
                moment += timedelta(hours=1)
    expected = [start + timedelta(hours=h) for h in range(days * 24)]
    assert covered == expected
    assert len(parts) <= 3
