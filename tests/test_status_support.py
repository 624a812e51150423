"""Helpers shared by the status-engine and board tests: small configs, check statuses, an evaluate driver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config import Settings, dependency_order
from monitor.engine.aggregate import evaluate
from monitor.engine.check_state import check_status
from monitor.engine.overrides import Overrides
from monitor.models import CheckMemory, ComponentKind, ComponentRef, ComponentStatus, State, Transition

T0 = datetime(2024, 2, 12, 13, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
EARLIER = T0 - timedelta(hours=1)


def tcp(flow: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A TCP check of `flow`, named after it unless told."""
    return {"kind": "tcp", "name": name or flow, "flow": flow, "host": "127.0.0.1", "port": 9, **fields}


def network(
    *checks: dict[str, Any], kind: str = "operateur", lines: tuple[str, ...] = ("pharmacie",), **fields: Any
) -> dict[str, Any]:
    return {"name": "Réseau", "kind": kind, "lines": list(lines), "checks": list(checks), **fields}


def make_settings(networks: dict[str, dict[str, Any]], **fields: Any) -> Settings:
    return Settings.model_validate({"networks": networks, **fields})


def key(kind: ComponentKind, network_name: str, name: str = "", check: str = "") -> str:
    """`key("flow", "viamedis", "pec")` → ``flow:viamedis/pec``; a check's name defaults to its flow."""
    if kind == "check":
        return ComponentRef.for_check(network_name, name, check or name).key
    return ComponentRef(kind, network_name, name).key


class Engine:
    """Drives `evaluate` as the board does: checks set by hand, statuses carried from one call to the next."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.order = dependency_order(settings)
        self.overrides = Overrides()
        self.previous: dict[str, ComponentStatus] = {}
        self.checks: dict[str, ComponentStatus] = {}
        for name, check in settings.checks():
            ref = ComponentRef.for_check(name, check.flow, check.name)
            self.checks[ref.key] = check_status(ref, CheckMemory())

    def set(self, check_key: str, state: State, since: datetime) -> None:
        ref = ComponentRef.parse(check_key)
        assert check_key in self.checks, check_key
        self.checks[check_key] = check_status(ref, CheckMemory(state, since, last_result_at=since))

    def run(self, now: datetime) -> list[Transition]:
        result = evaluate(self.settings, self.checks, self.overrides, self.previous, now, self.order)
        self.previous.update(result.statuses)
        return result.transitions

    def __getitem__(self, component_key: str) -> ComponentStatus:
        return self.previous[component_key]

    def state(self, component_key: str) -> State:
        return self.previous[component_key].state


def moves(transitions: list[Transition]) -> dict[str, tuple[State, State]]:
    """Transitions by component key: (previous, state)."""
    return {t.ref.key: (t.previous, t.state) for t in transitions}
