"""The web benchmark's data: a config of 10 networks × 11 lines × 3 checks, and 400 days of history in a store.

History goes through the real engine and store: synthetic probe results are folded into a `Board` (so the
checks', flows', lines' and networks' transitions come from the status engine, outages dated retroactively,
recoveries in steps), written with `Store.write` in batches, then rolled up by `roll_up`. Before the last
24 hours only the results that change something are fed (three failures to open an outage, two successes to
close it); the last 24 hours get every result at each check's interval, and those raw results are stored.
Multi-day outages also get a resolved incident. The outages are the same for a given seed and `now`.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.board import Board
from monitor.config import Settings
from monitor.declared.incidents import IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.models import ComponentRef, FailureReason, ProbeResult
from monitor.store import Batch, Store
from monitor.store.declaration_store import Declarations
from monitor.store.housekeeping import component_keys
from monitor.store.rollup_store import roll_up

NETWORKS = {  # slug → (name, kind); the first one is the page the benchmark loads
    "viamedis": ("Viamedis", "operateur"),
    "almerys": ("Almerys", "operateur"),
    "sp-sante": ("SP Santé", "operateur"),
    "isante": ("iSanté", "operateur"),
    "actil": ("Actil", "operateur"),
    "santeclair": ("Santéclair", "reseau_de_soins"),
    "kalixia": ("Kalixia", "reseau_de_soins"),
    "itelis": ("Itelis", "reseau_de_soins"),
    "carte-blanche": ("Carte Blanche", "reseau_de_soins"),
    "seveane": ("Sévéane", "reseau_de_soins"),
}
_DISPENSING = ("droits", "facturation", "paiements")
_WITH_PEC = ("portail_ps", "pec", "facturation")
# Checks hang on flows, not lines: each line gets 3 checks, one on each of 3 flows it relies on.
LINE_FLOWS = {
    **{line: _DISPENSING for line in ("pharmacie", "biologie", "radiologie", "medecins", "auxiliaires", "transport")},
    **{line: _WITH_PEC for line in ("optique", "audio", "dentaire")},
    "hospitalisation": ("pec", "facturation", "droits"),
    "centres_sante": _DISPENSING,
}
FAST_FLOWS = ("portail_ps", "pec")  # probed every 30 s; the others every 60 s
DENSE = timedelta(hours=24)  # every result stored, for the latency charts
BATCH = 5000


def interval_of(flow: str) -> int:
    return 30 if flow in FAST_FLOWS else 60


def config_yaml(target: str) -> str:
    """The benchmark's config; every check probes `target` (an HTTP server answering 200)."""
    out = [
        "stabilization: 30m",
        "raw_retention_days: 30",
        "defaults: {interval: 60s, timeout: 5s, failure_threshold: 3, success_threshold: 2}",
        "networks:",
    ]
    for slug, (name, kind) in NETWORKS.items():
        out += [f"  {slug}:", f"    name: {name}", f"    kind: {kind}", f"    lines: [{', '.join(LINE_FLOWS)}]"]
        out.append("    checks:")
        for line, flows in LINE_FLOWS.items():
            for flow in flows:
                out.append(
                    f"      - {{name: {line}-{flow}, flow: {flow}, kind: http, interval: {interval_of(flow)}s,"
                    f' degraded_after: 2s, url: "{target}/{slug}/{line}/{flow}"}}'
                )
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Window:
    """A span during which one check fails (`down`) or answers slowly (`slow`)."""

    start: datetime
    end: datetime
    mode: str


@dataclass
class Plan:
    windows: dict[str, list[Window]] = field(default_factory=dict)  # by check key, in time order
    settle_at: list[datetime] = field(default_factory=list)  # when a recovery's stabilization is due
    long_outages: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)  # network, flow, span


