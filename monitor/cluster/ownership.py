"""Who probes a check: rendezvous hashing over the live members of a location, at a given instant.

Every instance reads the same rows (id, joined, last heartbeat, dated by the database's clock) at each of its
heartbeats, and applies the same rules:

- among the members that count, a check belongs to the one with the highest hash of (member, check): a joining
  member takes about 1/n of the checks, a leaving one's are spread over the others, nothing else moves — so
  two instances that disagree only on whether a third one lives never both own one of their own checks;
- a member counts from two heartbeats after it joined, by the database's clock, at the instant a run is due:
  every other member has read its row by then, so all hand it its share at the same instant, neither twice nor
  never (unless no member counts yet: the first instance starts at once);
- members write a heartbeat every half heartbeat (`BEAT`). A member whose next heartbeat a reading shows missing
  (read one and a half heartbeats after its last) loses its share at the instants past two heartbeats after its
  last one (`DEAD_AFTER`): a member killed is taken over within two heartbeats. A member that is merely slow (a
  starved process) stops itself first: past `LATE_BEATS` after its own last heartbeat it owns nothing; and after a
  heartbeat started more than a heartbeat after the previous one, or taking more than half a heartbeat (`SLOW`) —
  one the others may not have read in time — it owns nothing until all have read it (half a heartbeat and its
  margin later), so that it never runs what the others took. A heartbeat on time is read by every member on time:
  started at most a heartbeat after the previous one and committed within half a heartbeat, it is there for any
  reading one and a half heartbeats after the previous one;
- each location probes every check and writes its own memory of it; a check's verdict, the locations' memories
  combined by quorum (`engine/quorum.py`), is written from one location only, the first by name among those with
  a live member (the primary), by the check's owner there.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["BEAT", "DEAD_AFTER", "LATE_BEATS", "MISSED_BEATS", "SLOW", "Member", "View", "weight"]

BEAT = 0.5  # heartbeats between two heartbeats written: read by the others twice per heartbeat
SLOW = 0.5  # heartbeats a heartbeat may start late or take: beyond, it may be read late (its member waits)
SEEN_MISSING = BEAT + 2 * SLOW  # a reading this long after a member's last heartbeat would show the next one
DEAD_AFTER = 2.0  # heartbeats: past this after its last heartbeat (seen missing), a member's share is the others'
LATE_BEATS = 1.75  # a member this late after its last heartbeat stops itself (before the others take over)
MISSED_BEATS = 2  # heartbeats: a member that had missed this many when read is not alive (nor the leader's)
_MICROSECOND, _NOTHING = timedelta(microseconds=1), timedelta(0)


@functools.lru_cache(maxsize=1 << 16)  # every slot of every check asks again: the same few members, the same keys
def weight(member: str, key: str) -> int:
    """The rendezvous weight of `key` for `member` (64 bits of BLAKE2b: the same on every instance)."""
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Member:
    id: str
    joined_at: datetime
    heartbeat_at: datetime
    location: str = "default"


@dataclass(frozen=True)
class View:
    """The members of one location as read by the instance `me` at `read_at` (the database's clock)."""

    me: str
    members: tuple[Member, ...]  # of every location
    heartbeat: float  # seconds between heartbeats
    read_at: datetime | None = None
    location: str = "default"  # that of `me`
    fenced: bool = True  # `me` stops itself when late; not while the database cannot be reached at all
    resumes_at: datetime | None = None  # after a late heartbeat, `me` owns nothing before this

    def late(self, at: datetime) -> bool:
        """Whether `me` is past `LATE_BEATS` after its own last heartbeat at `at` (and so owns nothing)."""
        fenced, late_after = self._fence
        if not fenced:
            return False
        if self.resumes_at is not None and at < self.resumes_at:
            return True
        return late_after is not None and at > late_after

    @functools.cached_property
    def _fence(self) -> tuple[bool, datetime | None]:
        """Whether `me` may be late, and after which instant it is (asked at every run: computed once)."""
        if not self.fenced or sum(m.location == self.location for m in self.alive) < 2:
            return False, None  # alone in its location, nobody takes over: go on
        mine = next((m for m in self.members if m.id == self.me), None)
        return True, None if mine is None else mine.heartbeat_at + timedelta(seconds=self.heartbeat * LATE_BEATS)

    @functools.cached_property
    def alive(self) -> tuple[Member, ...]:
        """The members that had missed fewer than two heartbeats when read; `me` always lives in its own eyes."""
        if self.read_at is None:
            return tuple(m for m in self.members if m.id == self.me)
        oldest = self.read_at - MISSED_BEATS * timedelta(seconds=self.heartbeat)
        return tuple(m for m in self.members if m.id == self.me or m.heartbeat_at >= oldest)

    @functools.cached_property
    def primary(self) -> str:
        """The location whose instances write the checks' facts: the first live one by name (`me`'s at worst)."""
        return min([m.location for m in self.alive] + [self.location])

    def dead(self, member: Member, at: datetime) -> bool:
        """Whether `member` (not `me`) has lost its share at `at`: a reading showed its next heartbeat missing, and
        `at` is past two heartbeats after its last one."""
        if member.id == self.me or self.read_at is None:
            return False
        last, beat = member.heartbeat_at, timedelta(seconds=self.heartbeat)
        return self.read_at >= last + SEEN_MISSING * beat and at > last + DEAD_AFTER * beat

    @functools.cached_property
    def _instants(self) -> tuple[tuple[datetime, bool], ...]:
        """The instants at which `counted` may change (a member settles, `>=`; one seen missing dies, `>`)."""
        beat = timedelta(seconds=self.heartbeat)
        here = [m for m in self.alive if m.location == self.location]
        return tuple(
            [(m.joined_at + MISSED_BEATS * beat, False) for m in here]
            + [(m.heartbeat_at + DEAD_AFTER * beat, True) for m in here]
        )

    @functools.cached_property
    def _edges(self) -> list[datetime]:
        """The `_instants`, sorted, each one judged strictly (`>`) moved a microsecond later (a datetime's
        resolution): `at` is past an edge when `at >= edge`, and the edges it is past are the first ones."""
        return sorted(instant + (_MICROSECOND if strict else _NOTHING) for instant, strict in self._instants)

    @functools.cached_property
    def _counted(self) -> dict[int, tuple[str, ...]]:
        return {}

    def counted(self, at: datetime) -> tuple[str, ...]:
        """The members of `me`'s location that share its checks at `at` (sorted); the same between two of its
        `_instants`, so computed once per span (every run of every check asks, and every write: a bisection)."""
        span = bisect.bisect_right(self._edges, at)
        found = self._counted.get(span)
        if found is None:
            found = self._counted[span] = self._count(at)
        return found

    def _count(self, at: datetime) -> tuple[str, ...]:
        alive = [m for m in self.alive if m.location == self.location and not self.dead(m, at)]
        settle = MISSED_BEATS * timedelta(seconds=self.heartbeat)
        settled = [m.id for m in alive if at >= m.joined_at + settle]
        return tuple(sorted(settled or (m.id for m in alive)))

    def owner(self, key: str, at: datetime) -> str | None:
        counted = self.counted(at)
        return max(counted, key=lambda member: weight(member, key)) if counted else None

    def owns(self, key: str, at: datetime) -> bool:
        return self.owner(key, at) == self.me and not self.late(at)
