"""A check probed from several locations: one published verdict, by quorum (pure).

Each location folds its own results into its own memory of the check (`check_state.advance`); this module
combines those memories. Only a location with a *fresh* verdict votes: a state known (not unknown) from a result
younger than the check's `stale_after`. With n voters and a quorum q (configured, or a majority of the voters:
n // 2 + 1; never more than n):

- no voter: nothing to combine — the verdict stays as it was, and goes unknown with time like any check's;
- one voter: its memory as it is (one vantage point, as a single tpmon has);
- down when at least q voters see it down, dated from when the q-th of them saw it (its `since`);
- otherwise, when as many voters see it down as see it working (a split: 1–1 of two locations, 2–2 of four, or a
  configured quorum out of reach), unknown: tpmon cannot tell whether it works, and never says it does;
- otherwise it works: degraded when at least as many voters see it slow (or down) as see it fast, else
  operational; the voters that see it down are a minority, named (`down_from`) — "unreachable from lyon only".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..models import BROKEN, CheckMemory, State, Streak

__all__ = ["LOCATED", "Verdict", "combine", "located_key", "majority", "split_key", "voters"]

LOCATED = "@"  # a location's own memory of a check is stored as `check:…@lyon`, beside the check's verdict


def located_key(check_key: str, location: str) -> str:
    """The key of `location`'s own memory of check `check_key`."""
    return f"{check_key}{LOCATED}{location}"


def split_key(key: str) -> tuple[str, str | None]:
    """(check key, location) of a location's memory key; (key, None) for any other key."""
    base, sep, location = key.partition(LOCATED)
    return (base, location) if sep else (key, None)


@dataclass(frozen=True)
class Verdict:
    """The combined memory of a check, and the locations that see it down when it is not published down."""

    memory: CheckMemory
    down_from: tuple[str, ...] = ()  # sorted; a minority (verdict working) or one side of a split (unknown)
    split: bool = False  # no quorum either way: unknown


def majority(voters: int) -> int:
    """The default quorum of `voters` locations: more than half of them."""
    return voters // 2 + 1


def voters(memories: Mapping[str, CheckMemory], stale_after: float, now: datetime) -> dict[str, CheckMemory]:
    """The locations whose memory holds a fresh verdict at `now`: a known state, a result within `stale_after`."""
    oldest = now - timedelta(seconds=stale_after)
    return {
        location: memory
        for location, memory in memories.items()
        if memory.state is not State.UNKNOWN and memory.last_result_at is not None and memory.last_result_at > oldest
    }


def combine(
    memories: Mapping[str, CheckMemory],
    previous: CheckMemory,
    stale_after: float,
    now: datetime,
    quorum: int | None = None,
) -> Verdict:
    """The verdict of the locations' `memories` (location → memory) at `now`; `previous` is the last verdict."""
    last = max((m.last_result_at for m in (previous, *memories.values()) if m.last_result_at is not None), default=None)
    votes = voters(memories, stale_after, now)
    if not votes:
        return Verdict(replace(previous, last_result_at=last))
    if len(votes) == 1:
        (memory,) = votes.values()
        return Verdict(replace(memory, last_result_at=last))
    count = len(votes)
    needed = min(quorum or majority(count), count)
    down = sorted(location for location, memory in votes.items() if memory.state is State.DOWN)
    working = [memory for memory in votes.values() if memory.state is not State.DOWN]
    if len(down) >= needed:  # dated, and its failures counted, as the location that made the quorum saw them
        deciding = sorted((votes[location] for location in down), key=lambda memory: _since(memory, now))[needed - 1]
        return Verdict(_memory(previous, State.DOWN, _since(deciding, now), last, deciding.fails))
    if down and len(down) >= len(working):
        dates = sorted(_since(memory, now) for memory in votes.values())
        return Verdict(_memory(previous, State.UNKNOWN, dates[-1], last), tuple(down), split=True)
    slow = sum(memory.state is State.DEGRADED for memory in working)
    state = State.DEGRADED if slow + len(down) >= len(working) - slow else State.OPERATIONAL
    dates = sorted(_since(memory, now) for memory in working)
    return Verdict(_memory(previous, state, dates[min(len(down), len(dates) - 1)], last), tuple(down))


def _since(memory: CheckMemory, now: datetime) -> datetime:
    return memory.since or memory.last_result_at or now


def _memory(
    previous: CheckMemory, state: State, since: datetime, last: datetime | None, fails: Streak = BROKEN
) -> CheckMemory:
    """The combined memory: the state kept since it began, or a new one never dated before the last change; its
    consecutive failures those of the location that made a quorum down (none while it works)."""
    if previous.since is not None and (state is previous.state or since < previous.since):
        since = previous.since
    return CheckMemory(state, since, fails=fails, last_result_at=last)
