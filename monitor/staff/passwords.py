"""Staff passwords: Argon2id hashes (argon2-cffi), the rules a new password follows, and equal-time refusals."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import StaffError
from ..i18n import Text, said

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "PasswordError", "Passwords", "check_new_password"]

MIN_PASSWORD = 12
MAX_PASSWORD = 256  # hashing a megabyte would be a cheap way to burn the server's CPU


class PasswordError(StaffError):
    """A new password refused (field `password`); the message says why (never the password)."""

    def __init__(self, problem: Text) -> None:
        super().__init__("password", problem)


def check_new_password(password: str, account: str) -> None:
    """PasswordError unless `password` is 12–256 characters, not blank, and does not contain the account name."""
    if len(password) < MIN_PASSWORD:
        raise PasswordError(
            said("at least {count} characters (a passphrase of a few words is good)", count=MIN_PASSWORD)
        )
    if len(password) > MAX_PASSWORD:
        raise PasswordError(said("at most {count} characters", count=MAX_PASSWORD))
    if not password.strip() or len(set(password)) < 4:
        raise PasswordError(said("too simple (use a passphrase of a few words)"))
    if account and account.lower() in password.lower():
        raise PasswordError(said("must not contain the account name"))


@dataclass
class Passwords:
    """Argon2id with RFC 9106's second recommended profile by default (t=3, 64 MiB, p=4).

    A stored hash carries its own parameters: changing them here rehashes at the next successful sign-in.
    Tests pass lighter parameters; production keeps the default.
    """

    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4
    _hasher: PasswordHasher = field(init=False, repr=False)
    _dummy: str = field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        self._hasher = PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_cost, parallelism=self.parallelism, type=Type.ID
        )

    @property
    def dummy(self) -> str:
        """A hash to verify against when the account does not exist, so that the refusal takes as long as a wrong
        password; made at first need (a server that never signs anyone in never pays for it)."""
        if not self._dummy:
            self._dummy = self._hasher.hash("tpmon: no such account, same work")
        return self._dummy

    def hash(self, password: str) -> str:
        return self._hasher.hash(password[:MAX_PASSWORD])

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`; with no stored hash, the same work is done and False returned."""
        candidate = password[: MAX_PASSWORD + 1]  # longer than allowed never matches, and costs no more
        try:
            return self._hasher.verify(stored or self.dummy, candidate) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
