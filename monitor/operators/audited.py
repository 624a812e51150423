"""Writes of what ops declare, each with its permission check, its audit event and (for the API) its idempotency
record, all in the write's own transaction: a write that is not audited cannot happen. The API, the CLI and the
console all write through here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from ..config import Settings
from ..declared.incidents import Impact, Incident, IncidentUpdate
from ..declared.inputs import Bilingual
from ..declared.maintenance import MaintenanceWindow
from ..errors import NotAllowed
from ..i18n import said
from ..staff.audit import AuditEvent, Listener
from ..staff.roles import Principal, Role
from ..store import Store
from ..store.audit_store import append_event
from ..store.declaration_store import Also, Declarations
from ..store.idempotency_store import remember
from ..store.staff_store import StaffStore, StaffUser
from ..store.token_store import StoredToken, create_token, revoke_token

__all__ = ["AuditedDeclarations", "AuditedStaff", "Idempotency", "incident_record", "window_record"]

Answer = Callable[[Any], tuple[int, dict[str, Any]]]


def _text(text: Bilingual) -> dict[str, str]:
    return {"fr": text.fr, "en": text.en}


def incident_record(incident: Incident) -> dict[str, Any]:
    """An incident as the audit trail keeps it (before/after): its facts and its last update."""
    last = incident.updates[-1]
    return {
        "id": incident.id,
        "title": _text(incident.title),
        "impact": incident.impact,
        "status": incident.status,
        "components": list(incident.components),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "updates": len(incident.updates),
        "last_update": {
            "at": last.at.isoformat(),
            "status": last.status,
            "message": _text(last.message),
            "practitioner_consigne": _text(last.practitioner_consigne),
            "member_consigne": _text(last.member_consigne),
            "statuses": {k: {"state": d.state.value, "progress": d.progress} for k, d in last.statuses.items()},
        },
    }


def window_record(window: MaintenanceWindow) -> dict[str, Any]:
    rule = window.recurrence
    return {
        "id": window.id,
        "title": _text(window.title),
        "components": list(window.components),
        "start_local": window.start.isoformat(timespec="minutes"),
        "duration_s": window.duration.total_seconds(),
        "recurrence": rule.describe(),
        "cancelled": window.cancelled,
        "skipped": [day.isoformat() for day in window.skipped],
    }


@dataclass(frozen=True)
class Idempotency:
    """A write sent with an Idempotency-Key: its answer, built by `answer` from the result, is kept with it."""

    key: str
    fingerprint: str
    answer: Answer


class AuditedDeclarations:
    """`Declarations`' verbs on behalf of `principal`, from `listener`: refused (NotAllowed) unless the principal may
    write on every network the change touches, and recorded in the audit trail with what was before and after."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        principal: Principal,
        listener: Listener,
        *,
        clock: Callable[[], datetime],
        idempotency: Idempotency | None = None,
    ) -> None:
        self.declarations = Declarations(store, settings, clock=clock)
        self.settings = settings
        self.principal = principal
        self.listener = listener
        self.clock = clock
        self.idempotency = idempotency

    def _also(self, action: str, kind: str, record: Callable[[Any], dict[str, Any]]) -> Also:
        def also(connection: Connection, before: Any, after: Any) -> None:
            touched: Iterable[str] = after.components if after is not None else before.components
            self.principal.require_write(touched)  # the last word, inside the transaction
            event = AuditEvent(
                self.clock(),
                self.principal.actor,
                self.listener,
                action,
                f"{kind}:{after.id}",
                record(before) if before is not None else None,
                record(after),
            )
            append_event(connection, event)
            if self.idempotency is not None:
                status, body = self.idempotency.answer(after)
                idem = self.idempotency
                remember(connection, self.principal.actor, idem.key, idem.fingerprint, status, body, event.at)

        return also

    def _may_write(self, keys: Iterable[str]) -> None:
        """Refuse early what the principal may not write; keys of no known network are left to the validation,
        which names them (the check inside the transaction has the last word)."""
        known = self.settings.networks
        self.principal.require_write(k for k in keys if k.partition(":")[2].split("/")[0] in known)

    def incident(self, incident_id: int) -> Incident:
        """Read an incident, and refuse (NotAllowed) one this principal may not write on — before any validation
        of the change, which would otherwise tell it something about that incident."""
        found = self.declarations.incident(incident_id)
        self.principal.require_write(found.components)
        return found

    def window(self, window_id: int) -> MaintenanceWindow:
        found = self.declarations.window(window_id)
        self.principal.require_write(found.components)
        return found

    def open_incident(
        self, *, title: Bilingual, impact: Impact, first: IncidentUpdate, components: Iterable[str] = ()
    ) -> Incident:
        named = list(components)
        self._may_write([*named, *first.statuses])
        also = self._also("incident.open", "incident", incident_record)
        return self.declarations.open_incident(title=title, impact=impact, first=first, components=named, also=also)

    def update_incident(self, incident_id: int, change: IncidentUpdate, *, impact: Impact | None = None) -> Incident:
        self.incident(incident_id)
        self._may_write(change.statuses)
        action = "incident.resolve" if change.status == "resolved" else "incident.update"
        also = self._also(action, "incident", incident_record)
        return self.declarations.update_incident(incident_id, change, impact=impact, also=also)

    def resolve_incident(
        self,
        incident_id: int,
        *,
        message: Bilingual | None = None,
        at: datetime | None = None,
        practitioner_consigne: Bilingual | None = None,
        member_consigne: Bilingual | None = None,
    ) -> Incident:
        self.incident(incident_id)
        also = self._also("incident.resolve", "incident", incident_record)
        return self.declarations.resolve_incident(
            incident_id,
            message=message,
            at=at,
            practitioner_consigne=practitioner_consigne,
            member_consigne=member_consigne,
            also=also,
        )

    def add_window(self, window: MaintenanceWindow) -> MaintenanceWindow:
        self._may_write(window.components)
        return self.declarations.add_window(window, also=self._also("maintenance.add", "maintenance", window_record))

    def cancel_window(self, window_id: int) -> MaintenanceWindow:
        self.window(window_id)
        also = self._also("maintenance.cancel", "maintenance", window_record)
        return self.declarations.cancel_window(window_id, also=also)

    def cancel_occurrence(self, window_id: int, day: date) -> MaintenanceWindow:
        self.window(window_id)
        also = self._also("maintenance.cancel_occurrence", "maintenance", window_record)
        return self.declarations.cancel_occurrence(window_id, day, also=also)


