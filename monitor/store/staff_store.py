"""The store's verbs for staff: accounts (Argon2id hash, TOTP, lockout) and their server-side sessions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, delete, insert, or_, select, update

from monitor.errors import NotFound, StaffError
from monitor.i18n import said
from monitor.staff.roles import ROLES, Principal, Role, grants_of_role
from monitor.staff.sessions import Stage
from monitor.store import tables
from monitor.store.store import Clock, Store, utcnow

__all__ = ["ACCOUNT_NAME", "Also", "StaffSession", "StaffStore", "StaffUser", "check_account_name"]

# A staff handle, not an e-mail address nor a full name: the only thing tpmon keeps about a person.
ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
Also = Callable[[Connection, Any, Any], None]  # as Declarations': (connection, before, after) in the transaction


def check_account_name(name: str) -> str:
    if not ACCOUNT_NAME.fullmatch(name):
        raise StaffError(
            "name",
            said("an account name is 2–32 of a-z, 0-9, '.', '_', '-', starting with a letter (no e-mail address)"),
        )
    return name


@dataclass(frozen=True)
class StaffUser:
    """A staff account. Its password hash and TOTP secret never leave the server (see `shown`)."""

    id: int
    name: str
    role: Role
    networks: tuple[str, ...]
    password_hash: str
    totp_secret: str
    totp_enrolled_at: datetime | None
    totp_last_step: int | None
    disabled: bool
    failed_count: int
    locked_until: datetime | None
    created_at: datetime

    @property
    def enrolled(self) -> bool:
        return self.totp_enrolled_at is not None

    @property
    def principal(self) -> Principal:
        return Principal(f"user:{self.name}", grants_of_role(self.role, self.networks))

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def shown(self) -> dict[str, Any]:
        """What lists and the audit trail show: never the hash nor the secret."""
        return {
            "name": self.name,
            "role": self.role,
            "networks": list(self.networks),
            "disabled": self.disabled,
            "second_factor": "enrolled" if self.enrolled else "pending",
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
        }


@dataclass(frozen=True)
class StaffSession:
    """A session row: `id` is the digest of the cookie's value."""

    id: str
    user_id: int
    stage: Stage
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None


def _user(row: Any) -> StaffUser:
    return StaffUser(
        int(row.id),
        row.name,
        cast(Role, row.role),
        tuple(row.networks or ()),
        row.password_hash,
        row.totp_secret,
        row.totp_enrolled_at,
        row.totp_last_step,
        bool(row.disabled),
        int(row.failed_count),
        row.locked_until,
        row.created_at,
    )


def _session(row: Any) -> StaffSession:
    return StaffSession(row.id, int(row.user_id), row.stage, row.created_at, row.last_seen_at, row.revoked_at)


