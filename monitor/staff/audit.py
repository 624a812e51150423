"""The audit trail's events: who did what, when, before and after, from which listener. Append-only in the store.

Who is a staff account name (`user:NAME`), a token's public prefix (`token:tpm_…`), or the operating-system user
of a command (`cli:NAME`); nothing else about a person, and never a client's address.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

__all__ = ["LISTENERS", "AuditEvent", "Listener", "cli_actor"]

Listener = Literal["admin", "public", "cli", "console", "server"]
LISTENERS: tuple[Listener, ...] = get_args(Listener)
_OS_NAME = re.compile(r"[^A-Za-z0-9_.@-]")


def cli_actor() -> str:
    """`cli:` and the operating-system user running the command (what `getpass.getuser()` says)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name in the environment nor in the password database
        name = "unknown"
    return "cli:" + (_OS_NAME.sub("-", name)[:64] or "unknown")


@dataclass(frozen=True)
class AuditEvent:
    """One write or security event. `action` is `<thing>.<verb>` (incident.open, token.revoke, push.refused…);
    `target` names the thing (incident:12, token:tpm_ab12cd34, user:alice); before/after are JSON objects."""

    at: datetime
    actor: str
    listener: Listener
    action: str
    target: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    id: int | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "listener": self.listener,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
        }
