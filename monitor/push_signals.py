"""Push signals: a partner's heartbeat or reported state, validated, stored, then folded into the board."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .board import Board, BoardChange, policy_for
from .config import PushCheck, Settings
from .errors import FieldError, NotFound, StoreError
from .i18n import literal, said
from .models import ComponentRef, FailureReason, ProbeResult
from .store import Store
from .store.signal_store import (
    DETAIL_PATTERN,
    PUSH_STATES,
    StoredSignal,
    signal_cursor,
    signals_after,
    signals_of,
)

__all__ = [
    "PUSH_GRACE",
    "PUSH_STATES",
    "PushError",
    "PushInbox",
    "PushSignal",
    "push_checks",
    "to_result",
    "validate_signal",
]

# A missed deadline is concluded this long after it, once the signals of the check received until then are read
# (`PushInbox.catch_up`): time for a signal being written at the deadline to be committed.
PUSH_GRACE = 0.1

log = logging.getLogger("tpmon.push")

_SHOWN = re.compile(r"[A-Za-z0-9_./-]{1,120}")  # what an error may echo of its input


class PushError(FieldError):
    """A push signal refused; `field` names what is wrong (check, state, detail)."""


@dataclass(frozen=True)
class PushSignal:
    """What a partner says of one push check: `operational` (a heartbeat), `degraded` or `down`."""

    check: ComponentRef
    state: str = "operational"
    detail: str = ""  # a short code ([a-z0-9_.-], at most 40), never free text


def push_checks(settings: Settings) -> dict[str, PushCheck]:
    """Every push check of the config, by check key."""
    return {
        ComponentRef.for_check(network, check.flow, check.name).key: check
        for network, check in settings.checks()
        if isinstance(check, PushCheck)
    }


def _shown(value: str) -> str:
    return f" {value!r}" if _SHOWN.fullmatch(value) else ""


def validate_signal(settings: Settings, target: str, state: str = "operational", detail: str = "") -> PushSignal:
    """The signal for `target` (NETWORK/FLOW/CHECK), or PushError/NotFound naming the field at fault."""
    parts = target.split("/")
    if len(parts) != 3 or not all(parts):
        shown = literal(_shown(target).strip()) if _shown(target) else said("the target")
        raise PushError("check", said("{target} is not NETWORK/FLOW/CHECK", target=shown))
    ref = ComponentRef.for_check(*parts)
    found = [c for n, c in settings.checks() if ComponentRef.for_check(n, c.flow, c.name) == ref]
    if not found:
        known = ", ".join(key.removeprefix("check:") for key in push_checks(settings)) or said("none")
        raise NotFound(
            said("check: no check{target} in the config (push checks: {known})", target=_shown(target), known=known)
        )
    if not isinstance(found[0], PushCheck):
        raise PushError(
            "check",
            said(
                "{target} is probed by tpmon (kind {kind}): only push checks take signals",
                target=target,
                kind=found[0].kind,
            ),
        )
    if state not in PUSH_STATES:
        raise PushError("state", said("must be one of {states}", states=", ".join(PUSH_STATES)))
    if not DETAIL_PATTERN.fullmatch(detail):
        raise PushError("detail", said("must be a short code: at most 40 of a-z, 0-9, '_', '.', '-'"))
    return PushSignal(ref, state, detail)


def to_result(signal: StoredSignal) -> ProbeResult:
    """A signal as the status engine reads a probe result: degraded is a slow success, down a failure; the
    latency the partner measured (if it said) as its duration."""
    took = signal.latency_s or 0.0
    if signal.state == "down":
        return ProbeResult(signal.check, signal.received_at, took, False, FailureReason.REPORTED, signal.detail)
    slow = signal.state == "degraded"
    return ProbeResult(signal.check, signal.received_at, took, True, detail=signal.detail, slow=slow)


class PushInbox:
    """Folds the signals partners pushed into the board, reading the store's inbox after a cursor.

    Each tpmon instance holds its own cursor, placed at start so that no signal received since the
    board's saved memories is lost. A signal no newer than what its check already knows (a replay,
    or one committed late) is skipped, as is one for a check that is no longer a push check.
    Signals younger than `settle` seconds wait for the next pump: on PostgreSQL a row may become
    visible after a higher id. At a check's deadline, `catch_up` reads that check's signals by time,
    not by id, so that the few seconds of `settle` never delay nor fake a missed heartbeat.
    """

    def __init__(self, store: Store, *, batch: int = 500, settle: float = 2.0) -> None:
        self.store = store
        self.batch = batch
        self.settle = timedelta(seconds=settle)
        self.cursor: int | None = None  # the id of the last signal read; placed on the first pump

    async def pump(self, board: Board, record: Callable[[BoardChange], None], now: datetime) -> int:
        """Fold every new signal into `board`, handing each change to `record`; returns how many were folded.

        A database problem is logged and the pump ends early: the next one resumes from the cursor.
        """
        folded = 0
        try:
            if self.cursor is None:
                self.cursor = await asyncio.to_thread(signal_cursor, self.store, self._resume_from(board, now))
            while True:
                signals = await asyncio.to_thread(self._read, self.cursor, now - self.settle)
                checks = push_checks(board.settings)  # per batch: a reload may change them meanwhile
                for signal in signals:
                    folded += self._fold(board, record, signal, checks, now)
                    self.cursor = signal.id
                if len(signals) < self.batch:
                    return folded
        except StoreError as exc:
            log.warning("push inbox not read: %s", exc)
            return folded

    async def catch_up(
        self, board: Board, record: Callable[[BoardChange], None], now: datetime, grace: float = PUSH_GRACE
    ) -> list[str]:
        """At push deadlines: fold what the checks due by `now - grace` heard before it, then expire those still
        silent (down, dated at their deadline). Returns the keys of the checks that were due.

        A database problem is logged and nothing is concluded: a check is never judged silent unread.
        """
        due = board.push_due(now - timedelta(seconds=grace))
        if not due:
            return []
        starts = [m.last_result_at or m.since for k in due if (m := board.memory(k)) is not None]
        since = min((s for s in starts if s is not None), default=now - timedelta(days=1))
        try:
            signals = await asyncio.to_thread(signals_of, self.store, due, since)
        except StoreError as exc:
            log.warning("push signals not read at a deadline: %s", exc)
            return due
        checks = push_checks(board.settings)
        for signal in signals:
            self._fold(board, record, signal, checks, now)
        record(board.expire_push(due, now))
        return due

    def _read(self, cursor: int, received_before: datetime) -> list[StoredSignal]:
        return signals_after(self.store, cursor, self.batch, received_before=received_before)

    def _resume_from(self, board: Board, now: datetime) -> datetime:
        """The oldest time a push check may still need signals from: its last one, else its missed_after."""
        times = [now]
        for key, check in push_checks(board.settings).items():
            memory = board.memory(key)
            last = memory.last_result_at if memory is not None else None
            times.append(last or now - timedelta(seconds=policy_for(check, board.settings).stale_after))
        return min(times)

    @staticmethod
    def _fold(
        board: Board,
        record: Callable[[BoardChange], None],
        signal: StoredSignal,
        checks: dict[str, PushCheck],
        now: datetime,
    ) -> int:
        memory = board.memory(signal.check.key)
        if signal.check.key not in checks or memory is None:
            return 0
        if memory.last_result_at is not None and signal.received_at <= memory.last_result_at:
            return 0
        record(board.record(to_result(signal), now))
        return 1
