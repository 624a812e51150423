"""Who probes a check: rendezvous hashing over the live members of a location, at a given instant.

Every instance reads the same rows (id, joined, last heartbeat, dated by the database's clock) at each of its
heartbeats, and applies the same rules:

- among the members that count, a check belongs to the one with the highest hash of (member, check): a joining
  member takes about 1/n of the checks, a leaving one's are spread over the others, nothing else moves — so
  two instances that disagree only on whether a third one lives never both own one of their own checks;
- a member counts from two heartbeats after it joined, by the database's clock, at the instant a run is due:
  every other member has read its row by then, so all hand it its share at the same instant, neither twice nor
  never (unless no member counts yet: the first instance starts at once);
- a member whose heartbeat, when read, is more than two heartbeats old has missed two heartbeats: it counts no
  more, and the others take its checks from that reading on. A member that is merely slow (a starved process)
  stops itself first: past one and a half heartbeats after its last heartbeat it owns nothing, and after a
  heartbeat written that late it waits one more heartbeat (the others read it alive again meanwhile), so that
  it never runs what the others took;
- each location probes every check; until their verdicts are combined (a quorum), the facts of the checks are
  written from one location only, the first by name among those with a live member (the primary).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["LATE_BEATS", "MISSED_BEATS", "Member", "View", "weight"]

MISSED_BEATS = 2  # heartbeats a member may miss before its share goes to the others
LATE_BEATS = 1.5  # a member this late after its last heartbeat stops itself (before the others take over)


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
        if not self.fenced or sum(m.location == self.location for m in self.alive) < 2:
            return False  # alone in its location, nobody takes over: go on
        if self.resumes_at is not None and at < self.resumes_at:
            return True
        mine = next((m for m in self.members if m.id == self.me), None)
        return mine is not None and at > mine.heartbeat_at + timedelta(seconds=self.heartbeat * LATE_BEATS)

    @property
    def alive(self) -> tuple[Member, ...]:
        """The members that had missed fewer than two heartbeats when read; `me` always lives in its own eyes."""
        if self.read_at is None:
            return tuple(m for m in self.members if m.id == self.me)
        oldest = self.read_at - MISSED_BEATS * timedelta(seconds=self.heartbeat)
        return tuple(m for m in self.members if m.id == self.me or m.heartbeat_at >= oldest)

    @property
    def primary(self) -> str:
        """The location whose instances write the checks' facts: the first live one by name (`me`'s at worst)."""
        return min([m.location for m in self.alive] + [self.location])

    def counted(self, at: datetime) -> tuple[str, ...]:
        """The members of `me`'s location that share its checks at `at` (sorted)."""
        alive = [m for m in self.alive if m.location == self.location]
        settle = MISSED_BEATS * timedelta(seconds=self.heartbeat)
        settled = [m.id for m in alive if at >= m.joined_at + settle]
        return tuple(sorted(settled or (m.id for m in alive)))

    def owner(self, key: str, at: datetime) -> str | None:
        counted = self.counted(at)
        return max(counted, key=lambda member: weight(member, key)) if counted else None

    def owns(self, key: str, at: datetime) -> bool:
        return self.owner(key, at) == self.me and not self.late(at)
