"""Composition root: create_app(settings) wires store, board, probes, scheduler, metrics and web in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from .board import Board
from .config import Settings, load_config
from .errors import ConfigError
from .metrics import Metrics
from .models import ComponentRef
from .probes import ProbeContext
from .probes.clients import HttpClients
from .runner import Pipeline, run_check
from .scheduler import ReloadReport, Scheduler, SchedulerHooks
from .store import Store, StoreWriter, default_url
from .web import routes

__all__ = ["Services", "create_app", "utc_now"]

log = logging.getLogger("tpmon.app")


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

    def _note_reload(self, *, ok: bool, message: str) -> None:
        self.last_reload = {"at": self.clock().isoformat(), "ok": ok, "message": message}
        self.metrics.note_reload(ok, self.clock())
        if self.reload_status is not None:
            self.reload_status.write_text(json.dumps(self.last_reload), encoding="utf-8")


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
    handle_sighup: bool = False,
    reload_status: Path | None = None,
) -> Starlette:
    """Build the ASGI app; nothing is opened or started until the lifespan runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        own_store = store is None
        db = store if store is not None else await asyncio.to_thread(Store.open, database_url or default_url())
        statuses, memories = await asyncio.to_thread(lambda: (db.load_statuses(), db.load_memories()))
        board = Board(settings, clock(), statuses, memories)
        writer = StoreWriter(db)
        metrics = Metrics(lambda: board)
        clients = HttpClients()  # shared, keep-alive off: every probe sees connect and TLS failures
        env = os.environ if environ is None else environ
        contexts: dict[str, ProbeContext] = {}

        def context(network: str) -> ProbeContext:
            if network not in contexts:
                ua = services.settings.user_agent
                contexts[network] = ProbeContext(network, clients.get(), ua, env, clock, clients)
            return contexts[network]

        pipeline = Pipeline(board, writer, metrics, context, clock)
        writer.on_write = metrics.observe_write
        hooks = SchedulerHooks(
            metrics.scheduler_lag.observe, metrics.scheduler_missed.inc, metrics.scheduler_skipped.inc
        )
        scheduler = Scheduler(lambda network, check: run_check(network, check, pipeline), hooks=hooks)
        services = Services(
            settings, db, board, writer, metrics, scheduler, pipeline, clock, config_path, reload_status
        )
        metrics.bind(services)

        async def tick() -> None:
            pipeline.record(board.tick(clock()))

        await writer.start()
        pipeline.record(board.evaluate_all(clock()))
        if schedule:
            report = scheduler.start(settings)
            scheduler.every("tick", tick_seconds, tick)
            log.info("scheduler started: %d checks", len(report.added))
        loop = asyncio.get_running_loop()
        # DNS lookups of probes run in the default pool: size it for the probe concurrency (asyncio's
        # default is cores + 4), so that slow resolvers queue probes, not everything else.
        executor = ThreadPoolExecutor(max_workers=min(64, settings.max_concurrency + 4), thread_name_prefix="tpmon")
        loop.set_default_executor(executor)
        if handle_sighup:
            loop.add_signal_handler(signal.SIGHUP, services.reload)
        try:
            yield {"services": services}
        finally:
            if handle_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            scheduler.shutdown()
            await writer.stop()
            await clients.aclose()
            if own_store:
                await asyncio.to_thread(db.close)
            executor.shutdown(wait=False)

    return Starlette(routes=routes(), lifespan=lifespan)
