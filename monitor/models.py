"""Plain dataclasses and enums shared by every layer: states, probe results, components, transitions."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "SEVERITY",
    "CheckMemory",
    "ComponentKind",
    "ComponentRef",
    "ComponentStatus",
    "FailureReason",
    "ProbeResult",
    "Source",
    "State",
    "Streak",
    "Transition",
    "worst",
]


class State(enum.StrEnum):
    """The seven states of a component (DESIGN §2)."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL = "partial"
    DOWN = "down"
    RECOVERING = "recovering"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"

    @property
    def is_up(self) -> bool:
        """Works, possibly slowly: counts as "up" for partial and progress."""
        return self in (State.OPERATIONAL, State.DEGRADED)


# Aggregation picks the highest. Unknown ranks above degraded so that a component never looks
# better than "we do not know"; maintenance ranks below partial/down so a real outage still shows.
SEVERITY: dict[State, int] = {
    State.OPERATIONAL: 0,
    State.DEGRADED: 1,
    State.UNKNOWN: 2,
    State.RECOVERING: 3,
    State.MAINTENANCE: 4,
    State.PARTIAL: 5,
    State.DOWN: 6,
}


def worst(states: list[State]) -> State:
    """The most severe state of a non-empty list."""
    return max(states, key=SEVERITY.__getitem__)


class Source(enum.StrEnum):
    """Where a status comes from; always shown beside it (DESIGN §2)."""

    PROBE = "probe"
    PUSH = "push"
    DECLARED = "declared"
    MAINTENANCE = "maintenance"
    DEPENDENCY = "dependency"
    NONE = "none"  # no signal at all: the state is unknown


class FailureReason(enum.StrEnum):
    """Why a probe failed: a small fixed set, safe as a metric label."""

    TIMEOUT = "timeout"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    BODY = "body"
    ASSERTION = "assertion"
    PROTOCOL = "protocol"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    CERTIFICATE_EXPIRY = "certificate_expiry"
    INTERNAL = "internal"
    REPORTED = "reported"  # push: the partner reported the flow down
    NO_HEARTBEAT = "no_heartbeat"  # push: no signal from the partner within missed_after


ComponentKind = Literal["network", "flow", "line", "check"]


@dataclass(frozen=True, order=True, slots=True)
class ComponentRef:
    """Names one component: a network, one of its flows or lines, or a check of a flow.

    `key` is its stable text form, used in the store and the APIs:
    ``network:viamedis``, ``flow:viamedis/pec``, ``line:viamedis/optique``, ``check:viamedis/pec/portail``.
    """

    kind: ComponentKind
    network: str
    name: str = ""  # the flow or line name; for a check, its flow
    check: str = ""

    @property
    def key(self) -> str:
        """Interned: the board, the scheduler, the metrics and the writer each keep keys in their tables, and one
        string per key instead of one per table and per ref is ~5 MiB less at 10,000 checks."""
        if self.kind == "network":
            return sys.intern(f"network:{self.network}")
        if self.kind == "check":
            return sys.intern(f"check:{self.network}/{self.name}/{self.check}")
        return sys.intern(f"{self.kind}:{self.network}/{self.name}")

    @classmethod
    def parse(cls, key: str) -> ComponentRef:
        """Inverse of `key`; raises ValueError on a malformed key."""
        kind, sep, rest = key.partition(":")
        parts = rest.split("/")
        if not sep or not all(parts):
            raise ValueError(f"malformed component key {key!r}")
        if kind == "network" and len(parts) == 1:
            return cls("network", parts[0])
        if kind in ("flow", "line") and len(parts) == 2:
            return cls(kind, parts[0], parts[1])  # type: ignore[arg-type]
        if kind == "check" and len(parts) == 3:
            return cls("check", parts[0], parts[1], parts[2])
        raise ValueError(f"malformed component key {key!r}")

    @classmethod
    def for_check(cls, network: str, flow: str, check: str) -> ComponentRef:
        return cls("check", network, flow, check)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One raw probe outcome. A failing target is data here, never an exception."""

    check: ComponentRef
    started_at: datetime  # aware, UTC
    duration_s: float
    success: bool
    reason: FailureReason | None = None
    detail: str = ""  # short, never a secret nor a URL with credentials
    status_code: int | None = None
    phases: dict[str, float] = field(default_factory=dict)  # resolve, connect, tls, processing, transfer
    cert_expiry: datetime | None = None  # leaf certificate notAfter
    chain_expiry: datetime | None = None  # earliest notAfter in the presented chain
    slow: bool = False  # succeeded, but slower than the check's degraded_after

    @property
    def finished_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration_s)


@dataclass(frozen=True, slots=True)
class Streak:
    """A run of consecutive probe outcomes of one kind: how many, and when the first one started."""

    count: int = 0
    since: datetime | None = None

    def extend(self, at: datetime) -> Streak:
        return Streak(self.count + 1, self.since if self.count else at)


BROKEN = Streak()


@dataclass(frozen=True, slots=True)
class CheckMemory:
    """What the status engine remembers of one check between results; persisted to survive restarts."""

    state: State = State.UNKNOWN
    since: datetime | None = None
    fails: Streak = BROKEN  # consecutive failures
    oks: Streak = BROKEN  # consecutive successes, slow or not
    fasts: Streak = BROKEN  # consecutive successes faster than degraded_after
    bads: Streak = BROKEN  # consecutive failures or slow successes
    last_result_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """The current status of one component, as the board holds it and the page shows it.

    `raw` is the state before the recovery rule (what aggregation uses); `state` is what is shown.
    `progress` is the share (0–1) of the component's inputs that are up; meaningful when recovering.
    `stable_since` marks when `raw` last became fully up during a recovery.
    `changed_at` is when what is shown last changed, a recovery step included: nothing later is dated before it.
    """

    ref: ComponentRef
    state: State
    since: datetime | None
    source: Source
    raw: State = State.UNKNOWN
    progress: float = 0.0
    stable_since: datetime | None = None
    detail: str = ""  # short, e.g. the declared message id or the probe failure reason
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a component's shown state; never dropped by the store."""

    ref: ComponentRef
    previous: State
    state: State
    at: datetime  # when the new state began (retroactive for outages)
    recorded_at: datetime  # when the engine noticed
    source: Source
    progress: float = 0.0
    detail: str = ""
