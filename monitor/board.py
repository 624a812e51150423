"""The board: the current status of every component, in memory, seeded from the store at start."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import Check, Settings, dependency_order
from .engine.aggregate import evaluate
from .engine.check_state import CheckPolicy, advance, check_status, deadline, expire
from .engine.overrides import Overrides
from .models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, Source, State, Transition

__all__ = ["Board", "BoardChange", "policy_for"]


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


class Board:
    """Every component's status. Single-threaded (the event loop); every method is synchronous and fast."""

    def __init__(
        self,
        settings: Settings,
        now: datetime,
        statuses: Mapping[str, ComponentStatus] | None = None,
        memories: Mapping[str, CheckMemory] | None = None,
    ) -> None:
        self._statuses: dict[str, ComponentStatus] = {}
        self._memories: dict[str, CheckMemory] = {}
        self._overrides = Overrides()
        self.version = 0  # bumped on every change of a shown status; pages cache on it
        self.checked_at: datetime | None = None  # when the last probe result arrived
        self._unsaved: dict[str, CheckMemory] = {}  # memories made here, not yet handed to the store
        # Several instances: the checks another instance probes now; it expires them, this board follows it.
        self.followed: Callable[[str], bool] | None = None
        self._load(settings, statuses or {}, memories or {}, now)
        self._seed(now)

    def _load(
        self,
        settings: Settings,
        statuses: Mapping[str, ComponentStatus],
        memories: Mapping[str, CheckMemory],
        now: datetime,
    ) -> None:
        self.settings = settings
        self._order = dependency_order(settings)
        self._dependents: dict[str, set[str]] = {name: set() for name in settings.networks}
        for name, network in settings.networks.items():
            for dep in network.depends_on:
                self._dependents[dep.network].add(name)
        self._policies: dict[str, CheckPolicy] = {}
        self._checks: dict[str, ComponentStatus] = {}
        for network_name, check in settings.checks():
            ref = ComponentRef.for_check(network_name, check.flow, check.name)
            self._policies[ref.key] = policy = policy_for(check, settings)
            memory = memories.get(ref.key, CheckMemory())
            if policy.source is Source.PUSH and memory.last_result_at is None and memory.since is None:
                # awaited from now on: its missed_after counts from here, and a restart must not reset it
                memory = CheckMemory(State.UNKNOWN, since=now)
                self._unsaved[ref.key] = memory
            self._memories[ref.key] = memory
            self._checks[ref.key] = check_status(ref, memory, self._policies[ref.key].source)
        self._statuses = {k: v for k, v in statuses.items() if not k.startswith("check:")}
        self._statuses.update(self._checks)
        known = self._known_keys()
        self._statuses = {k: v for k, v in self._statuses.items() if k in known}
        self._memories = {k: v for k, v in self._memories.items() if k in self._policies}
        self._push_keys = [k for k, p in self._policies.items() if p.source is Source.PUSH]

    def _seed(self, now: datetime) -> None:
        """Derive the components the saved statuses lack; keep the saved ones as they were.

        Re-deriving those here would lose what changed while the process was down (a recovery that
        stabilized, checks gone stale): the first `evaluate_all` or `tick` reports it as transitions.
        """
        result = evaluate(self.settings, self._checks, self._overrides, self._statuses, now, self._order)
        for key, status in result.statuses.items():
            self._statuses.setdefault(key, status)

    def _known_keys(self) -> set[str]:
        keys = set(self._checks)
        for name, network in self.settings.networks.items():
            keys.add(ComponentRef("network", name).key)
            keys.update(ComponentRef("flow", name, flow).key for flow in network.flow_names(self.settings.flows))
            keys.update(ComponentRef("line", name, line).key for line in network.lines)
        return keys

    # --- reading -------------------------------------------------------------------------------
    def get(self, ref: ComponentRef | str) -> ComponentStatus | None:
        return self._statuses.get(ref if isinstance(ref, str) else ref.key)

    def statuses(self) -> Mapping[str, ComponentStatus]:
        return self._statuses

    def memory(self, check_key: str) -> CheckMemory | None:
        return self._memories.get(check_key)

    def memories(self) -> Mapping[str, CheckMemory]:
        return self._memories

    # --- changing ------------------------------------------------------------------------------
    def record(self, result: ProbeResult, now: datetime) -> BoardChange:
        """Fold one probe result in; re-derive its network (and dependents) only if the check changed."""
        key = result.check.key
        policy = self._policies.get(key)
        if policy is None:  # a result for a check removed by a reload meanwhile
            return BoardChange()
        memory, transition = advance(self._memories[key], result, policy, now)
        self._memories[key] = memory
        self.checked_at = now
        change = BoardChange(memories={key: memory})
        if transition is None:
            return change
        change.transitions.append(transition)
        self._set_check(result.check, memory, change)
        self._derive(self._affected([result.check.network]), now, change)
        return change

    def tick(self, now: datetime, *, push: bool = True) -> BoardChange:
        """Time passes: stale checks become unknown, recoveries stabilize, windows open and close.

        With `push` false, push checks are left to `expire_push`: the caller first reads the signals that
        may still be on their way (`push_signals.PushInbox.catch_up`), so that none received in time is
        judged missing.
        """
        change = BoardChange()
        keys = self._memories if push else [k for k, p in self._policies.items() if p.source is not Source.PUSH]
        touched = self._expire(keys, now, change)
        # Only time can change a network now: an expired check, or a recovery whose stabilization is due.
        stabilization = timedelta(seconds=self.settings.stabilization)
        touched.update(
            status.ref.network
            for status in self._statuses.values()
            if status.state is State.RECOVERING
            and status.stable_since is not None
            and now >= status.stable_since + stabilization
        )
        if touched:
            self._derive(self._affected(touched), now, change)
        self._save_unsaved(change)
        return change

    def push_due(self, now: datetime) -> list[str]:
        """The push checks whose deadline (last signal, or configuration, + missed_after) is passed at `now`."""
        due = []
        for key in self._push_keys:
            at = deadline(self._memories[key], self._policies[key])
            if at is not None and at <= now:
                due.append(key)
        return due

    def next_push_deadline(self) -> datetime | None:
        """The earliest deadline of the push checks not yet down, if any."""
        dates = (deadline(self._memories[k], self._policies[k]) for k in self._push_keys)
        return min((d for d in dates if d is not None), default=None)

    def expire_push(self, keys: Iterable[str], now: datetime) -> BoardChange:
        """Push checks of `keys` silent past their deadline become down, dated at the deadline."""
        change = BoardChange()
        wanted = [k for k in keys if k in self._policies and self._policies[k].source is Source.PUSH]
        touched = self._expire(wanted, now, change)
        if touched:
            self._derive(self._affected(touched), now, change)
        return change

    def follow(self, memories: Mapping[str, CheckMemory], now: datetime) -> BoardChange:
        """Checks another instance probes: their memories as it stored them; their networks re-derived."""
        change = BoardChange()
        touched: set[str] = set()
        for key, memory in memories.items():
            if key in self._policies and self._memories[key] != memory:
                self._memories[key] = memory
                ref = self._checks[key].ref
                self._set_check(ref, memory, change)
                touched.add(ref.network)
        if touched:
            self._derive(self._affected(touched), now, change)
        return change

    def _expire(self, keys: Iterable[str], now: datetime, change: BoardChange) -> set[str]:
        touched: set[str] = set()
        followed = self.followed
        for key in keys:
            if followed is not None and followed(key):
                continue
            memory = self._memories[key]
            ref = self._checks[key].ref
            expired, transition = expire(ref, memory, self._policies[key], now)
            if transition is not None:
                self._memories[key] = expired
                change.memories[key] = expired
                change.transitions.append(transition)
                self._set_check(ref, expired, change)
                touched.add(ref.network)
        return touched

    def _save_unsaved(self, change: BoardChange) -> None:
        if self._unsaved:
            for key, memory in self._unsaved.items():
                change.memories.setdefault(key, memory)
            self._unsaved = {}

    def set_overrides(self, overrides: Overrides, now: datetime) -> BoardChange:
        self._overrides = overrides
        return self.evaluate_all(now)

    def evaluate_all(self, now: datetime) -> BoardChange:
        change = BoardChange()
        self._derive(self._order, now, change)
        self._save_unsaved(change)
        return change

    def reload(self, settings: Settings, now: datetime) -> BoardChange:
        """Apply a new config: unchanged checks keep their memory, new ones start unknown (a new push check is
        awaited from now on)."""
        self._load(settings, dict(self._statuses), dict(self._memories), now)
        self.version += 1
        return self.evaluate_all(now)

    def _set_check(self, ref: ComponentRef, memory: CheckMemory, change: BoardChange) -> None:
        status = check_status(ref, memory, self._policies[ref.key].source)
        if self._statuses.get(ref.key) != status:  # a success like the last one changes nothing shown
            self.version += 1
        self._checks[ref.key] = status
        self._statuses[ref.key] = status
        change.statuses.append(status)

    def _affected(self, networks: Iterable[str]) -> list[str]:
        todo, seen = list(networks), set[str]()
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self._dependents.get(name, ()))
        return [name for name in self._order if name in seen]

    def _derive(self, networks: list[str], now: datetime, change: BoardChange) -> None:
        result = evaluate(self.settings, self._checks, self._overrides, self._statuses, now, networks)
        for key, status in result.statuses.items():
            if self._statuses.get(key) != status:
                self._statuses[key] = status
                change.statuses.append(status)
        if change.statuses or result.transitions:
            change.transitions.extend(result.transitions)
            self.version += 1
