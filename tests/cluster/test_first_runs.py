"""The first run of a check this instance takes (a start, a share handed over) reads the check's memory from the store
before its result is recorded. Those reads must not make the probes late: with two instances on PostgreSQL, each first
run read its memory under one of the scheduler's concurrency permits, ~0.4 s each on a busy database; 64 permits let
~150 runs a second through where 500 were due, and the first instance's probes were up to 20 s late (its lag
histogram: an eighth of its runs above 5 s) until the last of its 3,000 first runs was done
(`tests/benchmarks/instances.py --ramp`). Here the coordinator and the scheduler are wired as the app wires them, the
probes are real (TCP, counted where they arrive), and the store's reading is held until the test lets it go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.board import Board
from monitor.cluster.coordinator import Coordinator, MemoryReads
from monitor.cluster.ownership import Member, View
from monitor.config import Check, Settings
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.models import CheckMemory, State
from monitor.probes import ProbeContext
from monitor.runner import Pipeline, run_check
from monitor.scheduler import Scheduler, SchedulerHooks
from monitor.store import Batch, Store, StoreWriter

HEARTBEAT = 2.0
S = timedelta(seconds=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'tpmon.db'}")
    yield opened
    opened.close()


async def _until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    """Poll a condition on the loop with a deadline (the scheduler runs its jobs on the same loop)."""
    async with asyncio.timeout(deadline):
        while not condition():  # noqa: ASYNC110 - the jobs signal nothing else to wait on
            await asyncio.sleep(0.01)


def _settings(port: int, names: list[str], max_concurrency: int) -> Settings:
    checks = [
        {"name": n, "flow": "facturation", "kind": "tcp", "host": "127.0.0.1", "port": port, "interval": "1s"}
        | {"timeout": "0.5s"}
        for n in names
    ]
    networks = {"alpha": {"name": "Alpha", "kind": "operateur", "lines": ["pharmacie"], "checks": checks}}
    return Settings.model_validate({"jitter": 0, "max_concurrency": max_concurrency, "networks": networks})


async def test_a_first_run_reading_the_store_does_not_hold_back_the_other_probes(store: Store) -> None:
    """One permit, two checks both just taken: the first one's probe is done and its memory is being read (held);
    the second one's probe still goes out, on time, instead of waiting for that reading to end."""
    arrivals: list[str] = []

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrivals.append("probe")
        writer.close()

    server = await asyncio.start_server(target, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = _settings(port, ["c1", "c2"], max_concurrency=1)
    now = datetime.now(UTC)
    coordinator = Coordinator(store, "default", HEARTBEAT)
    coordinator.id = "a"
    coordinator.view = View("a", (Member("a", now - 60 * S, now),), HEARTBEAT, now)  # alone: every check is its own
    store_answers, reading = asyncio.Event(), []

    async def taken_over(key: str) -> None:  # as the app's: a check just taken reads its stored memory first
        if coordinator.taken(key):
            reading.append(key)
            await store_answers.wait()  # a busy database: the reading takes a while

    lags: list[float] = []
    async with httpx.AsyncClient() as http:
        pipeline = Pipeline(
            Board(settings, now),
            StoreWriter(store),
            Metrics(lambda: None),
            lambda network: ProbeContext(network, http, "tpmon-test"),
            lambda: datetime.now(UTC),
            before_record=taken_over,
        )

        async def run(network: str, check: Check) -> Any:
            return await run_check(network, check, pipeline)

        scheduler = Scheduler(run, hooks=SchedulerHooks(lag=lags.append))
        scheduler.gate = coordinator.runs
        scheduler.gate_offset = coordinator.gate_offset
        scheduler.start(settings)
        try:
            await _until(lambda: len(reading) >= 1)  # a first run probed, and reads its memory
            # the other check's first slot comes within its interval: its probe arrives while that reading is held
            await _until(lambda: len(arrivals) >= 2)
            assert not store_answers.is_set()
            assert len(reading) == 2  # and it reads its own memory in turn, its permit already given back
            store_answers.set()
            await _until(lambda: pipeline.board.checked_at is not None)  # the results are recorded once read
        finally:
            store_answers.set()
            scheduler.shutdown()
            server.close()
    assert len(lags) >= 2  # each run told its lag once, as it went through the bound


async def test_memories_asked_together_are_read_in_one_query(store: Store) -> None:
    """Many first runs at once (a share taken): their memories come from one query, not one each; each gets its own,
    and a check with nothing stored gets nothing."""
    at = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    stored = {f"check:alpha/facturation/c{i}": CheckMemory(State.OPERATIONAL, at, last_result_at=at) for i in range(50)}
    assert store.write(Batch(memories=stored))
    asked: list[frozenset[str]] = []

    def read(keys: frozenset[str]) -> dict[str, CheckMemory]:
        asked.append(keys)
        return store.load_memories(keys)

    reads = MemoryReads(read)
    keys = [*stored, "check:alpha/facturation/never"]
    found = await asyncio.gather(*(reads.get([key]) for key in keys))
    assert found[:-1] == [{key: stored[key]} for key in stored]
    assert found[-1] == {}
    assert asked == [frozenset(keys)]  # one query for all of them
    again = await reads.get(["check:alpha/facturation/c7"])  # and later ones, each in a query of its own time
    assert again == {"check:alpha/facturation/c7": stored["check:alpha/facturation/c7"]}
    assert len(asked) == 2


async def test_memories_that_cannot_be_read_fail_every_run_waiting_for_them(store: Store) -> None:
    """A database that does not answer: each run waiting for that query is told (the app keeps the memory it followed
    and says so), none is left waiting for good; the next ones ask again."""
    calls = 0

    def read(keys: frozenset[str]) -> dict[str, CheckMemory]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreError("database unreachable")
        return {}

    reads = MemoryReads(read)
    failed = await asyncio.gather(
        *(reads.get([f"check:alpha/facturation/c{i}"]) for i in range(3)), return_exceptions=True
    )
    assert [type(f) for f in failed] == [StoreError] * 3
    assert await reads.get(["check:alpha/facturation/c1"]) == {}
