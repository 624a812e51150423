"""Composition root: create_app(settings) wires store, board, probes, scheduler, metrics and web in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp
from uvicorn.server import HANDLED_SIGNALS

from .availability import Window
from .board import Board, BoardChange
from .cluster.coordinator import Coordinator, MemoryReads
from .cluster.follower import Follower
from .cluster.lead_gap import LeadGap
from .config import Settings, load_config
from .declared.incidents import Incident, declared_lifted, declared_overrides
from .declared.maintenance import MaintenanceWindow, Occurrence, active, maintenance_lifted, maintenance_overrides
from .delivery.notifier import Notifier
from .delivery.notify_metrics import NotifyMetrics
from .delivery.smtp_sender import SmtpSender, smtp_settings
from .delivery.subscription_desk import SubscriptionDesk
from .engine.overrides import Overrides
from .engine.quorum import located_key
from .errors import ConfigError, MonitorError, NotFound, StoreError
from .i18n import LANGS, PARIS, literal, said, translate
from .metrics import Metrics, derive_availability
from .models import ComponentRef, ComponentStatus, ProbeResult, Source, Transition
from .notify.tokens import Signer, load_secret
from .operators.desk import Desk
from .probe_pool import ProbePool
from .probes import ProbeContext
from .probes.clients import HttpClients
from .probes.net import bindable
from .push_signals import PushInbox
from .runner import Pipeline, run_check
from .scheduler import ReloadReport, Scheduler, SchedulerHooks
from .snapshot import RECENT_INCIDENTS, Snapshot
from .staff.passwords import Passwords
from .store import Store, StoreWriter, default_url
from .store.declaration_store import Current, Declarations
from .store.housekeeping import ROLLUP_EVERY, Housekeeper
from .store.journal import Journal
from .store.rollup_store import availability_over
from .store.writer import STOP_GRACE
from .web import admin_routes, routes
from .web.api_v1 import api_not_found
from .web.page_cache import PageCache
from .web.publisher import Publisher, PublishReport
from .web.revalidation import Revalidation
from .web.security_headers import SecurityHeaders

__all__ = [
    "SHUTDOWN_DEADLINE",
    "WEB_GRACE",
    "Job",
    "Listeners",
    "QuietServer",
    "Services",
    "check_port",
    "check_source",
    "create_app",
    "create_apps",
    "periodic_jobs",
    "utc_now",
]

log = logging.getLogger("tpmon.app")

Job = tuple[str, float, Callable[[], Awaitable[None]]]
DEADLINE_EVERY = 0.2  # seconds between looks at the push deadlines: a missed one is concluded within a second
TOKEN_USES_EVERY = 60.0  # seconds between writes of machine tokens' last use
RECOVERIES_EVERY = 0.2  # seconds between looks at the recoveries due (several instances: ended at the same instant)
# Shutdown (SIGTERM, Ctrl-C): open requests get WEB_GRACE s on each listener (the operators' first, then the
# public one); then, on PostgreSQL with others, this instance leaves within CLUSTER_GRACE; then the probe workers, if
# any, get probe_pool.STOP_GRACE (1.5 s, + 0.5 s once killed); then the store writer gets STOP_GRACE (5 s) to write
# what it holds before journalling the rest, the operators' desk and the notifier as long, side by side:
# 3 + 3 + 1 + 2 + 6 = 15 s at worst. Whatever still runs SHUTDOWN_DEADLINE s after the first signal is cut short.
WEB_GRACE = 3
CLUSTER_GRACE = 1.0  # leaving: two short statements; not done in time, the others see it dead 2 heartbeats later
SHUTDOWN_DEADLINE = 15.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything a request or a job may use; built in the lifespan, handed to requests as `request.state`.

    What the site tells comes from one `Snapshot` (states, incidents, maintenance at one instant), taken anew
    whenever the board changes and at every tick: every surface reads the same one.
    """

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
    declared_version: int = 0  # bumped when open incidents, windows or the running maintenance change
    history_version: int = 0  # bumped after each housekeeping run (roll-ups)
    stopping: threading.Event = field(default_factory=threading.Event)  # set at shutdown: long reads give up
    pages: PageCache = field(init=False)
    # what ops declared, as last read from the store (every tick), and when it was applied to the board
    _declared: Current = field(init=False, repr=False)
    _declared_at: datetime = field(init=False, repr=False)
    _running: tuple[Occurrence, ...] = field(init=False, repr=False, default=())
    _snapshot: Snapshot = field(init=False, repr=False)
    _declared_seen: tuple[int, list[ComponentStatus]] = field(default=(-1, []), init=False, repr=False)
    desk: Desk = field(init=False)  # the operators' side: tokens, push intake, staff access
    notifier: Notifier | None = None  # the outbox's sender: always there, it fans out and prunes even with no channel
    subscriptions: SubscriptionDesk | None = None  # the public e-mail subscriptions, when the config offers them
    cluster: Coordinator | None = None  # on PostgreSQL: this instance among the others (share of checks, leader)
    workers: ProbePool | None = None  # the probe workers, when probes run in processes of their own
    publisher: Publisher | None = None  # keeps web.publish_dir a static export of the site, when it is set
    location: str = "default"  # where this instance probes from (`--location`, or the config's cluster.location)

    def __post_init__(self) -> None:
        self.pages = PageCache(
            self.stamp, store_up=lambda: self.store_up, clock=self.clock, history_stamp=self.history_stamp
        )
        self._declared = Current([], [], 0, [])
        self._declared_at = self.clock()
        self._snapshot = self._take()
        self.pipeline.listeners.append(self._board_changed)

    def snapshot(self) -> Snapshot:
        """What every surface shows now: one immutable picture (taken on the event loop, read anywhere)."""
        return self._snapshot

    @property
    def open_incidents(self) -> list[Incident]:
        return list(self._snapshot.open_incidents)

    @property
    def windows(self) -> list[MaintenanceWindow]:
        return list(self._snapshot.windows)

    def _take(self) -> Snapshot:
        declared = self._declared
        return Snapshot(
            settings=self.settings,
            at=self._declared_at,
            statuses=self.board.statuses(),  # immutable (a persistent map): shared, never copied
            checked_at=self.board.checked_at,
            open_incidents=tuple(declared.open),
            recent_incidents=tuple(declared.recent),
            newest_incident=declared.newest_id,
            windows=tuple(declared.windows),
            running=self._running,
            board_version=self.board.version,
            declared_version=self.declared_version,
        )

    def _board_changed(self, change: BoardChange) -> None:
        if self.board.version != self._snapshot.board_version or self.settings is not self._snapshot.settings:
            self._snapshot = self._take()

    def stamp(self) -> tuple[int, int, int, int, int]:
        """What the public pages show changes only when this does (the minute is the "last checked" line)."""
        shown = self._snapshot
        minute = int(self.clock().timestamp() // 60)
        return (id(shown.settings), shown.board_version, shown.declared_version, self.history_version, minute)

    def history_stamp(self) -> tuple[int, int, date, int | None]:
        """What the roll-ups shown (a line's bars) change with — not the board: the config, the history's version
        (this instance's housekeeping stored fresh ones), the Paris day (a new bar) and, on an instance that
        leaves housekeeping to the cluster's leader, the minute (roll-ups the leader stored, read within one)."""
        now = self.clock()
        follower = self.cluster is not None and not self.cluster.leading
        minute = int(now.timestamp() // 60) if follower else None
        return (id(self._snapshot.settings), self.history_version, now.astimezone(PARIS).date(), minute)

    async def refresh_overrides(self) -> None:
        """Apply open incidents' declared statuses and running maintenance, as stored now; take a new snapshot.

        While the store is down (or fails this read), the declarations last read still apply: a window still
        opens and closes on time, and the tick never waits on a database known not to answer.
        """
        declarations = Declarations(self.store, self.settings, clock=self.clock)
        shown = {int(s.detail.partition(":")[2]) for s in self._declared_statuses()}

        def read() -> tuple[Current, list[Incident]]:
            current = declarations.current(recent=RECENT_INCIDENTS)
            still = {i.id for i in current.open}
            return current, _incidents(declarations, shown - still)

        if self.store_up:
            try:
                declared, resolved = await asyncio.to_thread(read)
            except StoreError as exc:  # keep the last known declarations; the next tick retries
                log.warning("declarations not refreshed: %s", exc)
                declared, resolved = self._declared, []
        else:  # a database known not to answer is not read: the tick never waits on it
            declared, resolved = self._declared, []
        now = self.clock()
        running = tuple(active(declared.windows, now))
        if declared != self._declared or running != self._running:
            self.declared_version += 1
        self._declared, self._declared_at, self._running = declared, now, running
        overrides = Overrides(
            declared=declared_overrides(declared.open),
            maintenance=maintenance_overrides(declared.windows, now),
            lifted={**declared_lifted(resolved), **maintenance_lifted(declared.windows, now)},
        )
        self.pipeline.record(self.board.set_overrides(overrides, now))
        self._snapshot = self._take()

    async def tick(self) -> None:
        """The periodic tick: declarations applied, then time passes for the board (stale checks, recoveries)."""
        await self.refresh_overrides()  # any instance may have written them
        self.pipeline.record(self.board.tick(self._declared_at, push=False))  # push checks: at their deadline
        if self.store_up:  # tokens revoked anywhere, refused pushes to audit: the store's, never waited on when down
            await self.desk.tick()

    def _declared_statuses(self) -> list[ComponentStatus]:
        """The statuses the board shows from an incident's declaration (detail ``incident:N``)."""
        if self.board.version == self._declared_seen[0]:
            return self._declared_seen[1]
        found = [
            s
            for s in self.board.statuses().values()
            if s.source is Source.DECLARED and s.detail.startswith("incident:") and s.detail[9:].isdigit()
        ]
        self._declared_seen = (self.board.version, found)
        return found

    def metrics_exposition(self) -> AsyncIterator[bytes]:
        return self.metrics.exposition()

    @property
    def store_up(self) -> bool:
        """The store answered the last write (or the writer's idle ping) within its deadline, and the write under
        way, if any, is not late. Read from memory: never waits on the database."""
        return self.writer.stats.store_up

    def readiness_problems(self) -> list[str]:
        """From memory, at once: the store answers writes in time, and the scheduler runs."""
        problems: list[str] = []
        if not self.store_up:
            problems.append("database unreachable or not answering in time")
        if not self.scheduler.running:
            problems.append("scheduler not running")
        if self.workers is not None and self.scheduler.running and not self.workers.alive:
            problems.append("no probe worker running")
        if self.publisher is not None and self.publisher.problem is not None:
            problems.append(f"published folder behind: {self.publisher.problem}")
        return problems

    def reload(self) -> ReloadReport | None:
        """Re-read the config file; on any problem keep the running config and log why."""
        if not self.config_path:
            return None
        try:
            settings = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", str(exc).replace("\n", "; "))
            self._note_reload(ok=False, message=str(exc), texts={lang: exc.text(lang) for lang in LANGS})
            return None
        self.pipeline.record(self.board.reload(settings, self.clock()))
        report = self.scheduler.apply(settings)
        if self.workers is not None:
            self.workers.apply(settings)
        for key in report.removed:
            self.metrics.forget(ComponentRef.parse(key))
        self.settings = settings
        self._snapshot = self._take()
        log.info("config reloaded: %s", report)
        counts = {"added": len(report.added), "removed": len(report.removed), "changed": len(report.changed)}
        said = {lang: translate(lang, "{added} added, {removed} removed, {changed} changed") for lang in LANGS}
        self._note_reload(
            ok=True, message=str(report), texts={lang: text.format(**counts) for lang, text in said.items()}
        )
        return report

    def refresh_metrics(self) -> None:
        """Blocking (run it in a thread): cache the availability ratios /metrics shows, from the roll-ups, so
        scrapes never query the store. The states, open incidents and maintenance come from the snapshot."""
        settings, now = self.settings, self.clock()

        def window_of(key: str, days: int) -> Window:
            if self.stopping.is_set():  # a shutdown: the component after the current one is never read
                raise StoreError("metrics not refreshed: shutting down")  # tpmon-text: internal, never shown
            return availability_over(self.store, key, now, days)

        try:
            self.metrics.set_availability(derive_availability(settings, window_of))
        except StoreError as exc:  # keep the cached values; the next run retries
            log.warning("metrics not refreshed from the store: %s", exc)

    def _note_reload(self, *, ok: bool, message: str, texts: dict[str, str]) -> None:
        """The last reload's outcome: `message` in English (logs, API), `texts` by language (`tpmon reload`)."""
        self.last_reload = {"at": self.clock().isoformat(), "ok": ok, "message": message, "texts": texts}
        self.metrics.note_reload(ok, self.clock())
        if self.reload_status is not None:
            self.reload_status.write_text(json.dumps(self.last_reload), encoding="utf-8")


def _incidents(declarations: Declarations, ids: set[int]) -> list[Incident]:
    """The incidents of `ids` (resolved ones, to date the end of what they declared); gone ones are skipped."""
    found = []
    for incident_id in sorted(ids):
        try:
            found.append(declarations.incident(incident_id))
        except NotFound:
            continue
    return found


def check_port(host: str, port: int, options: tuple[str, str] = ("--host", "--port")) -> None:
    """MonitorError in one line if `host:port` cannot be listened on (uvicorn would exit the process); `options`
    name the host's and the port's options."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        raise MonitorError(said("{option}: cannot resolve {host!r}", option=options[0], host=host)) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = said("already in use") if exc.errno == errno.EADDRINUSE else literal(exc.strerror or "refused")
            cannot = said(
                "{option}: cannot listen on {host}:{port} ({reason}); choose another port",
                option=options[1],
                host=host,
                port=port,
                reason=reason,
            )
            raise MonitorError(cannot) from None


class QuietServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end in a clean return after the graceful shutdown
    instead of being re-raised: the caller closes the store and its files itself.

    The shutdown is bounded: open requests get `WEB_GRACE` s (unless the config says otherwise), and if the
    process is still there `SHUTDOWN_DEADLINE` s after the first signal, it exits at once (status 1)."""

    def __init__(self, config: uvicorn.Config) -> None:
        if config.timeout_graceful_shutdown is None:
            config.timeout_graceful_shutdown = WEB_GRACE
        super().__init__(config)
        self._deadline: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.arm_deadline()
        super().handle_exit(sig, frame)

    def arm_deadline(self) -> None:
        """At the first signal: exit at once if the process is still there `SHUTDOWN_DEADLINE` s later."""
        if self._deadline is None:
            self._deadline = threading.Timer(SHUTDOWN_DEADLINE - 0.5, _cut_short, (time.monotonic(),))
            self._deadline.daemon = True
            self._deadline.start()

    # uvicorn has no setting for this: since 0.29 its `capture_signals()` installs `handle_exit` while `serve()`
    # runs, then raises again every signal it caught. This one installs and restores the same handlers, no raise.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # only the main thread can set handlers
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _cut_short(since: float) -> None:
    """The last resort of a shutdown that hangs (a thread blocked where no deadline reaches): exit now."""
    log.error("shutdown still under way %.1f s after the signal: exiting now", time.monotonic() - since)
    logging.shutdown()
    os._exit(1)


class _App(Starlette):
    """Starlette with the security headers outside its error middleware: a 500 carries them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


class _PublicApp(_App):
    """The public site: a conditional request answered before under the same stamp gets its 304 before routing."""

    def build_middleware_stack(self) -> ASGIApp:
        return Revalidation(super().build_middleware_stack())


def _assemble(
    settings: Settings,
    db: Store,
    clock: Callable[[], datetime],
    env: Mapping[str, str],
    speed: float,
    config_path: str | None,
    reload_status: Path | None,
    passwords: Passwords | None,
    live: bool = True,
    journal: Journal | None = None,
    probe_workers: int = 1,
    worker_logs: tuple[str, str] = ("info", "text"),
) -> tuple[Services, HttpClients]:
    """Build the board (seeded from the store), writer, metrics, probes' context, pipeline and scheduler; with
    `probe_workers` > 1, the probe workers, and a scheduler that runs only the periodic jobs here."""
    board = Board(settings, clock(), db.load_statuses(), db.load_memories())
    writer = StoreWriter(db, journal=journal)
    metrics = Metrics(lambda: services.snapshot(), lambda: writer.stats)  # noqa: PLW0108 (services: below)
    clients = HttpClients()  # shared, keep-alive off: every probe sees connect and TLS failures
    contexts: dict[tuple[str, str | None], ProbeContext] = {}

    def context(network: str) -> ProbeContext:
        source = services.settings.cluster.source_address(services.location)  # this location's, if any
        found = contexts.get((network, source))
        if found is None:
            ua = services.settings.user_agent
            found = contexts[network, source] = ProbeContext(network, clients.get(), ua, env, clock, clients, source)
        return found

    pipeline = Pipeline(board, writer, metrics, context, clock)
    writer.on_write = metrics.observe_write
    hooks = SchedulerHooks(metrics.scheduler_lag.observe, metrics.scheduler_missed.inc, metrics.scheduler_skipped.inc)
    workers = None
    if probe_workers > 1:  # probes run in the workers; the results come back to this process's pipeline
        workers = ProbePool(
            probe_workers,
            _WorkerResults(pipeline, metrics),
            registry=metrics.registry,
            speed=speed,
            log_level=worker_logs[0],
            log_format=worker_logs[1],
            environ=env,
        )
    scheduler = Scheduler(
        lambda network, check: run_check(network, check, pipeline),
        hooks=hooks,
        speed=speed,
        owns=(lambda key: False) if workers is not None else (lambda key: True),
    )
    services = Services(settings, db, board, writer, metrics, scheduler, pipeline, clock, config_path, reload_status)
    services.workers = workers
    services.desk = Desk(db, lambda: services.settings, clock, env, passwords=passwords)
    metrics.note_start(services.started_at)
    _notifications(services, env, live=live)
    return services, clients


@dataclass
class _WorkerResults:
    """What the probe workers probed, through the same pipeline as a probe of this process."""

    pipeline: Pipeline
    metrics: Metrics

    def take(self, result: ProbeResult, worker: int) -> None:
        self.pipeline.take(result)

    def lag(self, seconds: float) -> None:
        self.metrics.scheduler_lag.observe(seconds)

    def missed(self, runs: int) -> None:
        self.metrics.scheduler_missed.inc(runs)

    def skipped(self, runs: int) -> None:
        self.metrics.scheduler_skipped.inc(runs)


def _notifications(services: Services, env: Mapping[str, str], *, live: bool = True) -> None:
    """The notifier and, when offered, the subscription desk; MonitorError in one line if a secret is missing
    (unless not `live`: `tpmon export` writes pages without sending anything, and needs no secret)."""
    notifications = services.settings.notifications
    try:
        signer = Signer(load_secret(env)) if notifications is not None else None
        smtp = SmtpSender(smtp_settings(env)) if notifications is not None and notifications.subscriptions else None
    except MonitorError:
        if live:
            raise
        signer, smtp = None, None
    metrics = NotifyMetrics(services.metrics.registry)  # always: the queue of the outbox exists either way
    services.notifier = Notifier(
        services.store, lambda: services.settings, signer, smtp=smtp, environ=env, metrics=metrics, clock=services.clock
    )
    if signer is not None and smtp is not None:
        services.subscriptions = SubscriptionDesk(services.store, lambda: services.settings, signer, now=services.clock)


def periodic_jobs(services: Services, tick_seconds: float, housekeeping_seconds: float) -> list[Job]:
    """(name, every so many seconds, job): the declarations and time (tick), partners' signals, roll-ups and
    pruning. The scheduler runs them; a test may run them on its own clock."""
    inbox, keeper = PushInbox(services.store), Housekeeper(services.store, stop=services.stopping)

    async def pump() -> None:
        if services.store_up:  # partners' signals wait in the store: read when it answers
            await inbox.pump(services.board, services.pipeline.record, services.clock())

    async def deadlines() -> None:
        due = services.board.next_push_deadline()
        if due is not None and due <= services.clock() and services.store_up:
            await inbox.catch_up(services.board, services.pipeline.record, services.clock())

    async def housekeeping() -> None:
        if services.cluster is not None and not services.cluster.leading:
            return  # the leader's: once, not once per instance
        await keeper.run(services.settings, services.clock())
        services.history_version += 1  # the availability bars read the fresh roll-ups
        await asyncio.to_thread(services.refresh_metrics)  # from the fresh rollups

    async def recoveries() -> None:
        """Several instances: a recovery ends when due, not at each one's next tick (all show it within a second)."""
        due, now = services.board.next_recovery(), services.clock()
        if due is not None and due <= now:
            services.pipeline.record(services.board.tick(now, push=False))

    clustered = [("recoveries", RECOVERIES_EVERY, recoveries)] if services.cluster is not None else []
    return [
        *clustered,
        ("tick", tick_seconds, services.tick),
        ("push", tick_seconds, pump),
        ("deadlines", DEADLINE_EVERY, deadlines),
        ("housekeeping", housekeeping_seconds, housekeeping),
        ("token-uses", TOKEN_USES_EVERY, services.desk.tokens.flush_uses),
    ]


def _following(
    services: Services, follows: Callable[[str], bool], leading: Callable[[], bool], gap: LeadGap
) -> tuple[Callable[[frozenset[str] | None], Awaitable[None]], Callable[[frozenset[str]], Awaitable[None]]]:
    """What the others stored, as the board follows it: the memories of the checks this instance does not probe,
    and (unless it leads) the derived statuses as the leader stored them."""

    async def follow(keys: frozenset[str] | None = None) -> None:
        """The memories the others stored (those of `keys`, or all) of the checks this instance does not probe. Not
        while this instance's own writes are held back by a database that was cut: what the store holds of the
        checks it probed meanwhile (a late heartbeat lends them to the others for a while) is older than its board,
        and following it would take the board back in time."""
        if services.writer.cut_off:
            return
        try:
            memories = await asyncio.to_thread(services.store.load_memories, keys)
        except StoreError as exc:  # the board keeps what it last followed; the next heartbeat retries
            log.warning("checks of the other instances not followed: %s", exc)
            return
        theirs = {key: memory for key, memory in memories.items() if follows(key)}
        services.pipeline.record(services.board.follow(theirs, services.clock()))

    async def adopt(keys: frozenset[str]) -> None:
        """The derived statuses the leader stored: shown as it derived them (the leader keeps its own). Not while
        this instance's own transitions wait to be written (a database that was cut, its journal not yet replayed):
        the stored statuses are then older than what it knows, and adopting them would take its board back in time
        (and write a recovery that never happened when it derives again)."""
        if leading() or services.writer.behind:
            return
        try:
            statuses = await asyncio.to_thread(services.store.load_statuses, keys)
        except StoreError as exc:
            log.warning("derived states of the leader not followed: %s", exc)
            return
        if not leading() and not services.writer.behind:
            services.pipeline.record(services.board.adopt(statuses))
            gap.adopted(statuses)

    return follow, adopt


def check_source(settings: Settings, location: str | None) -> None:
    """MonitorError in one line if the source address of this instance's location is not one of this machine's:
    every probe would fail, a false outage from this location."""
    where = location or settings.cluster.location
    source = settings.cluster.source_address(where)
    refused = bindable(source) if source is not None else None
    if refused is not None:
        field = f"cluster.locations.{where}.source_address"
        cannot = said(
            "{field}: probes cannot connect from {source} ({reason})", field=field, source=source, reason=refused
        )
        raise MonitorError(cannot)


async def _take_lead(services: Services, gap: LeadGap) -> None:
    """Before leading: write what the stored derived states missed. If this instance led last and nobody wrote
    since (its own connection failed: a cut database), the transitions it derived meanwhile, as they happened
    (`cluster.lead_gap`); else (the last leader died before writing it, or its queue died with it) transitions
    made up from the stored state to the board's. This instance's own writes go first: while they wait (a database
    that was cut, its journal not yet replayed) the stored states are older than its board, and a transition made
    up from them would be a change that never happened."""
    if services.writer.behind and not await services.writer.flush():
        log.warning("leading with writes of this instance still waiting: the stored derived states are not made up")
        return
    stored = await asyncio.to_thread(services.store.load_statuses)
    reached = {key: before.state for key, before in stored.items()}  # each component's state once these written
    for transition in gap.resume(stored):
        services.writer.add_transition(transition)
        reached[transition.ref.key] = transition.state
        log.info(
            "%s %s → %s (%s, written on taking the lead again)",
            transition.ref.key, transition.previous, transition.state, transition.source,
        )  # fmt: skip
    now, change = services.clock(), BoardChange()
    for key, status in services.board.statuses().items():
        before = stored.get(key)
        if key.startswith("check:") or before == status:
            continue
        if before is not None and reached[key] != status.state:
            at = max(status.changed_at or status.since or now, before.changed_at or before.since or now)
            change.transitions.append(
                Transition(status.ref, reached[key], status.state, at, now, status.source, status.progress)
            )
        change.statuses.append(status)
    for transition in change.transitions:
        services.writer.add_transition(transition)
        log.info(
            "%s %s → %s (%s, made up on taking the lead)",
            transition.ref.key, transition.previous, transition.state, transition.source,
        )  # fmt: skip
    for status in change.statuses:
        services.writer.set_status(status)


def _join_cluster(services: Services, location: str | None) -> Coordinator | None:
    """On PostgreSQL, this instance among the others of its location: it probes and writes its share of the
    checks, follows what the others store of theirs, and leads (housekeeping, notifications, derived states) only
    if it holds the lead. None on SQLite (one instance per file, `cluster/single_instance.py`)."""
    if services.store.engine.dialect.name != "postgresql":
        return None
    if services.workers is not None:  # each worker's share is not yet cut from this instance's (cli refuses it too)
        raise MonitorError(said("--probe-workers: more than 1 is not supported on PostgreSQL yet (shared checks)"))

    gap = LeadGap()
    follow, adopt = _following(services, lambda key: cluster.follows(key), lambda: cluster.leading, gap)  # noqa: PLW0108 (below)

    async def take_lead() -> None:
        await _take_lead(services, gap)

    def on_lead(leading: bool) -> None:
        if not leading:
            gap.lost(services.board.statuses().values())

    memories = MemoryReads(services.store.load_memories)

    async def taken_over(key: str) -> None:
        """A check's first result here: first its memory as its last owner stored it (written after the last
        heartbeat's reading), so that its chain of transitions goes on where the store left it; and, with several
        locations, this location's own memory of it."""
        if cluster.taken(key):
            mine = located_key(key, cluster.location)
            try:  # read with those of the other checks taken over meanwhile: one query, not one per check
                found = await memories.get((key, mine) if len(cluster.locations()) > 1 else (key,))
            except StoreError as exc:
                log.warning("%s; the memory followed at the last heartbeat stands", exc)
                found = {}
            if found:
                services.pipeline.record(services.board.follow(found, services.clock()))
        cluster.recording(key)  # its result is recorded next, with no wait between

    settings = services.settings.cluster

    def share() -> None:  # the checks this instance schedules: those it owns, or takes over soon
        if services.scheduler.running:
            report = services.scheduler.apply(services.settings)
            cluster.scheduled(report.added, report.removed)

    cluster = Coordinator(
        services.store,
        location or settings.location,
        settings.heartbeat,
        follow=lambda: follow(None),
        before_lead=take_lead,
        on_lead=on_lead,
        on_share=share,
        follower=Follower(services.store, memories=follow, statuses=adopt, declared=services.refresh_overrides),
    )
    services.cluster = cluster
    services.scheduler.gate = cluster.runs
    services.pipeline.before_record = taken_over
    services.scheduler.scheduled = cluster.may_own
    services.scheduler.since = cluster.since
    services.scheduler.gate_offset = cluster.gate_offset
    services.pipeline.writes = cluster.writes
    services.pipeline.unwritten = gap.hold
    services.board.followed = cluster.follows
    services.board.here, services.board.quorum = cluster.location, settings.quorum  # each location's verdict
    if services.notifier is not None:
        services.notifier.may_run = lambda: cluster.leading
    return cluster


def _start_jobs(services: Services, tick_seconds: float, housekeeping_seconds: float) -> None:
    """Probes, and the periodic work."""
    report = services.scheduler.start(services.settings)
    if services.cluster is not None:
        services.cluster.scheduled(report.added)
    for name, seconds, job in periodic_jobs(services, tick_seconds, housekeeping_seconds):
        services.scheduler.every(name, seconds, job)
    if services.workers is not None:
        log.info("scheduler started: %d checks, probed by %d workers", len(report.added), services.workers.count)
    else:
        log.info("scheduler started: %d checks", len(report.added))


def _start_publishing(services: Services, public: ASGIApp) -> asyncio.Task[None] | None:
    """With `web.publish_dir`: the task keeping that folder a static export of the public site."""
    web = services.settings.web
    if web.publish_dir is None or web.public_url is None:  # the config's rules refuse one without the other
        return None
    metrics = services.metrics

    def published(report: PublishReport) -> None:
        metrics.note_publication(report.written + report.removed, report.seconds)

    publisher = Publisher(
        services,
        public,
        {"services": services},
        Path(web.publish_dir),
        web.public_url,
        on_published=published,
        on_failed=metrics.note_publish_failure,
        store_seen=services.writer.flush,
    )
    services.publisher = publisher

    def changed(change: BoardChange) -> None:
        if change.statuses or change.transitions:  # a state shown changed: publish it now, not at the next poll
            publisher.wake()

    services.pipeline.listeners.append(changed)
    metrics.note_publishing(lambda: publisher.published_at, publisher.behind)
    task = asyncio.get_running_loop().create_task(publisher.run(), name="tpmon-publish")
    task.add_done_callback(_publishing_ended)
    return task


CANCEL_GRACE = 5.0  # seconds a cancelled task (the publishing loop) gets to end at shutdown


async def _cancel(task: asyncio.Task[None] | None, within: float = CANCEL_GRACE) -> None:
    """Cancel `task` and wait for its end, cancelling it again every 0.1 s: on Python 3.11 `asyncio.wait_for`
    drops a cancellation that comes as what it waits for completes (python/cpython#86296, fixed in 3.12). The
    publishing loop waits so for each wake-up and each page; a change at the moment of SIGTERM kept it running
    until the shutdown deadline, which then exited 1 (seen in CI). Given up on, said, after `within` s."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        if loop.time() >= deadline:
            log.warning(
                "%s not stopped within %g s of its cancellation: shutting down without it", task.get_name(), within
            )
            return
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


def _publishing_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("publishing stopped", exc_info=task.exception())


async def _within(stopping: Awaitable[None], seconds: float, what: str) -> None:
    """Await a component's stop for at most `seconds` (a shutdown is bounded); log it if it takes longer."""
    try:
        await asyncio.wait_for(stopping, seconds)
    except TimeoutError:
        log.warning("%s not stopped within %g s: shutting down without it", what, seconds)


async def _stop(services: Services, cluster: Coordinator | None) -> None:
    """A bounded shutdown: no more jobs; the cluster let go first; then the probes (the workers' last results still
    reach the writer); then the writer, the desk and the notifier."""
    services.scheduler.shutdown()
    if cluster is not None:  # first: its row deleted, the lead let go; the others take over at their next heartbeat
        await _within(cluster.stop(), CLUSTER_GRACE, "cluster membership")
    if services.workers is not None:
        await services.workers.stop()
    services.stopping.set()  # long loops of reads (roll-ups, pruning, availability) end where they are
    # side by side, each within STOP_GRACE + 1 s: the writer (written, or journalled), the operators' desk
    # (pushes waiting, token uses), the notifier (the sending under way; an unsettled one goes out again)
    stops = [services.writer.stop(), _within(services.desk.stop(), STOP_GRACE + 1, "operators' desk")]
    if services.notifier is not None:
        stops.append(_within(services.notifier.stop(grace=STOP_GRACE), STOP_GRACE + 1, "notifier"))
    await asyncio.gather(*stops)


@dataclass(frozen=True)
class Listeners:
    """The two ASGI apps of one tpmon, sharing one set of Services: the public site (read-only) and the operators'
    listener (write API, partners' pushes, staff sign-in). The first whose lifespan starts builds the Services;
    the other borrows them, and must stop first."""

    public: Starlette
    admin: Starlette


@dataclass
class _Shared:
    services: Services | None = None


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
    passwords: Passwords | None = None,
    journal: Journal | None = None,
    location: str | None = None,
    probe_workers: int = 1,
) -> Starlette:
    """The public app alone (see `create_apps`); nothing is opened or started until the lifespan runs.

    `clock` and `speed` let the demo run on scenario time: intervals pass `speed` times faster. `journal`
    receives what the store writer cannot write (replay it before: `store.writer.replay_journal`).
    """
    return create_apps(
        settings,
        store=store,
        database_url=database_url,
        clock=clock,
        schedule=schedule,
        environ=environ,
        config_path=config_path,
        tick_seconds=tick_seconds,
        housekeeping_seconds=housekeeping_seconds,
        speed=speed,
        handle_sighup=handle_sighup,
        reload_status=reload_status,
        passwords=passwords,
        journal=journal,
        location=location,
        probe_workers=probe_workers,
    ).public


def _started(loop: asyncio.AbstractEventLoop, services: Services, *, handle_sighup: bool, freeze_heap: bool) -> None:
    """Once everything is started: SIGHUP reloads the config; with `freeze_heap`, the heap is frozen — what startup
    built (the config, the board, a state per component, the jobs, imported modules: some 240,000 objects at 990
    checks) lives as long as the process, and frozen, the collector's full passes no longer walk it: each took
    0.33 s of CPU at 990 checks on a slow machine, a stall of the probes and of a publication every few changes
    (tests/benchmarks/publish_change.py). Cyclic garbage frozen with it is never freed (a one-off)."""
    if handle_sighup:
        loop.add_signal_handler(signal.SIGHUP, services.reload)
    if freeze_heap:
        gc.freeze()


def create_apps(
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
    passwords: Passwords | None = None,
    journal: Journal | None = None,
    location: str | None = None,
    probe_workers: int = 1,
    worker_logs: tuple[str, str] = ("info", "text"),
    freeze_heap: bool = False,
) -> Listeners:
    """The public and the operators' ASGI apps over the same Services; `passwords` tunes Argon2 (tests); `journal`
    receives what the store writer cannot write; `location` overrides the config's `cluster.location`;
    `probe_workers` > 1 probes in that many processes (`probe_pool`), which log at `worker_logs` (level, format);
    `freeze_heap` (`tpmon serve`, a process of its own): what startup built is left out of the collector's passes."""
    shared = _Shared()

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[Services]:
        db = store if store is not None else await asyncio.to_thread(Store.open, database_url or default_url())
        env = os.environ if environ is None else environ
        services, clients = await asyncio.to_thread(
            _assemble,
            settings,
            db,
            clock,
            env,
            speed,
            config_path,
            reload_status,
            passwords,
            schedule,
            journal,
            probe_workers,
            worker_logs,
        )
        services.location = services.metrics.location = location or settings.cluster.location  # probe series say it
        loop = asyncio.get_running_loop()
        # DNS lookups of probes run in the default pool: size it for the probe concurrency (asyncio's
        # default is cores + 4), so that slow resolvers queue probes, not everything else.
        executor = ThreadPoolExecutor(max_workers=min(64, settings.max_concurrency + 4), thread_name_prefix="tpmon")
        loop.set_default_executor(executor)
        await services.writer.start()
        cluster = _join_cluster(services, location) if schedule else None
        if cluster is not None:
            await cluster.start()  # before the first evaluation and the probes: which checks are this instance's
        await services.refresh_overrides()  # before the first evaluation: no flicker through probe states
        services.pipeline.record(services.board.evaluate_all(clock()))
        await asyncio.to_thread(services.refresh_metrics)  # reads only: rollups stay housekeeping's
        await services.desk.start()  # after the first evaluation: the demo's clock runs 16,000 times faster
        if schedule:
            _start_jobs(services, tick_seconds, housekeeping_seconds)
            if services.workers is not None:
                await services.workers.start(services.settings)
            if services.notifier is not None:
                await services.notifier.start()
        publishing = _start_publishing(services, public) if schedule else None
        _started(loop, services, handle_sighup=handle_sighup, freeze_heap=freeze_heap)
        try:
            yield services
        finally:
            if handle_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            await _cancel(publishing)
            await _stop(services, cluster)
            db.abort_operations()  # reads of jobs still under way (a hung database) end now, not at their deadline
            await clients.aclose()
            if store is None:
                await asyncio.to_thread(db.close)
            # the pool stays the loop's default: asyncio.run shuts it down, after whatever still needs it

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        if shared.services is not None:  # the other listener runs them: borrow
            yield {"services": shared.services}
            return
        async with running() as services:
            shared.services = services
            try:
                yield {"services": services}
            finally:
                shared.services = None

    public = _PublicApp(routes=routes(), lifespan=lifespan, exception_handlers={404: api_not_found})
    return Listeners(public, _App(routes=admin_routes(), lifespan=lifespan))
