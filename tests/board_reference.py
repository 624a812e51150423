"""The board as it was before the incremental engine (issue 16): each step re-derives whole networks with the
full `evaluate`. The property tests hold the incremental `monitor.board.Board` to it; the benchmark compares both.

`reach="all"`: every step that changes a check or the overrides re-derives every network — the full
re-derivation. `reach="dependents"`: a changed check re-derives its network and those depending on it, a tick the
networks of expired checks and due recoveries (and their dependents), as the board did before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from monitor.board import BoardChange, policy_for
from monitor.config import Settings, dependency_order
from monitor.engine.aggregate import evaluate
from monitor.engine.check_state import CheckPolicy, advance, check_status, deadline, expire
from monitor.engine.overrides import Overrides
from monitor.models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, Source, State

Reach = Literal["all", "dependents"]


class ReferenceBoard:
    """Same verbs as `Board`, same results when `reach="all"`; plain dicts, whole networks re-derived."""

    def __init__(
        self,
        settings: Settings,
        now: datetime,
        statuses: Mapping[str, ComponentStatus] | None = None,
        memories: Mapping[str, CheckMemory] | None = None,
        *,
        reach: Reach = "all",
    ) -> None:
        self.reach = reach
        self.overrides = Overrides()
        self.unsaved: dict[str, CheckMemory] = {}
        self.followed: Callable[[str], bool] | None = None  # as `Board.followed`: checks another instance expires
        self.load(settings, statuses or {}, memories or {}, now)
        result = evaluate(self.settings, self.statuses, self.overrides, self.statuses, now, self.order)
        for key, status in result.statuses.items():
            self.statuses.setdefault(key, status)

    def load(
        self,
        settings: Settings,
        statuses: Mapping[str, ComponentStatus],
        memories: Mapping[str, CheckMemory],
        now: datetime,
    ) -> None:
        self.settings = settings
        self.order = dependency_order(settings)
        self.dependents: dict[str, set[str]] = {name: set() for name in settings.networks}
        for name, network in settings.networks.items():
            for dep in network.depends_on:
                self.dependents.setdefault(dep.network, set()).add(name)
        self.policies: dict[str, CheckPolicy] = {}
        self.memories: dict[str, CheckMemory] = {}
        checks: dict[str, ComponentStatus] = {}
        for network_name, check in settings.checks():
            ref = ComponentRef.for_check(network_name, check.flow, check.name)
            self.policies[ref.key] = policy = policy_for(check, settings)
            memory = memories.get(ref.key, CheckMemory())
            if policy.source is Source.PUSH and memory.last_result_at is None and memory.since is None:
                memory = CheckMemory(State.UNKNOWN, since=now)
                self.unsaved[ref.key] = memory
            self.memories[ref.key] = memory
            checks[ref.key] = check_status(ref, memory, policy.source)
        known = set(checks)
        for name, network in settings.networks.items():
            known.add(ComponentRef("network", name).key)
            known.update(ComponentRef("flow", name, flow).key for flow in network.flow_names(settings.flows))
            known.update(ComponentRef("line", name, line).key for line in network.lines)
        self.statuses: dict[str, ComponentStatus] = {
            k: v for k, v in statuses.items() if k in known and not k.startswith("check:")
        }
        self.statuses.update(checks)

    def record(self, result: ProbeResult, now: datetime) -> BoardChange:
        key = result.check.key
        if key not in self.policies:
            return BoardChange()
        memory, transition = advance(self.memories[key], result, self.policies[key], now)
        self.memories[key] = memory
        change = BoardChange(memories={key: memory})
        if transition is not None:
            change.transitions.append(transition)
            self.set_check(key, memory, change)
            self.derive({result.check.network}, now, change)
        return change

    def tick(self, now: datetime, *, push: bool = True) -> BoardChange:
        change = BoardChange()
        keys = [k for k, p in self.policies.items() if push or p.source is not Source.PUSH]
        touched = self.expire(keys, now, change)
        stabilization = timedelta(seconds=self.settings.stabilization)
        touched.update(
            s.ref.network
            for s in self.statuses.values()
            if s.state is State.RECOVERING and s.stable_since is not None and now >= s.stable_since + stabilization
        )
        if touched or self.reach == "all":
            self.derive(touched, now, change)
        self.save_unsaved(change)
        return change

    def push_due(self, now: datetime) -> list[str]:
        found = []
        for key, policy in self.policies.items():
            at = deadline(self.memories[key], policy) if policy.source is Source.PUSH else None
            if at is not None and at <= now and not (self.followed is not None and self.followed(key)):
                found.append(key)
        return found

    def next_push_deadline(self) -> datetime | None:
        dates = [deadline(self.memories[k], p) for k, p in self.policies.items() if p.source is Source.PUSH]
        return min((d for d in dates if d is not None), default=None)

    def expire_push(self, keys: Iterable[str], now: datetime) -> BoardChange:
        change = BoardChange()
        wanted = {k for k in keys if k in self.policies and self.policies[k].source is Source.PUSH}
        touched = self.expire([k for k in self.policies if k in wanted], now, change)
        if touched:
            self.derive(touched, now, change)
        return change

    def follow(self, memories: Mapping[str, CheckMemory], now: datetime) -> BoardChange:
        change = BoardChange()
        touched: set[str] | None = None
        for key, memory in memories.items():
            if key in self.policies and self.memories[key] != memory:
                self.memories[key] = memory
                self.set_check(key, memory, change)
                touched = (touched or set()) | {self.statuses[key].ref.network}
        if touched is not None:
            self.derive(touched, now, change)
        return change

    def set_overrides(self, overrides: Overrides, now: datetime) -> BoardChange:
        self.overrides = overrides
        return self.evaluate_all(now)

    def evaluate_all(self, now: datetime) -> BoardChange:
        change = BoardChange()
        self.derive(set(self.order), now, change)
        self.save_unsaved(change)
        return change

    def reload(self, settings: Settings, now: datetime) -> BoardChange:
        self.load(settings, dict(self.statuses), dict(self.memories), now)
        return self.evaluate_all(now)

    def expire(self, keys: list[str], now: datetime, change: BoardChange) -> set[str]:
        touched: set[str] = set()
        for key in keys:
            if self.followed is not None and self.followed(key):
                continue
            ref = self.statuses[key].ref
            expired, transition = expire(ref, self.memories[key], self.policies[key], now)
            if transition is not None:
                self.memories[key] = expired
                change.memories[key] = expired
                change.transitions.append(transition)
                self.set_check(key, expired, change)
                touched.add(ref.network)
        return touched

    def set_check(self, key: str, memory: CheckMemory, change: BoardChange) -> None:
        status = check_status(self.statuses[key].ref, memory, self.policies[key].source)
        self.statuses[key] = status
        change.statuses.append(status)

    def save_unsaved(self, change: BoardChange) -> None:
        for key, memory in self.unsaved.items():
            change.memories.setdefault(key, memory)
        self.unsaved = {}

    def derive(self, networks: set[str], now: datetime, change: BoardChange) -> None:
        if self.reach == "all":
            chosen = self.order
        else:
            todo, seen = list(networks), set[str]()
            while todo:
                name = todo.pop()
                if name not in seen:
                    seen.add(name)
                    todo.extend(self.dependents.get(name, ()))
            chosen = [name for name in self.order if name in seen]
        result = evaluate(self.settings, self.statuses, self.overrides, self.statuses, now, chosen)
        for key, status in result.statuses.items():
            if self.statuses.get(key) != status:
                self.statuses[key] = status
                change.statuses.append(status)
        change.transitions.extend(result.transitions)
