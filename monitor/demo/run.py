"""`tpmon demo`: replay the weeks before "now", then run the story live on the simulator, monitor and web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from ..app import QuietServer, create_app
from ..board import Board, BoardChange
from ..config import Notifications, Settings, load_config
from ..push_signals import to_result
from ..store import Batch, Store, tables
from ..store.declaration_store import Declarations
from ..store.outbox_store import Outbox
from ..store.subscriber_store import Subscribers
from ..store.writer import REPLAY_DEADLINE
from .certs import make_certs
from .clock import VirtualClock
from .events import Poster
from .replay import expected_result
from .scenario import Scenario, load_scenario
from .simulator import Simulator

if TYPE_CHECKING:
    from .mail_sink import MailSink

__all__ = ["DemoOptions", "default_speed", "run_demo"]

log = logging.getLogger("tpmon.demo")

STORY_MINUTES = 10.0
LAG_TOLERANCE = 10.0  # real seconds without a result before a check of the demo is unknown, at any speed
CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"


def default_speed(scenario: Scenario, minutes: float = STORY_MINUTES) -> float:
    """The speed at which the live part of the story lasts `minutes`."""
    return (scenario.story_until - scenario.live_from).total_seconds() / (minutes * 60)


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    speed: float | None = None  # scenario seconds per real second; None: the story lasts ~10 minutes
    workdir: Path = Path("var/demo")
    config: Path = CONFIG
    smtp_sink: Path | None = None  # keep the e-mails sent to a demo optician subscribed to Viamedis optique here


class _Recorder:
    """Collects what the board changes during the replay and writes it in large batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batch = Batch()

    def __call__(self, change: BoardChange) -> None:
        self.batch.transitions.extend(change.transitions)
        self.batch.statuses.update({s.ref.key: s for s in change.statuses})
        self.batch.memories.update(change.memories)

    def flush(self) -> None:
        if not self.batch.empty:
            self.store.write(self.batch, deadline=REPLAY_DEADLINE)  # 5,000 results a transaction: not a live write
            self.batch = Batch()


async def replay(settings: Settings, scenario: Scenario, store: Store, clock: VirtualClock, poster: Poster) -> int:
    """Run the board, status engine and store over [history_from, live_from) on the virtual clock: a probing
    round every smallest interval, and one at each event."""
    start, until = scenario.history_from, scenario.live_from
    step = timedelta(seconds=min(c.interval for _, c in settings.checks()))
    board = Board(settings, start)
    record = _Recorder(store)
    probed = [(n, c) for n, c in settings.checks() if c.kind != "push"]
    beats = {f"{n}/{c.flow}": timedelta(seconds=c.interval) for n, c in settings.checks() if c.kind == "push"}
    last_beat = dict.fromkeys(beats, start - max(beats.values(), default=step))
    pending = list(scenario.between(start, until))
    results, windows = 0, False
    now = start
    while now < until:
        clock.set(now)
        changed = False
        while pending and pending[0].at <= now:
            event = pending.pop(0)
            changed |= poster.post(event)
            windows |= event.maintenance is not None
        for flow, every in beats.items():
            if now - last_beat[flow] >= every or any(flow in e.push for e in scenario.between(now - step, now)):
                last_beat[flow] = now  # the operator's heartbeat, folded as the inbox would fold it
                for signal in poster.push(flow, scenario.reported(flow, now), now):
                    record(board.record(to_result(signal), now))
        if changed or windows:
            record(board.set_overrides(poster.declarations.overrides(now), now))
        for network, check in probed:
            result = expected_result(scenario, network, check, now)
            record.batch.results.append(result)
            record(board.record(result, now))
        record(board.tick(now))
        results += len(probed)
        if len(record.batch.results) >= 5000:
            record.flush()
        # the next probing round, or the next event if sooner: what an event changes is seen when it happens
        now = min(now + step, pending[0].at) if pending and pending[0].at > now else now + step
    record.flush()  # the app's housekeeper rolls the replayed transitions up on its first run
    return results


async def drive(scenario: Scenario, clock: VirtualClock, poster: Poster) -> None:
    """The live part: post each event when the virtual clock passes it; partners keep sending heartbeats."""
    settings = poster.settings
    pending = list(scenario.between(scenario.live_from, scenario.story_until + timedelta(days=3650)))
    pushed = sorted({f"{n}/{c.flow}" for n, c in settings.checks() if c.kind == "push"})
    every = timedelta(seconds=min((c.interval for _, c in settings.checks() if c.kind == "push"), default=3600) / 2)
    last_beat = scenario.live_from - every
    while True:
        now = clock.now()
        while pending and pending[0].at <= now:
            event = pending.pop(0)
            await asyncio.to_thread(poster.post, event)
            log.info("scenario %s: posted", event.at.isoformat())
        if now - last_beat >= every:
            for flow in pushed:
                await asyncio.to_thread(poster.push, flow, scenario.reported(flow, now), now)
            last_beat = now
        await asyncio.sleep(0.2)


def _environment(http_url: str, tls_url: str) -> Mapping[str, str]:
    return {**os.environ, "TPMON_DEMO_HTTP": http_url, "TPMON_DEMO_TLS": tls_url}


OPTICIAN = "opticien.demo@exemple.fr"  # fictitious: the subscriber whose mailbox the sink shows


