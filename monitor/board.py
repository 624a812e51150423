"""The board: the current status of every component, in memory, seeded from the store at start.

A change costs what it reaches, not the size of the config: the graph of who feeds whom is indexed once per config
(`engine.graph`), each flow keeps a running tally of its checks (`engine.check_tally`), and what falls due (stale
checks, push deadlines, recoveries to end) waits in `engine.timers`. The statuses are a persistent map: the
snapshot every surface reads is taken in O(1), and each change costs O(changed · log n).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from immutables import Map

from .config import Check, Settings
from .engine.aggregate import Input, evaluate
from .engine.check_state import CheckPolicy, advance, check_status, deadline, expire
from .engine.check_tally import CheckTally
from .engine.graph import Node, build_graph, propagate
from .engine.overrides import Overrides
from .engine.quorum import combine, located_key, split_key, voters
from .engine.timers import Timers
from .models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, Source, State, Transition

__all__ = ["Board", "BoardChange", "Statuses", "policy_for"]


def policy_for(check: Check, settings: Settings) -> CheckPolicy:
    stale_after = check.interval * settings.stale_after_intervals
    if check.kind == "push":  # silent past missed_after: down, with source push
        missed_after = check.missed_after or stale_after
        return CheckPolicy(check.failure_threshold, check.success_threshold, missed_after, Source.PUSH)
    return CheckPolicy(
        failure_threshold=check.failure_threshold,
        success_threshold=check.success_threshold,
        stale_after=stale_after,
    )


@dataclass
class BoardChange:
    """What one board operation changed: to be recorded in the store."""

    transitions: list[Transition] = field(default_factory=list)
    statuses: list[ComponentStatus] = field(default_factory=list)
    memories: dict[str, CheckMemory] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.transitions or self.statuses or self.memories)


class Statuses(Mapping[str, ComponentStatus]):
    """Every status at one instant, immutable: the board's persistent map (`immutables.Map`: a change makes a new
    one for O(log n), so handing it to a snapshot costs nothing), iterated in the config's order (checks, then each
    network's flows, lines and itself, upstreams first), whatever the hashing."""

    __slots__ = ("_map", "_order")

    def __init__(self, statuses: Map[str, ComponentStatus], order: tuple[str, ...]) -> None:
        self._map, self._order = statuses, order  # `order` names every key of `statuses`

    def __getitem__(self, key: str) -> ComponentStatus:
        return self._map[key]

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __len__(self) -> int:
        return len(self._map)

    def __iter__(self) -> Iterator[str]:
        if len(self._map) == len(self._order):
            return iter(self._order)
        return (key for key in self._order if key in self._map)


