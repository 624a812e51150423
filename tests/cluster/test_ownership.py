"""Who probes a check: rendezvous hashing over the members, judged on the database's clock (pure, no I/O)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from monitor.cluster.ownership import DEAD_AFTER, LATE_BEATS, SEEN_MISSING, Member, View, weight

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
BEAT = 5.0
S = timedelta(seconds=1)
KEYS = [f"check:net{i % 7}/pec/c{i}" for i in range(3000)]


def _member(name: str, joined: float = -100.0, beat: float = 0.0) -> Member:
    return Member(name, T0 + joined * S, T0 + beat * S)


def _owners(views: list[View], at: datetime) -> dict[str, list[str]]:
    """For each key, the members that think they own it at `at`."""
    found: dict[str, list[str]] = {key: [] for key in KEYS}
    for view in views:
        for key in KEYS:
            if view.owns(key, at):
                found[key].append(view.me)
    return found


def test_weight_is_the_same_everywhere_and_spreads() -> None:
    assert weight("a", "check:x") == weight("a", "check:x")
    assert weight("a", "check:x") != weight("b", "check:x")
    assert 0 <= weight("a", "check:x") < 2**64


def test_three_members_each_own_a_third_and_every_key_has_one_owner() -> None:
    members = (_member("a"), _member("b"), _member("c"))
    views = [View(me, members, BEAT, T0) for me in "abc"]
    owners = _owners(views, T0)
    assert all(len(found) == 1 for found in owners.values())
    shares = Counter(found[0] for found in owners.values())
    assert set(shares) == {"a", "b", "c"}
    assert all(900 <= count <= 1100 for count in shares.values()), shares


def test_a_joining_member_counts_two_heartbeats_after_it_joined_for_everyone_at_once() -> None:
    joined = 3.0
    settled = joined + 2 * BEAT  # each read again, one heartbeat before c settles
    members = (
        _member("a", beat=settled - BEAT),
        _member("b", beat=settled - BEAT),
        _member("c", joined, settled - BEAT),
    )
    views = [View(me, members, BEAT, T0 + (settled - BEAT) * S) for me in "abc"]
    before = _owners(views, T0 + (joined + 2 * BEAT - 0.001) * S)
    after = _owners(views, T0 + (joined + 2 * BEAT) * S)
    assert all(len(found) == 1 for found in [*before.values(), *after.values()])  # never twice, never nobody
    assert "c" not in {found[0] for found in before.values()}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == ["c"] for key in moved)  # only what c takes moves
    assert 900 <= len(moved) <= 1100


def test_the_first_member_owns_everything_at_once() -> None:
    view = View("a", (_member("a", joined=0.0, beat=0.0),), BEAT, T0)
    assert all(view.owns(key, T0) for key in KEYS[:100])


def test_a_member_silent_two_heartbeats_loses_its_share_to_the_others_only() -> None:
    live = (_member("a", beat=10.0), _member("b", beat=10.0), _member("c", beat=10.0))
    fresh = [View(me, live, BEAT, T0 + 10 * S) for me in "abc"]
    owners = _owners(fresh, T0 + 11 * S)
    # read again when c's last heartbeat is just over two heartbeats old; a and b beat
    later = T0 + (10 + 2 * BEAT + 0.5) * S
    silent = (_member("a", beat=20.0), _member("b", beat=20.0), _member("c", beat=10.0))
    views = [View(me, silent, BEAT, later) for me in "ab"]
    assert [m.id for m in views[0].alive] == ["a", "b"]
    after = _owners(views, later)
    assert all(len(found) == 1 for found in after.values())
    for key in KEYS:
        if owners[key] != ["c"]:
            assert after[key] == owners[key]  # nothing else moves


def test_views_that_disagree_on_a_dead_member_never_both_own_a_key() -> None:
    """b has read that c is dead, a not yet: c's keys may wait for a's next reading, none is run twice."""
    rows = (_member("a", beat=20.0), _member("b", beat=20.0), _member("c", beat=10.0))
    a = View("a", rows, BEAT, T0 + 19 * S)  # c still alive when a read
    b = View("b", rows, BEAT, T0 + 21 * S)  # c dead when b read
    at = T0 + 22 * S
    assert all(len(found) <= 1 for found in _owners([a, b], at).values())


def test_me_lives_in_my_own_eyes_even_when_my_heartbeat_is_old() -> None:
    rows = (_member("a", beat=0.0), _member("b", beat=30.0))
    view = View("a", rows, BEAT, T0 + 30 * S)  # a's own writes failed: it keeps its share, b keeps its own
    assert {m.id for m in view.alive} == {"a", "b"}
    assert View("a", (), BEAT).counted(T0) == ()


def test_each_location_shares_its_own_checks_and_the_first_live_one_writes() -> None:
    rows = (
        Member("a", T0 - 100 * S, T0, "paris"),
        Member("b", T0 - 100 * S, T0, "paris"),
        Member("l", T0 - 100 * S, T0, "lyon"),
    )
    paris = [View(me, rows, BEAT, T0, "paris") for me in "ab"]
    lyon = View("l", rows, BEAT, T0, "lyon")
    assert all(lyon.owns(key, T0) for key in KEYS)  # alone in lyon: every check, probed from lyon too
    assert all(len(found) == 1 for found in _owners(paris, T0).values())  # once in paris
    assert lyon.primary == paris[0].primary == "lyon"
    later = T0 + 3 * BEAT * S  # lyon silent two heartbeats: paris writes
    moved = (rows[0].__class__("a", rows[0].joined_at, later, "paris"), rows[1], rows[2])
    assert View("a", moved, BEAT, later, "paris").primary == "paris"


def test_a_late_member_stops_itself_before_the_others_take_over() -> None:
    rows = (_member("a", beat=0.0), _member("b", beat=0.0))
    a = View("a", rows, BEAT, T0)
    key = next(k for k in KEYS if a.owns(k, T0))
    assert a.owns(key, T0 + LATE_BEATS * BEAT * S)
    assert not a.owns(key, T0 + (LATE_BEATS * BEAT + 0.1) * S)  # late: a runs nothing more…
    read = SEEN_MISSING * BEAT + 0.1  # b beat and read then: a's next heartbeat missing
    b = View("b", (rows[0], _member("b", beat=read)), BEAT, T0 + read * S)
    assert not b.owns(key, T0 + (DEAD_AFTER * BEAT - 0.1) * S)
    assert b.owns(key, T0 + (DEAD_AFTER * BEAT + 0.1) * S)  # …before b takes it
    alone = View("a", rows[:1], BEAT, T0)
    assert alone.owns(key, T0 + 100 * S)  # alone, nobody would take over: it goes on
    unreachable = View("a", rows, BEAT, T0, fenced=False)
    assert unreachable.owns(key, T0 + 100 * S)  # the database unreachable for all: everyone goes on


def test_after_a_late_heartbeat_a_member_waits_one_heartbeat() -> None:
    rows = (_member("a", beat=0.0), _member("b", beat=0.0))
    view = View("a", rows, BEAT, T0, resumes_at=T0 + BEAT * S)
    key = next(k for k in KEYS if View("a", rows, BEAT, T0).owns(k, T0))
    assert not view.owns(key, T0 + (BEAT - 0.1) * S)
    assert view.owns(key, T0 + BEAT * S)


def test_a_killed_member_is_taken_over_two_heartbeats_after_its_last_one_never_twice() -> None:
    """c beats at 10 s and dies; a and b read twice per heartbeat: whichever reading they hold once c's next
    heartbeat is seen missing, its keys have exactly one owner from two heartbeats after its last one."""
    rows = (_member("a", beat=10.0), _member("b", beat=10.0), _member("c", beat=10.0))
    c = View("c", rows, BEAT, T0 + 10 * S)  # its last reading, before it died
    taken = T0 + (10 + DEAD_AFTER * BEAT + 0.001) * S
    for read in (10 + SEEN_MISSING * BEAT, 10 + (SEEN_MISSING + 0.5) * BEAT - 0.001):  # the two readings in time
        later = (_member("a", beat=read), _member("b", beat=read), rows[2])
        views = [View(me, later, BEAT, T0 + read * S) for me in "ab"]
        before = _owners([*views, c], T0 + (10 + DEAD_AFTER * BEAT - 0.001) * S)
        after = _owners([*views, c], taken)
        assert all(len(found) <= 1 for found in before.values())
        assert all(len(found) == 1 for found in after.values())  # every key: one owner, c's taken over
        assert "c" not in {found[0] for found in after.values()}
    # a reading too early to show c's next heartbeat missing takes nothing: c might have written it
    early = View("a", rows, BEAT, T0 + (10 + SEEN_MISSING * BEAT - 0.1) * S)
    assert not any(early.owns(key, taken) and c.owns(key, T0 + 10 * S) for key in KEYS)


def test_the_members_counted_are_the_same_when_kept_per_span_as_when_counted_again() -> None:
    """`counted` is kept between the instants a member settles or dies (every run asks): the same answers, the
    instants themselves and both sides of them included."""
    rows = (
        _member("a", joined=-100.0, beat=20.0),
        _member("b", joined=18.0, beat=20.0),  # settles at 18 + 2 heartbeats
        _member("c", joined=-100.0, beat=12.0),  # seen missing: dies at 12 + 2 heartbeats
        Member("d", T0, T0 + 20 * S, "lyon"),
    )
    view = View("a", rows, BEAT, T0 + 20 * S)
    instants = [12 + DEAD_AFTER * BEAT, 18 + 2 * BEAT]
    probes = [t + d for t in instants for d in (-0.001, 0.0, 0.001)] + [0.0, 15.0, 40.0]
    seen = set()
    for at in sorted(probes) + sorted(probes, reverse=True):
        seen.add(view.counted(T0 + at * S))
        assert view.counted(T0 + at * S) == View("a", rows, BEAT, T0 + 20 * S)._count(T0 + at * S), at
    assert seen == {("a", "c"), ("a",), ("a", "b")}
