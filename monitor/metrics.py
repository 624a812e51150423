"""Prometheus metrics: what a scrape shows, rendered on the event loop in short steps from lines formatted when
they changed.

Series per check are few and flat, as blackbox_exporter's (the last probe's success, duration, HTTP phases and
status, certificate expiry; probes by result), plus the check's state set: about 18 lines. Quantiles of probe
durations come from one histogram per network. A probe result formats the end of its check's lines (what
follows the labels) by `exposition`, a change of state its component's lines; a scrape joins them with each
check's labels, formatting again only the states that changed, and gives the event loop back after every
millisecond of work, so that a scrape of 10,000 checks never holds up a probe (no thread: a thread holding the
GIL would).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, compress, repeat
from operator import attrgetter
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client import generate_latest as _generate_latest

from .availability import Window
from .config import Settings
from .declared.incidents import IMPACTS, Incident
from .declared.maintenance import Occurrence
from .exposition import header, label_block, number, series
from .models import ComponentKind, ComponentRef, ComponentStatus, ProbeResult, State
from .snapshot import Snapshot

__all__ = ["SLICE", "STEP_S", "WINDOWS", "Derived", "Metrics", "WriterFigures", "derive", "derive_availability"]

# the `window` label of the availability ratios, and its length in days
WINDOWS: dict[str, int] = {"24h": 1, "7d": 7, "30d": 30}
STEP_S = 0.001  # a scrape gives the event loop back after this much work
_CHUNK = 64  # items formatted between two looks at the clock
SLICE = 1024  # checks or components whose lines of one family make one piece of the page (≈ 0.5 ms of work)

_PHASES = ("resolve", "connect", "tls", "processing", "transfer")
_PHASE_BITS = {phase: 1 << n for n, phase in enumerate(_PHASES)}
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# `_created` series double the lines of every counter and histogram and tell Prometheus nothing it uses
disable_created_metrics()  # type: ignore[no-untyped-call]


class WriterFigures(Protocol):
    """What /metrics shows of the store writer (its `stats`), read at scrape time."""

    @property
    def buffered_results(self) -> int: ...

    @property
    def buffered_transitions(self) -> int: ...

    @property
    def dropped_results(self) -> int: ...

    @property
    def store_up(self) -> bool: ...

    @property
    def journal_bytes(self) -> int: ...

    @property
    def journalled_results(self) -> int: ...

    @property
    def journalled_transitions(self) -> int: ...

    @property
    def replayed_results(self) -> int: ...

    @property
    def replayed_transitions(self) -> int: ...

    @property
    def journal_failures(self) -> int: ...


class Metrics:
    """All of tpmon's metrics: counters and histograms of tpmon itself on a registry of its own (never the global
    one), the checks' series and the snapshot's state sets formatted here.

    `snapshot` and `writer` are read at scrape time; either may answer None (not built yet). States, open
    incidents and running maintenance all come from one snapshot read, at the start of the scrape: they change
    in the same tick, together with the page, even when the board moves on while the scrape runs.
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        writer: Callable[[], WriterFigures | None] = lambda: None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.network_duration = Histogram(
            "tpmon_network_probe_duration_seconds",
            "Duration of the probes of a network's checks",
            ("network",),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.scheduler_lag = Histogram(
            "tpmon_scheduler_lag_seconds",
            "Delay between a probe's scheduled time and its start",
            # fine enough to read p50 and p99 off the buckets (a superset of the first ones)
            buckets=(
                *(0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1),
                *(0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5),
            ),
            registry=r,
        )
        self.scheduler_missed = Counter("tpmon_scheduler_missed_runs_total", "Probe runs missed", registry=r)
        self.scheduler_skipped = Counter(
            "tpmon_scheduler_coalesced_runs_total", "Probe runs skipped because the previous one still ran", registry=r
        )
        self.store_write = Histogram(
            "tpmon_store_write_duration_seconds",
            "Duration of one batched write to the database",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.reload_success = Gauge(
            "tpmon_config_last_reload_successful", "Whether the last config reload succeeded", registry=r
        )
        self.reload_time = Gauge(
            "tpmon_config_last_reload_success_timestamp_seconds", "When the config was last loaded", registry=r
        )
        self.reload_success.set(1)
        build = Info("tpmon_build", "tpmon build information", registry=r)
        build.info({"version": _version()})
        self._snapshot = snapshot
        self._writer = writer
        self._checks: dict[ComponentRef, _CheckSeries] = {}
        self._states = _StateLines()
        self.derived = Derived()  # replaced whole by the periodic refresh; scrapes only read it
        self.location = "default"  # the `location` label of the probe series: where the probes ran from

    def note_publishing(self, last_success: Callable[[], float | None], behind: Callable[[], float]) -> None:
        """`web.publish_dir` is set: the published folder's figures are shown from now on (none without it).
        Read at scrape time: `last_success`, when the folder last held the live state (None: not yet); `behind`,
        seconds since the oldest change the folder does not show yet."""
        r = self.registry
        Gauge(
            "tpmon_publish_last_success_timestamp_seconds",
            "When the published folder last held the live state (0: not yet)",
            registry=r,
        ).set_function(lambda: last_success() or 0.0)
        Gauge(
            "tpmon_publish_behind_seconds",
            "Seconds since the oldest change (board, declarations, history) the published folder does not show yet "
            "(0: it shows them all); past 60 s it is logged",
            registry=r,
        ).set_function(behind)
        self.publish_failures = Counter(
            "tpmon_publish_failures_total",
            "Publications into the published folder that failed (a write refused, a page not rendered)",
            registry=r,
        )
        self.publish_files = Counter(
            "tpmon_publish_files_written_total", "Files written (or deleted) in the published folder", registry=r
        )
        self.publish_duration = Histogram(
            "tpmon_publish_duration_seconds",
            "Duration of one publication that wrote something (rendering and writing)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    def note_publication(self, files: int, seconds: float) -> None:
        self.publish_files.inc(files)
        self.publish_duration.observe(seconds)

    def note_publish_failure(self) -> None:
        self.publish_failures.inc()

    def note_start(self, at: datetime) -> None:
        """The config in use was loaded when the process started."""
        self.reload_time.set(at.timestamp())

    def set_availability(self, availability: dict[tuple[str, str], float]) -> None:
        """Cache the availability ratios: (component key, window label) → ratio, from `derive_availability`."""
        self.derived = Derived(availability)

    def observe_write(self, seconds: float) -> None:
        self.store_write.observe(seconds)

    def note_reload(self, ok: bool, at: datetime) -> None:
        self.reload_success.set(1 if ok else 0)
        if ok:
            self.reload_time.set(at.timestamp())

    def observe(self, result: ProbeResult) -> None:
        ref = result.check
        series = self._checks.get(ref)
        if series is None:
            series = self._checks[ref] = _CheckSeries(ref, self.network_duration.labels(ref.network), self.location)
        series.observe(result)

    def forget(self, ref: ComponentRef) -> None:
        """Drop the series of a check removed by a reload."""
        self._checks.pop(ref, None)

    async def exposition(self, step_s: float = STEP_S) -> AsyncIterator[bytes]:
        """The /metrics page in pieces of at most `SLICE` checks' or components' lines, rendered on the event loop,
        which it gives back whenever it has worked `step_s` seconds. Sending a piece is counted as work: a
        server's `send` need not give the loop back (it does only when the client reads slower than we write)."""
        until = time.perf_counter() + step_s
        for piece in self._pieces():
            if piece:
                yield piece
            if time.perf_counter() >= until:
                await asyncio.sleep(0)
                until = time.perf_counter() + step_s

    def render(self) -> bytes:
        """The /metrics page at once (tests, tools): what `exposition` yields, joined."""
        return b"".join(piece for piece in self._pieces() if piece)

    def _pieces(self) -> Iterator[bytes | None]:
        """The page as pieces of bytes, with None between chunks of work; the snapshot is read once, first."""
        snapshot = self._snapshot()
        yield _generate_latest(self.registry)
        checks = list(self._checks.values())
        labels = [check.labels for check in checks]
        # each check's lines of every family are read together, between two breaks: those of one result (a
        # result observed from here on shows at the next scrape); only references are taken, the lines are made
        # from them a piece at a time
        families: list[list[bytes]] = [[] for _ in _CHECK_FAMILIES]
        for start in range(0, len(checks), SLICE):
            part = checks[start : start + SLICE]
            for family, read in zip(families, _CHECK_TAILS, strict=True):
                family.extend(map(read, part))
            yield None
        for (name, kind, text), tails in zip(_CHECK_FAMILIES, families, strict=True):
            title = header(name, kind, text).encode()
            opening = f"{name}{{".encode()
            multiline = name in _MULTILINE
            for start in range(0, max(1, len(tails)), SLICE):
                some_labels, some_tails = labels[start : start + SLICE], tails[start : start + SLICE]
                if multiline:  # every line's tail begins with _MARK, where its name and labels go
                    lines = [
                        tail.replace(_MARK, opening + label)
                        for label, tail in zip(some_labels, some_tails, strict=True)
                        if tail
                    ]
                    yield title + b"".join(lines)
                else:  # one line a check, or none: name, labels, tail, for the checks with a tail, joined at once
                    lines_of = compress(zip(repeat(opening), some_labels, some_tails), some_tails)
                    yield title + b"".join(chain.from_iterable(lines_of))
                title = b""
        if snapshot is not None:
            yield from self._states.render(snapshot.statuses)
            yield _declared(snapshot).encode()
        yield (_writer_lines(self._writer()) + _availability_lines(self.derived)).encode()


# (name, type, help) of the families of `_CheckSeries`' lines
_CHECK_FAMILIES = (
    ("tpmon_probe_success", "gauge", "Whether the last probe succeeded"),
    ("tpmon_probe_duration_seconds", "gauge", "Duration of the last probe"),
    ("tpmon_probe_http_duration_seconds", "gauge", "Duration of the last HTTP probe by phase"),
    ("tpmon_probe_http_status_code", "gauge", "HTTP status code of the last probe (0 if none)"),
    (
        "tpmon_probe_ssl_last_chain_expiry_timestamp_seconds",
        "gauge",
        "Earliest certificate expiry in the chain seen by the last probe",
    ),
    ("tpmon_probes_total", "counter", "Probes run, by result"),
)
# the families where a check has several lines (a label more: phase, result)
_MULTILINE = frozenset(("tpmon_probe_http_duration_seconds", "tpmon_probes_total"))
# a check's tails of each of `_CHECK_FAMILIES`, in the same order
_CHECK_TAILS: tuple[Callable[[_CheckSeries], bytes], ...] = (
    attrgetter("success"),
    attrgetter("duration"),
    attrgetter("phases_tail"),
    attrgetter("status"),
    attrgetter("expiry"),
    attrgetter("results"),
)
_MARK = b"\x01"  # in the tail of a family with several lines a check: where each line's name and labels go
_SUCCESS = (b"} 0.0\n", b"} 1.0\n")
_STATUS: dict[int, bytes] = {}  # the status code's tail, one object for all the checks that got that code


def _status_tail(code: int) -> bytes:
    tail = _STATUS.get(code)
    if tail is None:
        tail = f"}} {code}\n".encode()
        if len(_STATUS) < 1000:  # codes are three digits: bounded anyway
            _STATUS[code] = tail
    return tail


class _CheckSeries:
    """One check's series: the last probe's figures and the probes by result, formatted as its result comes.

    What is kept of a line is its tail, what follows the check's labels (`} 0.05\n`; several lines a check:
    `\x01,phase="connect"} 0.002\n` each, see `_MARK`), as bytes; the labels once, and a scrape makes the
    lines (≈ 1.6 KiB a check kept whole, 16 MiB at 10,000 checks; tails: ≈ 0.3 KiB). Lines that not every check
    has (HTTP status and phases, certificate expiry, each result) appear once a result carries them: a TCP
    check exports no HTTP series. The tails are in slots, one per family of `_CHECK_FAMILIES`, not a tuple:
    formatting allocates no object the garbage collector tracks, and does not bring its next full collection
    closer.
    """

    __slots__ = (
        "counts",
        "duration",
        "expiry",
        "histogram",
        "labels",
        "phases_seen",
        "phases_tail",
        "results",
        "status",
        "success",
    )

    def __init__(self, ref: ComponentRef, histogram: Histogram, location: str = "default") -> None:
        labels = {"network": ref.network, "flow": ref.name, "check": ref.check, "location": location}
        self.labels = label_block(labels).encode()
        self.histogram = histogram  # the network's
        self.phases_seen = 0  # the bits (`_PHASE_BITS`) of the phases with a line in `phases_tail`
        self.counts: dict[str, int] = {}
        self.success = self.duration = self.phases_tail = self.status = self.expiry = self.results = b""

    def observe(self, result: ProbeResult) -> None:
        self.histogram.observe(result.duration_s)
        self.success = _SUCCESS[result.success]
        self.duration = f"}} {number(result.duration_s)}\n".encode()
        outcome = "success" if result.success else (result.reason or "failure")
        counts = self.counts
        counts[outcome] = counts.get(outcome, 0) + 1
        self.results = "".join([f'\x01,result="{name}"}} {count}\n' for name, count in counts.items()]).encode()
        if result.status_code is not None or result.phases:
            self.status = _status_tail(result.status_code or 0)
            seen = result.phases
            bits = sum([bit for phase, bit in _PHASE_BITS.items() if phase in seen])
            # a phase the result lacks keeps its last line: the tail is the memory of the last values
            before = self.phases_tail if self.phases_seen & ~bits else b""
            self.phases_tail = _phases_tail(seen, before)
            self.phases_seen |= bits
        expiry = result.chain_expiry or result.cert_expiry
        if expiry is not None:
            self.expiry = f"}} {number(expiry.timestamp())}\n".encode()


def _phases_tail(seen: Mapping[str, float], before: bytes) -> bytes:
    """The phases' tail: each of `_PHASES` with its value in `seen`, else with its line in `before` (if any)."""
    if not before:
        return "".join(
            [f'\x01,phase="{phase}"}} {number(seen[phase])}\n' for phase in _PHASES if phase in seen]
        ).encode()
    kept = {line[len(',phase="') :].partition(b'"')[0].decode(): line for line in before.split(_MARK)[1:]}
    return b"".join(
        [
            f'\x01,phase="{phase}"}} {number(seen[phase])}\n'.encode() if phase in seen else _MARK + kept[phase]
            for phase in _PHASES
            if phase in seen or phase in kept
        ]
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tpmon")
    except PackageNotFoundError:
        return "unknown"


_KINDS: tuple[ComponentKind, ...] = ("check", "flow", "line", "network")


def _labels(ref: ComponentRef) -> dict[str, str]:
    if ref.kind == "check":
        return {"network": ref.network, "flow": ref.name, "check": ref.check}
    if ref.kind == "network":
        return {"network": ref.network}
    return {"network": ref.network, ref.kind: ref.name}


@dataclass(frozen=True, slots=True)
class _StateText:
    """A component's lines as formatted for `status`: its labels once, which state is current (its state set), the
    end of its line of when the state began, its recovery progress line. The names and labels are joined at each
    scrape (≈ 0.1 µs a line) rather than kept in every line (≈ 0.14 kB per component)."""

    status: ComponentStatus
    kind: int  # index in _KINDS
    labels: bytes  # `check="…",flow="…",network="…"`
    current: int  # index in _STATES
    since: (
        bytes  # `} 1764600000.0\n`: what follows the labels in its `…_state_since_timestamp_seconds` line; b"" if none
    )
    progress: bytes

    def holds(self, status: ComponentStatus) -> bool:
        shown = self.status
        return shown is status or (
            shown.state is status.state and shown.since == status.since and shown.progress == status.progress
        )

    @property
    def states(self) -> bytes:
        """The state set's lines, one per state (value 1 for the current one), made at each scrape by one join on
        their shared prefix (≈ 0.4 µs) rather than kept whole (≈ 0.7 kB per component: 7 MiB at 10,000 checks)."""
        return b"".join((_STATE_OPENINGS[self.kind], self.labels, b',state="')).join(_STATE_ENDS[self.current])


# `tpmon_<kind>_state{` and `tpmon_<kind>_state_since_timestamp_seconds{`, by index in _KINDS
_STATE_OPENINGS = tuple(f"tpmon_{kind}_state{{".encode() for kind in _KINDS)
_SINCE_OPENINGS = tuple(f"tpmon_{kind}_state_since_timestamp_seconds{{".encode() for kind in _KINDS)


_STATES = tuple(State)
# for each current state: what follows the prefix in each line of the state set, after an empty first item (the
# prefix is the separator of a join: it precedes every line)
_STATE_ENDS = tuple(
    (b"", *(f'{state.value}"}} {"1.0" if state is current else "0.0"}\n'.encode() for state in _STATES))
    for current in _STATES
)


class _StateLines:
    """The snapshot's state sets (value 1 for the current state, as kube-state-metrics does), when each state
    began and the lines' recovery progress; a component's lines are formatted again only when its status changed."""

    def __init__(self) -> None:
        self._known: dict[str, _StateText] = {}

    def render(self, statuses: Mapping[str, ComponentStatus]) -> Iterator[bytes | None]:
        """The families as pieces of bytes, with None between chunks of work."""
        known, fresh = self._known, {}
        states: list[list[_StateText]] = [[] for _ in _KINDS]
        since: list[list[_StateText]] = [[] for _ in _KINDS]
        progress: list[bytes] = []
        for count, (key, status) in enumerate(statuses.items(), 1):  # the snapshot's: never changes
            text = known.get(key)
            if text is None or not text.holds(status):
                text = _format_status(status)
            fresh[key] = text
            states[text.kind].append(text)
            if text.since:
                since[text.kind].append(text)
            progress.append(text.progress)
            if count % _CHUNK == 0:
                yield None
        self._known = fresh  # components gone with a reload are forgotten
        for index, kind in enumerate(_KINDS):
            title = header(f"tpmon_{kind}_state", "gauge", f"Current state of each {kind} (1 = current)")
            yield from _sliced_states(title, states[index])
        for index, kind in enumerate(_KINDS):
            name = f"tpmon_{kind}_state_since_timestamp_seconds"
            title = header(name, "gauge", f"When each {kind} entered its current state")
            yield from _sliced_since(title, _SINCE_OPENINGS[index], since[index])
        title = header("tpmon_line_recovery_progress", "gauge", "Share of a recovering line's inputs that are up")
        yield from _sliced(title, progress)


def _sliced(title: str, lines: list[bytes]) -> Iterator[bytes]:
    """A family's header and lines, `SLICE` lines a piece (the header with the first)."""
    head = title.encode()
    for start in range(0, max(1, len(lines)), SLICE):
        yield head + b"".join(lines[start : start + SLICE])
        head = b""


def _sliced_since(title: str, opening: bytes, texts: list[_StateText]) -> Iterator[bytes]:
    """A family of since lines (`opening`, labels, end), `SLICE` components a piece (the header with the first)."""
    head = title.encode()
    for start in range(0, max(1, len(texts)), SLICE):
        part = texts[start : start + SLICE]
        yield head + b"".join(chain.from_iterable((opening, text.labels, text.since) for text in part))
        head = b""


def _sliced_states(title: str, texts: list[_StateText]) -> Iterator[bytes]:
    """A state set family's header and lines, `SLICE` components a piece (the header with the first): each
    component's lines are joined for its piece only."""
    head = title.encode()
    for start in range(0, max(1, len(texts)), SLICE):
        yield head + b"".join([text.states for text in texts[start : start + SLICE]])
        head = b""


def _format_status(status: ComponentStatus) -> _StateText:
    ref = status.ref
    labels = _labels(ref)
    since = "" if status.since is None else f"}} {number(status.since.timestamp())}\n"
    progress = ""
    if ref.kind == "line":
        value = status.progress if status.state is State.RECOVERING else 0.0
        progress = f"{series('tpmon_line_recovery_progress', labels)}{number(value)}\n"
    current = _STATES.index(status.state)
    block = label_block(labels).encode()
    return _StateText(status, _KINDS.index(ref.kind), block, current, since.encode(), progress.encode())


def _declared(snapshot: Snapshot) -> str:
    """Open incidents by impact and running maintenance by network, from the same snapshot as the states."""
    by_impact, by_network = derive(snapshot.settings, snapshot.open_incidents, snapshot.running)
    out = [header("tpmon_incidents_open", "gauge", "Open incidents, by impact")]
    out += [f"{series('tpmon_incidents_open', {'impact': impact})}{number(n)}\n" for impact, n in by_impact.items()]
    out.append(header("tpmon_maintenance_active", "gauge", "Maintenance windows running now, by network"))
    out += [
        f"{series('tpmon_maintenance_active', {'network': network})}{number(n)}\n" for network, n in by_network.items()
    ]
    return "".join(out)


def _writer_lines(stats: WriterFigures | None) -> str:
    """The store writer: its buffers, what it lost, whether the database answers, its journal."""
    if stats is None:
        return ""
    by_kind = {"result": "", "transition": ""}
    return "".join(
        (
            header("tpmon_store_buffered_results", "gauge", "Probe results waiting in memory to be written"),
            f"tpmon_store_buffered_results {number(stats.buffered_results)}\n",
            header("tpmon_store_buffered_transitions", "gauge", "Transitions waiting in memory to be written"),
            f"tpmon_store_buffered_transitions {number(stats.buffered_transitions)}\n",
            header(
                "tpmon_store_dropped_results_total",
                "counter",
                "Probe results dropped because the buffer and the journal were full, or refused by the database",
            ),
            f"tpmon_store_dropped_results_total {number(stats.dropped_results)}\n",
            header(
                "tpmon_store_up",
                "gauge",
                "Whether the database answered the last write (or idle ping) in time, with no write late now",
            ),
            f"tpmon_store_up {number(stats.store_up)}\n",
            header(
                "tpmon_store_journal_bytes",
                "gauge",
                "Size of the journal of what could not be written to the database yet",
            ),
            f"tpmon_store_journal_bytes {number(stats.journal_bytes)}\n",
            header(
                "tpmon_store_journalled_total", "counter", "Records written to the journal because the database failed"
            ),
            *(
                f"{series('tpmon_store_journalled_total', {'kind': kind})}{number(value)}\n"
                for kind, value in zip(by_kind, (stats.journalled_results, stats.journalled_transitions), strict=True)
            ),
            header("tpmon_store_replayed_total", "counter", "Records of the journal written to the database since"),
            *(
                f"{series('tpmon_store_replayed_total', {'kind': kind})}{number(value)}\n"
                for kind, value in zip(by_kind, (stats.replayed_results, stats.replayed_transitions), strict=True)
            ),
            header(
                "tpmon_store_journal_failures_total",
                "counter",
                "Spills the journal refused (full disk…): kept in memory and retried",
            ),
            f"tpmon_store_journal_failures_total {number(stats.journal_failures)}\n",
        )
    )


@dataclass(frozen=True)
class Derived:
    """What the store knows and the snapshot does not, computed periodically in a thread and read at scrape time."""

    availability: dict[tuple[str, str], float] = field(default_factory=dict)  # (key, window label) → ratio


def derive_availability(settings: Settings, window_of: Callable[[str, int], Window]) -> dict[tuple[str, str], float]:
    """Availability of every line and network over each of `WINDOWS`; components without data are left out.

    `window_of(key, days)` reads the rollups (blocking: call this in a thread).
    """
    found: dict[tuple[str, str], float] = {}
    for name, network in settings.networks.items():
        keys = [ComponentRef("line", name, line).key for line in network.lines] + [ComponentRef("network", name).key]
        for key in keys:
            for label, days in WINDOWS.items():
                ratio = window_of(key, days).availability
                if ratio is not None:
                    found[(key, label)] = ratio
    return found


def derive(
    settings: Settings, incidents: Iterable[Incident], running: Iterable[Occurrence]
) -> tuple[dict[str, int], dict[str, int]]:
    """Open incidents by impact (every impact, 0 included) and running maintenance windows by network."""
    by_impact: dict[str, int] = dict.fromkeys(IMPACTS, 0)
    for incident in incidents:
        if incident.resolved_at is None:
            by_impact[incident.impact] += 1
    by_network = dict.fromkeys(settings.networks, 0)
    for occurrence in running:
        touched: set[str] = set()
        for key in occurrence.window.components:
            with contextlib.suppress(ValueError):
                touched.add(ComponentRef.parse(key).network)
        for network in touched & set(by_network):
            by_network[network] += 1
    return by_impact, by_network


def _availability_lines(derived: Derived) -> str:
    """Availability ratios, from the cache only (never the store)."""
    lines = [
        header(
            "tpmon_line_availability_ratio",
            "gauge",
            "Availability of each line over the window (published formula, from the rollups)",
        )
    ]
    networks = [
        header(
            "tpmon_network_availability_ratio",
            "gauge",
            "Availability of each network over the window (published formula, from the rollups)",
        )
    ]
    for (key, window), ratio in derived.availability.items():
        ref = ComponentRef.parse(key)
        if ref.kind == "line":
            labels = {"network": ref.network, "line": ref.name, "window": window}
            lines.append(f"{series('tpmon_line_availability_ratio', labels)}{number(ratio)}\n")
        elif ref.kind == "network":
            labels = {"network": ref.network, "window": window}
            networks.append(f"{series('tpmon_network_availability_ratio', labels)}{number(ratio)}\n")
    return "".join(lines + networks)
