"""What `tpmon serve` and its probe workers tell each other, and which worker probes which check.

- **Shares**: a check belongs to the worker that wins its rendezvous hash (`owner`): a pure function of the check's
  key and the number of workers, the same in every process and after every restart, so a worker that comes back
  gets the same checks and no check is ever probed by two workers.
- **Worker → serve**: one JSON line per batch, `{"r": [result, …], "lag": [s, …], "missed": n, "skipped": n}`,
  a result being `[key, started_us, duration_us, ok, reason, detail, code, phases_us, cert_us, chain_us, slow]`
  (`phases_us` five numbers or nulls, in `PHASES` order). The main process trusts nothing in it: `decode_batch`
  refuses a line that is not a batch (`WireError`), drops each malformed result (counted), and never raises
  anything else; a line longer than `LINE_LIMIT` is skipped by the reader.
- **Serve → worker**: length-prefixed pickles of `Control` (the validated settings, where the checks' next runs
  were due, stop). Only the main process writes them, on a socket pair it made: a worker trusts its parent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import Settings
from .models import ComponentRef, FailureReason, ProbeResult

__all__ = [
    "LINE_LIMIT",
    "PHASES",
    "Batch",
    "Control",
    "WireError",
    "control_frame",
    "decode_batch",
    "encode_batch",
    "owner",
    "read_control",
]

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
LINE_LIMIT = 4 * 1024 * 1024  # bytes of one batch line: ~25,000 results; a longer line is skipped, not read
DETAIL_LIMIT = 500  # characters of a result's detail kept
_CONTROL_LIMIT = 256 * 1024 * 1024  # bytes of one control frame (the settings of 100,000 checks are ~30 MiB)
_REASONS = {reason.value: reason for reason in FailureReason}
_MAX_US = 253402300799 * 1_000_000  # 9999-12-31, the last instant a datetime holds


class WireError(ValueError):
    """A line from a worker that is not a batch at all."""


def owner(key: str, count: int) -> int:
    """The worker (0 … count - 1) that probes the check `key`: the highest of the hashes of (worker, key)."""
    if count <= 1:
        return 0
    best, found = b"", 0
    for index in range(count):
        digest = hashlib.blake2b(f"{index}\x00{key}".encode(), digest_size=8).digest()
        if digest > best:
            best, found = digest, index
    return found


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1_000_000)


def encode_batch(results: list[ProbeResult], lags: list[float], missed: int = 0, skipped: int = 0) -> bytes:
    """One line: what a worker probed since its last batch, and what its scheduler saw."""
    rows = [
        [
            r.check.key,
            _us(r.started_at),
            round(r.duration_s * 1_000_000),
            1 if r.success else 0,
            r.reason.value if r.reason is not None else None,
            r.detail,
            r.status_code,
            [round(r.phases[p] * 1_000_000) if p in r.phases else None for p in PHASES] if r.phases else None,
            _us(r.cert_expiry),
            _us(r.chain_expiry),
            1 if r.slow else 0,
        ]
        for r in results
    ]
    body = {"r": rows, "lag": [round(lag, 6) for lag in lags], "missed": missed, "skipped": skipped}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


@dataclass
class Batch:
    """What one line from a worker carried, checked: results of known checks only."""

    results: list[ProbeResult] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    missed: int = 0
    skipped: int = 0
    bad: int = 0  # malformed results (or figures) dropped
    unknown: int = 0  # well-formed results of checks not in `known` (removed by a reload meanwhile)


def _refuse_constant(name: str) -> Any:
    raise WireError(f"{name} is not a number")


def decode_batch(line: bytes, known: Mapping[str, ComponentRef]) -> Batch:
    """Read one worker line; WireError if it is not a batch, malformed results dropped and counted."""
    try:
        body = json.loads(line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WireError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(body, dict) or not isinstance(body.get("r"), list):
        raise WireError("not a batch")
    batch = Batch()
    for row in body["r"]:
        key = row[0] if isinstance(row, list) and row else None
        if isinstance(key, str) and key in known:
            result = _result(row, known[key])
            if result is None:
                batch.bad += 1
            else:
                batch.results.append(result)
        elif isinstance(key, str) and key.startswith("check:") and len(key) <= 400:
            batch.unknown += 1
        else:
            batch.bad += 1
    lags = body.get("lag", [])
    if isinstance(lags, list):
        for lag in lags:
            if _is_number(lag) and 0 <= lag < 1e6:
                batch.lags.append(float(lag))
            else:
                batch.bad += 1
    batch.missed = _count(body.get("missed"), batch)
    batch.skipped = _count(body.get("skipped"), batch)
    return batch


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: object, batch: Batch) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000_000:
        return value
    if value is not None:
        batch.bad += 1
    return 0


def _moment(value: object) -> datetime | None:
    """An epoch in microseconds as an aware datetime; ValueError if it is not one."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= _MAX_US:
        raise ValueError("not an epoch in microseconds")
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _result(row: list[Any], ref: ComponentRef) -> ProbeResult | None:
    """One result row, or None if any field is not what it must be."""
    if len(row) != 11:
        return None
    _, started, duration, ok, reason, detail, code, phases, cert, chain, slow = row
    try:
        started_at = _moment(started)
        cert_expiry = None if cert is None else _moment(cert)
        chain_expiry = None if chain is None else _moment(chain)
    except (ValueError, OverflowError, OSError):
        return None
    if not isinstance(duration, int) or isinstance(duration, bool) or not 0 <= duration < 86_400_000_000:
        return None
    if ok not in (0, 1) or slow not in (0, 1) or isinstance(ok, bool) or isinstance(slow, bool):
        return None
    failure = None
    if reason is not None:
        failure = _REASONS.get(reason) if isinstance(reason, str) else None
        if failure is None:
            return None
    if not isinstance(detail, str):
        return None
    if code is not None and (not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 999):
        return None
    timings: dict[str, float] = {}
    if phases is not None:
        if not isinstance(phases, list) or len(phases) != len(PHASES):
            return None
        for name, value in zip(PHASES, phases, strict=True):
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 86_400_000_000:
                return None
            timings[name] = value / 1_000_000
    assert started_at is not None
    return ProbeResult(
        ref,
        started_at,
        duration / 1_000_000,
        ok == 1,
        failure,
        detail[:DETAIL_LIMIT],
        code,
        timings,
        cert_expiry,
        chain_expiry,
        slow == 1,
    )


@dataclass(frozen=True)
class Control:
    """What the main process tells a worker: the settings to probe by (with where runs were due), or stop."""

    settings: Settings | None = None
    due: dict[str, float] = field(default_factory=dict)  # check key → epoch seconds of its next run
    speed: float = 1.0
    stop: bool = False


def control_frame(message: Control) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!I", len(data)) + data


async def read_control(reader: asyncio.StreamReader) -> Control | None:
    """The next control frame, or None at the end of the stream (the main process is gone)."""
    try:
        head = await reader.readexactly(4)
        (size,) = struct.unpack("!I", head)
        if size > _CONTROL_LIMIT:
            return None
        message = pickle.loads(await reader.readexactly(size))  # noqa: S301 - from the parent process only
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message if isinstance(message, Control) else None
