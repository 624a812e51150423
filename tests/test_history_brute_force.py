"""Property: hourly and daily rollups equal a brute-force walk of the raw transitions, minute by minute."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.availability import Window, rollups
from monitor.models import ComponentRef, Source, State, Transition

PARIS = ZoneInfo("Europe/Paris")
KEY = ComponentRef("flow", "almerys", "pec").key
MINUTE = timedelta(minutes=1)
SPAN = 2 * 24 * 60  # minutes walked at most: two days and the DST change inside them
# Paris midnights, written out in UTC so that the brute force owes nothing to the code under test.
MIDNIGHTS = [
    datetime(2024, 3, 30, 23, tzinfo=UTC),  # 31 March: 23 h
    datetime(2024, 3, 29, 23, tzinfo=UTC),  # the day before it
    datetime(2024, 10, 26, 22, tzinfo=UTC),  # 27 October: 25 h
    datetime(2024, 10, 25, 22, tzinfo=UTC),
    datetime(2024, 2, 11, 23, tzinfo=UTC),
]
states = st.sampled_from(list(State))


@st.composite
def timelines(draw: st.DrawFn) -> tuple[datetime, State, list[Transition], datetime]:
    """(origin, state before the first transition, transitions on whole minutes, now).

    The origin is a Paris midnight or a little after: the first periods then count from the origin only.
    """
    origin = draw(st.sampled_from(MIDNIGHTS)) + draw(st.sampled_from([0, 0, 7, 60, 23 * 60 + 59])) * MINUTE
    before = draw(states)
    offsets = draw(st.lists(st.integers(-180, SPAN + 60), max_size=12))  # some before origin, some after now
    found: list[Transition] = []
    previous = before
    for minutes in sorted(offsets):  # ties are kept: the later one wins
        state = draw(states)
        moment = origin + minutes * MINUTE
        found.append(Transition(ComponentRef.parse(KEY), previous, state, moment, moment, Source.PROBE))
        previous = state
    now = origin + draw(st.integers(1, SPAN)) * MINUTE
    return origin, before, found, now


def brute_force(
    origin: datetime, before: State, transitions: list[Transition], now: datetime
) -> tuple[dict[datetime, dict[State, float]], dict[date, dict[State, float]]]:
    """Seconds per state per UTC hour and per Paris date, walking every minute from `origin` to `now`."""
    hours: dict[datetime, dict[State, float]] = defaultdict(lambda: dict.fromkeys(State, 0.0))
    days: dict[date, dict[State, float]] = defaultdict(lambda: dict.fromkeys(State, 0.0))
    moment = origin
    while moment < now:
        state = before
        for transition in transitions:
            if transition.at <= moment:
                state = transition.state
        hours[moment.replace(minute=0)][state] += 60
        days[moment.astimezone(PARIS).date()][state] += 60
        moment += MINUTE
    return dict(hours), dict(days)


@settings(max_examples=150, deadline=None)
@given(timelines())
def test_rollups_equal_a_minute_by_minute_walk(case: tuple[datetime, State, list[Transition], datetime]) -> None:
    origin, before, transitions, now = case
    hours, days = brute_force(origin, before, transitions, now)

    hourly = rollups(KEY, transitions, before, "hour", origin, now)
    assert {rollup.start: rollup.seconds for rollup in hourly} == hours

    daily = rollups(KEY, transitions, before, "day", origin, now)
    assert {rollup.start.astimezone(PARIS).date(): rollup.seconds for rollup in daily} == days
    for rollup in daily:
        assert rollup.start.astimezone(PARIS).time().hour == 0
        inside = [hour for hour in hourly if rollup.start <= hour.start < rollup.end]
        assert Window.summing(KEY, rollup.start, rollup.end, inside).seconds == rollup.seconds
