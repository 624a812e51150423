"""The check state machine: `advance` over sequences of probe outcomes, and `expire` (DESIGN §2, checks and stale).

Outcomes are written one character per probe: `.` fast success, `s` slow success (slower than
degraded_after), `x` failure. Probe `i` starts at T0 + i minutes. Expected states are written one word
per probe (`unk`, `op`, `deg`, `down`) and transitions as `previous>state@i`, where `i` is the probe the
new state is dated from (retroactive: the first of the run that crossed the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.check_state import CheckPolicy, advance, expire
from monitor.models import CheckMemory, ComponentRef, FailureReason, ProbeResult, Source, State, Transition

T0 = datetime(2024, 2, 12, 13, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
REF = ComponentRef.for_check("viamedis", "portail_ps", "portail")
FAST, SLOW, FAIL = ".", "s", "x"
WORDS = {"unk": State.UNKNOWN, "op": State.OPERATIONAL, "deg": State.DEGRADED, "down": State.DOWN}
WORDS_BY_STATE = {state: word for word, state in WORDS.items()}


def probe(outcome: str, at: datetime) -> ProbeResult:
    failed = outcome == FAIL
    return ProbeResult(
        REF,
        at,
        duration_s=9.0 if failed else 0.2,
        success=not failed,
        reason=FailureReason.TIMEOUT if failed else None,
        slow=outcome == SLOW,
    )


def at(index: int) -> datetime:
    return T0 + index * STEP


@dataclass
class Run:
    """The memory after each probe and every transition, with the probe index that caused it."""

    memories: list[CheckMemory]
    transitions: list[tuple[int, Transition]]


def fold(memory: CheckMemory, outcomes: str, policy: CheckPolicy, first: int = 0) -> Run:
    run = Run([], [])
    for offset, outcome in enumerate(outcomes):
        index = first + offset
        result = probe(outcome, at(index))
        memory, transition = advance(memory, result, policy, result.finished_at)
        run.memories.append(memory)
        if transition is not None:
            run.transitions.append((index, transition))
    return run


def start(state: str, policy: CheckPolicy) -> CheckMemory:
    """A memory reached the honest way: by folding results before T0 (from unknown)."""
    ft = policy.failure_threshold
    prefix = {"unk": "", "op": FAST, "deg": FAST + SLOW * ft, "down": FAIL * ft}[state]
    run = fold(CheckMemory(), prefix, policy, first=-len(prefix))
    memory = run.memories[-1] if run.memories else CheckMemory()
    assert memory.state is WORDS[state]
    return memory


def case(name: str, begin: str, outcomes: str, states: str, transitions: str = "", ft: int = 3, st_: int = 2) -> Any:
    return pytest.param(begin, outcomes, states, transitions, CheckPolicy(ft, st_), id=name)


CASES = [
    # from unknown
    case("unknown-one-fast-success-is-operational", "unk", ".", "op", "unk>op@0"),
    case("unknown-one-slow-success-is-degraded", "unk", "s", "deg", "unk>deg@0"),
    case("unknown-stays-unknown-below-threshold", "unk", "xx", "unk unk"),
    case("unknown-down-at-threshold-dated-from-first", "unk", "xxxx", "unk unk down down", "unk>down@0"),
    case("unknown-failures-then-success-is-operational", "unk", "xx.", "unk unk op", "unk>op@2"),
    # from operational
    case("operational-flap-below-threshold", "op", "xx.xx.", "op op op op op op"),
    case("operational-down-dated-from-first-failure", "op", "xxx", "op op down", "op>down@0"),
    case("operational-down-from-first-failure-of-the-run", "op", "x.xxx", "op op op op down", "op>down@2"),
    case("operational-slow-run-is-degraded", "op", "sss", "op op deg", "op>deg@0"),
    case("operational-slow-and-failures-mixed-is-degraded", "op", "sxs", "op op deg", "op>deg@0"),
    case("operational-one-fast-breaks-the-slow-run", "op", "ss.ss.", "op op op op op op"),
    case(
        "operational-slow-then-down-dated-from-first-failure",
        "op",
        "sssxxx",
        "op op deg deg deg down",
        "op>deg@0 deg>down@3",
    ),
    # from degraded
    case("degraded-back-up-after-success-threshold", "deg", "..", "deg op", "deg>op@0"),
    case("degraded-slow-breaks-the-fast-run", "deg", ".s..", "deg deg deg op", "deg>op@2"),
    case("degraded-down-dated-from-first-failure", "deg", "sxxx", "deg deg deg down", "deg>down@1"),
    # from down
    case("down-up-after-success-threshold-dated-from-first", "down", "..", "down op", "down>op@0"),
    case("down-one-success-is-not-enough", "down", ".x.", "down down down"),
    case("down-up-dated-from-first-of-the-run", "down", ".x..", "down down down op", "down>op@2"),
    case("down-slow-successes-come-back-degraded", "down", "ss", "down deg", "down>deg@0"),
    case("down-then-fast-after-slow-is-operational", "down", "s..", "down deg op", "down>deg@0 deg>op@1"),
    case("down-single-success-does-not-redate-outage", "down", ".xxx", "down down down down"),
    # threshold 1: every result decides
    case("threshold-1-one-failure-is-down", "op", "x", "down", "op>down@0", ft=1, st_=1),
    case("threshold-1-one-success-is-up", "down", ".", "op", "down>op@0", ft=1, st_=1),
    case("threshold-1-one-slow-is-degraded", "op", "s.", "deg op", "op>deg@0 deg>op@1", ft=1, st_=1),
    case("threshold-1-unknown-one-failure-is-down", "unk", "x", "down", "unk>down@0", ft=1, st_=1),
    # threshold 5
    case("threshold-5-four-failures-stay-up", "op", "xxxx.", "op op op op op", ft=5, st_=5),
    case("threshold-5-five-failures-down-from-first", "op", "xxxxx", "op op op op down", "op>down@0", ft=5, st_=5),
    case("threshold-5-four-successes-stay-down", "down", "....x", "down down down down down", ft=5, st_=5),
    case(
        "threshold-5-five-successes-up-from-first", "down", ".....", "down down down down op", "down>op@0", ft=5, st_=5
    ),
    case("threshold-5-unknown-until-five-failures", "unk", "xxxxx", "unk unk unk unk down", "unk>down@0", ft=5),
]


@pytest.mark.parametrize(("begin", "outcomes", "states", "transitions", "policy"), CASES)
def test_advance(begin: str, outcomes: str, states: str, transitions: str, policy: CheckPolicy) -> None:
    first = start(begin, policy)
    run = fold(first, outcomes, policy)

    assert [m.state for m in run.memories] == [WORDS[w] for w in states.split()]
    got = [f"{WORDS_BY_STATE[t.previous]}>{WORDS_BY_STATE[t.state]}@{(t.at - T0) // STEP}" for _, t in run.transitions]
    assert got == transitions.split()
    # `since` moves only with the state, and always to the transition's date: an outage is never re-dated.
    since = first.since
    for index, memory in enumerate(run.memories):
        caused = [t for i, t in run.transitions if i == index]
        if caused:
            since = caused[0].at
        assert memory.since == since, f"probe {index}"


def test_transition_records_when_noticed_and_why() -> None:
    policy = CheckPolicy(failure_threshold=3)
    run = fold(start("op", policy), "xxx", policy)
    (index, transition) = run.transitions[0]
    assert index == 2
    assert transition.ref == REF
    assert transition.at == at(0)  # dated from the first failing probe
    assert transition.recorded_at == probe(FAIL, at(2)).finished_at  # noticed on the third
    assert transition.source is Source.PROBE
    assert transition.detail == "timeout"


def test_every_result_is_remembered_even_without_transition() -> None:
    policy = CheckPolicy()
    run = fold(start("op", policy), "x.", policy)
    assert [m.last_result_at for m in run.memories] == [at(0), at(1)]
    assert run.memories[0].fails.count == 1
    assert run.memories[1].fails.count == 0


def test_push_policy_names_its_source() -> None:
    policy = CheckPolicy(source=Source.PUSH)
    _, transition = advance(CheckMemory(), probe(FAST, T0), policy, T0)
    assert transition is not None
    assert transition.source is Source.PUSH


# --- expire -------------------------------------------------------------------------------------

STALE = CheckPolicy(stale_after=180.0)


@pytest.mark.parametrize("begin", ["op", "deg", "down"])
def test_expire_turns_unknown_dated_from_the_deadline(begin: str) -> None:
    memory = start(begin, STALE)
    last = memory.last_result_at
    assert last is not None
    deadline = last + timedelta(seconds=180)
    noticed = deadline + timedelta(hours=1)

    expired, transition = expire(REF, memory, STALE, noticed)

    assert expired.state is State.UNKNOWN
    assert expired.since == deadline
    assert transition == Transition(REF, WORDS[begin], State.UNKNOWN, deadline, noticed, Source.NONE, detail="stale")


def test_expire_never_before_the_deadline() -> None:
    memory = start("op", STALE)
    assert memory.last_result_at is not None
    deadline = memory.last_result_at + timedelta(seconds=180)
    for now in (memory.last_result_at, deadline - timedelta(microseconds=1)):
        assert expire(REF, memory, STALE, now) == (memory, None)
    _, transition = expire(REF, memory, STALE, deadline)
    assert transition is not None
    assert transition.at == deadline


def test_expire_counts_from_the_last_result_not_the_last_transition() -> None:
    policy = CheckPolicy(stale_after=180.0)
    memory = fold(start("op", policy), "....", policy).memories[-1]  # operational since before T0
    assert expire(REF, memory, policy, at(3) + timedelta(seconds=179))[1] is None
    assert expire(REF, memory, policy, at(3) + timedelta(seconds=180))[1] is not None


def test_expire_leaves_unknown_and_never_run_checks_alone() -> None:
    assert expire(REF, CheckMemory(), STALE, T0 + timedelta(days=1)) == (CheckMemory(), None)
    unknown = fold(CheckMemory(), "xx", STALE).memories[-1]
    assert expire(REF, unknown, STALE, T0 + timedelta(days=1)) == (unknown, None)


def test_after_expire_one_fresh_success_is_operational_again() -> None:
    memory = start("down", STALE)
    assert memory.last_result_at is not None
    expired, _ = expire(REF, memory, STALE, memory.last_result_at + timedelta(hours=1))
    later = memory.last_result_at + timedelta(hours=2)
    back, transition = advance(expired, probe(FAST, later), STALE, later)
    assert back.state is State.OPERATIONAL
    assert transition is not None
    assert (transition.previous, transition.at) == (State.UNKNOWN, later)


# --- properties ---------------------------------------------------------------------------------


@st.composite
def flapping(draw: st.DrawFn) -> tuple[CheckPolicy, str]:
    """A policy and outcomes whose failures and slow-or-failed runs stay shorter than failure_threshold."""
    ft = draw(st.integers(1, 5))
    policy = CheckPolicy(ft, draw(st.integers(1, 5)))
    bad_run = st.text(alphabet=SLOW + FAIL, max_size=ft - 1)
    runs = draw(st.lists(bad_run, max_size=12))
    return policy, FAST.join(runs)


@settings(deadline=None, max_examples=300)
@given(flapping())
def test_a_flap_shorter_than_the_threshold_never_makes_a_transition(drawn: tuple[CheckPolicy, str]) -> None:
    policy, outcomes = drawn
    run = fold(start("op", policy), outcomes, policy)
    assert run.transitions == []
    assert all(m.state is State.OPERATIONAL for m in run.memories)


ACTION = st.one_of(
    st.tuples(st.sampled_from([FAST, SLOW, FAIL]), st.integers(1, 400)),  # a probe after `gap` seconds
    st.tuples(st.just("expire"), st.integers(0, 400)),  # the clock ticks after `gap` seconds
)


@settings(deadline=None, max_examples=300)
@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.lists(ACTION, max_size=40),
)
def test_operational_only_ever_follows_a_fresh_fast_success(ft: int, st_: int, actions: list[tuple[str, int]]) -> None:
    policy = CheckPolicy(ft, st_, stale_after=180.0)
    memory, now = CheckMemory(), T0
    for action, gap in actions:
        now += timedelta(seconds=gap)
        if action == "expire":
            memory, transition = expire(REF, memory, policy, now)
            assert transition is None or transition.state is State.UNKNOWN
        else:
            result = probe(action, now)
            before = memory.state
            memory, transition = advance(memory, result, policy, now)
            if memory.state is State.OPERATIONAL and before is not State.OPERATIONAL:
                assert action == FAST, "operational without a fresh fast success"
                assert transition is not None
        assert (transition is None) or (transition.state is memory.state)
        if memory.state is State.UNKNOWN:
            assert memory.since is None or memory.since <= now
