"""Prometheus metrics: a per-app registry, probe counters, and a scrape-time collector over the site's snapshot."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .availability import Window
from .config import Settings
from .declared.incidents import IMPACTS, Incident
from .declared.maintenance import Occurrence
from .models import ComponentRef, ProbeResult, State
from .snapshot import Snapshot

__all__ = ["WINDOWS", "Derived", "Metrics", "WriterFigures", "derive", "derive_availability"]

# the `window` label of the availability ratios, and its length in days
WINDOWS: dict[str, int] = {"24h": 1, "7d": 7, "30d": 30}

_CHECK = ("network", "flow", "check")
_PHASES = ("resolve", "connect", "tls", "processing", "transfer")


class WriterFigures(Protocol):
    """What /metrics shows of the store writer (its `stats`), read at scrape time."""

    @property
    def buffered_results(self) -> int: ...

    @property
    def dropped_results(self) -> int: ...

    @property
    def db_up(self) -> bool: ...


class Metrics:
    """All of tpmon's metrics, registered on a registry of its own (never the global one).

    `snapshot` and `writer` are read at scrape time; either may answer None (not built yet). States, open
    incidents and running maintenance all come from one snapshot read: they change in the same tick, together
    with the page.
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        writer: Callable[[], WriterFigures | None] = lambda: None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.probe_success = Gauge("tpmon_probe_success", "Whether the last probe succeeded", _CHECK, registry=r)
        self.probe_duration = Histogram(
            "tpmon_probe_duration_seconds",
            "Duration of probes",
            _CHECK,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.http_phase = Gauge(
            "tpmon_probe_http_duration_seconds",
            "Duration of the last HTTP probe by phase",
            (*_CHECK, "phase"),
            registry=r,
        )
        self.http_status = Gauge(
            "tpmon_probe_http_status_code", "HTTP status code of the last probe (0 if none)", _CHECK, registry=r
        )
        self.ssl_expiry = Gauge(
            "tpmon_probe_ssl_last_chain_expiry_timestamp_seconds",
            "Earliest certificate expiry in the chain seen by the last probe",
            _CHECK,
            registry=r,
        )
        self.probes = Counter("tpmon_probes_total", "Probes run, by result", (*_CHECK, "result"), registry=r)
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
        self._series: dict[ComponentRef, _CheckSeries] = {}  # labelled children, by check
        self.derived = Derived()  # replaced whole by the periodic refresh; scrapes only read it
        r.register(_SnapshotCollector(snapshot))
        r.register(_WriterCollector(writer))
        r.register(_DerivedCollector(lambda: self.derived))

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
        series = self._series.get(ref)
        if series is None:
            series = self._series[ref] = _CheckSeries(self, (ref.network, ref.name, ref.check))
        series.success.set(1 if result.success else 0)
        series.duration.observe(result.duration_s)
        series.result("success" if result.success else (result.reason or "failure")).inc()
        if result.status_code is not None or result.phases:
            series.status_code().set(result.status_code or 0)
            for phase in _PHASES:
                if phase in result.phases:
                    series.phase(phase).set(result.phases[phase])
        expiry = result.chain_expiry or result.cert_expiry
        if expiry is not None:
            series.ssl_expiry().set(expiry.timestamp())

    def forget(self, ref: ComponentRef) -> None:
        """Drop the series of a check removed by a reload."""
        self._series.pop(ref, None)
        labels = (ref.network, ref.name, ref.check)
        for metric in (self.probe_success, self.http_status, self.ssl_expiry):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        for phase in _PHASES:
            with contextlib.suppress(KeyError):
                self.http_phase.remove(*labels, phase)


class _CheckSeries:
    """The labelled children of one check, looked up once instead of at every probe.

    Children that not every check has (HTTP status and phases, certificate expiry, each result) are
    made on first use, as `labels()` would: a TCP check still exports no HTTP series.
    """

    __slots__ = ("_expiry", "_labels", "_metrics", "_phases", "_results", "_status", "duration", "success")

    def __init__(self, metrics: Metrics, labels: tuple[str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self.success = metrics.probe_success.labels(*labels)
        self.duration = metrics.probe_duration.labels(*labels)
        self._results: dict[str, Counter] = {}
        self._phases: dict[str, Gauge] = {}
        self._status: Gauge | None = None
        self._expiry: Gauge | None = None

    def result(self, result: str) -> Counter:
        child = self._results.get(result)
        if child is None:
            child = self._results[result] = self._metrics.probes.labels(*self._labels, result)
        return child

    def status_code(self) -> Gauge:
        if self._status is None:
            self._status = self._metrics.http_status.labels(*self._labels)
        return self._status

    def phase(self, phase: str) -> Gauge:
        child = self._phases.get(phase)
        if child is None:
            child = self._phases[phase] = self._metrics.http_phase.labels(*self._labels, phase)
        return child

    def ssl_expiry(self) -> Gauge:
        if self._expiry is None:
            self._expiry = self._metrics.ssl_expiry.labels(*self._labels)
        return self._expiry


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tpmon")
    except PackageNotFoundError:
        return "unknown"


class _WriterCollector(Collector):
    """The store writer's buffer and losses, read at scrape time."""

    def __init__(self, writer: Callable[[], WriterFigures | None]) -> None:
        self._writer = writer

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._writer()
        if stats is None:
            return
        yield GaugeMetricFamily(
            "tpmon_store_buffered_results", "Probe results waiting to be written", value=stats.buffered_results
        )
        yield CounterMetricFamily(
            "tpmon_store_dropped_results",
            "Probe results dropped because the buffer was full",
            value=stats.dropped_results,
        )
        yield GaugeMetricFamily("tpmon_store_up", "Whether the last write to the database succeeded", value=stats.db_up)


class _SnapshotCollector(Collector):
    """From one snapshot, read once per scrape: state sets (value 1 for the current state, as kube-state-metrics
    does), when each state began, recovery progress, open incidents by impact, running maintenance by network."""

    def __init__(self, snapshot: Callable[[], Snapshot | None]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        if snapshot is None:
            return
        labelled = {
            "check": ["network", "flow", "check", "state"],
            "flow": ["network", "flow", "state"],
            "line": ["network", "line", "state"],
            "network": ["network", "state"],
        }
        families = {
            kind: GaugeMetricFamily(f"tpmon_{kind}_state", f"Current state of each {kind} (1 = current)", labels=names)
            for kind, names in labelled.items()
        }
        since = {
            kind: GaugeMetricFamily(
                f"tpmon_{kind}_state_since_timestamp_seconds",
                f"When each {kind} entered its current state",
                labels=names[:-1],
            )
            for kind, names in labelled.items()
        }
        progress = GaugeMetricFamily(
            "tpmon_line_recovery_progress",
            "Share of a recovering line's inputs that are up",
            labels=["network", "line"],
        )
        for status in snapshot.statuses.values():  # immutable: rendered off the loop while the board changes
            ref = status.ref
            base = [ref.network] + ([ref.name] if ref.kind != "network" else []) + ([ref.check] if ref.check else [])
            for state in State:
                families[ref.kind].add_metric([*base, state.value], 1.0 if status.state is state else 0.0)
            if status.since is not None:
                since[ref.kind].add_metric(base, status.since.timestamp())
            if ref.kind == "line":
                progress.add_metric(base, status.progress if status.state is State.RECOVERING else 0.0)
        yield from families.values()
        yield from since.values()
        yield progress
        by_impact, by_network = derive(snapshot.settings, snapshot.open_incidents, snapshot.running)
        incidents = GaugeMetricFamily("tpmon_incidents_open", "Open incidents, by impact", labels=["impact"])
        for impact, count in by_impact.items():
            incidents.add_metric([impact], count)
        yield incidents
        maintenance = GaugeMetricFamily(
            "tpmon_maintenance_active", "Maintenance windows running now, by network", labels=["network"]
        )
        for network, count in by_network.items():
            maintenance.add_metric([network], count)
        yield maintenance


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


class _DerivedCollector(Collector):
    """Availability ratios, from the cache only (never the store)."""

    def __init__(self, derived: Callable[[], Derived]) -> None:
        self._derived = derived

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        derived = self._derived()
        lines = GaugeMetricFamily(
            "tpmon_line_availability_ratio",
            "Availability of each line over the window (published formula, from the rollups)",
            labels=["network", "line", "window"],
        )
        networks = GaugeMetricFamily(
            "tpmon_network_availability_ratio",
            "Availability of each network over the window (published formula, from the rollups)",
            labels=["network", "window"],
        )
        for (key, window), ratio in derived.availability.items():
            ref = ComponentRef.parse(key)
            if ref.kind == "line":
                lines.add_metric([ref.network, ref.name, window], ratio)
            elif ref.kind == "network":
                networks.add_metric([ref.network, window], ratio)
        yield lines
        yield networks
