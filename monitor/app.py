"""Composition root: create_app(settings) wires store, board, probes, scheduler, metrics and web in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.types import ASGIApp

from .board import Board
from .config import Settings, load_config
from .declared.incidents import Incident, declared_overrides
from .declared.maintenance import MaintenanceWindow, maintenance_overrides
from .engine.overrides import Overrides
from .errors import ConfigError, MonitorError, StoreError
from .metrics import Metrics, derive, derive_availability
from .models import ComponentRef
from .probes import ProbeContext
from .probes.clients import HttpClients
from .push_signals import PushInbox
from .runner import Pipeline, run_check
from .scheduler import ReloadReport, Scheduler, SchedulerHooks
from .store import Store, StoreWriter, default_url
from .store.declaration_store import Declarations
from .store.housekeeping import ROLLUP_EVERY, Housekeeper
from .store.rollup_store import availability_over
from .web import routes
from .web.page_cache import PageCache
from .web.security_headers import SecurityHeaders

__all__ = ["QuietServer", "Services", "check_port", "create_app", "utc_now"]

log = logging.getLogger("tpmon.app")

METRICS_EVERY = 30.0  # seconds between refreshes of open incidents and maintenance in /metrics


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything a request or a job may use; built in the lifespan, handed to requests as `request.state`."""

    settings: Settings
    store: Store
    board: Board
    writer: StoreWriter
    metrics: Metrics
    scheduler: Scheduler
    pipeline: Pipeline
    clock: Callable[[], datetime]
    config_path: str | None = None
    reload_status: Path | None = None
    started_at: datetime = field(default_factory=utc_now)
    last_reload: dict[str, Any] = field(default_factory=dict)
    # what ops declared, as last read from the store (every tick): the pages read these, never the store
    open_incidents: list[Incident] = field(default_factory=list)
    windows: list[MaintenanceWindow] = field(default_factory=list)
    declared_version: int = 0  # bumped when open incidents or windows change
    history_version: int = 0  # bumped after each housekeeping run (roll-ups)
    pages: PageCache = field(init=False)

    def __post_init__(self) -> None:
        self.pages = PageCache(self.stamp, store_up=lambda: self.store_up, clock=self.clock)

    @property
    def store_up(self) -> bool:
        """The store took the last write (the writer's view): pages wait for it only then."""
        return self.writer.stats.db_up

    def stamp(self) -> tuple[int, int, int, int, int]:
        """What the public pages show changes only when this does (the minute is the "last checked" line)."""
        minute = int(self.clock().timestamp() // 60)
        return (id(self.settings), self.board.version, self.declared_version, self.history_version, minute)

    async def refresh_overrides(self) -> None:
        """Apply open incidents' declared statuses and running maintenance, as stored now."""
        declarations = Declarations(self.store, self.settings, clock=self.clock)

        def read() -> tuple[list[Incident], list[MaintenanceWindow]]:
            return declarations.incidents(open_only=True, limit=None), declarations.windows()

        try:
            incidents, windows = await asyncio.to_thread(read)
        except StoreError as exc:  # keep the last known declarations; the next tick retries
            log.warning("declarations not refreshed: %s", exc)
            return
        if (incidents, windows) != (self.open_incidents, self.windows):
            self.open_incidents, self.windows = incidents, windows
            self.declared_version += 1
        now = self.clock()
        overrides = Overrides(declared=declared_overrides(incidents), maintenance=maintenance_overrides(windows, now))
        self.pipeline.record(self.board.set_overrides(overrides, now))

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def readiness_problems(self) -> list[str]:
        """Blocking: the store answers a ping, and the scheduler runs."""
        problems: list[str] = []
        try:
            self.store.ping()
        except StoreError:
            problems.append("database unreachable")
        if not self.scheduler.running:
            problems.append("scheduler not running")
        return problems

    def reload(self) -> ReloadReport | None:
        """Re-read the config file; on any problem keep the running config and log why."""
        if not self.config_path:
            return None
        try:
            settings = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", str(exc).replace("\n", "; "))
            self._note_reload(ok=False, message=str(exc))
            return None
        self.pipeline.record(self.board.reload(settings, self.clock()))
        report = self.scheduler.apply(settings)
        for key in report.removed:
            self.metrics.forget(ComponentRef.parse(key))
        self.settings = settings
        log.info("config reloaded: %s", report)
        self._note_reload(ok=True, message=str(report))
        return report

    def refresh_metrics(self, *, availability: bool) -> None:
        """Blocking (run it in a thread): cache what /metrics shows from the store, so scrapes never query it.

        Open incidents and running maintenance every time, from the declarations the tick keeps in memory;
        availability ratios when asked (after a roll-up).
        """
        settings, now = self.settings, self.clock()
        try:
            if availability:
                self.metrics.set_availability(
                    derive_availability(settings, lambda key, days: availability_over(self.store, key, now, days))
                )
            self.metrics.set_declarations(*derive(settings, self.open_incidents, self.windows, now))
        except StoreError as exc:  # keep the cached values; the next run retries
            log.warning("metrics not refreshed from the store: %s", exc)

    def _note_reload(self, *, ok: bool, message: str) -> None:
        self.last_reload = {"at": self.clock().isoformat(), "ok": ok, "message": message}
        self.metrics.note_reload(ok, self.clock())
        if self.reload_status is not None:
            self.reload_status.write_text(json.dumps(self.last_reload), encoding="utf-8")


def check_port(host: str, port: int) -> None:
    """MonitorError in one line if `host:port` cannot be listened on (uvicorn would exit the process)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        raise MonitorError(f"--host: cannot resolve {host!r}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or "refused")
            raise MonitorError(f"--port: cannot listen on {host}:{port} ({reason}); choose another port") from None


class QuietServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end in a clean return after the graceful shutdown
    instead of being re-raised: the caller closes the store and its files itself."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


class _App(Starlette):
    """Starlette with the security headers outside its error middleware: a 500 carries them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def _assemble(
    settings: Settings,
    db: Store,
    clock: Callable[[], datetime],
    env: Mapping[str, str],
    speed: float,
    config_path: str | None,
    reload_status: Path | None,
) -> tuple[Services, HttpClients]:
    """Build the board (seeded from the store), writer, metrics, probes' context, pipeline and scheduler."""
    board = Board(settings, clock(), db.load_statuses(), db.load_memories())
    writer = StoreWriter(db)
    metrics = Metrics(lambda: board, lambda: writer.stats)
    clients = HttpClients()  # shared, keep-alive off: every probe sees connect and TLS failures
    contexts: dict[str, ProbeContext] = {}

    def context(network: str) -> ProbeContext:
        if network not in contexts:
            ua = services.settings.user_agent
            contexts[network] = ProbeContext(network, clients.get(), ua, env, clock, clients)
        return contexts[network]

    pipeline = Pipeline(board, writer, metrics, context, clock)
    writer.on_write = metrics.observe_write
    hooks = SchedulerHooks(metrics.scheduler_lag.observe, metrics.scheduler_missed.inc, metrics.scheduler_skipped.inc)
    scheduler = Scheduler(lambda network, check: run_check(network, check, pipeline), hooks=hooks, speed=speed)
    services = Services(settings, db, board, writer, metrics, scheduler, pipeline, clock, config_path, reload_status)
    metrics.note_start(services.started_at)
    return services, clients


def _start_jobs(services: Services, tick_seconds: float, housekeeping_seconds: float) -> None:
    """Probes, and the periodic work: declarations and time (tick), partners' signals, rollups and pruning."""
    board, pipeline, clock = services.board, services.pipeline, services.clock
    inbox, keeper = PushInbox(services.store), Housekeeper(services.store)

    async def tick() -> None:
        await services.refresh_overrides()  # any instance may have written them
        pipeline.record(board.tick(clock()))

    async def pump() -> None:
        await inbox.pump(board, pipeline.record, clock())

    async def housekeeping() -> None:
        await keeper.run(services.settings, clock())
        services.history_version += 1  # the availability bars read the fresh roll-ups
        await asyncio.to_thread(services.refresh_metrics, availability=True)  # from the fresh rollups

    async def declarations() -> None:
        await asyncio.to_thread(services.refresh_metrics, availability=False)

    report = services.scheduler.start(services.settings)
    services.scheduler.every("tick", tick_seconds, tick)
    services.scheduler.every("push", tick_seconds, pump)
    services.scheduler.every("housekeeping", housekeeping_seconds, housekeeping)
    services.scheduler.every("metrics", METRICS_EVERY, declarations)
    log.info("scheduler started: %d checks", len(report.added))


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    database_url: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    schedule: bool = True,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
    tick_seconds: float = 5.0,
    housekeeping_seconds: float = ROLLUP_EVERY,
    speed: float = 1.0,
    handle_sighup: bool = False,
    reload_status: Path | None = None,
) -> Starlette:
    """Build the ASGI app; nothing is opened or started until the lifespan runs.

    `clock` and `speed` let the demo run on scenario time: intervals pass `speed` times faster.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        db = store if store is not None else await asyncio.to_thread(Store.open, database_url or default_url())
        env = os.environ if environ is None else environ
        services, clients = await asyncio.to_thread(
            _assemble, settings, db, clock, env, speed, config_path, reload_status
        )
        loop = asyncio.get_running_loop()
        # DNS lookups of probes run in the default pool: size it for the probe concurrency (asyncio's
        # default is cores + 4), so that slow resolvers queue probes, not everything else.
        executor = ThreadPoolExecutor(max_workers=min(64, settings.max_concurrency + 4), thread_name_prefix="tpmon")
        loop.set_default_executor(executor)
        await services.writer.start()
        await services.refresh_overrides()  # before the first evaluation: no flicker through probe states
        services.pipeline.record(services.board.evaluate_all(clock()))
        await asyncio.to_thread(services.refresh_metrics, availability=True)  # reads only: rollups stay housekeeping's
        if schedule:
            _start_jobs(services, tick_seconds, housekeeping_seconds)
        if handle_sighup:
            loop.add_signal_handler(signal.SIGHUP, services.reload)
        try:
            yield {"services": services}
        finally:
            if handle_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            services.scheduler.shutdown()
            await services.writer.stop()
            await clients.aclose()
            if store is None:
                await asyncio.to_thread(db.close)
            # the pool stays the loop's default: asyncio.run shuts it down, after whatever still needs it

    return _App(routes=routes(), lifespan=lifespan)
