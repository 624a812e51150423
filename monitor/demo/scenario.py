"""The demo scenario: a timeline of what simulated endpoints do and what ops declare (YAML, validated)."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ..config.yaml_source import format_path, parse_yaml
from ..errors import ConfigError, ConfigProblem

Mode = Literal["up", "down", "banner", "slow", "reset"]
Reported = Literal["operational", "degraded", "down"]
ENDPOINT = r"^[a-z0-9-]+/[a-z0-9_-]+$"

__all__ = ["Event", "Mode", "Scenario", "load_scenario"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(_Model):
    """One moment of the story; `prov` S = public source, F = fill-in (labelled as fictional)."""

    at: AwareDatetime
    prov: Literal["S", "F"]
    endpoints: Mapping[str, Mode] = Field(default_factory=dict)
    push: Mapping[str, Reported] = Field(default_factory=dict)
    incident: Mapping[str, Any] | None = None  # validated by the incident code path when posted
    maintenance: Mapping[str, Any] | None = None

    @property
    def fictional(self) -> bool:
        return self.prov == "F"


class Scenario(_Model):
    history_from: AwareDatetime
    live_from: AwareDatetime
    story_until: AwareDatetime
    events: tuple[Event, ...] = Field(min_length=1)

    def model_post_init(self, context: Any) -> None:
        times = [e.at for e in self.events]
        if times != sorted(times):
            raise ValueError("events must be in chronological order")
        if not self.history_from < self.live_from < self.story_until:
            raise ValueError("history_from < live_from < story_until is required")

    def _latest(self, table: str, key: str, at: datetime, default: str) -> str:
        changes = [(e.at, getattr(e, table)[key]) for e in self.events if key in getattr(e, table)]
        index = bisect.bisect_right([when for when, _ in changes], at)
        return str(changes[index - 1][1]) if index else default

    def mode(self, endpoint: str, at: datetime) -> Mode:
        """What `network/endpoint` does at `at` (up before any event says otherwise)."""
        mode: Mode = self._latest("endpoints", endpoint, at, "up")  # type: ignore[assignment]
        return mode

    def reported(self, flow: str, at: datetime) -> Reported:
        """What the operator reports for a push-monitored `network/flow` at `at`."""
        state: Reported = self._latest("push", flow, at, "operational")  # type: ignore[assignment]
        return state

    def between(self, start: datetime, end: datetime) -> list[Event]:
        """Events with start <= at < end."""
        return [e for e in self.events if start <= e.at < end]


DEFAULT = "scenario-2024.yaml"


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load a scenario file (default: the February 2024 one shipped with tpmon); ConfigError if invalid."""
    if path is None:
        text = resources.files("monitor.demo").joinpath(DEFAULT).read_text(encoding="utf-8")
        name = DEFAULT
    else:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigProblem("", f"cannot read: {exc.strerror}", name)]) from None
    doc = parse_yaml(text, name)
    if doc.problems:
        raise ConfigError(doc.problems)
    try:
        return Scenario.model_validate(doc.data)
    except ValidationError as exc:
        problems = [
            ConfigProblem(format_path(tuple(e["loc"])), e["msg"], name, doc.line_of(tuple(e["loc"])))
            for e in exc.errors()
        ]
        raise ConfigError(problems) from None
