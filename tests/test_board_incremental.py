"""The incremental board tells exactly what a full re-derivation tells (issue 16).

Over random configs (networks running all flows or some, lines with required, alternative and optional entries,
dependencies on upstream flows with an impact and a scope of lines, probe and push checks) and random histories
(results, bursts where a whole network fails or comes back at once, ticks, push deadlines, declarations and
maintenance set and lifted, reloads, restarts; with several instances, checks another instance probes — followed,
never expired here — and the memories it stored of them), after every step the board's transitions, changed
statuses and memories, and every status, equal those of `ReferenceBoard(reach="all")`, which re-derives every
network with the full `evaluate` at each step that changes a check or the overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from board_reference import ReferenceBoard
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_status_support import T0, make_settings

from monitor.board import Board, BoardChange
from monitor.config import Settings
from monitor.config.taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from monitor.engine.aggregate import Input, over_checks
from monitor.engine.check_state import advance
from monitor.engine.check_tally import CheckTally
from monitor.engine.graph import build_graph
from monitor.engine.overrides import Override, Overrides
from monitor.engine.timers import Timers
from monitor.models import CheckMemory, ComponentRef, FailureReason, ProbeResult, Source, State

FLOWS = sorted(DEFAULT_FLOWS)
LINES = sorted(DEFAULT_LINES)
IMPACTS = ("partial", "down", "degraded")


@st.composite
def configs(draw: st.DrawFn) -> Settings:
    """One to four networks, each depending only on networks before it (the config refuses cycles)."""
    networks: dict[str, dict[str, Any]] = {}
    for index in range(draw(st.integers(1, 4))):
        runs = draw(st.none() | st.lists(st.sampled_from(FLOWS), min_size=1, max_size=4, unique=True))
        flows = runs or FLOWS
        checks = []
        for number in range(draw(st.integers(0, 6))):
            check: dict[str, Any] = {
                "name": f"c{number}",
                "flow": draw(st.sampled_from(flows)),
                "interval": draw(st.sampled_from([30, 60])),
                "failure_threshold": draw(st.integers(1, 3)),
                "success_threshold": draw(st.integers(1, 2)),
            }
            if draw(st.integers(0, 3)) == 0:
                check["kind"] = "push"
                if draw(st.booleans()):
                    check["missed_after"] = draw(st.sampled_from([90, 400]))
            else:
                check |= {"kind": "tcp", "host": "127.0.0.1", "port": 9}
            checks.append(check)
        lines = draw(st.lists(st.sampled_from(LINES), min_size=1, max_size=3, unique=True))
        own: dict[str, Any] = {}
        for line in lines:
            if draw(st.booleans()):
                alternatives = st.lists(st.sampled_from(flows), min_size=1, max_size=2, unique=True).map("|".join)
                own[line] = {
                    "requires": draw(st.lists(alternatives, min_size=1, max_size=3)),
                    "optional": draw(st.lists(st.sampled_from(flows), max_size=2, unique=True)),
                }
        dependencies = []
        for upstream, upstream_network in networks.items():
            if draw(st.booleans()):
                dependencies.append(
                    {
                        "network": upstream,
                        "flow": draw(st.sampled_from(upstream_network.get("flows") or FLOWS)),
                        "impact": draw(st.sampled_from(IMPACTS)),
                        "lines": draw(st.lists(st.sampled_from(lines), max_size=2, unique=True)),
                    }
                )
        networks[f"n{index}"] = {
            "name": f"Réseau {index}",
            "kind": draw(st.sampled_from(["operateur", "reseau_de_soins"])),
            "lines": lines,
            "line_overrides": own,
            "depends_on": dependencies,
            "checks": checks,
            **({"flows": runs} if runs else {}),
        }
    # short stabilizations too, so that recoveries end within a history
    return make_settings(networks, stabilization=draw(st.sampled_from(["1m", "2m", "30m"])))


SECONDS = st.integers(0, 60) | st.integers(0, 900)  # often within a check's interval, sometimes past its staleness
OUTCOMES = st.sampled_from(["ok", "ok", "slow", "fail", "fail"])
DECLARED = [
    None,
    (State.DOWN, Source.DECLARED, None),
    (State.PARTIAL, Source.DECLARED, None),
    (State.RECOVERING, Source.DECLARED, 0.4),
    (State.RECOVERING, Source.DECLARED, 0.7),
    (State.OPERATIONAL, Source.DECLARED, None),
    (State.MAINTENANCE, Source.MAINTENANCE, None),
]
STEPS = st.one_of(
    st.tuples(st.just("result"), st.integers(0, 99), OUTCOMES, SECONDS),
    st.tuples(st.just("burst"), st.integers(0, 9), OUTCOMES, SECONDS),  # a network's checks all at once, 3 times
    # every check, each network's way, one to eight times 20 s apart, each time with a tick or not
    st.tuples(st.just("round"), st.lists(OUTCOMES, min_size=4, max_size=4), st.integers(1, 8), st.booleans(), SECONDS),
    st.tuples(st.just("tick"), st.booleans(), SECONDS),
    st.tuples(st.just("deadlines"), SECONDS),  # what PushInbox.catch_up does at a push deadline
    st.tuples(st.just("declare"), st.integers(0, 99), st.sampled_from(range(len(DECLARED))), SECONDS),
    st.tuples(st.just("reload"), SECONDS),
    st.tuples(st.just("restart"), st.booleans(), SECONDS),  # the declarations applied first, or a result first
    # several instances: another one now probes these checks (none: this one probes them all), and this board
    # follows what it stored of some checks (each memory advanced by its results)
    st.tuples(st.just("share"), st.lists(st.integers(0, 99), max_size=4), SECONDS),
    st.tuples(st.just("follow"), st.lists(st.tuples(st.integers(0, 99), OUTCOMES), min_size=1, max_size=3), SECONDS),
)


@dataclass
class History:
    """Both boards driven through the same steps, with what ops declare."""

    board: Board
    reference: ReferenceBoard
    now: datetime
    declared: dict[str, Override] = field(default_factory=dict)
    maintenance: dict[str, Override] = field(default_factory=dict)
    lifted: dict[str, datetime] = field(default_factory=dict)
    serial: int = 0
    followed: frozenset[str] = frozenset()  # the checks another instance probes

    def share(self, keys: frozenset[str]) -> None:
        self.followed = keys
        for board in (self.board, self.reference):
            board.followed = keys.__contains__ if keys else None

    def overrides(self) -> Overrides:
        return Overrides(dict(self.declared), dict(self.maintenance), dict(self.lifted))

    def both(self, step: Any) -> tuple[BoardChange, BoardChange]:
        return step(self.board), step(self.reference)


def result(check_key: str, at: datetime, outcome: str) -> ProbeResult:
    ref = ComponentRef.parse(check_key)
    if outcome == "fail":
        return ProbeResult(ref, at, 0.1, False, FailureReason.CONNECT)
    return ProbeResult(ref, at, 0.1, True, slow=outcome == "slow")


def components(settings: Settings) -> list[str]:
    """Every key an override may name: networks, flows, lines (and one that names nothing)."""
    keys = ["flow:gone/pec"]
    for name, network in settings.networks.items():
        keys.append(f"network:{name}")
        keys += [f"flow:{name}/{flow}" for flow in network.flow_names(settings.flows)]
        keys += [f"line:{name}/{line}" for line in network.lines]
    return keys


def declare(history: History, target: str, choice: int) -> None:
    """Set the override of `target` (a new one replaces it), or lift it, dated when lifted."""
    for table in (history.declared, history.maintenance):
        gone = table.pop(target, None)
        if gone is not None:
            history.lifted[gone.detail] = history.now
    wanted = DECLARED[choice]
    if wanted is not None:
        state, source, progress = wanted
        history.serial += 1
        detail = f"{'maintenance' if source is Source.MAINTENANCE else 'incident'}:{history.serial}"
        override = Override(state, history.now, source, progress, detail)
        (history.maintenance if source is Source.MAINTENANCE else history.declared)[target] = override


def merge(into: tuple[BoardChange, BoardChange], changes: tuple[BoardChange, BoardChange]) -> None:
    for mine, change in zip(into, changes, strict=True):
        mine.transitions += change.transitions
        mine.statuses += change.statuses
        mine.memories.update(change.memories)


def step_once(history: History, step: tuple[Any, ...], other: Settings) -> tuple[BoardChange, BoardChange]:
    history.now += timedelta(seconds=step[-1])
    now, settings = history.now, history.board.settings
    checks = list(history.board.memories())
    if step[0] == "result" and checks:
        key = checks[step[1] % len(checks)]
        return history.both(lambda b: b.record(result(key, now - timedelta(seconds=1), step[2]), now))
    if step[0] == "burst":
        names = sorted(settings.networks)
        network = names[step[1] % len(names)]
        merged = (BoardChange(), BoardChange())
        for _ in range(3):
            history.now += timedelta(seconds=20)
            for key in [k for k in checks if ComponentRef.parse(k).network == network]:
                at = history.now
                probe = result(key, at, step[2])
                merge(merged, history.both(lambda b, probe=probe, at=at: b.record(probe, at)))
        return merged
    if step[0] == "round":
        names = sorted(settings.networks)
        merged = (BoardChange(), BoardChange())
        for _ in range(step[2]):
            history.now += timedelta(seconds=20)
            for key in checks:
                at, outcome = history.now, step[1][names.index(ComponentRef.parse(key).network)]
                probe = result(key, at, outcome)
                merge(merged, history.both(lambda b, probe=probe, at=at: b.record(probe, at)))
            if step[3]:
                later = history.now
                merge(merged, history.both(lambda b, later=later: b.tick(later, push=False)))
        return merged
    if step[0] == "tick":
        return history.both(lambda b: b.tick(now, push=step[1]))
    if step[0] == "deadlines":
        due = history.board.push_due(now)
        assert due == history.reference.push_due(now)
        return history.both(lambda b: b.expire_push(due, now))
    if step[0] == "declare":
        keys = components(settings)
        declare(history, keys[step[1] % len(keys)], step[2])
        overrides = history.overrides()
        return history.both(lambda b: b.set_overrides(overrides, now))
    if step[0] == "reload":
        return history.both(lambda b: b.reload(other if b.settings is settings else settings, now))
    if step[0] == "restart":  # from what the store saved, then what the app does first: the declarations
        saved, memories = dict(history.board.statuses()), dict(history.board.memories())
        assert saved == history.reference.statuses
        history.board = Board(settings, now, saved, memories)
        history.reference = ReferenceBoard(settings, now, saved, memories)
        history.share(history.followed)
        if not step[1] and checks:  # a result before the declarations: what changed meanwhile is told with it
            key = checks[len(checks) // 2]
            return history.both(lambda b: b.record(result(key, now - timedelta(seconds=1), "fail"), now))
        overrides = history.overrides()
        return history.both(lambda b: b.set_overrides(overrides, now))
    if step[0] == "share":
        history.share(frozenset(checks[i % len(checks)] for i in step[1]) if checks else frozenset())
        return BoardChange(), BoardChange()
    if step[0] == "follow" and checks:  # what the other instance stored: its memories, advanced by its results
        theirs: dict[str, CheckMemory] = {}
        for index, outcome in step[1]:
            key = checks[index % len(checks)]
            before = theirs.get(key, history.reference.memories[key])
            probe = result(key, now - timedelta(seconds=1), outcome)
            theirs[key] = advance(before, probe, history.reference.policies[key], now)[0]
        return history.both(lambda b: b.follow(theirs, now))
    return BoardChange(), BoardChange()


@settings(deadline=None, max_examples=400)
@given(configs(), configs(), st.lists(STEPS, min_size=10, max_size=40))
def test_the_incremental_board_tells_what_a_full_rederivation_tells(
    first: Settings, second: Settings, steps: list[tuple[Any, ...]]
) -> None:
    history = History(Board(first, T0), ReferenceBoard(first, T0), T0)
    assert dict(history.board.statuses()) == history.reference.statuses
    for step in steps:
        mine, full = step_once(history, step, second)
        assert mine.transitions == full.transitions, step
        assert mine.statuses == full.statuses, step
        assert mine.memories == full.memories, step
        assert dict(history.board.statuses()) == history.reference.statuses, step
        assert history.board.next_push_deadline() == history.reference.next_push_deadline(), step
        event(f"{step[0]}: {'transitions' if full.transitions else 'none'}")
        if any(t.previous is State.RECOVERING and t.state is State.OPERATIONAL for t in full.transitions):
            event(f"{step[0]}: a recovery ends")
    states = {s.state for s in history.board.statuses().values()}
    event(" ".join(sorted(s.value for s in states)))


# --- the parts: a flow's running tally, the timers, the index ------------------------------------------------

CHECK_INPUTS = st.builds(
    Input,
    st.sampled_from([State.OPERATIONAL, State.DEGRADED, State.DOWN, State.UNKNOWN]),
    st.just(0.0),
    st.none() | st.integers(0, 3).map(lambda n: T0 + timedelta(microseconds=n)),  # ties, and 1 µs apart
    st.sampled_from([Source.PROBE, Source.PUSH, Source.NONE]),
    st.sampled_from(["", "timeout"]),
).map(lambda i: replace(i, share=1.0 if i.state.is_up else 0.0))
ANY_INPUTS = st.builds(  # what checks never are (recovering, a share between): left to over_checks itself
    Input,
    st.sampled_from(list(State)),
    st.sampled_from([0.0, 0.25, 1.0]),
    st.none() | st.integers(0, 3).map(lambda n: T0 + timedelta(minutes=n)),
    st.sampled_from(list(Source)),
    st.just(""),
    st.none() | st.just(T0),
)


@settings(max_examples=500)
@given(
    st.lists(CHECK_INPUTS | ANY_INPUTS, max_size=6), st.lists(st.tuples(st.integers(0, 5), CHECK_INPUTS | ANY_INPUTS))
)
def test_a_flows_tally_says_what_over_checks_says(start: list[Input], changes: list[tuple[int, Input]]) -> None:
    inputs = list(start)
    tally = CheckTally(inputs)
    assert tally.value() == over_checks(inputs)
    for position, value in changes:
        if inputs:
            inputs[position % len(inputs)] = value
            tally.set(position % len(inputs), value)
        assert tally.value() == over_checks(inputs)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 4), st.none() | st.integers(0, 100)), max_size=40), st.integers(0, 100))
def test_timers_find_what_is_due_as_a_look_at_every_key_would(moves: list[tuple[int, int | None]], end: int) -> None:
    """Keys whose time moves later without a touch (a check's deadline) or earlier with one (a recovery)."""
    times: dict[int, int | None] = dict.fromkeys(range(5))

    def when(key: int) -> datetime | None:
        seconds = times[key]
        return None if seconds is None else T0 + timedelta(seconds=seconds)

    timers = Timers(when)
    now = 0
    for key, at in moves:
        before = times[key]
        times[key] = at
        if before is None or at is None or at < before:
            timers.touch(key)
        now = min(now + 3, end)
        expected = [k for k, t in times.items() if t is not None and t <= now]
        assert sorted(timers.due(T0 + timedelta(seconds=now))) == expected
        upcoming = [t for t in times.values() if t is not None]
        assert timers.next() == (T0 + timedelta(seconds=min(upcoming)) if upcoming else None)


def test_a_flow_feeds_the_lines_requiring_it_and_their_dependants_only() -> None:
    """viamedis/pec: optique needs portail_ps|pec; santeclair's optique depends on it; pharmacie needs neither."""
    settings = make_settings(
        {
            "viamedis": {"name": "V", "kind": "operateur", "lines": ["optique", "pharmacie", "hospitalisation"]},
            "santeclair": {
                "name": "S",
                "kind": "reseau_de_soins",
                "lines": ["optique", "pharmacie"],
                "depends_on": [{"network": "viamedis", "flow": "pec", "lines": ["optique"]}],
            },
            "kalixia": {"name": "K", "kind": "reseau_de_soins", "lines": ["audio"]},
        }
    )
    graph = build_graph(settings)

    def feeds(key: str) -> set[str]:
        return {graph.nodes[i].key for i in graph.dependants[graph.index[key]]}

    assert feeds("flow:viamedis/pec") == {
        "line:viamedis/optique",
        "line:viamedis/hospitalisation",
        "line:santeclair/optique",
    }
    assert feeds("flow:viamedis/droits") == {f"line:viamedis/{line}" for line in settings.networks["viamedis"].lines}
    assert feeds("line:santeclair/optique") == {"network:santeclair"}
    assert feeds("network:viamedis") == set()
    assert graph.overridden(["network:kalixia"]) == {graph.index[k] for k in graph.index if "kalixia" in k}
    # upstreams first, and in each network its flows, its lines, then itself: evaluate's order
    assert [n.key for n in graph.nodes].index("line:santeclair/optique") > graph.index["flow:viamedis/pec"]


def test_statuses_handed_out_stay_as_they_were_and_come_in_the_configs_order() -> None:
    """What a snapshot holds is the board's map itself (never copied): the board's next change leaves it as it was;
    and it iterates checks, then each network's flows, lines and itself, as the config says, whatever the hashing
    (/metrics lists them in that order)."""
    settings = make_settings(
        {
            "viamedis": {
                "name": "V",
                "kind": "operateur",
                "lines": ["pharmacie", "optique"],
                "checks": [{"name": "pec", "flow": "pec", "kind": "tcp", "host": "127.0.0.1", "port": 9}],
            },
            "kalixia": {"name": "K", "kind": "reseau_de_soins", "lines": ["audio"]},
        }
    )
    board = Board(settings, T0)
    before = board.statuses()
    check = "check:viamedis/pec/pec"
    board.record(result(check, T0, "ok"), T0)
    after = board.statuses()
    assert before[check].state is State.UNKNOWN and after[check].state is State.OPERATIONAL
    assert before["flow:viamedis/pec"].state is State.UNKNOWN
    assert after["flow:viamedis/pec"].state is State.OPERATIONAL
    keys = list(after)
    assert keys[0] == check and len(keys) == len(after) == len(set(keys))
    lines = [k for k in keys if k.startswith("line:viamedis/")]
    assert lines == ["line:viamedis/pharmacie", "line:viamedis/optique"]
    assert keys.index("flow:viamedis/pec") < keys.index("line:viamedis/pharmacie") < keys.index("network:viamedis")
    assert dict(after) == {k: after[k] for k in keys} and "flow:gone/pec" not in after
