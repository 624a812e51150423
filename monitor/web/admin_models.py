"""The bodies of the operators' API (writes, pushes, sign-in) as pydantic models: requests are validated by them,
answers built through them, and the OpenAPI document of the operators' listener generated from them.

Field names are the domain's (`title.fr`, `statuses`, `components`, `start`, `duration`…): the API and the CLI
refuse the same things, naming the same fields (the CLI as its options).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..declared.incidents import Impact, Phase
from ..declared.inputs import MAX_TEXT
from ..declared.maintenance import MaintenanceWindow
from ..i18n import N_
from ..models import State
from ..staff.passwords import MAX_PASSWORD
from ..staff.roles import Role
from .api_v1_models import BilingualText, Instant, OccurrenceAnswer, RecurrenceAnswer

__all__ = [
    "AdminError",
    "DeclarationAnswer",
    "DeclarationsAnswer",
    "DeclaredIn",
    "EnrolIn",
    "EnrolmentAnswer",
    "IncidentOpen",
    "IncidentResolve",
    "IncidentUpdateIn",
    "KumaAnswer",
    "MaintenanceIn",
    "PushAnswer",
    "PushIn",
    "PushQuery",
    "RecurrenceIn",
    "SessionAnswer",
    "SignInIn",
    "SignedOut",
    "TextIn",
    "WindowAnswer",
]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_TEXT = MAX_TEXT * 2  # the domain counts characters and names the field; this only bounds what is parsed
# Instants and dates as patterned strings, parsed by the handlers: what the document says is exactly what passes.
MOMENT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
WALL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?$"
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
PATTERNS = {  # what a value that does not match says
    MOMENT: N_("must be a date-time with its offset, like 2024-02-12T13:00:00+01:00"),
    WALL_TIME: N_("must be a Europe/Paris wall time without offset, like 2024-03-31T02:30"),
    DAY: N_("must be a date like 2024-12-31"),
}
Moment = Annotated[str, Field(pattern=MOMENT, description="an instant with its offset, e.g. 2024-02-12T13:00:00+01:00")]
WallTime = Annotated[str, Field(pattern=WALL_TIME)]
Day = Annotated[str, Field(pattern=DAY)]


class In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AdminError(Out):
    """What went wrong; `field` names the request field at fault when there is one (`title.fr`, `statuses`…)."""

    error: str
    field: str | None = None
    code: str = "refused"  # the kind of refusal, stable (`invalid`, `forbidden`, `not_found`…); `error` is said in
    # the request's language


class TextIn(In):
    """A text written by ops: French required where the field is, English optional (Markdown, ≤ 5,000)."""

    fr: str = Field("", max_length=_TEXT)
    en: str = Field("", max_length=_TEXT)


class DeclaredIn(In):
    """A declared status: `progress` (0–1) only with `recovering`."""

    component: str = Field(max_length=200, description="network:x, flow:x/y or line:x/y")
    state: str = Field(max_length=40, description="operational, degraded, partial, down, recovering, maintenance")
    progress: float | None = Field(None, description="0 to 1, only with recovering")


class IncidentOpen(In):
    title: TextIn
    impact: Impact
    status: Literal["investigating", "identified", "monitoring"] = "investigating"
    components: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=500)
    message: TextIn
    practitioner_consigne: TextIn = TextIn()
    member_consigne: TextIn = TextIn()
    statuses: list[DeclaredIn] = Field(default_factory=list, max_length=500)
    at: Moment | None = Field(None, description="when it happened, with its offset (default: now)")


class IncidentUpdateIn(In):
    status: Phase | None = Field(None, description="the phase (default: unchanged); resolved resolves")
    impact: Impact | None = None
    message: TextIn
    practitioner_consigne: TextIn = TextIn()
    member_consigne: TextIn = TextIn()
    statuses: list[DeclaredIn] = Field(default_factory=list, max_length=500)
    at: Moment | None = None


class IncidentResolve(In):
    message: TextIn | None = Field(None, description="default: « Incident résolu. »")
    practitioner_consigne: TextIn = TextIn()
    member_consigne: TextIn = TextIn()
    at: Moment | None = None


class RecurrenceIn(In):
    frequency: Literal["none", "weekly", "monthly"] = "none"
    weekdays: list[Weekday] = Field(default_factory=list, max_length=7, description="weekly: its days")
    month_day: int | None = Field(None, description="monthly: the day of the month (1–31)")
    nth: int | None = Field(None, description="monthly: 1 to 5, or -1 for the last …")
    weekday: Weekday | None = Field(None, description="… weekday of the month")
    until: Day | None = Field(None, description="the last day an occurrence may start (YYYY-MM-DD)")


class MaintenanceIn(In):
    title: TextIn
    components: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=500)
    start: WallTime = Field(description="the first start, a Europe/Paris wall time without offset (2024-03-31T02:30)")
    duration: str | float = Field(description="2h, 90m, or seconds")
    recurrence: RecurrenceIn = RecurrenceIn()


class WindowAnswer(Out):
    id: int
    title: BilingualText
    components: list[str]
    start_local: str = Field(description="the first start, a Europe/Paris wall time")
    duration_s: float
    recurrence: RecurrenceAnswer
    cancelled: bool
    skipped: list[date] = Field(description="local dates of occurrences cancelled one by one")
    next: list[OccurrenceAnswer] = Field(description="the next occurrences (at most 3, within 400 days)")

    @classmethod
    def of(cls, window: MaintenanceWindow, next_ones: list[OccurrenceAnswer]) -> WindowAnswer:
        return cls(
            id=window.id or 0,
            title=BilingualText.of(window.title),
            components=list(window.components),
            start_local=window.start.isoformat(timespec="minutes"),
            duration_s=window.duration.total_seconds(),
            recurrence=RecurrenceAnswer.of(window.recurrence),
            cancelled=window.cancelled,
            skipped=list(window.skipped),
            next=next_ones,
        )


class DeclarationAnswer(Out):
    incident_id: int
    component: str
    state: State
    progress: float | None
    since: Instant


class DeclarationsAnswer(Out):
    at: Instant
    declarations: list[DeclarationAnswer] = Field(description="what open incidents declare now, per component")


# Pushes


class PushIn(In):
    """What a partner reports, as a JSON body or as query parameters; every field optional (nothing: a heartbeat)."""

    state: Literal["operational", "degraded", "down"] = "operational"
    message: str = Field(
        "", max_length=200, description="kept only as a short code (≤ 40 of a-z 0-9 _ . -, lowercased); never free text"
    )
    latency_ms: float | None = Field(None, ge=0, le=86_400_000, description="what the partner measured")


class PushQuery(PushIn):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PushAnswer(Out):
    check: str = Field(description="the check key, e.g. check:viamedis/pec/operateur")
    state: Literal["operational", "degraded", "down"]
    received_at: Instant
    detail: str = Field(description="the short code kept from the message ('' when none or not a code)")
    message_kept: bool = Field(description="false when a message was given but not kept (not a short code)")


class KumaAnswer(Out):
    """Uptime Kuma's push answer: `{"ok": true}`, or `{"ok": false, "msg": …}`."""

    ok: bool
    msg: str | None = None


# Staff sign-in


class SignInIn(In):
    name: str = Field(max_length=64, description="the staff account name")
    password: str = Field(max_length=MAX_PASSWORD + 1)
    code: str = Field("", max_length=16, description="the 6-digit code of the authenticator (once enrolled)")


class EnrolIn(In):
    code: str = Field(max_length=16)


class SessionAnswer(Out):
    name: str
    role: Role
    networks: list[str]
    stage: Literal["enrol", "full"] = Field(description="enrol: set up the second factor first")
    csrf_token: str = Field(description="send it as X-CSRF-Token (or the form field csrf) with every change")
    expires_at: Instant


class SignedOut(Out):
    signed_out: bool


class EnrolmentAnswer(Out):
    secret: str = Field(description="the TOTP secret (base32), to type in if the QR code cannot be read")
    provisioning_uri: str = Field(description="the otpauth:// URI an authenticator app reads (as a QR code)")
