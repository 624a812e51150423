"""A check probed from several locations: the published verdict by quorum (`engine/quorum.py`), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.engine.quorum import combine, located_key, majority, split_key, voters
from monitor.models import CheckMemory, State, Streak

NOW = datetime(2026, 2, 12, 9, 0, tzinfo=UTC)
STALE = 180.0  # seconds: 3 × a 60 s interval
UP = State.OPERATIONAL
DOWN = State.DOWN
SLOW = State.DEGRADED


def seen(state: State, minutes_ago: float = 10, last_ago: float = 30) -> CheckMemory:
    """A location's memory: `state` since `minutes_ago`, its last result `last_ago` seconds ago."""
    return CheckMemory(state, NOW - timedelta(minutes=minutes_ago), last_result_at=NOW - timedelta(seconds=last_ago))


PREVIOUS = CheckMemory(UP, NOW - timedelta(hours=2), last_result_at=NOW - timedelta(seconds=40))


def verdict(quorum: int | None = None, **memories: CheckMemory) -> tuple[State, tuple[str, ...], bool]:
    found = combine(memories, PREVIOUS, STALE, NOW, quorum)
    return found.memory.state, found.down_from, found.split


def test_majority_is_more_than_half() -> None:
    assert [majority(n) for n in range(1, 7)] == [1, 2, 2, 3, 3, 4]


def test_one_location_down_of_three_is_shown_but_not_published_down() -> None:
    assert verdict(paris=seen(UP), lyon=seen(DOWN), marseille=seen(UP)) == (UP, ("lyon",), False)


def test_two_locations_down_of_three_publish_down_dated_when_the_second_saw_it() -> None:
    marseille = CheckMemory(
        DOWN, NOW - timedelta(minutes=4), fails=Streak(5, NOW - timedelta(minutes=4)), last_result_at=NOW
    )
    found = combine(
        {"paris": seen(UP), "lyon": seen(DOWN, minutes_ago=9), "marseille": marseille}, PREVIOUS, STALE, NOW
    )
    assert found.memory.state is DOWN
    assert found.memory.since == NOW - timedelta(minutes=4)  # from when a quorum saw it: the second of two
    assert found.memory.fails == marseille.fails  # its failures as that location counted them
    assert found.down_from == ()


def test_a_split_of_two_locations_is_unknown_never_working() -> None:
    assert verdict(paris=seen(UP), lyon=seen(DOWN)) == (State.UNKNOWN, ("lyon",), True)
    assert verdict(paris=seen(SLOW), lyon=seen(DOWN)) == (State.UNKNOWN, ("lyon",), True)
    assert verdict(a=seen(UP), b=seen(UP), c=seen(DOWN), d=seen(DOWN)) == (State.UNKNOWN, ("c", "d"), True)


def test_a_configured_quorum_out_of_reach_with_as_many_down_as_up_is_unknown() -> None:
    assert verdict(3, a=seen(UP), b=seen(DOWN), c=seen(DOWN)) == (State.UNKNOWN, ("b", "c"), True)
    assert verdict(3, a=seen(UP), b=seen(UP), c=seen(DOWN)) == (UP, ("c",), False)  # the working side leads


def test_a_quorum_of_one_publishes_any_location_down() -> None:
    assert verdict(1, paris=seen(UP), lyon=seen(DOWN), marseille=seen(UP))[0] is DOWN


def test_a_quorum_above_the_voters_counts_all_of_them() -> None:
    assert verdict(5, paris=seen(DOWN), lyon=seen(DOWN))[0] is DOWN  # at most every voter: 2 of 2
    assert verdict(5, paris=seen(DOWN))[0] is DOWN  # the one vantage point left


def test_one_location_with_a_fresh_result_decides_alone_its_memory_as_it_is() -> None:
    streaky = CheckMemory(
        DOWN, NOW - timedelta(minutes=3), fails=Streak(4, NOW - timedelta(minutes=3)), last_result_at=NOW
    )
    found = combine({"paris": streaky, "lyon": seen(UP, last_ago=600)}, PREVIOUS, STALE, NOW)
    assert found.memory == streaky  # lyon's result is 10 minutes old: it does not vote
    assert found.down_from == ()


def test_no_fresh_result_keeps_the_verdict_to_go_stale_with_time() -> None:
    old = {"paris": seen(DOWN, last_ago=600), "lyon": CheckMemory(State.UNKNOWN, last_result_at=NOW)}
    found = combine(old, PREVIOUS, STALE, NOW)
    assert found.memory.state is PREVIOUS.state and found.memory.since == PREVIOUS.since
    assert found.memory.last_result_at == NOW  # a result came (lyon's, no verdict yet): not stale
    assert combine({}, PREVIOUS, STALE, NOW).memory == PREVIOUS


def test_unknown_and_stale_locations_do_not_vote() -> None:
    memories = {
        "paris": seen(UP),
        "lyon": seen(DOWN, last_ago=STALE + 1),
        "marseille": CheckMemory(State.UNKNOWN, last_result_at=NOW),
    }
    assert set(voters(memories, STALE, NOW)) == {"paris"}


def test_slowness_is_told_when_at_least_as_many_see_it_slow_as_fast() -> None:
    assert verdict(paris=seen(UP), lyon=seen(SLOW))[0] is SLOW  # works: slowly for one of two, never "normally"
    assert verdict(paris=seen(UP), lyon=seen(SLOW), marseille=seen(UP))[0] is UP
    assert verdict(paris=seen(UP), lyon=seen(SLOW), marseille=seen(DOWN)) == (SLOW, ("marseille",), False)


def test_a_verdict_kept_keeps_its_date_and_a_new_one_is_never_dated_before_the_last() -> None:
    kept = combine({"paris": seen(UP, 1), "lyon": seen(UP, 2)}, PREVIOUS, STALE, NOW).memory
    assert kept.since == PREVIOUS.since
    was = CheckMemory(DOWN, NOW - timedelta(minutes=5), last_result_at=NOW)
    back = combine({"paris": seen(UP, minutes_ago=30), "lyon": seen(UP, minutes_ago=20)}, was, STALE, NOW).memory
    assert back.state is UP and back.since == was.since


@pytest.mark.parametrize("location", ["lyon", "paris-2", "a_b"])
def test_a_location_memory_key_names_its_check_and_location(location: str) -> None:
    key = located_key("check:viamedis/pec/c01", location)
    assert split_key(key) == ("check:viamedis/pec/c01", location)
    assert split_key("check:viamedis/pec/c01") == ("check:viamedis/pec/c01", None)
