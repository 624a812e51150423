"""The bodies of /api/v1 as pydantic models: responses are built through them, the OpenAPI document from them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from ..config.values import SLUG
from ..declared.incidents import Consigne, Impact, Incident, Phase, Standing, current_consignes
from ..declared.inputs import Bilingual
from ..declared.maintenance import WEEKDAYS, Occurrence, Recurrence
from ..models import Source, State

__all__ = [
    "AvailabilityAnswer",
    "AvailabilityQuery",
    "BilingualText",
    "BoardAnswer",
    "CheckStatus",
    "ChecksAnswer",
    "ChecksQuery",
    "DeclaredNow",
    "DeclaredStatus",
    "DependencyStatus",
    "ErrorAnswer",
    "FlowStatus",
    "HistoryAnswer",
    "HistoryQuery",
    "IncidentAnswer",
    "IncidentUpdateAnswer",
    "IncidentsAnswer",
    "IncidentsQuery",
    "LineAnswer",
    "LineStatus",
    "MaintenanceAnswer",
    "MaintenanceQuery",
    "NetworkAnswer",
    "NetworkSummary",
    "NetworksAnswer",
    "OccurrenceAnswer",
    "RecurrenceAnswer",
    "StatusQuery",
    "WindowName",
    "instant",
]

WindowName = Literal["24h", "7d", "30d", "90d"]
MAX_ID = 2**63 - 1  # the store's ids are 64-bit integers


def instant(moment: datetime) -> str:
    """ISO 8601 in UTC with its offset (`2024-02-12T12:00:00+00:00`); a naive value is taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


