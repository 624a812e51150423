"""Machine tokens held in memory: every push finds its token by digest without asking the store.

The registry reloads the token table every few seconds (a token created or revoked on any instance, or by
`tpmon token`, counts within that delay) and at once, at most once a second, when an unknown token comes.
Last uses are written in one batch a minute. Push checks' `token: ${VAR}` secrets from the config count too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..config import PushCheck, Settings
from ..config.values import ENV_REF
from ..errors import StoreError
from ..staff.roles import Scope, parse_scope
from ..staff.tokens import KnownToken, digest, looks_like_token, public_prefix
from ..store import Store
from ..store.token_store import StoredToken, note_uses, tokens_by_digest

__all__ = ["CONFIG_SECRET_MIN", "Found", "TokenRegistry"]

log = logging.getLogger("tpmon.tokens")

CONFIG_SECRET_MIN = 32  # characters a config `token:` secret needs to be honoured
Verdict = Literal["ok", "unknown", "revoked", "expired"]


@dataclass(frozen=True)
class Found:
    """What a presented secret turned out to be; `token` only when `verdict` is ok, `prefix` for the audit."""

    verdict: Verdict
    prefix: str
    token: KnownToken | None = None


def _known(row: StoredToken) -> KnownToken | None:
    try:
        scopes = tuple(parse_scope(s) for s in row.scopes)
    except ValueError:
        log.warning("token %s has an unreadable scope; refused", row.prefix)
        return None
    return KnownToken(row.id, row.prefix, row.label, scopes, row.expires_at)


def config_tokens(settings: Settings, environ: Mapping[str, str]) -> dict[str, KnownToken]:
    """The push checks' `token: ${VAR}` secrets, by digest; a secret shorter than 32 characters is ignored."""
    found: dict[str, KnownToken] = {}
    for network, check in settings.checks():
        if not isinstance(check, PushCheck) or not check.token:
            continue
        secret = ENV_REF.sub(lambda m: environ.get(m.group(1), ""), check.token)
        where = f"{network}/{check.flow}/{check.name}"
        if len(secret) < CONFIG_SECRET_MIN:
            log.warning("the token of push check %s is shorter than %d characters: ignored", where, CONFIG_SECRET_MIN)
            continue
        scope = Scope("push", network, check.flow, check.name)
        found[digest(secret)] = KnownToken(None, f"config/{where}", f"config {where}", (scope,), None)
    return found


class TokenRegistry:
    """Owned by the app's lifespan. `find` is pure memory; `lookup` may reload once a second on a miss."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        environ: Mapping[str, str],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        reload_on_miss: float = 1.0,
    ) -> None:
        self.store = store
        self._settings = settings
        self._environ = environ
        self._monotonic = monotonic
        self._reload_on_miss = reload_on_miss
        self._live: dict[str, KnownToken] = {}
        self._dead: dict[str, tuple[Verdict, str]] = {}  # revoked or expired: digest → (why, prefix)
        self._missed_at = -1e18  # when a miss last made it reload
        self._uses: dict[int, datetime] = {}
        self._reloading = asyncio.Lock()

    async def reload(self, now: datetime) -> None:
        """Read every token again; on a store error keep what is known (and log)."""
        async with self._reloading:
            try:
                rows = await asyncio.to_thread(tokens_by_digest, self.store)
            except StoreError as exc:
                log.warning("tokens not reloaded: %s", exc)
                return
            live: dict[str, KnownToken] = {}
            dead: dict[str, tuple[Verdict, str]] = {}
            for key, row in rows:
                if row.revoked_at is not None:
                    dead[key] = ("revoked", row.prefix)
                elif row.expires_at is not None and row.expires_at <= now:
                    dead[key] = ("expired", row.prefix)
                elif (known := _known(row)) is not None:
                    live[key] = known
            live.update(config_tokens(self._settings(), self._environ))
            self._live, self._dead = live, dead

    def find(self, secret: str, now: datetime) -> Found:
        """What `secret` is, from memory only."""
        key = digest(secret)
        known = self._live.get(key)
        if known is not None:
            return Found("ok", known.prefix, known) if known.live(now) else Found("expired", known.prefix)
        why, prefix = self._dead.get(key, ("unknown", public_prefix(secret) if looks_like_token(secret) else ""))
        return Found(why, prefix)

    async def lookup(self, secret: str, now: datetime) -> Found:
        """`find`, reloading first if the secret is unknown (a token just created elsewhere) and no other miss made
        it reload within the last second: a flood of wrong secrets costs at most one read a second."""
        found = self.find(secret, now)
        if found.verdict != "unknown":
            return found
        if self._monotonic() - self._missed_at >= self._reload_on_miss:
            self._missed_at = self._monotonic()
            await self.reload(now)
        elif self._reloading.locked():  # another miss is reloading: its result may know this secret
            async with self._reloading:
                pass
        return self.find(secret, now)

    def used(self, token: KnownToken, now: datetime) -> None:
        if token.id is not None:
            self._uses[token.id] = now

    async def flush_uses(self) -> None:
        """Write the last uses noted since the previous flush (kept for the next one on a store error)."""
        uses, self._uses = self._uses, {}
        try:
            await asyncio.to_thread(note_uses, self.store, uses)
        except StoreError as exc:
            log.warning("token uses not recorded: %s", exc)
            for token_id, at in uses.items():
                self._uses.setdefault(token_id, at)
