"""Incidents: lifecycle, timestamped updates, declared statuses and the overrides they make (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, get_args

from ..config import Settings
from ..engine.overrides import Override
from ..errors import IncidentError
from ..i18n import literal, said
from ..models import SEVERITY, Source, State
from .inputs import MAX_TITLE, Bilingual, check_components, check_moment, check_text

__all__ = [
    "AUDIENCES",
    "IMPACTS",
    "LIFECYCLE",
    "Audience",
    "Consigne",
    "Declared",
    "Impact",
    "Incident",
    "IncidentUpdate",
    "Phase",
    "Standing",
    "add_update",
    "consigne_history",
    "current_consignes",
    "declare",
    "declared_lifted",
    "declared_overrides",
    "open_incident",
]

Impact = Literal["none", "minor", "major", "critical"]
# what a consigne is worth now: `current` advice; `outdated`, written before its components' last change of
# state; `replaced` by a later consigne; `withdrawn`, its incident resolved (DESIGN §2)
Standing = Literal["current", "outdated", "replaced", "withdrawn"]
Audience = Literal["practitioner_consigne", "member_consigne"]
AUDIENCES: tuple[Audience, ...] = get_args(Audience)
Phase = Literal["investigating", "identified", "monitoring", "resolved"]
IMPACTS: tuple[Impact, ...] = get_args(Impact)
LIFECYCLE: tuple[Phase, ...] = get_args(Phase)
_DECLARABLE = tuple(s for s in State if s is not State.UNKNOWN)  # a declaration says what is known


@dataclass(frozen=True)
class Declared:
    """A status declared by ops on one component; `progress` (0–1) only when recovering."""

    state: State
    progress: float | None = None


@dataclass(frozen=True)
class IncidentUpdate:
    """One timestamped step of an incident: its phase, a message, consignes and declared statuses."""

    at: datetime
    status: Phase
    message: Bilingual
    practitioner_consigne: Bilingual = field(default_factory=Bilingual)  # what practitioners should do meanwhile
    member_consigne: Bilingual = field(default_factory=Bilingual)  # what members (insured people) should do meanwhile
    statuses: Mapping[str, Declared] = field(default_factory=dict)  # component key → declared status
    id: int | None = None
    # what each component of `statuses` was shown as just before this update (set by the store when written)
    shown_before: Mapping[str, State] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    """An incident and its updates, oldest first; `components` lists every affected component key."""

    id: int | None
    title: Bilingual  # one line each, French required
    impact: Impact
    created_at: datetime
    components: tuple[str, ...]
    updates: tuple[IncidentUpdate, ...]
    resolved_at: datetime | None = None

    @property
    def status(self) -> Phase:
        return self.updates[-1].status

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def declared(self) -> dict[str, tuple[Declared, datetime]]:
        """Each component's current declared status and since when it has held that state.

        Each update sets the components it names; the others keep what an earlier update declared.
        """
        current: dict[str, tuple[Declared, datetime]] = {}
        for update in self.updates:
            for key, declared in update.statuses.items():
                before = current.get(key)
                since = before[1] if before is not None and before[0].state is declared.state else update.at
                current[key] = (declared, since)
        return current


@dataclass(frozen=True)
class Consigne:
    """A consigne as it stands: its text, when it was written (its update's date) and what it is worth now.

    `changed` is the last change of state it is older than (outdated), `replaced_at` the date of the consigne
    that replaced it (replaced).
    """

    text: Bilingual
    at: datetime
    standing: Standing
    changed: datetime | None = None
    replaced_at: datetime | None = None


def _last_change(incident: Incident, shown: datetime | None) -> datetime | None:
    """The latest change of state of the incident's components: as shown (`shown`, from the board), or as the
    incident itself declared it, whichever is later."""
    moments = [since for _, since in incident.declared().values()]
    return max([m for m in (*moments, shown) if m is not None], default=None)


def consigne_history(incident: Incident, audience: Audience, shown: datetime | None) -> list[Consigne]:
    """Every consigne the incident gave this audience, oldest first, each with its standing now.

    `shown` is the latest start of the current state among the incident's components on the board. The latest
    consigne is current unless written before the last change of state (outdated); earlier ones are replaced;
    all are withdrawn once the incident is resolved.
    """
    given = [(u.at, getattr(u, audience)) for u in incident.updates if getattr(u, audience)]
    changed = _last_change(incident, shown)
    found = []
    for index, (at, text) in enumerate(given):
        later = given[index + 1][0] if index + 1 < len(given) else None
        if not incident.is_open:
            found.append(Consigne(text, at, "withdrawn"))
        elif later is not None:
            found.append(Consigne(text, at, "replaced", replaced_at=later))
        elif changed is not None and at < changed:
            found.append(Consigne(text, at, "outdated", changed=changed))
        else:
            found.append(Consigne(text, at, "current"))
    return found


def current_consignes(incident: Incident, shown: datetime | None) -> tuple[Consigne | None, Consigne | None]:
    """The latest consigne to practitioners and to members, each dated and with its standing (None: none given)."""
    practitioners = consigne_history(incident, "practitioner_consigne", shown)
    members = consigne_history(incident, "member_consigne", shown)
    return (practitioners[-1] if practitioners else None, members[-1] if members else None)


def declare(state: str, progress: float | None = None, *, key: str = "") -> Declared:
    """A validated declared status from its name; IncidentError naming `statuses` otherwise."""
    where = said(" for {key}", key=key) if key else literal("")
    try:
        parsed = State(state)
    except ValueError:
        allowed = ", ".join(s.value for s in _DECLARABLE)
        raise IncidentError(
            "statuses",
            said("{state!r}{where} is not a state (one of: {allowed})", state=state, where=where, allowed=allowed),
        ) from None
    if parsed not in _DECLARABLE:
        raise IncidentError(
            "statuses", said("'unknown'{where} cannot be declared: a declaration says what is known", where=where)
        )
    if progress is not None:
        if parsed is not State.RECOVERING:
            raise IncidentError(
                "statuses",
                said("a progress{where} goes only with 'recovering', not {state!r}", where=where, state=state),
            )
        if not (math.isfinite(progress) and 0.0 <= progress <= 1.0):
            raise IncidentError(
                "statuses",
                said("progress{where} must be between 0 and 1 (got {progress:g})", where=where, progress=progress),
            )
    return Declared(parsed, progress)


def _check_update(update: IncidentUpdate, settings: Settings) -> None:
    check_moment("at", update.at)
    if update.status not in LIFECYCLE:
        raise IncidentError(
            "status", said("{status!r} is not one of {allowed}", status=update.status, allowed=", ".join(LIFECYCLE))
        )
    check_text("message", update.message, required=True)
    check_text("practitioner_consigne", update.practitioner_consigne, required=False)
    check_text("member_consigne", update.member_consigne, required=False)
    check_components("statuses", update.statuses, settings)
    for key, declared in update.statuses.items():
        declare(declared.state.value, declared.progress, key=key)  # built by hand, not only by `declare`
    if update.status == "resolved" and update.statuses:
        raise IncidentError("statuses", said("a resolving update declares no status: resolving clears them all"))


def _check_impact(impact: str) -> None:
    if impact not in IMPACTS:
        raise IncidentError(
            "impact", said("{impact!r} is not one of {allowed}", impact=impact, allowed=", ".join(IMPACTS))
        )


def open_incident(
    settings: Settings, *, title: Bilingual, impact: Impact, first: IncidentUpdate, components: Iterable[str] = ()
) -> Incident:
    """A new incident (no id yet) from its first update; IncidentError naming the field at fault."""
    check_text("title", title, required=True, limit=MAX_TITLE, line=True)
    _check_impact(impact)
    affected = check_components("components", components, settings)
    _check_update(first, settings)
    if first.status == "resolved":
        raise IncidentError("status", said("a new incident cannot start resolved"))
    affected = tuple(dict.fromkeys((*affected, *first.statuses)))
    return Incident(None, title, impact, first.at, affected, (first,))


def add_update(
    incident: Incident, update: IncidentUpdate, settings: Settings, *, impact: Impact | None = None
) -> Incident:
    """`incident` with `update` appended (a `resolved` update resolves it), or IncidentError.

    While open, any same or later phase is allowed; nothing after resolved; never dated before the last update.
    """
    name = said("incident {id}", id=incident.id) if incident.id is not None else said("the incident")
    if not incident.is_open:
        raise IncidentError("id", said("{incident} is already resolved; nothing can follow", incident=name))
    _check_update(update, settings)
    if impact is not None:
        _check_impact(impact)
    if LIFECYCLE.index(update.status) < LIFECYCLE.index(incident.status):
        raise IncidentError(
            "status",
            said(
                "{incident} is {status}: it cannot go back to {new}",
                incident=name,
                status=incident.status,
                new=update.status,
            ),
        )
    last = incident.updates[-1].at
    if update.at < last:
        raise IncidentError(
            "at", said("{at} is before the last update ({last})", at=update.at.isoformat(), last=last.isoformat())
        )
    affected = tuple(dict.fromkeys((*incident.components, *update.statuses)))
    return replace(
        incident,
        impact=impact or incident.impact,
        components=affected,
        updates=(*incident.updates, update),
        resolved_at=update.at if update.status == "resolved" else None,
    )


def declared_overrides(incidents: Iterable[Incident]) -> dict[str, Override]:
    """The declared statuses of the open incidents, by component key, as status-engine overrides.

    When several open incidents declare the same component, the most severe state wins (models.SEVERITY);
    on a tie, the latest declaration (its since), then the newest incident (highest id).
    """
    chosen: dict[str, tuple[tuple[int, datetime, int], Override]] = {}
    for incident in incidents:
        if not incident.is_open:
            continue
        changed = _changed_at(incident)
        for key, (declared, since) in incident.declared().items():
            rank = (SEVERITY[declared.state], since, incident.id or 0)
            detail = f"incident:{incident.id}"
            override = Override(declared.state, since, Source.DECLARED, declared.progress, detail, changed[key])
            if key not in chosen or rank > chosen[key][0]:
                chosen[key] = (rank, override)
    return {key: override for key, (_, override) in chosen.items()}


def _changed_at(incident: Incident) -> dict[str, datetime]:
    """When each component's declared status (state or progress) last changed: a recovery step is dated when
    it was declared, not when the engine noticed it."""
    last: dict[str, tuple[Declared, datetime]] = {}
    for update in incident.updates:
        for key, declared in update.statuses.items():
            before = last.get(key)
            if before is None or before[0] != declared:
                last[key] = (declared, update.at)
    return {key: at for key, (_, at) in last.items()}


def declared_lifted(incidents: Iterable[Incident]) -> dict[str, datetime]:
    """When the declarations of resolved incidents ended, by override detail (``incident:3``)."""
    return {f"incident:{i.id}": i.resolved_at for i in incidents if i.resolved_at is not None}