Instant = Annotated[
    datetime,
    PlainSerializer(instant, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True, populate_by_name=True)


class ErrorAnswer(Body):
    """What went wrong, said in the request's language (`?lang=`, the `lang` cookie, Accept-Language; French by
    default): `<parameter>: <problem>` for a 400, the missing thing for a 404, the store for a 503. `field` names
    the parameter at fault (null when none is), `code` the kind of refusal, stable across languages."""

    error: str
    field: str | None = None
    code: str  # bad_request (400), not_found (404), unavailable (503): monitor.errors.CODES


class BilingualText(Body):
    """A text in French and English; `en` is null when ops wrote none (show `fr` then)."""

    fr: str
    en: str | None

    @classmethod
    def of(cls, text: Bilingual) -> BilingualText:
        return cls(fr=text.fr, en=text.en if text.en.strip() else None)

    @classmethod
    def optional(cls, text: Bilingual) -> BilingualText | None:
        return cls.of(text) if text else None


# /api/v1/status: the board in one language (the shape of tpmon's first API, kept)


Sentence = Annotated[str | None, BeforeValidator(lambda text: text or None)]  # an empty text is null


class BoardCell(Body):
    id: str
    label: str
    state: State
    state_label: str
    since: Instant | None
    source: Source
    source_label: str
    progress: Share
    detail: str
    affected: Sentence = Field(
        None,
        description="a line raised by a dependency: the upstream's state for whom, e.g. "
        "'Indisponible pour les assurés dont le tiers payant est géré par Viamedis'",
    )
    scope: Sentence = Field(None, description="that dependency's scope alone: who is affected")
    cause: Sentence = Field(
        None,
        description="a line not operational: the flow at fault and what it means at the counter, e.g. "
        "'vérification des droits en ligne indisponible'",
    )
    action: Sentence = Field(None, description="what a practitioner does meanwhile, in one line")
    meaning: Sentence = Field(
        None,
        description="a line recovering: what its percentage means, e.g. 'environ 1 prise en charge sur 2 aboutit ; "
        "en cas de refus, réessayez plus tard ou faites une facture acquittée'",
    )


class BoardNetwork(BoardCell):
    name: str
    kind: Literal["operateur", "reseau_de_soins"]
    lines: list[BoardCell]
    flows: list[BoardCell]
    checks: list[BoardCell]


class BoardAnswer(Body):
    lang: Literal["fr", "en"]
    checked_at: Instant | None = Field(description="when the last probe result arrived")
    networks: list[BoardNetwork]


# Networks, lines, flows, checks: machine values, labels in both languages


class Shown(Body):
    """A component's status: state, since when, where it comes from, progress (0–1) when recovering."""

    state: State
    since: Instant | None
    source: Source
    progress: Share


class NetworkSummary(Shown):
    id: str
    name: str
    kind: Literal["operateur", "reseau_de_soins"]


class NetworksAnswer(Body):
    networks: list[NetworkSummary]


class FlowStatus(Shown):
    id: str
    key: str = Field(description="the component key, e.g. flow:viamedis/pec")
    label: BilingualText


class LineStatus(Shown):
    id: str
    key: str = Field(description="the component key, e.g. line:viamedis/optique")
    label: BilingualText
    detail: str = Field(
        description="what drives the state, e.g. incident:3 or the upstream network/flow; for a check probed from "
        "several locations, down_from:lyon (seen down from those only: not published down) or no_quorum:lyon "
        "(as many see it down as working: unknown)"
    )
    affected: BilingualText | None = Field(
        description="raised by a dependency: the upstream's state for whom, e.g. "
        "'Indisponible pour les assurés dont le tiers payant est géré par Viamedis'"
    )
    scope: BilingualText | None = Field(description="that dependency's scope alone: who is affected")
    requires: list[str] = Field(description="required flows; `a|b` means either one is enough")
    optional: list[str] = Field(description="flows whose outage makes the line at least degraded")


class CheckStatus(Shown):
    """A check and its last state; never its URL, host or headers (they may carry secrets)."""

    id: str
    key: str = Field(description="the component key, e.g. check:viamedis/pec/portail")
    network: str
    flow: str
    kind: Literal["http", "tcp", "tls", "dns", "push"]
    description: str
    interval_s: float = Field(gt=0)
    last_result_at: Instant | None
    consecutive_failures: int = Field(ge=0)


class DependencyStatus(Body):
    """An upstream flow some lines rely on, with its state now (unknown when nothing is known yet)."""

    network: str
    flow: str
    lines: list[str] = Field(description="the dependent lines; empty means all of them")
    state: State
    since: Instant | None


class NetworkAnswer(NetworkSummary):
    website: str | None
    hotline: str | None
    lines: list[LineStatus]
    flows: list[FlowStatus]
    checks: list[CheckStatus]
    dependencies: list[DependencyStatus]


class LineAnswer(LineStatus):
    network: str
    checks: list[CheckStatus] = Field(description="the checks of the flows the line requires or uses")
    dependencies: list[DependencyStatus]


class ChecksAnswer(Body):
    checks: list[CheckStatus]


# History and availability


class WindowAvailability(Body):
    ratio: Share | None = Field(description="null when nothing is known over the window")
    coverage: Share | None
    start: Instant


class HistoryTransition(Body):
    from_: State = Field(alias="from")
    to: State
    at: Instant
    source: Source
    progress: Share


class HistoryAnswer(Body):
    component: str
    at: Instant
    availability: dict[Literal["1d", "7d", "30d", "90d"], WindowAvailability]
    transitions: list[HistoryTransition] = Field(description="newest first")


class AvailabilityAnswer(Body):
    component: str
    window: WindowName
    start: Instant
    end: Instant
    availability: Share | None = Field(description="time-weighted; null when no time is known (never 100 %)")
    coverage: Share | None = Field(description="share of the window whose state was known")
    seconds: dict[State, float] = Field(description="seconds spent in each state over the window")
    formula: BilingualText
    unknown_rule: BilingualText


# Incidents


class DeclaredStatus(Body):
    component: str
    state: State
    progress: Share | None


class DeclaredNow(DeclaredStatus):
    since: Instant


class IncidentUpdateAnswer(Body):
    id: int | None
    at: Instant
    status: Phase
    message: BilingualText
    practitioner_consigne: BilingualText | None = Field(description="what practitioners should do meanwhile")
    member_consigne: BilingualText | None = Field(description="what members (insured people) should do meanwhile")
    statuses: list[DeclaredStatus]


_STANDING = (
    "current: advice to follow; outdated: written before the last change of state of the incident's components,"
    " it may no longer apply; withdrawn: the incident is resolved"
)


def _text(consigne: Consigne | None) -> BilingualText | None:
    return BilingualText.of(consigne.text) if consigne is not None else None


class IncidentAnswer(Body):
    id: int
    title: BilingualText
    impact: Impact
    status: Phase
    created_at: Instant
    updated_at: Instant
    resolved_at: Instant | None
    components: list[str]
    declared: list[DeclaredNow] = Field(description="the statuses this incident declares now; empty once resolved")
    practitioner_consigne: BilingualText | None = Field(description="the latest consigne given to practitioners")
    practitioner_consigne_at: Instant | None = Field(description="when it was written (its update's date)")
    practitioner_consigne_standing: Standing | None = Field(description=_STANDING)
    member_consigne: BilingualText | None = Field(description="the latest consigne given to members")
    member_consigne_at: Instant | None = Field(description="when it was written (its update's date)")
    member_consigne_standing: Standing | None = Field(description=_STANDING)
    updates: list[IncidentUpdateAnswer] = Field(description="newest first")

    @classmethod
    def of(cls, incident: Incident, shown: datetime | None = None) -> IncidentAnswer:
        """`shown`: the latest start of the current state among the incident's components (the snapshot's)."""
        updates = [
            IncidentUpdateAnswer(
                id=u.id,
                at=u.at,
                status=u.status,
                message=BilingualText.of(u.message),
                practitioner_consigne=BilingualText.optional(u.practitioner_consigne),
                member_consigne=BilingualText.optional(u.member_consigne),
                statuses=[
                    DeclaredStatus(component=k, state=d.state, progress=d.progress) for k, d in u.statuses.items()
                ],
            )
            for u in reversed(incident.updates)
        ]
        # a consigne stays until an update replaces it: the latest given, as the page shows it, dated and outdated
        # when older than its components' last change of state (withdrawn once resolved)
        practitioners, members = current_consignes(incident, shown)
        declared = incident.declared().items() if incident.is_open else ()
        return cls(
            id=incident.id or 0,
            title=BilingualText.of(incident.title),
            impact=incident.impact,
            status=incident.status,
            created_at=incident.created_at,
            updated_at=incident.updates[-1].at,
            resolved_at=incident.resolved_at,
            components=list(incident.components),
            declared=[
                DeclaredNow(component=k, state=d.state, progress=d.progress, since=since) for k, (d, since) in declared
            ],
            practitioner_consigne=_text(practitioners),
            practitioner_consigne_at=practitioners.at if practitioners else None,
            practitioner_consigne_standing=practitioners.standing if practitioners else None,
            member_consigne=_text(members),
            member_consigne_at=members.at if members else None,
            member_consigne_standing=members.standing if members else None,
            updates=updates,
        )


class IncidentsAnswer(Body):
    status: Literal["open", "resolved", "all"]
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last one")
    incidents: list[IncidentAnswer] = Field(description="newest first")


# Maintenance


class RecurrenceAnswer(Body):
    frequency: Literal["none", "weekly", "monthly"]
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]
    month_day: int | None
    nth: int | None = Field(description="1 to 5, or -1 for the last")
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None
    until: date | None

    @classmethod
    def of(cls, rule: Recurrence) -> RecurrenceAnswer:
        return cls(
            frequency=rule.frequency,
            weekdays=[WEEKDAYS[d] for d in rule.weekdays],
            month_day=rule.month_day,
            nth=rule.nth,
            weekday=WEEKDAYS[rule.weekday] if rule.weekday is not None else None,
            until=rule.until,
        )