def plan_history(settings: Settings, now: datetime, days: int, seed: int) -> Plan:
    """Outages per network flow: ~1.2 a month (short, slow, a few hours), plus multi-day ones with staged recovery."""
    rng, plan = random.Random(seed), Plan()
    first, last = now - timedelta(days=days) + timedelta(hours=2), now - timedelta(hours=3)
    dense_from = now - DENSE
    stabilization = timedelta(seconds=settings.stabilization)
    for slug, network in settings.networks.items():
        by_flow: dict[str, list[str]] = {}
        for check in network.checks:
            by_flow.setdefault(check.flow, []).append(ComponentRef.for_check(slug, check.flow, check.name).key)
        busy: dict[str, list[tuple[datetime, datetime]]] = {flow: [] for flow in by_flow}
        episodes: list[tuple[str, datetime, timedelta, str, float]] = []  # flow, start, length, mode, recovery share
        for _ in range(3 if slug == "viamedis" else 2):  # multi-day outages, 1-5 days, a third spent recovering
            flow = rng.choice(("portail_ps", "pec", "facturation"))
            start = first + (last - first - timedelta(days=6)) * rng.random()
            episodes.append((flow, start, timedelta(hours=rng.uniform(24, 120)), "down", 0.35))
        for flow in by_flow:
            at = first
            while True:
                at += timedelta(days=rng.expovariate(1.2 / 30))
                if at >= last:
                    break
                kind = rng.random()
                if kind < 0.6:
                    episodes.append((flow, at, timedelta(minutes=rng.uniform(6, 60)), "down", 0.0))
                elif kind < 0.85:
                    episodes.append((flow, at, timedelta(minutes=rng.uniform(15, 120)), "slow", 0.0))
                else:
                    episodes.append((flow, at, timedelta(hours=rng.uniform(2, 12)), "down", 0.3))
        for flow, start, length, mode, recovery in episodes:
            end = start + length
            margin = timedelta(hours=1)
            crosses_dense_day = start - margin < dense_from < end + margin
            if end > last or crosses_dense_day or any(start < b + margin and a - margin < end for a, b in busy[flow]):
                continue  # overlaps another episode of the flow, the start of the dense day or the end
            busy[flow].append((start, end))
            checks = by_flow[flow]
            if mode == "down" and recovery == 0.0 and len(checks) > 2 and rng.random() < 0.3:
                checks = rng.sample(checks, len(checks) // 2)  # some checks only: the flow is partial
            ends = [end - length * recovery * (1 - (i + 1) / len(checks)) for i in range(len(checks))]
            if not recovery:
                ends = [end + timedelta(seconds=rng.uniform(0, 120)) for _ in checks]
            for key, check_end in zip(checks, ends, strict=True):
                begin = start + timedelta(seconds=rng.uniform(0, 60))
                plan.windows.setdefault(key, []).append(Window(begin, check_end, mode))
            plan.settle_at.append(max(ends) + timedelta(minutes=3) + stabilization)
            if length >= timedelta(hours=24):
                plan.long_outages.append((slug, flow, start, end))
    for windows in plan.windows.values():
        windows.sort(key=lambda w: w.start)
    return plan


def _result(ref: ComponentRef, at: datetime, mode: str, rng: random.Random) -> ProbeResult:
    if mode == "down":
        if rng.random() < 0.3:
            return ProbeResult(ref, at, 5.0, False, FailureReason.TIMEOUT, "no answer within 5 s")
        return ProbeResult(ref, at, 0.03, False, FailureReason.HTTP_STATUS, "status 503", status_code=503)
    total = rng.uniform(2.2, 4.0) if mode == "slow" else rng.lognormvariate(-3.0, 0.4)
    phases = {"resolve": 0.0005, "connect": total * 0.1, "processing": total * 0.8, "transfer": total * 0.1}
    return ProbeResult(ref, at, total, True, status_code=200, phases=phases, slow=mode == "slow")


def sparse_results(settings: Settings, plan: Plan, start: datetime, until: datetime, seed: int) -> list[ProbeResult]:
    """What changes a check before `until`: 3 failures (or slow answers) open a window, 2 successes close it."""
    rng, events = random.Random(seed + 1), []
    for slug, check in settings.checks():
        ref = ComponentRef.for_check(slug, check.flow, check.name)
        step = timedelta(seconds=check.interval)
        events.append((start, ref, "ok"))
        for window in (w for w in plan.windows.get(ref.key, []) if w.end < until):
            events += [(window.start + step * n, ref, window.mode) for n in range(3)]
            events += [(window.end + step * n, ref, "ok") for n in range(2)]
    events.sort(key=lambda event: event[0])
    return [_result(ref, at, mode, rng) for at, ref, mode in events]


class Probing:
    """The last day's results: one per check and interval, each check at its own phase, as the scheduler runs."""

    def __init__(self, settings: Settings, plan: Plan, start: datetime, seed: int) -> None:
        self.rng = random.Random(seed + 2)
        self.plan = plan
        self.due: list[tuple[ComponentRef, timedelta, datetime]] = []
        for slug, check in settings.checks():
            step = timedelta(seconds=check.interval)
            self.due.append(
                (ComponentRef.for_check(slug, check.flow, check.name), step, start + step * self.rng.random())
            )

    def until(self, end: datetime) -> list[ProbeResult]:
        """Every result due before `end` and not given yet, in time order."""
        events = []
        for n, (ref, step, first) in enumerate(self.due):
            windows = [w for w in self.plan.windows.get(ref.key, []) if w.end > first]
            at = first
            while at < end:
                events.append((at, ref, next((w.mode for w in windows if w.start <= at < w.end), "ok")))
                at += step
            self.due[n] = (ref, step, at)
        events.sort(key=lambda event: event[0])
        return [_result(ref, at, mode, self.rng) for at, ref, mode in events]


@dataclass
class Built:
    results_stored: int = 0
    transitions: int = 0
    rollups: int = 0
    incidents: int = 0
    ends_at: datetime | None = None  # the last stored result's time: the server should start right after
    seconds: dict[str, float] = field(default_factory=dict)


class Replay:
    """Folds results into a board in time order and writes the raw results asked for and every transition."""

    def __init__(self, store: Store, board: Board, settle_at: list[datetime], built: Built) -> None:
        self.store, self.board, self.built = store, board, built
        self.settle = sorted(settle_at)
        self.batch = Batch()

    def feed(self, results: list[ProbeResult], *, keep: bool) -> None:
        for result in results:
            while self.settle and self.settle[0] <= result.started_at:  # a recovery's stabilization is due
                self.batch.transitions += self.board.evaluate_all(self.settle.pop(0)).transitions
            self.batch.transitions += self.board.record(result, result.finished_at).transitions
            if keep:
                self.batch.results.append(result)
            if len(self.batch.results) + len(self.batch.transitions) >= BATCH:
                self.flush()
        self.flush()

    def finish(self, now: datetime) -> None:
        """The board's last statuses and check memories, as the server will find them at start."""
        self.batch.transitions += self.board.evaluate_all(now).transitions
        self.batch.statuses = dict(self.board.statuses())
        self.batch.memories = dict(self.board.memories())
        self.flush()

    def flush(self) -> None:
        self.store.write(self.batch)
        self.built.results_stored += len(self.batch.results)
        self.built.transitions += len(self.batch.transitions)
        self.batch = Batch()


def build(
    store: Store, settings: Settings, now: datetime, *, days: int = 400, seed: int = 2024, workers: int = 2
) -> Built:
    """Fill `store` with `days` of history up to `now`, then a last day of raw results up to when it is done.

    The roll-up of the long history runs before the last day is replayed, so the last results are seconds
    old when the server starts: no check is stale at start (30 s checks are after 90 s), as after a restart.
    """
    built, began, dense_from = Built(), time.perf_counter(), now - DENSE
    plan = plan_history(settings, now, days, seed)
    replay = Replay(store, Board(settings, now - timedelta(days=days)), plan.settle_at, built)
    replay.feed(sparse_results(settings, plan, now - timedelta(days=days), dense_from, seed), keep=False)
    built.seconds["history"] = time.perf_counter() - began
    began = time.perf_counter()
    built.incidents = _incidents(store, settings, plan)
    built.seconds["incidents"] = time.perf_counter() - began
    began = time.perf_counter()
    keys = component_keys(settings)
    built.rollups = roll_up_all(store, keys, dense_from, workers=workers)
    built.seconds["rollups"] = time.perf_counter() - began
    began = time.perf_counter()
    probing, until = Probing(settings, plan, dense_from, seed), dense_from
    while datetime.now(UTC) - until > timedelta(seconds=5):  # catch up with the clock: each pass is shorter
        until = datetime.now(UTC)
        replay.feed(probing.until(until), keep=True)
    replay.finish(until)
    built.rollups += roll_up(store, keys, until, chunk=BATCH).rows  # resumes from the last stored hour
    built.ends_at = until
    built.seconds["last_day"] = time.perf_counter() - began
    return built


def roll_up_all(store: Store, keys: list[str], now: datetime, workers: int) -> int:
    """`roll_up` of every component from its first transition, the components shared among `workers` processes.

    The roll-up is CPU-bound Python (~40 µs a row, 5 million rows here); the database serializes the writes.
    """
    if workers <= 1 or store.engine.url.database in (None, "", ":memory:"):
        return roll_up(store, keys, now, chunk=BATCH).rows
    store.engine.dispose()  # no connection crosses the fork
    url = store.engine.url.render_as_string(hide_password=False)
    shares = [keys[n::workers] for n in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return sum(pool.map(_roll_up_share, [url] * workers, shares, [now] * workers))


def _roll_up_share(url: str, keys: list[str], now: datetime) -> int:
    with Store.open(url, migrate=False) as store:
        return roll_up(store, keys, now, chunk=BATCH).rows


def _flush(store: Store, batch: Batch, built: Built) -> tuple[int, int]:
    store.write(batch)
    return built.results_stored + len(batch.results), built.transitions + len(batch.transitions)


def _incidents(store: Store, settings: Settings, plan: Plan) -> int:
    """One resolved incident per multi-day outage, as ops would have declared it."""
    declarations = Declarations(store, settings)
    for network, flow, start, end in plan.long_outages:
        label = settings.flows[flow].label
        name = settings.networks[network].name
        title = Bilingual(f"{name} : {label.fr} indisponible", f"{name}: {label.en} unavailable")
        first = IncidentUpdate(
            start + timedelta(minutes=20),
            "investigating",
            Bilingual("Le service ne répond plus ; nos équipes analysent.", "The service no longer answers."),
            Bilingual("Facturez en tiers payant AMO seul ; gardez les justificatifs.", "Bill the AMO part only."),
        )
        opened = declarations.open_incident(
            title=title, impact="major", first=first, components=[f"flow:{network}/{flow}"]
        )
        assert opened.id is not None
        declarations.resolve_incident(opened.id, at=end + timedelta(minutes=40))
    return len(plan.long_outages)
