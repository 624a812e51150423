"""Staff sign-in and sessions: password (Argon2id) and TOTP together, throttled per client address, locked per
account after repeated failures, the same refusal whatever went wrong; sessions checked, touched, ended, and the
second factor enrolled. Blocking (Argon2 and the store): call from a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..staff.audit import AuditEvent, Listener
from ..staff.passwords import Passwords
from ..staff.roles import Principal
from ..staff.second_factor import matching_step, provisioning_uri
from ..staff.sessions import SessionClock, Stage, csrf_token, new_session_id, session_digest
from ..staff.throttle import Failures
from ..store import Store
from ..store.audit_store import record_events
from ..store.staff_store import ACCOUNT_NAME, StaffSession, StaffStore, StaffUser

__all__ = ["REFUSED", "Current", "Granted", "Refused", "SignInPolicy", "StaffAccess"]

# One answer for an unknown account, a wrong password or code, a disabled or locked account: nothing to enumerate.
REFUSED = {
    "fr": "Connexion refusée : identifiant, mot de passe ou code incorrect, ou compte verrouillé après trop d'essais.",
    "en": "Sign-in refused: wrong account name, password or code, or the account is locked after too many tries.",
}


@dataclass(frozen=True)
class SignInPolicy:
    account_failures: int = 5  # refusals in a row that lock an account…
    lock_for: timedelta = timedelta(minutes=15)  # …for this long
    address_failures: int = 20  # refusals from one client address within the window: it waits (429)
    address_window: float = 900.0  # seconds


@dataclass(frozen=True)
class Granted:
    """A session opened: `session_id` goes in the cookie (and nowhere else)."""

    session_id: str
    user: StaffUser
    stage: Stage
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_id)


@dataclass(frozen=True)
class Refused:
    """Refused; `retry_after` > 0 when the client address must wait (too many refusals from it)."""

    retry_after: float = 0.0


@dataclass(frozen=True)
class Current:
    """A live session and its account."""

    session_id: str
    session: StaffSession
    user: StaffUser
    expires_at: datetime

    @property
    def principal(self) -> Principal:
        return self.user.principal

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_id)


class StaffAccess:
    """Sign-in, sessions and enrolment over the store; the per-address throttle lives in memory (addresses are
    never stored: they only count failures here, and are forgotten when the window passes)."""

    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        *,
        clock: Callable[[], datetime],
        sessions: Callable[[], SessionClock],
        policy: SignInPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.staff = StaffStore(store, clock=clock)
        self.passwords = passwords
        self.clock = clock
        self.sessions = sessions
        self.policy = policy or SignInPolicy()
        self._addresses = Failures(self.policy.address_failures, self.policy.address_window, clock=monotonic)
        self._lock = threading.Lock()

    def _audit(self, listener: Listener, actor: str, action: str, target: str, after: dict[str, object]) -> None:
        record_events(self.store, [AuditEvent(self.clock(), actor, listener, action, target, None, dict(after))])

    def address_wait(self, address: str) -> float:
        with self._lock:
            return self._addresses.blocked(address)

    def _address_failed(self, address: str) -> None:
        with self._lock:
            self._addresses.fail(address)

    def sign_in(self, name: str, password: str, code: str, address: str, listener: Listener) -> Granted | Refused:
        """Password and TOTP code at once (only the password while the second factor is not enrolled yet)."""
        wait = self.address_wait(address)
        if wait:
            return Refused(wait)
        user = self.staff.user(name) if ACCOUNT_NAME.fullmatch(name) else None
        usable = user is not None and not user.disabled
        # the hash is checked whatever the account: an unknown one costs the same time as a wrong password
        password_ok = self.passwords.verify(user.password_hash if user is not None and usable else None, password)
        now = self.clock()
        reason, step = "", None
        if user is None or not usable:
            reason = "disabled" if user is not None else "unknown"
        elif user.locked(now):
            reason = "locked"
        elif not password_ok:
            reason = "password"
        elif user.enrolled:
            step = matching_step(user.totp_secret, code, now, after=user.totp_last_step)
            reason = "" if step is not None else "code"
        if not reason and user is not None:
            rehash = self.passwords.hash(password) if self.passwords.needs_rehash(user.password_hash) else None
            if not self.staff.note_success(user.id, step, rehash=rehash):
                reason = "code"  # the same code was just used by another sign-in
        if reason or user is None:
            self._refuse(user, reason, address, listener)
            return Refused()
        stage: Stage = "full" if user.enrolled else "enrol"
        return self._open(user, stage, listener, "session.open")

    def _refuse(self, user: StaffUser | None, reason: str, address: str, listener: Listener) -> None:
        self._address_failed(address)
        if user is None:
            return  # nothing is written about a name that is no account (it may be anything someone typed)
        target = f"user:{user.name}"  # what was tried; who tried is not known (nor any address kept)
        self._audit(listener, "anonymous", "signin.refused", target, {"reason": reason})
        if reason in ("password", "code"):
            after = self.staff.note_failure(user.id, limit=self.policy.account_failures, lock_for=self.policy.lock_for)
            if after is not None and after.locked(self.clock()) and not user.locked(self.clock()):
                until = after.locked_until.isoformat() if after.locked_until else None
                self._audit(listener, "server", "account.locked", target, {"until": until})

    def _open(self, user: StaffUser, stage: Stage, listener: Listener, action: str) -> Granted:
        session_id = new_session_id()
        opened = self.staff.open_session(session_digest(session_id), user.id, stage)
        expires = self.sessions().ends_at(opened.created_at, opened.last_seen_at)
        self._audit(listener, f"user:{user.name}", action, f"user:{user.name}", {"stage": stage})
        return Granted(session_id, user, stage, expires)

    def current(self, session_id: str | None, *, stage: Stage = "full") -> Current | None:
        """The live session of this cookie value at `stage`, touched if due; None otherwise (ended, expired,
        revoked, its account disabled, or at another stage)."""
        if not session_id or len(session_id) > 100:
            return None
        found = self.staff.session(session_digest(session_id))
        if found is None:
            return None
        session, user = found
        now, timing = self.clock(), self.sessions()
        if session.revoked_at is not None or user.disabled or session.stage != stage:
            return None
        if not timing.live(session.created_at, session.last_seen_at, now):
            return None
        if timing.due_touch(session.last_seen_at, now):
            self.staff.touch_session(session.id)
            session = StaffSession(session.id, session.user_id, session.stage, session.created_at, now, None)
        return Current(session_id, session, user, timing.ends_at(session.created_at, session.last_seen_at))

    def sign_out(self, current: Current, listener: Listener) -> None:
        self.staff.end_session(current.session.id)
        self._audit(listener, f"user:{current.user.name}", "session.close", f"user:{current.user.name}", {})

    @staticmethod
    def enrolment(current: Current) -> tuple[str, str]:
        """The secret and otpauth:// URI to set up in an authenticator app (the console draws its QR code)."""
        return current.user.totp_secret, provisioning_uri(current.user.totp_secret, current.user.name)

    def enrol(self, current: Current, code: str, address: str, listener: Listener) -> Granted | Refused:
        """Confirm the second factor with a first code: the enrolment session ends, a signed-in one replaces it."""
        wait = self.address_wait(address)
        if wait:
            return Refused(wait)
        step = matching_step(current.user.totp_secret, code, self.clock())
        if step is None or not self.staff.note_success(current.user.id, step, enrol=True):
            self._address_failed(address)
            return Refused()
        self.staff.end_session(current.session.id)
        user = self.staff.user_by_id(current.user.id) or current.user
        return self._open(user, "full", listener, "mfa.enrol")
