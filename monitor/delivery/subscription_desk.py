"""The public side of e-mail subscriptions: ask (double opt-in), confirm, unsubscribe — throttled per client and per
address, and answering the same whether an address is known or not. Called by the web pages, in a thread."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..config import Settings
from ..notify.scopes import parse_scope
from ..notify.tokens import Signer
from ..store.store import Store, utcnow
from ..store.subscriber_store import Subscribers, normalize_address

__all__ = ["Answer", "SubscriptionDesk", "Throttle", "valid_address"]

Answer = Literal["sent", "throttled"]  # "sent" also when nothing was sent: the answer never tells more
_ADDRESS = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
HOUR = 3600.0


def valid_address(address: str) -> bool:
    """A plausible ASCII e-mail address (what a form can check; the confirmation e-mail proves the rest)."""
    normalized = normalize_address(address)
    return len(normalized) <= 254 and bool(_ADDRESS.match(normalized))


@dataclass
class Throttle:
    """At most `limit` events per `window` seconds per key, in memory (keys are never written anywhere)."""

    limit: int
    window: float = HOUR
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._seen) > 50_000:  # forget idle keys rather than grow without bound
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
            times = self._seen.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True


class SubscriptionDesk:
    """Blocking (the web calls it in a thread). The signer holds the secret; throttles live in memory."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        signer: Signer,
        *,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`now` dates what is stored (the app's clock, as the notifier's); `clock` paces the throttles."""
        self.settings = settings
        self.signer = signer
        self.subscribers = Subscribers(store, clock=now)
        notifications = settings().notifications
        per_client = notifications.subscribe_per_client if notifications else 10
        per_address = notifications.subscribe_per_address if notifications else 3
        self.per_client = Throttle(per_client, clock=clock)
        self.per_address = Throttle(per_address, clock=clock)

    def scope(self, network: str | None, line: str | None) -> str:
        """The scope a form names (ValueError if the config does not know it)."""
        text = "*" if not network else f"{network}/{line}" if line else network
        return parse_scope(text, self.settings())

    def ask(self, address: str, scopes: Sequence[str], lang: str, client: str) -> Answer:
        """Queue a confirmation e-mail for `address` (valid, checked by the caller) unless throttled.

        A client over its limit is told so; an address over its limit is not (that would tell it was asked for):
        the answer is "sent" and nothing is sent.
        """
        if not self.per_client.allow(client):
            return "throttled"
        if not self.per_address.allow(self.signer.digest(normalize_address(address))):
            return "sent"
        self.subscribers.request(address, scopes, lang)
        return "sent"

    def confirm(self, token: str) -> tuple[str, ...] | None:
        """The scopes now followed, or None if the link is forged, expired or its address gone."""
        settings = self.settings()
        max_age = int(settings.notifications.confirm_within) if settings.notifications else 0
        request = self.signer.read_confirm(token, max_age)
        if request is None:
            return None
        scopes = []
        for scope in request.scopes:
            try:
                scopes.append(parse_scope(scope, settings))
            except ValueError:
                continue  # a network or domain gone from the config since
        ok = self.subscribers.confirm(request.subscriber, lambda a: self.signer.digest(a) == request.digest, scopes)
        return tuple(scopes) if ok else None

    def valid_address(self, address: str) -> bool:
        return valid_address(address)

    def check_unsubscribe(self, token: str) -> bool:
        return self.signer.read_unsubscribe(token) is not None

    def unsubscribe(self, token: str) -> bool:
        """Erase the address the link names; True also if it was already gone (the link did its job)."""
        found = self.signer.read_unsubscribe(token)
        if found is None:
            return False
        subscriber, digest = found
        self.subscribers.unsubscribe(subscriber, lambda a: self.signer.digest(a) == digest)
        return True