class OccurrenceAnswer(Body):
    window_id: int
    title: BilingualText
    components: list[str]
    start: Instant
    end: Instant
    running: bool
    dst: Literal["gap", "fold"] | None = Field(description="a DST change moved (gap) or doubled (fold) its start")
    recurrence: RecurrenceAnswer

    @classmethod
    def of(cls, occurrence: Occurrence, *, running: bool) -> OccurrenceAnswer:
        window = occurrence.window
        recurrence = RecurrenceAnswer.of(window.recurrence)
        return cls(
            window_id=window.id or 0,
            title=BilingualText.of(window.title),
            components=list(window.components),
            start=occurrence.start,
            end=occurrence.end,
            running=running,
            dst=occurrence.dst or None,
            recurrence=recurrence,
        )


class MaintenanceAnswer(Body):
    at: Instant
    horizon_days: int
    running: list[OccurrenceAnswer]
    upcoming: list[OccurrenceAnswer] = Field(description="soonest first")


# Query parameters: validated by these models, documented from them


class Query(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StatusQuery(Query):
    lang: Literal["fr", "en"] = Field("fr", description="language of the labels")


class ChecksQuery(Query):
    network: str | None = Field(None, description="only the checks of this network", pattern=SLUG)


class HistoryQuery(Query):
    limit: int = Field(100, ge=1, le=1000, description="how many transitions, newest first")


class AvailabilityQuery(Query):
    window: WindowName = Field("24h", description="the span ending with the current hour")


class IncidentsQuery(Query):
    status: Literal["open", "resolved", "all"] = Field("all", description="which incidents")
    limit: int = Field(20, ge=1, le=100, description="page size")
    offset: int = Field(0, ge=0, le=MAX_ID, description="how many incidents to skip, newest first")


class MaintenanceQuery(Query):
    horizon_days: int = Field(7, ge=1, le=90, description="how many days ahead upcoming occurrences are listed")