class Board:
    """Every component's status. Single-threaded (the event loop); every method is synchronous and fast.

    Each step re-derives what it changes and what that reaches, plus every recovery due by then — what a full
    re-derivation of every network would tell (`tests/test_board_incremental.py` holds it to `evaluate`): a result
    that changes its check's state, a push check gone silent, a tick (stale checks, recoveries ended), overrides
    (the components they name, or named). A result that changes no check's state re-derives nothing.
    """

    def __init__(
        self,
        settings: Settings,
        now: datetime,
        statuses: Mapping[str, ComponentStatus] | None = None,
        memories: Mapping[str, CheckMemory] | None = None,
    ) -> None:
        self._statuses: Map[str, ComponentStatus] = Map()
        self._memories: dict[str, CheckMemory] = {}  # the engine's memory of each check, in config order
        self._overrides = Overrides()
        self.version = 0  # bumped on every change of a shown status; pages cache on it
        self.checked_at: datetime | None = None  # when the last probe result arrived
        self._unsaved: dict[str, CheckMemory] = {}  # memories made here, not yet handed to the store
        # Several instances: the checks another instance probes now; it expires them, this board follows it.
        self.followed: Callable[[str], bool] | None = None
        # Several locations: where this board's results are probed from (None: one location, nothing combined),
        # the quorum (None: a majority of the locations with a fresh result), and each location's own memory of
        # each probed check (`engine.quorum`); a check's memory is then the locations' verdict.
        self.here: str | None = None
        self.quorum: int | None = None
        self._located: dict[str, dict[str, CheckMemory]] = {}
        self._load(settings, statuses or {}, memories or {}, now)
        self._seed(now)
        # the last probe result the store remembers: after a restart, or in an export, a page still says how old
        # its news is (never green without a date)
        self.checked_at = max(filter(None, (m.last_result_at for m in (memories or {}).values())), default=None)
        # Saved statuses were derived under overrides this board does not know yet: the first `set_overrides`
        # (or `evaluate_all`) re-derives everything, as the app does at start before any probe.
        self._settled = not statuses

    def _load(
        self,
        settings: Settings,
        statuses: Mapping[str, ComponentStatus],
        memories: Mapping[str, CheckMemory],
        now: datetime,
    ) -> None:
        self.settings = settings
        self._graph = graph = build_graph(settings)
        self._policies: dict[str, CheckPolicy] = {}
        self._refs: dict[str, ComponentRef] = {}
        self._rank: dict[str, int] = {}  # config order of the checks: expired ones are reported in it
        self._memories = {}
        located: dict[str, dict[str, CheckMemory]] = {}
        for key, memory in memories.items():
            base, location = split_key(key)
            if location is not None:
                located.setdefault(base, {})[location] = memory
        checks: dict[str, ComponentStatus] = {}
        for network_name, check in settings.checks():
            ref = ComponentRef.for_check(network_name, check.flow, check.name)
            self._policies[ref.key] = policy = policy_for(check, settings)
            self._refs[ref.key], self._rank[ref.key] = ref, len(self._rank)
            memory = memories.get(ref.key, CheckMemory())
            if policy.source is Source.PUSH and memory.last_result_at is None and memory.since is None:
                # awaited from now on: its missed_after counts from here, and a restart must not reset it
                memory = CheckMemory(State.UNKNOWN, since=now)
                self._unsaved[ref.key] = memory
            self._memories[ref.key] = memory
            checks[ref.key] = check_status(ref, memory, policy.source)
        self._located = {key: found for key, found in located.items() if key in self._policies}
        kept = {k: v for k, v in statuses.items() if k in graph.index}
        self._order = (*checks, *(node.key for node in graph.nodes))
        self._statuses = Map({**kept, **checks})
        self._tallies: dict[int, CheckTally] = {}
        for node in graph.nodes:
            if node.ref.kind == "flow":
                self._tallies[node.index] = CheckTally(Input.of(checks[k]) for k in node.checks)
        self._stale: Timers[str] = Timers(self._deadline)  # probe checks going unknown
        self._silent: Timers[str] = Timers(self._deadline)  # push checks going down
        for key, policy in self._policies.items():
            (self._silent if policy.source is Source.PUSH else self._stale).schedule(key)
        self._recoveries: Timers[int] = Timers(self._recovered_at)
        for node in graph.nodes:
            self._recoveries.touch(node.index)

    def _seed(self, now: datetime) -> None:
        """Derive the components the saved statuses lack; keep the saved ones as they were.

        Re-deriving those here would lose what changed while the process was down (a recovery that
        stabilized, checks gone stale): the first `evaluate_all` or `tick` reports it as transitions.
        """
        result = evaluate(self.settings, self._statuses, self._overrides, self._statuses, now, self._graph.order)
        missing = {k: v for k, v in result.statuses.items() if k not in self._statuses}
        if missing:
            self._commit(missing)

    # --- reading -------------------------------------------------------------------------------
    def get(self, ref: ComponentRef | str) -> ComponentStatus | None:
        return self._statuses.get(ref if isinstance(ref, str) else ref.key)

    def statuses(self) -> Statuses:
        """Every status, immutable: the board changes on, what was handed out does not (a snapshot, for O(1))."""
        return Statuses(self._statuses, self._order)

    def memory(self, check_key: str) -> CheckMemory | None:
        return self._memories.get(check_key)

    def memories(self) -> Mapping[str, CheckMemory]:
        return self._memories

    def located(self, check_key: str) -> Mapping[str, CheckMemory]:
        """Each location's own memory of a check (several locations), by location; empty with one."""
        return self._located.get(check_key, {})

    # --- changing ------------------------------------------------------------------------------
    def record(self, result: ProbeResult, now: datetime) -> BoardChange:
        """Fold one probe result in; re-derive what its check feeds only if the check changed."""
        key = result.check.key
        policy = self._policies.get(key)
        if policy is None:  # a result for a check removed by a reload meanwhile
            return BoardChange()
        if self.here is not None and policy.source is not Source.PUSH:
            return self._record_here(key, result, policy, now)
        previous = self._memories[key]
        memory, transition = advance(previous, result, policy, now)
        self._memories[key] = memory
        if memory.last_result_at != previous.last_result_at:  # tpmon's own failure is no news of the target
            self.checked_at = now
        if policy.source is Source.PUSH:
            self._silent.touch(key)  # a signal dated before the check was configured brings its deadline earlier
        else:
            self._stale.schedule(key)  # its deadline only moves later, with each result
        change = BoardChange(memories={key: memory})
        if transition is None:
            return change
        change.transitions.append(transition)
        self._derive(self._set_check(key, memory, change), now, change)
        return change

    def _record_here(self, key: str, result: ProbeResult, policy: CheckPolicy, now: datetime) -> BoardChange:
        """Several locations: the result folded into this location's memory of the check; the check's own memory
        is the locations' verdict, combined here if this board writes it (else followed as its writer stored it).
        Alone in its location set, a location's memory is the check's: the same as with one location."""
        located = self._located.setdefault(key, {})
        here = self.here or ""
        writes = self.followed is None or not self.followed(key)
        # alone: no other location has a fresh verdict — this location's memory is the check's, as with one
        alone = not voters({at: m for at, m in located.items() if at != here}, policy.stale_after, now)
        if alone and writes:
            mine = self._memories[key]
        else:  # its own memory, unless none or too old to go on from (a restart): from nothing, unknown
            mine = located.get(here) or CheckMemory()
            if mine.last_result_at is None or now - mine.last_result_at > timedelta(seconds=policy.stale_after):
                mine = CheckMemory()
        local, transition = advance(mine, result, policy, now)
        located[here] = local
        if local.last_result_at != mine.last_result_at:
            self.checked_at = now
        change = BoardChange(memories={located_key(key, here): local})
        if not writes:
            flows = self._relocate(key, now, change, combined=False)
        elif alone:  # one location: its memory is the check's, its transition the check's
            self._memories[key] = local
            change.memories[key] = local
            self._stale.schedule(key)
            if transition is not None:
                change.transitions.append(transition)
                flows = self._set_check(key, local, change, now)
            else:  # the same state; a location gone stale is no longer named
                flows = self._relocate(key, now, change, combined=False)
        else:
            flows = self._relocate(key, now, change, detail=result.reason.value if result.reason else "")
        if flows:
            self._derive(flows, now, change)
        return change

    def _relocate(
        self, key: str, now: datetime, change: BoardChange, *, combined: bool = True, detail: str = ""
    ) -> set[int]:
        """A location's memory of check `key` changed: its verdict combined again if this board writes it
        (`combined`), its status shown again (a failure seen from one location only is told as such); returns
        the flow to re-derive when the check's state changed."""
        policy = self._policies[key]
        previous = self._memories[key]
        if combined:
            memory = combine(self._located[key], previous, policy.stale_after, now, self.quorum).memory
            if memory != previous:
                self._memories[key] = memory
                change.memories[key] = memory
                self._stale.touch(key)
            if memory.state is not previous.state:
                at = memory.since or now
                change.transitions.append(
                    Transition(self._refs[key], previous.state, memory.state, at, now, policy.source, detail=detail)
                )
                return self._set_check(key, memory, change, now)
        if self._shown(key, self._memories[key], now) != self._statuses.get(key):
            self._set_check(key, self._memories[key], change, now)  # the same state: nothing to re-derive
        return set()

    def _shown(self, key: str, memory: CheckMemory, now: datetime | None) -> ComponentStatus:
        """A check's status; with several locations, the detail names those that see it down while its verdict
        is not down (`down_from:lyon`), or the two sides of a split (`no_quorum:lyon`, unknown)."""
        policy = self._policies[key]
        status = check_status(self._refs[key], memory, policy.source)
        located = self._located.get(key)
        if now is None or self.here is None or not located or len(located) < 2:
            return status
        verdict = combine(located, memory, policy.stale_after, now, self.quorum)
        if not verdict.down_from:
            return status
        if verdict.split and memory.state is State.UNKNOWN:
            return replace(status, detail="no_quorum:" + ",".join(verdict.down_from))
        if not verdict.split and memory.state in (State.OPERATIONAL, State.DEGRADED):
            return replace(status, detail="down_from:" + ",".join(verdict.down_from))
        return status

    def tick(self, now: datetime, *, push: bool = True) -> BoardChange:
        """Time passes: stale checks become unknown, recoveries stabilize, windows open and close.

        With `push` false, push checks are left to `expire_push`: the caller first reads the signals that
        may still be on their way (`push_signals.PushInbox.catch_up`), so that none received in time is
        judged missing.
        """
        change = BoardChange()
        due = self._stale.due(now) + (self._silent.due(now) if push else [])
        self._derive(self._expire(due, now, change), now, change)
        self._save_unsaved(change)
        return change

    def push_due(self, now: datetime) -> list[str]:
        """The push checks whose deadline (last signal, or configuration, + missed_after) is passed at `now`, but
        those another instance follows."""
        due, followed = self._silent.due(now), self.followed
        if followed is not None:
            due = [key for key in due if not followed(key)]
        return sorted(due, key=self._rank.__getitem__)

    def next_recovery(self) -> datetime | None:
        """When the soonest recovery ends (a tick then turns its component up), if any is under way."""
        return self._recoveries.next()

    def next_push_deadline(self) -> datetime | None:
        """The earliest deadline of the push checks not yet down, if any."""
        return self._silent.next()

    def expire_push(self, keys: Iterable[str], now: datetime) -> BoardChange:
        """Push checks of `keys` silent past their deadline become down, dated at the deadline."""
        change = BoardChange()
        wanted = [k for k in keys if k in self._policies and self._policies[k].source is Source.PUSH]
        flows = self._expire(wanted, now, change)
        if flows:
            self._derive(flows, now, change)
        return change

    def follow(self, memories: Mapping[str, CheckMemory], now: datetime) -> BoardChange:
        """Checks another instance probes: their memories as it stored them (its to write: not in the change's
        memories), shown, and what they reach re-derived like a result's, with the recoveries due."""
        change = BoardChange()
        flows: set[int] | None = None
        relocated: set[str] = set()
        for key, memory in memories.items():
            base, location = split_key(key)
            if location is not None:  # a location's own memory: the verdict combined again (its writer)
                if base in self._policies and self._located.get(base, {}).get(location) != memory:
                    self._located.setdefault(base, {})[location] = memory
                    relocated.add(base)
                continue
            if key in self._policies and self._memories[key] != memory:
                self._memories[key] = memory
                # its deadline moves with the memory, earlier included (`_expire` skips it while followed)
                (self._silent if self._policies[key].source is Source.PUSH else self._stale).touch(key)
                flows = (flows or set()) | self._set_check(key, memory, change, now)
        for key in sorted(relocated, key=self._rank.__getitem__):
            writes = self.here is not None and not (self.followed is not None and self.followed(key))
            flows = (flows or set()) | self._relocate(key, now, change, combined=writes)
        if flows is not None:  # like a result that changed its check: the recoveries due are told with it
            self._derive(flows, now, change)
        return change

    def adopt(self, statuses: Mapping[str, ComponentStatus]) -> BoardChange:
        """Derived statuses (flows, lines, networks) as the leader derived and stored them: shown as they are, so
        that every instance tells the same; what they feed is re-derived at the next change."""
        index = self._graph.index
        found = {k: v for k, v in statuses.items() if k in index and self._statuses.get(k) != v}
        self._commit(found)
        if found:
            self.version += 1
        return BoardChange(statuses=list(found.values()))

    def _expire(self, keys: Iterable[str], now: datetime, change: BoardChange) -> set[int]:
        """Expire the checks of `keys` that are due (in config order), but those another instance follows (it
        expires them, this board reads what it stored); returns the flows they feed."""
        flows: set[int] = set()
        followed = self.followed
        for key in sorted(set(keys), key=self._rank.__getitem__):
            if followed is not None and followed(key):
                continue  # still scheduled: due here again once this instance owns it
            memory = self._memories[key]
            expired, transition = expire(self._refs[key], memory, self._policies[key], now)
            if transition is not None:
                self._memories[key] = expired
                change.memories[key] = expired
                change.transitions.append(transition)
                flows |= self._set_check(key, expired, change, now)
        return flows

    def _save_unsaved(self, change: BoardChange) -> None:
        if self._unsaved:
            for key, memory in self._unsaved.items():
                change.memories.setdefault(key, memory)
            self._unsaved = {}

    def set_overrides(self, overrides: Overrides, now: datetime) -> BoardChange:
        """Apply what ops declare now: re-derive the components whose override changed (a network's applies to
        all of its components), what they feed, and the recoveries due."""
        before, self._overrides = self._overrides, overrides
        if not self._settled:
            return self.evaluate_all(now)
        change = BoardChange()
        self._derive(self._graph.overridden(before.changed(overrides)), now, change)
        self._save_unsaved(change)
        return change

    def evaluate_all(self, now: datetime) -> BoardChange:
        """Re-derive every component from its inputs (at start, after a reload)."""
        change = BoardChange()
        self._derive_everything(now, change)
        self._save_unsaved(change)
        return change

    def _derive_everything(self, now: datetime, change: BoardChange) -> None:
        result = evaluate(self.settings, self._statuses, self._overrides, self._statuses, now, self._graph.order)
        changed = {k: v for k, v in result.statuses.items() if self._statuses.get(k) != v}
        self._commit(changed)
        change.statuses.extend(changed.values())
        change.transitions.extend(result.transitions)
        if changed or result.transitions:
            self.version += 1
        self._settled = True

    def reload(self, settings: Settings, now: datetime) -> BoardChange:
        """Apply a new config: unchanged checks keep their memory, new ones start unknown (a new push check is
        awaited from now on)."""
        located = {located_key(k, at): m for k, found in self._located.items() for at, m in found.items()}
        self._load(settings, dict(self._statuses), {**self._memories, **located}, now)
        self.version += 1
        return self.evaluate_all(now)

    def _set_check(self, key: str, memory: CheckMemory, change: BoardChange, now: datetime | None = None) -> set[int]:
        """Show a check's new state; returns the flow it feeds (none for a check of a flow its network does not
        run)."""
        status = self._shown(key, memory, now)
        if self._statuses.get(key) != status:  # a success like the last one changes nothing shown
            self.version += 1
        self._statuses = self._statuses.set(key, status)
        change.statuses.append(status)
        fed = self._graph.feeds.get(key)
        if fed is None:
            return set()
        flow, position = fed
        self._tallies[flow].set(position, Input.of(status))
        return {flow}

    def _derive(self, dirty: set[int], now: datetime, change: BoardChange) -> None:
        """Re-derive `dirty`, the recoveries due by `now`, and what their changes reach; everything while the
        statuses are those saved before a restart (what changed meanwhile is told at the first step)."""
        if not self._settled:
            self._derive_everything(now, change)
            return
        dirty.update(self._recoveries.due(now))
        result = propagate(
            self._graph, self._statuses, self._overrides, dirty, now, self.settings.stabilization, self._flow_value
        )
        self._commit(result.statuses)
        change.statuses.extend(result.statuses.values())
        if change.statuses or result.transitions:
            change.transitions.extend(result.transitions)
            self.version += 1

    def _commit(self, statuses: Mapping[str, ComponentStatus]) -> None:
        if not statuses:
            return
        with self._statuses.mutate() as mutable:
            for key, status in statuses.items():
                mutable[key] = status
            self._statuses = mutable.finish()
        index = self._graph.index
        for key in statuses:
            if key in index:
                self._recoveries.touch(index[key])

    def _flow_value(self, node: Node) -> Input:
        return self._tallies[node.index].value()

    def _deadline(self, key: str) -> datetime | None:
        return deadline(self._memories[key], self._policies[key])

    def _recovered_at(self, index: int) -> datetime | None:
        """When a recovering component (with its inputs fully up since `stable_since`) ends its stabilization."""
        status = self._statuses.get(self._graph.nodes[index].key)
        if status is None or status.state is not State.RECOVERING or status.stable_since is None:
            return None
        return status.stable_since + timedelta(seconds=self.settings.stabilization)
