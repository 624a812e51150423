"""The SQLModel tables of the store (the only module with `table=True`) and their portable column types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "ApiTokenRow",
    "AuditEventRow",
    "AvailabilityRollupRow",
    "CheckMemoryRow",
    "ComponentStatusRow",
    "IdempotencyRow",
    "IncidentRow",
    "IncidentUpdateRow",
    "InstanceRow",
    "JournalSegmentRow",
    "MaintenanceWindowRow",
    "NotificationDeliveryRow",
    "NotificationEventRow",
    "NotificationLineMemoryRow",
    "ProbeCheckRow",
    "PushSignalRow",
    "StaffSessionRow",
    "StaffUserRow",
    "SubscriberRow",
    "SubscriptionRow",
    "TransitionRow",
    "UTCDateTime",
    "WebhookRow",
    "api_token",
    "audit_event",
    "availability_rollup",
    "check_memory",
    "component_status",
    "idempotency_key",
    "incident",
    "incident_update",
    "instance",
    "journal_segment",
    "maintenance_window",
    "metadata",
    "notification_delivery",
    "notification_event",
    "notification_line_memory",
    "probe_check",
    "probe_result",
    "push_signal",
    "staff_session",
    "staff_user",
    "subscriber",
    "subscription",
    "transition",
    "webhook",
]


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend: SQLite keeps no offset, so it is stored as naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # A naive datetime is taken as UTC rather than refused: a refused value would block the writer.
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CleanText(TypeDecorator[str]):
    """Text without NUL characters, which PostgreSQL refuses (a refused value would block the writer)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace("\x00", "") if value is not None else None


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT for years of results.
_ID = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Any:
    return Field(default=None, primary_key=True, sa_type=_ID)


def _when(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable)


def _text() -> Any:
    return Field(default="", sa_type=CleanText(), nullable=False)