class StaffStore:
    """Accounts and sessions. Account changes take an `also` run in their transaction (their audit event)."""

    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self.store = store
        self._clock = clock

    # Accounts

    def add_user(
        self,
        name: str,
        role: Role,
        networks: Iterable[str],
        password_hash: str,
        totp_secret: str,
        *,
        also: Also | None = None,
    ) -> StaffUser:
        check_account_name(name)
        if role not in ROLES:
            raise StaffError("role", said("{role!r} is not one of {roles}", role=role, roles=", ".join(ROLES)))
        wanted = tuple(dict.fromkeys(networks))
        if role == "editor" and not wanted:
            raise StaffError("networks", said("an editor writes on named networks: give at least one"))
        if role != "editor" and wanted:
            raise StaffError("networks", said("only an editor is scoped to networks (not a role {role})", role=role))
        now = self._clock()
        row = {
            "name": name,
            "role": role,
            "networks": list(wanted),
            "password_hash": password_hash,
            "totp_secret": totp_secret,
            "disabled": False,
            "failed_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self.store._session("add a staff account to", write=True) as connection:
            if _user_row(connection, name) is not None:
                raise StaffError("name", said("an account named {name!r} already exists", name=name))
            connection.execute(insert(tables.staff_user), row)
            added = _user(_user_row(connection, name))
            if also is not None:
                also(connection, None, added)
            return added

    def user(self, name: str) -> StaffUser | None:
        with self.store._session("read from") as connection:
            row = _user_row(connection, name)
        return _user(row) if row is not None else None

    def user_by_id(self, user_id: int) -> StaffUser | None:
        table = tables.staff_user
        with self.store._session("read from") as connection:
            row = connection.execute(select(table).where(table.c.id == user_id)).first()
        return _user(row) if row is not None else None

    def users(self) -> list[StaffUser]:
        table = tables.staff_user
        return self.store._read(select(table).order_by(table.c.name), _user)

    def set_disabled(self, name: str, disabled: bool, *, also: Also | None = None) -> StaffUser:
        """Disable (every session ends at once) or enable an account."""
        return self._change(name, {"disabled": disabled}, end_sessions=disabled, also=also)

    def reset_second_factor(self, name: str, secret: str, *, also: Also | None = None) -> StaffUser:
        """A new TOTP secret to enrol at the next sign-in; every session ends, the lockout is lifted."""
        values = {
            "totp_secret": secret,
            "totp_enrolled_at": None,
            "totp_last_step": None,
            "failed_count": 0,
            "locked_until": None,
        }
        return self._change(name, values, end_sessions=True, also=also)

    def set_password(self, name: str, password_hash: str, *, also: Also | None = None) -> StaffUser:
        """A new password; every session ends, the lockout is lifted."""
        values = {"password_hash": password_hash, "failed_count": 0, "locked_until": None}
        return self._change(name, values, end_sessions=True, also=also)

    def _change(self, name: str, values: dict[str, Any], *, end_sessions: bool, also: Also | None) -> StaffUser:
        table, now = tables.staff_user, self._clock()
        with self.store._session("change a staff account in", write=True) as connection:
            found = _user_row(connection, name)
            if found is None:
                raise NotFound(said("name: no account named {name!r}", name=name))
            before = _user(found)
            connection.execute(update(table).where(table.c.id == before.id).values(**values, updated_at=now))
            if end_sessions:
                _end_sessions(connection, before.id, now)
            after = _user(_user_row(connection, name))
            if also is not None:
                also(connection, before, after)
            return after

    def note_failure(self, user_id: int, *, limit: int, lock_for: timedelta) -> StaffUser | None:
        """Count a refused sign-in; the `limit`-th in a row locks the account for `lock_for` (then counts anew)."""
        table, now = tables.staff_user, self._clock()
        with self.store._session("count a refused sign-in in", write=True) as connection:
            connection.execute(update(table).where(table.c.id == user_id).values(failed_count=table.c.failed_count + 1))
            locked = (table.c.id == user_id) & (table.c.failed_count >= limit)
            connection.execute(update(table).where(locked).values(failed_count=0, locked_until=now + lock_for))
            row = connection.execute(select(table).where(table.c.id == user_id)).first()
        return _user(row) if row is not None else None

    def note_success(self, user_id: int, step: int | None, *, rehash: str | None = None, enrol: bool = False) -> bool:
        """Clear the failures and remember the TOTP step just used; False if that step (or a later one) was used
        meanwhile — a replayed code, refused. `enrol` also marks the second factor as set up."""
        table, now = tables.staff_user, self._clock()
        values: dict[str, Any] = {"failed_count": 0, "locked_until": None, "updated_at": now}
        if step is not None:
            values["totp_last_step"] = step
        if rehash is not None:
            values["password_hash"] = rehash
        if enrol:
            values["totp_enrolled_at"] = now
        fresh = (table.c.id == user_id) & ~table.c.disabled
        if step is not None:
            fresh &= or_(table.c.totp_last_step.is_(None), table.c.totp_last_step < step)
        if enrol:
            fresh &= table.c.totp_enrolled_at.is_(None)
        with self.store._session("record a sign-in in", write=True) as connection:
            return bool(connection.execute(update(table).where(fresh).values(values)).rowcount == 1)

    # Sessions

    def open_session(self, digest: str, user_id: int, stage: Stage) -> StaffSession:
        now = self._clock()
        row = {"id": digest, "user_id": user_id, "stage": stage, "created_at": now, "last_seen_at": now}
        with self.store._session("open a session in", write=True) as connection:
            connection.execute(insert(tables.staff_session), row)
        return StaffSession(digest, user_id, stage, now, now, None)

    def session(self, digest: str) -> tuple[StaffSession, StaffUser] | None:
        """The session and its account, whatever their state (the caller checks expiry, revocation, disabling)."""
        s, u = tables.staff_session, tables.staff_user
        with self.store._session("read from") as connection:
            found = connection.execute(select(s).where(s.c.id == digest)).first()
            user = connection.execute(select(u).where(u.c.id == found.user_id)).first() if found else None
        if found is None or user is None:
            return None
        return _session(found), _user(user)

    def touch_session(self, digest: str) -> None:
        table = tables.staff_session
        with self.store._session("touch a session in", write=True) as connection:
            connection.execute(update(table).where(table.c.id == digest).values(last_seen_at=self._clock()))

    def end_session(self, digest: str) -> None:
        table = tables.staff_session
        with self.store._session("end a session in", write=True) as connection:
            live = (table.c.id == digest) & table.c.revoked_at.is_(None)
            connection.execute(update(table).where(live).values(revoked_at=self._clock()))

    def sessions_of(self, user_id: int) -> list[StaffSession]:
        table = tables.staff_session
        query = select(table).where(table.c.user_id == user_id).order_by(table.c.created_at)
        return self.store._read(query, _session)

    def prune_sessions(self, seen_before: datetime) -> int:
        """Delete sessions unused since `seen_before` (ended or expired long ago); returns how many."""
        table = tables.staff_session
        with self.store._session("prune sessions in", write=True) as connection:
            done = connection.execute(delete(table).where(table.c.last_seen_at < seen_before))
        return int(done.rowcount or 0)


def _user_row(connection: Connection, name: str) -> Any:
    table = tables.staff_user
    return connection.execute(select(table).where(table.c.name == name)).first()


def _end_sessions(connection: Connection, user_id: int, now: datetime) -> None:
    table = tables.staff_session
    live = (table.c.user_id == user_id) & table.c.revoked_at.is_(None)
    connection.execute(update(table).where(live).values(revoked_at=now))
