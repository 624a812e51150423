"""90-day availability bars over a real store: transitions rolled up by the real roll-up, then one bar per Paris day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from monitor.availability import EXCLUDED
from monitor.i18n import format_percent
from monitor.models import ComponentRef, Source, State, Transition
from monitor.store import Batch, Store
from monitor.store.rollup_store import availability_over, roll_up
from monitor.web.availability_bars import DAYS, Day, day_bars, kept_bars, line_bars
from monitor.web.page_cache import PageCache
from monitor.web.render import Links, render_macro

LINE = ComponentRef("line", "alpha", "optique")
HOUR = 3600.0
# 23:30 in Paris (CEST) on Monday 15 April 2024; the 90 days start on 17 January and hold the 23-hour 31 March.
NOW = datetime(2024, 4, 15, 21, 30, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def moves(ref: ComponentRef, *steps: tuple[datetime, State]) -> list[Transition]:
    found, previous = [], State.UNKNOWN
    for moment, state in steps:
        found.append(Transition(ref, previous, state, moment, moment, Source.PROBE))
        previous = state
    return found


SPRING = moves(
    LINE,
    (utc(2024, 2, 1, 8), State.OPERATIONAL),  # history begins: the days before have no data
    (utc(2024, 3, 10, 9), State.DOWN),  # three hours down on Sunday 10 March (24 h)
    (utc(2024, 3, 10, 12), State.OPERATIONAL),
    (utc(2024, 3, 31, 10), State.PARTIAL),  # one hour partial on the 23-hour 31 March
    (utc(2024, 3, 31, 11), State.OPERATIONAL),
    (utc(2024, 4, 5, 8), State.MAINTENANCE),  # two hours of maintenance: out of the denominator
    (utc(2024, 4, 5, 10), State.OPERATIONAL),
    (utc(2024, 4, 15, 19), State.DOWN),  # today: one hour down, one recovering, then back
    (utc(2024, 4, 15, 20), State.RECOVERING),
    (utc(2024, 4, 15, 21), State.OPERATIONAL),
)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def rolled(store: Store, transitions: list[Transition], now: datetime) -> None:
    store.write(Batch(transitions=transitions))
    roll_up(store, [LINE], now)


def by_day(days: list[Day]) -> dict[date, Day]:
    return {d.day: d for d in days}


def test_ninety_consecutive_paris_days_ending_today(store: Store) -> None:
    rolled(store, SPRING, NOW)
    bars = line_bars(store, LINE.key, NOW)
    assert len(bars.days) == DAYS == 90
    assert bars.days[-1].day == date(2024, 4, 15)  # 23:30 in Paris, still Monday (21:30 UTC)
    assert bars.days[0].day == date(2024, 1, 17)
    assert all(b.day - a.day == timedelta(days=1) for a, b in zip(bars.days, bars.days[1:], strict=False))


def test_each_day_has_its_availability_and_worst_state(store: Store) -> None:
    rolled(store, SPRING, NOW)
    days = by_day(line_bars(store, LINE.key, NOW).days)
    for quiet in (date(2024, 1, 17), date(2024, 1, 31)):  # before the history: no data, not green
        assert (days[quiet].availability, days[quiet].worst, days[quiet].coverage) == (None, None, None)
        assert not days[quiet].notable
    assert days[date(2024, 2, 1)].worst is State.OPERATIONAL and days[date(2024, 2, 1)].availability == 1.0
    down_day = days[date(2024, 3, 10)]
    assert down_day.worst is State.DOWN and down_day.notable
    assert down_day.availability == pytest.approx(1 - 3 / 24)
    maintenance_day = days[date(2024, 4, 5)]
    assert maintenance_day.worst is State.MAINTENANCE
    assert maintenance_day.availability == 1.0  # maintenance time is left out, not counted as lost
    assert days[date(2024, 4, 6)].worst is State.OPERATIONAL and not days[date(2024, 4, 6)].notable


def test_a_23_hour_day_is_one_bar_weighed_over_23_hours(store: Store) -> None:
    rolled(store, SPRING, NOW)
    days = by_day(line_bars(store, LINE.key, NOW).days)
    dst = days[date(2024, 3, 31)]
    assert dst.worst is State.PARTIAL
    assert dst.availability == pytest.approx(1 - 0.5 * HOUR / (23 * HOUR))
    assert days[date(2024, 3, 30)].worst is State.OPERATIONAL and days[date(2024, 4, 1)].worst is State.OPERATIONAL


def test_a_25_hour_day_is_one_bar_weighed_over_25_hours(store: Store) -> None:
    now = utc(2024, 11, 5, 12)
    autumn = moves(
        LINE,
        (utc(2024, 10, 1), State.OPERATIONAL),
        (utc(2024, 10, 27, 9), State.DOWN),  # one hour down on the 25-hour Sunday 27 October
        (utc(2024, 10, 27, 10), State.OPERATIONAL),
    )
    rolled(store, autumn, now)
    bars = line_bars(store, LINE.key, now)
    days = by_day(bars.days)
    assert len(bars.days) == 90 and len(days) == 90
    assert days[date(2024, 10, 27)].worst is State.DOWN
    assert days[date(2024, 10, 27)].availability == pytest.approx(1 - 1 / 25)
    assert days[date(2024, 10, 28)].availability == 1.0


def test_today_is_summed_from_the_hourly_roll_ups_so_far(store: Store) -> None:
    rolled(store, SPRING, NOW)
    today = line_bars(store, LINE.key, NOW).days[-1]
    # since Paris midnight (22:00 UTC): 23.5 hours, one of them down and one recovering (weight ½)
    assert today.worst is State.DOWN
    assert today.availability == pytest.approx(1 - 1.5 / 23.5)
    # earlier in the day, before the outage, with the roll-up of that moment: still a green partial day
    earlier = utc(2024, 4, 15, 12)
    other = ComponentRef("line", "alpha", "pharmacie")
    store.write(Batch(transitions=moves(other, (utc(2024, 4, 14, 23), State.OPERATIONAL))))
    roll_up(store, [other], earlier)
    partial_today = line_bars(store, other.key, earlier).days[-1]
    assert (partial_today.day, partial_today.worst, partial_today.availability) == (
        date(2024, 4, 15),
        State.OPERATIONAL,
        1.0,
    )


def test_overall_sums_seconds_and_equals_availability_over(store: Store) -> None:
    rolled(store, SPRING, NOW)
    bars = line_bars(store, LINE.key, NOW)
    # availability_over's 90 × 24 hours end at the hour holding NOW; the history begins inside both spans
    reference = availability_over(store, LINE, NOW, 90)
    for state in State:
        assert bars.overall.seconds[state] == pytest.approx(reference.seconds[state]), state
    assert bars.overall.availability == pytest.approx(reference.availability)
    counted = sum(s for state, s in bars.overall.seconds.items() if state not in EXCLUDED)
    lost = 3 * HOUR + 0.5 * HOUR + HOUR + 0.5 * HOUR  # 10 March, 31 March, today's down and recovering
    assert bars.overall.availability == pytest.approx(1 - lost / counted)
    ratios = [d.availability for d in bars.days if d.availability is not None]
    assert abs(sum(ratios) / len(ratios) - (1 - lost / counted)) > 1e-6  # an average of ratios would differ


def test_a_line_without_any_history_has_ninety_empty_days(store: Store) -> None:
    bars = line_bars(store, LINE.key, NOW)
    assert len(bars.days) == 90
    assert all(d.availability is None and d.worst is None for d in bars.days)
    assert bars.overall.availability is None and bars.overall.coverage is None


def test_kept_bars_and_their_rendering_hold_across_changes_of_the_board_and_follow_fresh_roll_ups(store: Store) -> None:
    """The publisher's pages take a line's bars (and their markup) again while only the board changes; once
    housekeeping stores fresh roll-ups (the history stamp moves) they show them: never yesterday's bars."""
    rolled(store, SPRING, NOW - timedelta(minutes=20))  # 21:10: today's outage was over, 21:10 not rolled up yet
    board, history = [1], [1]
    pages = PageCache(lambda: (board[0], history[0]), history_stamp=lambda: history[0])
    before = kept_bars(pages, store, LINE.key, NOW)
    html = day_bars(pages, before, "Optique", "fr")
    assert html == render_macro("macros.html", "day_bars", "fr", Links("fr"), before, "Optique")
    board[0] = 2  # a change of the board (another line, another network): the roll-ups are the same
    assert kept_bars(pages, store, LINE.key, NOW) is before
    assert day_bars(pages, before, "Optique", "fr") is html
    english = day_bars(pages, before, "Optical", "en")
    assert english != html and "Availability per day, Optical" in english  # each language its own
    store.write(Batch(transitions=moves(LINE, (utc(2024, 4, 15, 21, 10), State.DOWN))))  # down again at 21:10
    roll_up(store, [LINE], NOW)
    assert kept_bars(pages, store, LINE.key, NOW) is before  # not shown before housekeeping says so (as before)
    history[0] = 2  # housekeeping ran: fresh roll-ups
    after = kept_bars(pages, store, LINE.key, NOW)
    assert after is not before and after.days[-1].availability < before.days[-1].availability  # type: ignore[operator]
    fresh = day_bars(pages, after, "Optique", "fr")
    assert fresh != html and format_percent(after.days[-1].availability, "fr") in fresh
    assert format_percent(after.days[-1].availability, "fr") not in html
