"""Everything the operators' side holds while the server runs: tokens in memory, the push intake, throttles,
staff access, and the push refusals waiting to be audited. Built and run by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..config import Settings
from ..errors import StoreError
from ..staff.audit import AuditEvent, Listener
from ..staff.passwords import Passwords
from ..staff.sessions import SessionClock
from ..staff.throttle import Buckets, Failures
from ..store import Store
from ..store.audit_store import record_events
from .push_intake import PushIntake
from .staff_access import StaffAccess
from .token_registry import TokenRegistry

__all__ = ["Desk", "Refusals", "session_clock"]

log = logging.getLogger("tpmon.operators")

WRONG_TOKENS = 30  # refused secrets per client address and minute before it must wait (guessing costs time)
TOKENS_EVERY = 5.0  # seconds between reloads of the token table, however often the app ticks (the demo: 0.5 s)


def session_clock(settings: Settings) -> SessionClock:
    admin = settings.admin
    return SessionClock(timedelta(seconds=admin.session_idle), timedelta(seconds=admin.session_lifetime))


@dataclass
class Refusals:
    """Refused pushes, counted by (listener, reason, token prefix, target) and audited once per flush: a flood of
    wrong tokens makes a few audit rows a tick, not one per request. At most `size` keys between flushes."""

    size: int = 1000
    _counts: dict[tuple[Listener, str, str, str], tuple[int, datetime, datetime]] = field(default_factory=dict)

    def note(self, listener: Listener, reason: str, prefix: str, target: str, now: datetime) -> None:
        key = (listener, reason, prefix, target)
        if key not in self._counts and len(self._counts) >= self.size:
            key = (listener, reason, "", "")  # past the bound, only the reason is kept
        count, first, _ = self._counts.get(key, (0, now, now))
        self._counts[key] = (count + 1, first, now)

    def drain(self) -> list[AuditEvent]:
        """The counts as audit events. A known token (revoked, expired, out of scope) is the actor; an unknown
        secret is anonymous, its first characters kept only to help find a partner's typo."""
        counts, self._counts = self._counts, {}
        events = []
        for (listener, reason, prefix, target), (count, first, last) in counts.items():
            known = bool(prefix) and not reason.endswith("unknown")
            after = {"reason": reason, "count": count, "first_at": first.isoformat(), "last_at": last.isoformat()}
            if prefix and not known:
                after["presented"] = prefix
            actor = f"token:{prefix}" if known else "anonymous"
            events.append(AuditEvent(last, actor, listener, "push.refused", target, None, after))
        return events


class Desk:
    """The operators' side at run time; `start`/`stop` in the lifespan, `tick` every few seconds."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        clock: Callable[[], datetime],
        environ: Mapping[str, str],
        *,
        passwords: Passwords | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self._tokens_at = monotonic()
        self.tokens = TokenRegistry(store, settings, environ, monotonic=monotonic)
        self.intake = PushIntake(store, clock=clock)
        self.push_rate = Buckets(rate=settings().admin.push_per_minute, per=60.0, clock=monotonic)
        self.wrong_tokens = Failures(WRONG_TOKENS, 60.0, clock=monotonic)
        self.refusals = Refusals()
        self.passwords = passwords or Passwords()
        self.access = StaffAccess(
            store, self.passwords, clock=clock, sessions=lambda: session_clock(settings()), monotonic=monotonic
        )

    async def start(self) -> None:
        await self.tokens.reload(self.clock())
        await self.intake.start()

    async def stop(self) -> None:
        await self.intake.stop()
        await self.tokens.flush_uses()
        await self.flush_refusals()

    async def tick(self) -> None:
        """Reload the tokens (revocations on any instance), apply the push rate of a reloaded config, audit the
        refusals counted since the last tick."""
        self.push_rate.rate = float(self.settings().admin.push_per_minute)
        if self.monotonic() - self._tokens_at >= TOKENS_EVERY:
            self._tokens_at = self.monotonic()
            await self.tokens.reload(self.clock())
        await self.flush_refusals()

    async def flush_refusals(self) -> None:
        events = self.refusals.drain()
        if not events:
            return
        try:
            await asyncio.to_thread(record_events, self.store, events)
        except StoreError as exc:
            log.warning("%d push refusals not audited: %s", len(events), exc)
