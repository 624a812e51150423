"""Reactivation timelines: episodes from transitions (pure), and the overview's search of a line's older history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import ComponentRef, Source, State, Transition
from monitor.store import Batch, Store
from monitor.web.home_page import TIMELINE_DAYS, _episodes_of
from monitor.web.reactivation_timeline import Step, episodes

NOW = datetime(2024, 2, 20, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=TIMELINE_DAYS)
OPTIQUE = ComponentRef("line", "alpha", "optique")
PHARMACIE = ComponentRef("line", "alpha", "pharmacie")


def at(days: float) -> datetime:
    """`days` before NOW."""
    return NOW - timedelta(days=days)


def moves(
    ref: ComponentRef, *steps: tuple[datetime, State, float], first: State = State.OPERATIONAL
) -> list[Transition]:
    found, previous = [], first
    for moment, state, progress in steps:
        found.append(Transition(ref, previous, state, moment, moment, Source.PROBE, progress))
        previous = state
    return found


def test_down_then_recovering_steps_then_operational_is_one_ended_episode() -> None:
    story = moves(
        OPTIQUE,
        (at(8), State.DOWN, 0.0),
        (at(6), State.RECOVERING, 0.25),
        (at(5), State.RECOVERING, 0.5),
        (at(4), State.OPERATIONAL, 1.0),
    )
    [episode] = episodes(story, SINCE)
    assert episode.key == OPTIQUE.key
    assert episode.started == at(8)
    assert episode.ended == at(4)
    assert not episode.open
    assert episode.progress == 1.0
    assert episode.steps == [
        Step(at(8), State.DOWN, 0.0),
        Step(at(6), State.RECOVERING, 0.25),
        Step(at(5), State.RECOVERING, 0.5),
        Step(at(4), State.OPERATIONAL, 1.0),
    ]


def test_an_ongoing_reactivation_reports_its_last_step() -> None:
    story = moves(OPTIQUE, (at(3), State.DOWN, 0.0), (at(2), State.RECOVERING, 0.25), (at(1), State.RECOVERING, 0.5))
    [episode] = episodes(story, SINCE)
    assert episode.open and episode.ended is None
    assert episode.progress == 0.5
    assert [s.state for s in episode.steps] == [State.DOWN, State.RECOVERING, State.RECOVERING]


def test_degraded_counts_as_back() -> None:
    story = moves(OPTIQUE, (at(3), State.DOWN, 0.0), (at(2), State.PARTIAL, 0.5), (at(1), State.DEGRADED, 0.0))
    [episode] = episodes(story, SINCE)
    assert episode.ended == at(1)
    assert episode.steps[-1] == Step(at(1), State.OPERATIONAL, 1.0)


@pytest.mark.parametrize("state", [State.MAINTENANCE, State.UNKNOWN])
def test_maintenance_and_unknown_start_nothing(state: State) -> None:
    story = moves(OPTIQUE, (at(3), state, 0.5), (at(2), State.OPERATIONAL, 1.0))
    assert episodes(story, SINCE) == []


@pytest.mark.parametrize("state", [State.PARTIAL, State.RECOVERING])
def test_a_partial_outage_or_a_recovery_seen_first_is_an_episode(state: State) -> None:
    """A partial outage is an outage: it has its timeline, as the declared reopening of a portal does."""
    story = moves(OPTIQUE, (at(3), state, 0.5), (at(2), State.RECOVERING, 0.75), (at(1), State.OPERATIONAL, 1.0))
    [episode] = episodes(story, SINCE)
    assert (episode.started, episode.ended) == (at(3), at(1))
    assert episode.steps == [
        Step(at(3), state, 0.5),
        Step(at(2), State.RECOVERING, 0.75),
        Step(at(1), State.OPERATIONAL, 1.0),
    ]


def test_maintenance_and_unknown_inside_an_outage_are_steps_not_ends() -> None:
    story = moves(
        OPTIQUE,
        (at(5), State.DOWN, 0.0),
        (at(4), State.MAINTENANCE, 0.0),
        (at(3), State.UNKNOWN, 0.0),
        (at(2), State.DOWN, 0.0),
    )
    [episode] = episodes(story, SINCE)
    assert episode.open
    assert [s.state for s in episode.steps] == [State.DOWN, State.MAINTENANCE, State.UNKNOWN, State.DOWN]


def test_an_episode_ended_before_since_is_dropped_one_ended_after_is_kept() -> None:
    story = moves(
        OPTIQUE,
        (at(40), State.DOWN, 0.0),
        (at(35), State.OPERATIONAL, 1.0),  # ended before the window
        (at(32), State.DOWN, 0.0),
        (at(29), State.OPERATIONAL, 1.0),  # spans the window's start: kept
    )
    found = episodes(story, SINCE)
    assert [(e.started, e.ended) for e in found] == [(at(32), at(29))]


def test_components_are_told_apart_and_the_order_of_the_input_does_not_matter() -> None:
    story = [
        *moves(OPTIQUE, (at(5), State.DOWN, 0.0), (at(2), State.OPERATIONAL, 1.0)),
        *moves(PHARMACIE, (at(4), State.DOWN, 0.0)),
    ]
    found = episodes(list(reversed(story)), SINCE)  # the store reads newest first
    assert [(e.key, e.started, e.ended) for e in found] == [
        (OPTIQUE.key, at(5), at(2)),
        (PHARMACIE.key, at(4), None),
    ]


# --- the overview's search over a real store --------------------------------------------------------------


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def write(store: Store, transitions: list[Transition]) -> None:
    store.write(Batch(transitions=transitions))


def test_an_outage_begun_before_the_window_and_still_going_is_found_in_older_history(store: Store) -> None:
    # down 45 days ago, recovering inside the window: no `down` among the last 30 days' transitions
    write(store, moves(OPTIQUE, (at(45), State.DOWN, 0.0), (at(10), State.RECOVERING, 0.25)))
    write(store, moves(PHARMACIE, (at(3), State.DOWN, 0.0), (at(2), State.OPERATIONAL, 1.0)))
    current = {OPTIQUE.key: State.RECOVERING, PHARMACIE.key: State.OPERATIONAL}
    found = _episodes_of(store, set(current), current, NOW)
    [optique] = found[OPTIQUE.key]
    assert optique.open and optique.started == at(45)
    assert [s.state for s in optique.steps] == [State.DOWN, State.RECOVERING]
    assert optique.progress == 0.25
    [pharmacie] = found[PHARMACIE.key]
    assert (pharmacie.started, pharmacie.ended) == (at(3), at(2))


def test_an_old_outage_that_ended_long_ago_is_not_shown(store: Store) -> None:
    write(store, moves(OPTIQUE, (at(60), State.DOWN, 0.0), (at(50), State.OPERATIONAL, 1.0)))
    current = {OPTIQUE.key: State.OPERATIONAL}
    assert _episodes_of(store, set(current), current, NOW) == {}


def test_lines_not_asked_for_are_left_out(store: Store) -> None:
    write(store, moves(ComponentRef("line", "beta", "optique"), (at(2), State.DOWN, 0.0)))
    current = {OPTIQUE.key: State.OPERATIONAL}
    assert _episodes_of(store, set(current), current, NOW) == {}


def test_an_outage_begun_before_the_window_that_went_down_again_keeps_its_first_start(store: Store) -> None:
    write(
        store,
        moves(OPTIQUE, (at(45), State.DOWN, 0.0), (at(10), State.RECOVERING, 0.25), (at(5), State.DOWN, 0.0)),
    )
    current = {OPTIQUE.key: State.DOWN}
    [optique] = _episodes_of(store, set(current), current, NOW)[OPTIQUE.key]
    assert optique.started == at(45)


def test_an_outage_spanning_the_window_start_and_now_over_is_shown(store: Store) -> None:
    write(store, moves(OPTIQUE, (at(45), State.DOWN, 0.0), (at(20), State.OPERATIONAL, 1.0)))
    current = {OPTIQUE.key: State.OPERATIONAL}
    [optique] = _episodes_of(store, set(current), current, NOW)[OPTIQUE.key]
    assert (optique.started, optique.ended) == (at(45), at(20))