def _tolerant_of_lag(settings: Settings, speed: float) -> Settings:
    """A check goes unknown only after `LAG_TOLERANCE` real seconds without a result, whatever the speed.

    At ×16,000 three 2-hour intervals last 1.35 s on the wall clock: a busy machine delays a probe that long
    without any prober being dead, and the story would flicker to « Statut inconnu ». Nothing in the story
    relies on a check going stale (partners' silence is not part of it).
    """
    shortest = min((check.interval for _, check in settings.checks()), default=0.0)
    if shortest <= 0:
        return settings
    intervals = min(100.0, max(settings.stale_after_intervals, LAG_TOLERANCE * speed / shortest))
    return settings.model_copy(update={"stale_after_intervals": intervals})


def _with_notifications(settings: Settings, options: DemoOptions) -> Settings:
    """The demo's config with e-mail subscriptions on (its site, a fictitious controller)."""
    notifications = Notifications(
        public_url=f"http://{options.host}:{options.port}",
        sender="etat-tiers-payant@exemple.fr",
        controller="Démonstration tpmon (fictif)",
        contact="dpo@exemple.fr",
    )
    return settings.model_copy(update={"notifications": notifications})


def _subscribe_the_optician(store: Store, settings: Settings, since: datetime) -> None:
    """The history replayed is already told (to nobody); the optician follows Viamedis optique from `since`."""
    quiet = settings.model_copy(update={"notifications": None})
    outbox = Outbox(store)
    while outbox.fan_out(quiet, limit=5000):
        pass
    subscribers = Subscribers(store, clock=lambda: since)
    subscriber = subscribers.request(OPTICIAN, ["viamedis/optique"], "fr")
    subscribers.confirm(subscriber, lambda address: address == OPTICIAN, ["viamedis/optique"])
    with store.engine.begin() as connection:  # as if the confirmation link had been followed long ago
        deliveries = tables.notification_delivery
        connection.execute(deliveries.delete().where(deliveries.c.subscriber_id == subscriber))


async def run_demo(options: DemoOptions, announce: Callable[[str], None] = print) -> None:
    """Everything offline on loopback; returns when the web server stops (Ctrl-C)."""
    scenario = load_scenario()
    speed = options.speed or default_speed(scenario)
    workdir = options.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("tpmon.db*"):
        old.unlink()
    certs = make_certs(workdir)
    clock = VirtualClock(scenario.history_from, speed)
    simulator = Simulator(scenario, clock, {})
    http_url, tls_url = await simulator.start(certs)
    env = _environment(http_url, tls_url)
    settings = _tolerant_of_lag(load_config(options.config, environ=env), speed)
    sink: MailSink | None = None
    if options.smtp_sink is not None:
        from .mail_sink import MailSink

        sink = MailSink(options.smtp_sink, announce, options.host)
        sink.start()
        settings = _with_notifications(settings, options)
        env = {**env, "TPMON_SMTP_URL": sink.url, "TPMON_NOTIFY_SECRET": secrets.token_hex(32)}
    simulator.names = {name: network.name for name, network in settings.networks.items()}
    store = await asyncio.to_thread(Store.open, f"sqlite:///{workdir / 'tpmon.db'}")
    poster = Poster(store, settings, Declarations(store, settings, clock=clock))
    driver: asyncio.Task[None] | None = None
    try:
        began = time.perf_counter()
        announce("tpmon démo — rejoue l'historique avant le 31 janvier 2024… / replaying the history…")
        count = await replay(settings, scenario, store, clock, poster)
        log.info("replayed %d results in %.1f s", count, time.perf_counter() - began)
        clock.set(scenario.live_from)
        if sink is not None:
            await asyncio.to_thread(_subscribe_the_optician, store, settings, scenario.live_from)
        clock.start()
        app = create_app(
            settings, store=store, clock=clock, environ=env, speed=speed, tick_seconds=0.5, housekeeping_seconds=5
        )
        server = QuietServer(_uvicorn_config(app, options))
        driver = asyncio.create_task(drive(scenario, clock, poster))
        announce(_banner(options, speed))
        if sink is not None:
            announce(f"  Courriels reçus par {OPTICIAN} (Viamedis optique) → {options.smtp_sink}/*.eml\n")
        await server.serve()
    finally:
        if driver is not None:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
        await simulator.stop()
        await asyncio.to_thread(store.close)
        if sink is not None:
            sink.stop()


def _uvicorn_config(app: Starlette, options: DemoOptions) -> uvicorn.Config:
    return uvicorn.Config(app, host=options.host, port=options.port, log_config=None, access_log=False)


def _banner(options: DemoOptions, speed: float) -> str:
    base = f"http://{options.host}:{options.port}"
    minutes = STORY_MINUTES * default_speed(load_scenario()) / speed
    return "\n".join(
        [
            "",
            "tpmon — démonstration hors ligne : les cyberattaques de février 2024 (Viamedis, Almerys)",
            "tpmon — offline demo: the February 2024 cyberattacks (Viamedis, Almerys)",
            f"  Page d'état / status page   {base}/   (English: {base}/?lang=en)",
            f"  Viamedis                    {base}/reseaux/viamedis/optique",
            f"  Assurés / insured members   {base}/assures",
            f"  API Statuspage              {base}/api/v2/summary.json",
            f"  API tpmon (OpenAPI 3.1)     {base}/api/v1/openapi.json",
            f"  Flux / feeds                {base}/feed.atom   {base}/feed.rss",
            f"  Métriques / metrics         {base}/metrics",
            f"  Le récit dure environ {minutes:.0f} min (×{speed:.0f}) ; Ctrl-C pour arrêter.",
            f"  The story lasts about {minutes:.0f} min (×{speed:.0f}); Ctrl-C to stop.",
            "",
        ]
    )
