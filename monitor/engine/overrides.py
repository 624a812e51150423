"""What overrides measured states: statuses declared in open incidents and running maintenance windows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..models import ComponentRef, Source, State

__all__ = ["Override", "Overrides"]


@dataclass(frozen=True)
class Override:
    """A declared status (open incident) or an active maintenance on a network, flow or line.

    `since` is when the declared state began (when it was declared); `changed_at`, when what is declared last
    changed (a new progress of a recovery), if later.
    """

    state: State
    since: datetime
    source: Source  # DECLARED or MAINTENANCE
    progress: float | None = None
    detail: str = ""
    changed_at: datetime | None = None


@dataclass(frozen=True)
class Overrides:
    """Declared statuses and active maintenance, keyed by component key (network:, flow:, line:).

    `lifted` tells when declarations that no longer hold ended, by their detail (``incident:3``,
    ``maintenance:2``): what a lifted override hid is shown from that instant, not from when it was noticed.
    """

    declared: Mapping[str, Override] = field(default_factory=dict)
    maintenance: Mapping[str, Override] = field(default_factory=dict)
    lifted: Mapping[str, datetime] = field(default_factory=dict)

    def for_component(self, ref: ComponentRef) -> Override | None:
        """Maintenance over declared; a component's own entry over its network's."""
        return self.for_key(ref.key, ComponentRef("network", ref.network).key)

    def for_key(self, key: str, network_key: str) -> Override | None:
        """`for_component` by the component's key and its network's, both known beforehand."""
        for table in (self.maintenance, self.declared):
            found = table.get(key) or table.get(network_key)
            if found is not None:
                return found
        return None

    def changed(self, other: Overrides) -> set[str]:
        """The keys whose declared status or maintenance differs between the two (added, gone or changed).

        When declarations were lifted (`lifted`) matters only to the components whose override is gone: those
        keys are among these.
        """
        keys: set[str] = set()
        for mine, theirs in ((self.declared, other.declared), (self.maintenance, other.maintenance)):
            if mine != theirs:
                keys.update(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        return keys
