"""What an instance derived while it did not lead is written when it leads again — only if nobody wrote since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.cluster.lead_gap import HELD_PER_COMPONENT, LeadGap
from monitor.models import ComponentRef, ComponentStatus, Source, State, Transition

T0 = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)
FLOW = ComponentRef.parse("flow:alpha/pec")
LINE = ComponentRef.parse("line:alpha/optique")
CHECK = ComponentRef.parse("check:alpha/pec/pec")


def status(ref: ComponentRef, state: State, since: datetime) -> ComponentStatus:
    return ComponentStatus(ref, state, since, Source.PROBE, raw=state, changed_at=since)


def step(ref: ComponentRef, previous: State, state: State, seconds: int) -> Transition:
    at = T0 + timedelta(seconds=seconds)
    return Transition(ref, previous, state, at, at, Source.PROBE)


def left_operational(gap: LeadGap) -> None:
    gap.lost(status(ref, State.OPERATIONAL, T0) for ref in (FLOW, LINE, CHECK))


def test_the_transitions_of_the_gap_are_resumed_in_order_when_the_store_shows_what_the_lead_left() -> None:
    gap = LeadGap()
    left_operational(gap)
    down, back = step(FLOW, State.OPERATIONAL, State.DOWN, 5), step(FLOW, State.DOWN, State.RECOVERING, 8)
    line_down = step(LINE, State.OPERATIONAL, State.UNKNOWN, 6)
    for transition in (down, line_down, back):
        gap.hold(transition)
    gap.hold(step(CHECK, State.OPERATIONAL, State.DOWN, 5))  # a check's transition is its owner's: never held

    stored = {FLOW.key: status(FLOW, State.OPERATIONAL, T0), LINE.key: status(LINE, State.OPERATIONAL, T0)}
    assert gap.resume(stored) == [down, line_down, back]
    assert gap.resume(stored) == []  # once


def test_nothing_is_resumed_for_a_component_another_leader_wrote_meanwhile() -> None:
    gap = LeadGap()
    left_operational(gap)
    gap.hold(step(FLOW, State.OPERATIONAL, State.DOWN, 5))
    gap.hold(line_down := step(LINE, State.OPERATIONAL, State.UNKNOWN, 6))
    # the flow went down and came back under another leader: same state, another `since`
    stored = {
        FLOW.key: status(FLOW, State.OPERATIONAL, T0 + timedelta(seconds=7)),
        LINE.key: status(LINE, State.OPERATIONAL, T0),
    }
    assert gap.resume(stored) == [line_down]


def test_statuses_adopted_from_another_leader_drop_what_was_held_of_them() -> None:
    gap = LeadGap()
    left_operational(gap)
    gap.hold(step(FLOW, State.OPERATIONAL, State.DOWN, 5))
    gap.adopted({FLOW.key: status(FLOW, State.DOWN, T0)})
    gap.hold(step(FLOW, State.DOWN, State.OPERATIONAL, 9))  # the flow is no longer this instance's story
    assert gap.resume({FLOW.key: status(FLOW, State.OPERATIONAL, T0)}) == []


def test_an_instance_that_never_led_holds_nothing_and_a_runaway_component_is_made_up_instead() -> None:
    gap = LeadGap()
    gap.hold(step(FLOW, State.OPERATIONAL, State.DOWN, 5))
    assert gap.resume({FLOW.key: status(FLOW, State.OPERATIONAL, T0)}) == []

    left_operational(gap)
    state = State.OPERATIONAL
    for second in range(HELD_PER_COMPONENT + 1):
        after = State.DOWN if state is State.OPERATIONAL else State.OPERATIONAL
        gap.hold(step(FLOW, state, after, second))
        state = after
    gap.hold(line_down := step(LINE, State.OPERATIONAL, State.UNKNOWN, 6))
    stored = {FLOW.key: status(FLOW, State.OPERATIONAL, T0), LINE.key: status(LINE, State.OPERATIONAL, T0)}
    assert gap.resume(stored) == [line_down]