class ProbeCheckRow(SQLModel, table=True):
    """A check key that has results, and the small integer its results carry instead of the key."""

    __tablename__ = "probe_check"
    __table_args__ = (UniqueConstraint("key", name="uq_probe_check_key"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=Integer())
    key: str = Field(nullable=False)


def _int4(name: str) -> Column[Any]:
    return Column(name, Integer(), nullable=True)


# One raw probe result (`models.ProbeResult`), compact (rows.py converts): the check as its `probe_check` id, the
# start in µs since the Unix epoch (UTC), the duration and phases in µs (NULL: phase not measured; an int4 holds
# 35 min), the certificate dates in whole seconds after the start's second (an int4 holds 68 years), the reason
# as a code (`rows.REASON_CODES`), NULL for an empty detail.
#
# No surrogate key (results are only read by check and time, never one by one; a row's id would cost 8 B and a
# 20 B index entry): a plain table, not a SQLModel class, which would need a primary key. One index, (check_id,
# started_us): it serves the reads by check, the latency by hour and pruning (per check).
# Columns in an order PostgreSQL needs no alignment padding for (8, 4, 2, 1 bytes, then the text): an HTTPS success
# (both certificate dates, no reason, an empty detail) is 80 B with its header, 4 more for its line pointer.
_result = Table(
    "probe_result",
    SQLModel.metadata,
    Column("started_us", BigInteger(), nullable=False),
    Column("check_id", Integer(), ForeignKey("probe_check.id"), nullable=False),
    Column("duration_us", Integer(), nullable=False),
    *(_int4(f"{phase}_us") for phase in ("resolve", "connect", "tls", "processing", "transfer")),
    _int4("cert_expires_in_s"),
    _int4("chain_expires_in_s"),
    Column("status_code", SmallInteger(), nullable=True),
    Column("reason", SmallInteger(), nullable=True),
    Column("success", Boolean(), nullable=False),
    Column("slow", Boolean(), nullable=False),
    Column("detail", CleanText(), nullable=True),
    Index("ix_probe_result_check_id_started_us", "check_id", "started_us"),
)


class TransitionRow(SQLModel, table=True):
    """A change of a component's shown state (`models.Transition`)."""

    __tablename__ = "transition"
    __table_args__ = (
        Index("ix_transition_component_key_at", "component_key", "at"),
        Index("ix_transition_at", "at"),
        Index("ux_transition_uid", "uid", unique=True),
        Index("ux_transition_chain", "component_key", "after_id", unique=True),
    )

    id: int | None = _id()
    uid: str | None = Field(default=None, nullable=True)  # the writer's key: a transition written twice is kept once
    # the id of the transition before it in its component's chain (0: the first); unique per component: no two
    # writers both follow the same transition (store.py appends each at the end of the stored chain)
    after_id: int | None = Field(
        default=None, sa_type=BigInteger(), nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    component_key: str = Field(nullable=False)
    previous: str
    state: str
    at: datetime = _when()
    recorded_at: datetime = _when()
    source: str
    progress: float = 0.0
    detail: str = _text()


class ComponentStatusRow(SQLModel, table=True):
    """The latest status of one component (`models.ComponentStatus`), upserted by key."""

    __tablename__ = "component_status"

    component_key: str = Field(primary_key=True)
    state: str
    since: datetime | None = _when(nullable=True)
    source: str
    raw: str
    progress: float = 0.0
    stable_since: datetime | None = _when(nullable=True)
    changed_at: datetime | None = _when(nullable=True)
    detail: str = _text()
    updated_at: datetime = _when()


class CheckMemoryRow(SQLModel, table=True):
    """What the status engine remembers of one check (`models.CheckMemory`), streaks flattened."""

    __tablename__ = "check_memory"

    check_key: str = Field(primary_key=True)
    state: str
    since: datetime | None = _when(nullable=True)
    fails_count: int = 0
    fails_since: datetime | None = _when(nullable=True)
    oks_count: int = 0
    oks_since: datetime | None = _when(nullable=True)
    fasts_count: int = 0
    fasts_since: datetime | None = _when(nullable=True)
    bads_count: int = 0
    bads_since: datetime | None = _when(nullable=True)
    last_result_at: datetime | None = _when(nullable=True)
    updated_at: datetime = _when()


class AvailabilityRollupRow(SQLModel, table=True):
    """Seconds per state of one component over one hour (UTC) or one Paris day (`history.Rollup`); kept forever."""

    __tablename__ = "availability_rollup"

    component_key: str = Field(primary_key=True)
    period: str = Field(primary_key=True)  # "hour" or "day"
    start: datetime = Field(primary_key=True, sa_type=UTCDateTime())  # UTC; a day starts at Paris midnight
    operational_s: float = 0.0
    degraded_s: float = 0.0
    partial_s: float = 0.0
    down_s: float = 0.0
    recovering_s: float = 0.0
    maintenance_s: float = 0.0
    unknown_s: float = 0.0
    updated_at: datetime = _when()


class IncidentRow(SQLModel, table=True):
    """An incident (`incidents.Incident`); `status` is its latest update's, `components` every affected key."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_resolved_at", "resolved_at"),)

    id: int | None = _id()
    title_fr: str = _text()
    title_en: str = _text()
    impact: str
    status: str
    components: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)
    created_at: datetime = _when()
    resolved_at: datetime | None = _when(nullable=True)


class IncidentUpdateRow(SQLModel, table=True):
    """One update of an incident; `statuses` maps component keys to {"state", "progress"}."""

    __tablename__ = "incident_update"
    __table_args__ = (Index("ix_incident_update_incident_id_at", "incident_id", "at"),)

    id: int | None = _id()
    incident_id: int = Field(foreign_key="incident.id", sa_type=_ID, nullable=False)
    at: datetime = _when()
    status: str
    message_fr: str = _text()
    message_en: str = _text()
    practitioner_consigne_fr: str = _text()
    practitioner_consigne_en: str = _text()
    member_consigne_fr: str = _text()
    member_consigne_en: str = _text()
    statuses: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)


class MaintenanceWindowRow(SQLModel, table=True):
    """A planned maintenance window (`maintenance.MaintenanceWindow`); `start_local` is a Paris wall time."""

    __tablename__ = "maintenance_window"

    id: int | None = _id()
    title_fr: str = _text()
    title_en: str = _text()
    components: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)
    start_local: datetime = Field(sa_type=DateTime(), nullable=False)  # naive on purpose: local wall time
    duration_s: float
    recurrence: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    cancelled: bool = False
    created_at: datetime = _when()
    cancelled_at: datetime | None = _when(nullable=True)
    skipped: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)  # cancelled occurrences' dates


class PushSignalRow(SQLModel, table=True):
    """A signal a partner pushed for a push check (`push.PushSignal`); read by id, as an inbox."""

    __tablename__ = "push_signal"
    __table_args__ = (Index("ix_push_signal_received_at", "received_at"),)

    id: int | None = _id()
    check_key: str = Field(nullable=False)
    received_at: datetime = _when()
    state: str  # operational, degraded or down
    detail: str = Field(default="", nullable=False)  # a short code, validated: never free text
    author: str = Field(default="", nullable=False)  # token:PREFIX, cli:OSUSER; "" before the operators' side
    latency_s: float | None = Field(default=None, nullable=True)  # what the partner measured, if it said


class StaffUserRow(SQLModel, table=True):
    """A staff account: its name (the only thing kept about the person), role, networks, Argon2id hash and TOTP."""

    __tablename__ = "staff_user"
    __table_args__ = (Index("ux_staff_user_name", "name", unique=True),)

    id: int | None = _id()
    name: str = Field(nullable=False)
    role: str  # admin, editor or viewer
    networks: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)  # an editor's networks
    password_hash: str = Field(nullable=False)
    totp_secret: str = Field(nullable=False)
    totp_enrolled_at: datetime | None = _when(nullable=True)  # null: the second factor is still to set up
    totp_last_step: int | None = Field(default=None, nullable=True, sa_type=BigInteger())  # replay guard
    disabled: bool = False
    failed_count: int = 0  # consecutive refused sign-ins
    locked_until: datetime | None = _when(nullable=True)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class StaffSessionRow(SQLModel, table=True):
    """A signed-in session; `id` is the digest of the cookie's value, never the value."""

    __tablename__ = "staff_session"
    __table_args__ = (Index("ix_staff_session_user_id", "user_id"),)

    id: str = Field(primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", sa_type=_ID, nullable=False)
    stage: str  # enrol or full
    created_at: datetime = _when()
    last_seen_at: datetime = _when()
    revoked_at: datetime | None = _when(nullable=True)


class ApiTokenRow(SQLModel, table=True):
    """A machine token: its SHA-256 digest (never the token), public prefix, scopes, expiry and last use."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ux_api_token_digest", "digest", unique=True),)

    id: int | None = _id()
    digest: str = Field(nullable=False)
    prefix: str = Field(nullable=False)
    label: str = Field(nullable=False)  # what it is for, e.g. viamedis-pec-heartbeat
    scopes: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)
    created_at: datetime = _when()
    created_by: str = Field(nullable=False)
    expires_at: datetime | None = _when(nullable=True)
    last_used_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)


class AuditEventRow(SQLModel, table=True):
    """One event of the audit trail (`staff.audit.AuditEvent`); rows are never updated (a trigger refuses it)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_at", "at"), Index("ix_audit_event_target", "target"))

    id: int | None = _id()
    at: datetime = _when()
    actor: str = Field(nullable=False)
    listener: str = Field(nullable=False)
    action: str = Field(nullable=False)
    target: str = Field(default="", nullable=False)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)


class IdempotencyRow(SQLModel, table=True):
    """The stored answer of a write sent with an Idempotency-Key, per principal: a retry gets it again."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created_at", "created_at"),)

    principal: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    fingerprint: str = Field(nullable=False)  # SHA-256 of the method, path and body
    status: int
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    created_at: datetime = _when()


class NotificationEventRow(SQLModel, table=True):
    """The outbox: one thing worth telling (a line's transition, an incident update, a maintenance announced),
    written in the transaction of the change that causes it; `dispatched_at` is set once it is fanned out."""

    __tablename__ = "notification_event"
    __table_args__ = (Index("ix_notification_event_dispatched_at_id", "dispatched_at", "id"),)

    id: int | None = _id()
    kind: str  # line, incident or maintenance
    dedupe_key: str = Field(nullable=False, unique=True)  # the same fact written twice is one event
    components: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    at: datetime = _when()  # when it happened
    created_at: datetime = _when()  # when it was written
    dispatched_at: datetime | None = _when(nullable=True)


class SubscriberRow(SQLModel, table=True):
    """An e-mail address, the only personal data kept; unconfirmed until its owner follows the link."""

    __tablename__ = "subscriber"

    id: int | None = _id()
    address: str = Field(nullable=False, unique=True)  # lower-cased
    created_at: datetime = _when()
    confirmed_at: datetime | None = _when(nullable=True)


class SubscriptionRow(SQLModel, table=True):
    """One scope a subscriber follows: `*`, a network (`viamedis`) or a line (`viamedis/optique`)."""

    __tablename__ = "subscription"
    __table_args__ = (Index("ix_subscription_scope", "scope"),)

    subscriber_id: int = Field(
        sa_column=Column(_ID, ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, nullable=False)
    )
    scope: str = Field(primary_key=True)


class WebhookRow(SQLModel, table=True):
    """A webhook ops configured; its signing secret is derived from tpmon's secret and `salt`, never stored."""

    __tablename__ = "webhook"

    id: int | None = _id()
    url: str = Field(nullable=False)
    scopes: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)
    salt: str = Field(nullable=False)
    allow_private: bool = False
    enabled: bool = True
    description: str = _text()
    created_at: datetime = _when()
    failing_since: datetime | None = _when(nullable=True)  # first failure since the last success
    disabled_at: datetime | None = _when(nullable=True)


class NotificationDeliveryRow(SQLModel, table=True):
    """One event (or a confirmation) to one target: a subscriber, a webhook or a chat channel; claimed by a lease."""

    __tablename__ = "notification_delivery"
    __table_args__ = (
        Index("ix_notification_delivery_channel_state_next_at", "channel", "state", "next_at"),
        Index("ix_notification_delivery_subscriber_id", "subscriber_id"),
        Index("ix_notification_delivery_event_id", "event_id"),
    )

    id: int | None = _id()
    event_id: int | None = Field(
        default=None, sa_column=Column(_ID, ForeignKey("notification_event.id", ondelete="CASCADE"), nullable=True)
    )
    channel: str  # email, webhook or chat
    kind: str = "event"  # event, or confirm (an e-mail's double opt-in)
    subscriber_id: int | None = Field(
        default=None, sa_column=Column(_ID, ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=True)
    )
    webhook_id: int | None = Field(
        default=None, sa_column=Column(_ID, ForeignKey("webhook.id", ondelete="CASCADE"), nullable=True)
    )
    chat: str | None = Field(default=None, nullable=True)  # the chat channel's name in the config
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)  # a confirmation's scopes
    state: str = "pending"  # pending, sent or failed (a dead letter)
    attempts: int = 0
    due_at: datetime = _when()  # not sent before: the coalescing window
    next_at: datetime = _when()  # the next attempt, after a failure's backoff
    claimed_by: str | None = Field(default=None, nullable=True)
    claimed_until: datetime | None = _when(nullable=True)
    message_key: str | None = Field(default=None, nullable=True)  # the message it went out in (Message-ID)
    last_error: str = _text()
    created_at: datetime = _when()
    sent_at: datetime | None = _when(nullable=True)


class NotificationLineMemoryRow(SQLModel, table=True):
    """The last state of a line that was told to its subscribers (unknown is never told)."""

    __tablename__ = "notification_line_memory"

    line_key: str = Field(primary_key=True)
    state: str
    progress: float = 0.0
    at: datetime = _when()


class InstanceRow(SQLModel, table=True):
    """A running `tpmon serve` sharing a PostgreSQL (monitor/cluster): its location and last heartbeat, both
    dated by the database's clock. A row whose heartbeat is two heartbeats old is a dead instance."""

    __tablename__ = "instance"
    __table_args__ = (Index("ix_instance_location_heartbeat", "location", "heartbeat_at"),)

    id: str = Field(primary_key=True)
    location: str
    host: str = ""
    pid: int = 0
    joined_at: datetime = _when()
    heartbeat_at: datetime = _when()


class JournalSegmentRow(SQLModel, table=True):
    """A segment of a store writer's journal already written here: replayed twice, it is written once."""

    __tablename__ = "journal_segment"

    segment: str = Field(primary_key=True)
    applied_at: datetime = _when()


metadata = SQLModel.metadata
probe_check: Table = metadata.tables["probe_check"]
probe_result: Table = metadata.tables["probe_result"]
transition: Table = metadata.tables["transition"]
component_status: Table = metadata.tables["component_status"]
check_memory: Table = metadata.tables["check_memory"]
push_signal: Table = metadata.tables["push_signal"]
availability_rollup: Table = metadata.tables["availability_rollup"]
incident: Table = metadata.tables["incident"]
incident_update: Table = metadata.tables["incident_update"]
maintenance_window: Table = metadata.tables["maintenance_window"]
staff_user: Table = metadata.tables["staff_user"]
staff_session: Table = metadata.tables["staff_session"]
api_token: Table = metadata.tables["api_token"]
audit_event: Table = metadata.tables["audit_event"]
idempotency_key: Table = metadata.tables["idempotency_key"]
instance: Table = metadata.tables["instance"]
notification_event: Table = metadata.tables["notification_event"]
notification_delivery: Table = metadata.tables["notification_delivery"]
notification_line_memory: Table = metadata.tables["notification_line_memory"]
subscriber: Table = metadata.tables["subscriber"]
subscription: Table = metadata.tables["subscription"]
webhook: Table = metadata.tables["webhook"]
journal_segment: Table = metadata.tables["journal_segment"]
