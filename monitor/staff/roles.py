"""Roles of staff and scopes of machine tokens, as one set of grants; what a grant lets its holder write."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from ..config import PushCheck, Settings
from ..config.texts import TextError
from ..errors import NotAllowed
from ..i18n import said
from ..models import ComponentRef

__all__ = [
    "ROLES",
    "NotAllowed",
    "Principal",
    "Role",
    "Scope",
    "check_scope",
    "grants_of_role",
    "parse_scope",
]

Role = Literal["admin", "editor", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
_SLUG = r"[a-z0-9][a-z0-9_-]{0,62}"
_SCOPE = re.compile(rf"^(admin|write:{_SLUG}|push:{_SLUG}(?:/{_SLUG}/{_SLUG})?)$")


@dataclass(frozen=True, order=True)
class Scope:
    """One grant: `admin` (everything), `write:<network>` (incidents and maintenance on that network's components),
    `push:<network>` (every push check of the network) or `push:<network>/<flow>/<check>` (that check only)."""

    verb: Literal["admin", "write", "push"]
    network: str = ""
    flow: str = ""
    check: str = ""

    def __str__(self) -> str:
        if self.verb == "admin":
            return "admin"
        tail = f"/{self.flow}/{self.check}" if self.check else ""
        return f"{self.verb}:{self.network}{tail}"


def parse_scope(text: str) -> Scope:
    """`admin`, `write:viamedis`, `push:viamedis` or `push:viamedis/pec/operateur`; ValueError otherwise."""
    if not _SCOPE.fullmatch(text):
        raise TextError(
            said(
                "{text!r} is not a scope: admin, write:NETWORK, push:NETWORK or push:NETWORK/FLOW/CHECK", text=text[:80]
            )
        )
    if text == "admin":
        return Scope("admin")
    verb, _, target = text.partition(":")
    parts = target.split("/")
    if len(parts) == 3:
        return Scope("push", parts[0], parts[1], parts[2])
    return Scope("write" if verb == "write" else "push", parts[0])


def check_scope(scope: Scope, settings: Settings) -> None:
    """ValueError if the scope names a network or push check the config does not have."""
    if scope.verb == "admin":
        return
    if scope.network not in settings.networks:
        raise TextError(
            said(
                "{scope}: no network {network!r} (known: {known})",
                scope=str(scope),
                network=scope.network,
                known=", ".join(settings.networks),
            )
        )
    if scope.check:
        found = [
            c for n, c in settings.checks() if n == scope.network and c.flow == scope.flow and c.name == scope.check
        ]
        if not found:
            check = "/".join((scope.network, scope.flow, scope.check))
            raise TextError(said("{scope}: no check {check} in the config", scope=str(scope), check=check))
        if not isinstance(found[0], PushCheck):
            raise TextError(
                said(
                    "{scope}: the check is probed by tpmon (kind {kind}); only push checks take pushes",
                    scope=str(scope),
                    kind=found[0].kind,
                )
            )


def grants_of_role(role: Role, networks: Iterable[str]) -> tuple[Scope, ...]:
    """An admin may do everything; an editor writes on its networks; a viewer reads only."""
    if role == "admin":
        return (Scope("admin"),)
    if role == "editor":
        return tuple(Scope("write", n) for n in dict.fromkeys(networks))
    return ()


@dataclass(frozen=True)
class Principal:
    """Who acts and what they may write. `actor` is what the audit trail keeps: `user:NAME`, `token:PREFIX`
    or `cli:OSUSER` — a staff account name or a token's public prefix, never anything else about a person."""

    actor: str
    grants: tuple[Scope, ...] = ()

    @property
    def is_admin(self) -> bool:
        return Scope("admin") in self.grants

    @property
    def writes_anywhere(self) -> bool:
        return self.is_admin or any(g.verb == "write" for g in self.grants)

    def may_write(self, network: str) -> bool:
        return self.is_admin or Scope("write", network) in self.grants

    def may_push(self, check: ComponentRef) -> bool:
        if self.is_admin:
            return True
        whole, one = Scope("push", check.network), Scope("push", check.network, check.name, check.check)
        return whole in self.grants or one in self.grants

    def require_write(self, components: Iterable[str]) -> None:
        """NotAllowed naming the first network of `components` this principal may not write on."""
        if not self.writes_anywhere:
            raise NotAllowed(said("this account or token may not write (no write scope)"))
        for key in components:
            try:
                network = ComponentRef.parse(key).network
            except ValueError:
                continue  # not a component: the validation names it
            if not self.may_write(network):
                raise NotAllowed(said("this account or token may not write on network {network!r}", network=network))
