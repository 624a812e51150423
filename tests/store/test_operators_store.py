"""The operators' tables on every backend: accounts and sessions, tokens (digests only), the append-only audit
trail, idempotency records, grouped push signals with author and latency, cancelled maintenance occurrences."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from monitor.config import Settings
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow, Recurrence, occurrences
from monitor.errors import IncidentError, NotFound, StaffError
from monitor.models import ComponentRef
from monitor.staff.audit import AuditEvent
from monitor.store import Store, WriteRefused
from monitor.store.audit_store import append_event, audit_events, export_events, prune_audit, record_events
from monitor.store.declaration_store import Declarations
from monitor.store.idempotency_store import prune_idempotency, recall, remember
from monitor.store.signal_store import NewSignal, add_signals, signals_after
from monitor.store.staff_store import StaffStore
from monitor.store.token_store import create_token, note_uses, revoke_token, tokens, tokens_by_digest

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
CHECK = ComponentRef.for_check("viamedis", "pec", "operateur")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def event(i: int, at: datetime = T0) -> AuditEvent:
    return AuditEvent(at, "user:ada", "admin", "incident.open", f"incident:{i}", None, {"id": i, "title": {"fr": "é"}})


def test_accounts_keep_a_name_a_role_and_never_show_their_secrets(store: Store) -> None:
    staff = StaffStore(store)
    seen: list[tuple[object, object]] = []
    added = staff.add_user(
        "eve", "editor", ["viamedis", "viamedis"], "$argon2id$x", "SECRET", also=lambda c, b, a: seen.append((b, a))
    )
    assert (added.name, added.role, added.networks, added.enrolled) == ("eve", "editor", ("viamedis",), False)
    assert seen == [(None, added)]
    shown = added.shown()
    assert "SECRET" not in str(shown) and "argon2" not in str(shown)
    assert staff.user("eve") == added and staff.user_by_id(added.id) == added and staff.user("nobody") is None
    with pytest.raises(StaffError, match="already exists"):
        staff.add_user("eve", "viewer", [], "h", "s")
    with pytest.raises(StaffError, match="name"):
        staff.add_user("eve@example.org", "viewer", [], "h", "s")  # an account name, never an e-mail address
    with pytest.raises(StaffError, match="networks"):
        staff.add_user("bob", "editor", [], "h", "s")
    with pytest.raises(StaffError, match="networks"):
        staff.add_user("bob", "admin", ["viamedis"], "h", "s")
    assert [u.name for u in staff.users()] == ["eve"]


def test_a_refused_change_writes_nothing(store: Store) -> None:
    staff = StaffStore(store)

    def refuse(connection: object, before: object, after: object) -> None:
        raise StaffError("name", "refused inside the transaction")

    with pytest.raises(StaffError):
        staff.add_user("eve", "viewer", [], "h", "s", also=refuse)
    assert staff.user("eve") is None


def test_lockout_counts_failures_in_a_row_and_a_success_clears_them(store: Store) -> None:
    clock = Clock()
    staff = StaffStore(store, clock=clock)
    user = staff.add_user("ada", "admin", [], "h", "s")
    for count in range(1, 5):
        after = staff.note_failure(user.id, limit=5, lock_for=timedelta(minutes=15))
        assert after is not None and not after.locked(clock.now) and after.failed_count == count
    locked = staff.note_failure(user.id, limit=5, lock_for=timedelta(minutes=15))
    assert locked is not None and locked.locked(clock.now) and locked.failed_count == 0
    assert locked.locked_until == T0 + timedelta(minutes=15)
    assert not locked.locked(T0 + timedelta(minutes=15))
    assert staff.note_success(user.id, 100)
    cleared = staff.user("ada")
    assert cleared is not None and cleared.locked_until is None and cleared.totp_last_step == 100


def test_a_totp_step_is_accepted_once_even_by_two_sign_ins_at_once(store: Store) -> None:
    staff = StaffStore(store)
    user = staff.add_user("ada", "admin", [], "h", "s")
    assert staff.note_success(user.id, 57_000_000)
    assert not staff.note_success(user.id, 57_000_000)  # the same code again
    assert not staff.note_success(user.id, 56_999_999)
    assert staff.note_success(user.id, 57_000_001)
    assert staff.note_success(user.id, 57_000_002, enrol=True)
    assert not staff.note_success(user.id, 57_000_003, enrol=True)  # enrolled once only


def test_sessions_are_kept_by_digest_and_end_with_the_account(store: Store) -> None:
    clock = Clock()
    staff = StaffStore(store, clock=clock)
    user = staff.add_user("ada", "admin", [], "h", "s")
    opened = staff.open_session("d" * 64, user.id, "full")
    found = staff.session("d" * 64)
    assert found is not None and found[0] == opened and found[1].name == "ada"
    clock.now += timedelta(minutes=5)
    staff.touch_session("d" * 64)
    assert staff.session("d" * 64)[0].last_seen_at == clock.now  # type: ignore[index]
    staff.open_session("e" * 64, user.id, "full")
    staff.set_disabled("ada", True)
    assert all(s.revoked_at == clock.now for s in staff.sessions_of(user.id))
    assert len(staff.sessions_of(user.id)) == 2
    staff.set_disabled("ada", False)
    staff.open_session("f" * 64, user.id, "enrol")
    staff.reset_second_factor("ada", "NEW")
    assert staff.session("f" * 64)[0].revoked_at is not None  # type: ignore[index]
    assert staff.user("ada").totp_secret == "NEW"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        staff.set_disabled("nobody", True)
    clock.now += timedelta(days=30)
    assert staff.prune_sessions(clock.now - timedelta(days=7)) == 3
    assert staff.session("d" * 64) is None


def test_tokens_keep_a_digest_scopes_expiry_and_last_use(store: Store) -> None:
    made = create_token(
        store,
        digest="a" * 64,
        prefix="tpm_AAAAAAAA",
        label="viamedis-pec",
        scopes=["push:viamedis/pec/operateur"],
        created_by="cli:root",
        expires_at=T0 + timedelta(days=365),
    )
    create_token(
        store, digest="b" * 64, prefix="tpm_BBBBBBBB", label="b", scopes=["admin"], created_by="x", expires_at=None
    )
    assert [t.prefix for t in tokens(store)] == ["tpm_AAAAAAAA", "tpm_BBBBBBBB"]
    assert "a" * 64 not in str(made.shown())
    note_uses(store, {made.id: T0 + timedelta(hours=1)})
    note_uses(store, {made.id: T0})  # an older use never moves it back
    assert tokens(store)[0].last_used_at == T0 + timedelta(hours=1)
    revoked = revoke_token(store, "tpm_AAAAAAAA")
    assert revoked.revoked_at is not None
    with pytest.raises(StaffError, match="already revoked"):
        revoke_token(store, str(made.id))
    with pytest.raises(NotFound):
        revoke_token(store, "tpm_nothing")
    assert [t.prefix for t in tokens(store)] == ["tpm_BBBBBBBB"]
    assert [d for d, _ in tokens_by_digest(store)] == ["a" * 64, "b" * 64]  # revoked ones too: refusals say why
    with pytest.raises(WriteRefused):  # one digest, one token
        create_token(store, digest="b" * 64, prefix="p", label="l", scopes=[], created_by="x", expires_at=None)


def test_the_audit_trail_is_appended_read_exported_and_pruned_never_changed(store: Store) -> None:
    record_events(store, [event(i, T0 + timedelta(days=i)) for i in range(5)])
    with store._session("test", write=True) as connection:
        append_event(connection, event(5, T0 + timedelta(days=5)))
    newest = audit_events(store, limit=2)
    assert [e.target for e in newest] == ["incident:5", "incident:4"]
    assert newest[0].after == {"id": 5, "title": {"fr": "é"}}
    assert [e.target for e in audit_events(store, before_id=newest[1].id, limit=10)][:1] == ["incident:3"]
    assert len(audit_events(store, since=T0 + timedelta(days=3))) == 3
    assert audit_events(store, action="incident", target="incident:2")[0].actor == "user:ada"
    assert audit_events(store, actor="user:nobody") == []
    exported = list(export_events(store, batch=2))
    assert [e.target for e in exported] == [f"incident:{i}" for i in range(6)]
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET actor = 'someone else'"))
    assert {e.actor for e in export_events(store)} == {"user:ada"}
    assert prune_audit(store, T0 + timedelta(days=2), batch=1) == 1
    assert prune_audit(store, T0 + timedelta(days=2)) == 1
    assert [e.target for e in export_events(store)] == [f"incident:{i}" for i in range(2, 6)]


def test_idempotency_keys_keep_one_answer_per_principal_and_key(store: Store) -> None:
    with store._session("test", write=True) as connection:
        remember(connection, "token:a", "k1", "f" * 64, 201, {"id": 1}, T0)
        remember(connection, "token:b", "k1", "e" * 64, 201, {"id": 2}, T0)
    found = recall(store, "token:a", "k1")
    assert found is not None and (found.status, found.body, found.fingerprint) == (201, {"id": 1}, "f" * 64)
    assert recall(store, "token:a", "k2") is None
    with pytest.raises(WriteRefused), store._session("test", write=True) as connection:
        remember(connection, "token:a", "k1", "f" * 64, 201, {"id": 3}, T0)
    assert prune_idempotency(store, T0 + timedelta(hours=25)) == 2


def test_signals_are_added_in_groups_with_their_author_and_latency(store: Store) -> None:
    batch = [
        NewSignal(CHECK, "operational", "ok", "token:tpm_AAAAAAAA", 0.012),
        NewSignal(CHECK, "down", "", "cli:root"),
    ]
    stored = add_signals(store, batch, received_at=T0)
    assert [s.id for s in stored] == sorted(s.id for s in stored)
    read = signals_after(store, 0)
    assert [(s.state, s.detail, s.author, s.latency_s) for s in read] == [
        ("operational", "ok", "token:tpm_AAAAAAAA", 0.012),
        ("down", "", "cli:root", None),
    ]
    for bad in (
        NewSignal(CHECK, "broken"),
        NewSignal(CHECK, "down", "Free Text"),
        NewSignal(CHECK, "down", "", "", -1),
    ):
        with pytest.raises(WriteRefused):
            add_signals(store, [NewSignal(CHECK, "operational"), bad])
    assert len(signals_after(store, 0)) == 2  # all or nothing


def test_one_occurrence_of_a_window_is_cancelled_and_the_series_goes_on(store: Store) -> None:
    settings = Settings.model_validate(
        {"networks": {"viamedis": {"name": "V", "kind": "operateur", "lines": ["optique"]}}}
    )
    declarations = Declarations(store, settings, clock=lambda: T0)
    sundays = MaintenanceWindow(
        None,
        Bilingual("Maintenance dominicale"),
        ("flow:viamedis/pec",),
        datetime(2024, 2, 18, 2, 0),
        timedelta(hours=2),
        Recurrence("weekly", weekdays=(6,)),
    )
    window = declarations.add_window(sundays)
    seen: list[tuple[object, object]] = []
    assert window.id is not None
    skipped = declarations.cancel_occurrence(window.id, date(2024, 2, 25), also=lambda c, b, a: seen.append((b, a)))
    assert skipped.skipped == (date(2024, 2, 25),) and seen == [(window, skipped)]
    assert declarations.window(window.id).skipped == (date(2024, 2, 25),)
    starts = [o.start.date() for o in occurrences(skipped, T0, T0 + timedelta(days=21))]
    assert starts == [date(2024, 2, 18), date(2024, 3, 3)]
    for day, problem in [(date(2024, 2, 25), "already cancelled"), (date(2024, 2, 26), "no occurrence")]:
        with pytest.raises(IncidentError, match=problem) as refused:
            declarations.cancel_occurrence(window.id, day)
        assert refused.value.field == "date"