class AuditedStaff:
    """Accounts and machine tokens changed on behalf of `principal` (an admin), from `listener`: refused
    (NotAllowed) otherwise, and recorded in the audit trail in the change's own transaction. Never a password, a
    TOTP secret or a token's secret in the record: only what `shown()` gives."""

    def __init__(
        self, store: Store, principal: Principal, listener: Listener, *, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.principal = principal
        self.listener = listener
        self.clock = clock

    def _require_admin(self) -> None:
        if not self.principal.is_admin:
            raise NotAllowed(said("only an admin manages accounts and tokens"))

    def _also(self, action: str, target: Callable[[Any], str]) -> Also:
        def also(connection: Connection, before: Any, after: Any) -> None:
            event = AuditEvent(
                self.clock(),
                self.principal.actor,
                self.listener,
                action,
                target(after),
                before.shown() if before is not None else None,
                after.shown(),
            )
            append_event(connection, event)

        return also

    def create_token(
        self, *, digest: str, prefix: str, label: str, scopes: list[str], expires_at: datetime | None
    ) -> StoredToken:
        self._require_admin()
        return create_token(
            self.store,
            digest=digest,
            prefix=prefix,
            label=label,
            scopes=scopes,
            created_by=self.principal.actor,
            expires_at=expires_at,
            also=self._also("token.create", lambda t: f"token:{t.prefix}"),
        )

    def revoke_token(self, which: str) -> StoredToken:
        self._require_admin()
        return revoke_token(self.store, which, also=self._also("token.revoke", lambda t: f"token:{t.prefix}"))

    def add_user(
        self, name: str, role: Role, networks: Iterable[str], password_hash: str, totp_secret: str
    ) -> StaffUser:
        self._require_admin()
        staff = StaffStore(self.store, clock=self.clock)
        also = self._also("user.add", lambda u: f"user:{u.name}")
        return staff.add_user(name, role, networks, password_hash, totp_secret, also=also)

    def set_disabled(self, name: str, disabled: bool) -> StaffUser:
        self._require_admin()
        if disabled and self.principal.actor == f"user:{name}":
            raise NotAllowed(said("an admin cannot disable their own account (ask another admin)"))
        staff = StaffStore(self.store, clock=self.clock)
        action = "user.disable" if disabled else "user.enable"
        return staff.set_disabled(name, disabled, also=self._also(action, lambda u: f"user:{u.name}"))

    def reset_second_factor(self, name: str, totp_secret: str) -> StaffUser:
        self._require_admin()
        staff = StaffStore(self.store, clock=self.clock)
        return staff.reset_second_factor(
            name, totp_secret, also=self._also("user.reset_mfa", lambda u: f"user:{u.name}")
        )

    def set_password(self, name: str, password_hash: str) -> StaffUser:
        self._require_admin()
        staff = StaffStore(self.store, clock=self.clock)
        return staff.set_password(name, password_hash, also=self._also("user.password", lambda u: f"user:{u.name}"))
