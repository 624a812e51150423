"""StoreWriter: batched writes off the event loop, coalescing, refused rows, and a real PostgreSQL outage."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import make_url

from monitor.models import CheckMemory, ComponentRef, ComponentStatus, ProbeResult, Source, State, Streak
from monitor.store import Store, StoreWriter

from .store_support import CHECK, T0, TcpProxy, proxied_url, sample_result, sample_transition, until

FLOW = ComponentRef("flow", "viamedis", "portail_ps")


def status(state: State, minutes: int = 0) -> ComponentStatus:
    return ComponentStatus(FLOW, state, T0 + timedelta(minutes=minutes), Source.PROBE, state)


async def test_many_results_are_written_in_few_transactions(store: Store) -> None:
    durations: list[float] = []
    writer = StoreWriter(store, max_batch=100, on_write=durations.append)
    for i in range(1000):
        writer.add_result(sample_result(i))
    assert writer.stats.buffered_results == 1000

    assert await writer.flush() is True
    assert len(durations) == 10  # one transaction per max_batch results
    assert writer.stats.writes == 10
    assert writer.stats.written_results == 1000
    assert writer.stats.buffered_results == 0
    assert list(writer.stats.write_seconds) == durations
    assert [r.started_at for r in store.results(CHECK, limit=5000)] == [
        T0 + timedelta(seconds=i) for i in reversed(range(1000))
    ]


async def test_background_task_flushes_on_interval_and_on_full_batch(store: Store) -> None:
    writes: list[float] = []
    writer = StoreWriter(store, flush_interval=0.05, max_batch=50, on_write=writes.append)
    await writer.start()
    try:
        writer.add_transition(sample_transition(1))
        writer.set_status(status(State.DOWN))
        writer.set_memory(CHECK.key, CheckMemory(State.DOWN, T0, fails=Streak(3, T0)))
        await until(lambda: writer.stats.written_transitions == 1)
        assert store.load_statuses() == {FLOW.key: status(State.DOWN)}

        slow = StoreWriter(store, flush_interval=3600, max_batch=50, on_write=writes.append)
        await slow.start()
        for i in range(50):
            slow.add_result(sample_result(i))
        await until(lambda: slow.stats.written_results == 50)  # woken by a full batch, not by the clock
        await slow.stop()
    finally:
        await writer.stop()
    assert store.load_memories() == {CHECK.key: CheckMemory(State.DOWN, T0, fails=Streak(3, T0))}


async def test_statuses_and_memories_coalesce_by_key(store: Store) -> None:
    writes: list[float] = []
    writer = StoreWriter(store, on_write=writes.append)
    for minutes, state in enumerate([State.DOWN, State.RECOVERING, State.OPERATIONAL]):
        writer.set_status(status(state, minutes))
        writer.set_memory(CHECK.key, CheckMemory(state, T0 + timedelta(minutes=minutes)))
    assert await writer.flush()
    assert len(writes) == 1
    assert store.load_statuses() == {FLOW.key: status(State.OPERATIONAL, 2)}
    assert store.load_memories() == {CHECK.key: CheckMemory(State.OPERATIONAL, T0 + timedelta(minutes=2))}


async def test_stop_flushes_what_is_buffered(store: Store) -> None:
    writer = StoreWriter(store, flush_interval=3600)
    await writer.start()
    writer.add_result(sample_result(1))
    writer.add_transition(sample_transition(1))
    await writer.stop()
    assert store.results(CHECK) == [sample_result(1)]
    assert store.transitions() == [sample_transition(1)]


async def test_a_refused_result_is_dropped_alone(store: Store) -> None:
    poison = ProbeResult(CHECK, T0, float("nan"), success=True, phases={"connect": float("nan")})
    writer = StoreWriter(store, max_batch=1000)
    results = [sample_result(i) for i in range(20)]
    for result in [*results[:7], poison, *results[7:]]:
        writer.add_result(result)
    writer.add_transition(sample_transition(1))
    writer.set_status(status(State.DOWN))

    assert await writer.flush() is True
    assert writer.stats.dropped_results == 1
    assert writer.stats.written_results == 20
    assert writer.stats.db_up is True
    assert sorted(store.results(CHECK), key=lambda r: r.started_at) == results
    assert store.transitions() == [sample_transition(1)]
    assert store.load_statuses() == {FLOW.key: status(State.DOWN)}


async def open_through(proxy: TcpProxy, url: str) -> Store:
    return await asyncio.to_thread(Store.open, proxied_url(proxy, url))


@pytest.mark.postgres
async def test_postgres_outage_loses_nothing_within_the_buffer(pg_proxy: TcpProxy, fresh_postgres_url: str) -> None:
    store = await open_through(pg_proxy, fresh_postgres_url)
    writer = StoreWriter(store, flush_interval=0.02, retry_interval=0.05, max_batch=40)
    await writer.start()
    try:
        for i in range(10):
            writer.add_result(sample_result(i))
        await until(lambda: writer.stats.written_results == 10)

        pg_proxy.cut()
        for i in range(10, 310):
            writer.add_result(sample_result(i))
            if i % 10 == 0:
                writer.add_transition(sample_transition(i // 10))  # a chain: down, up, down…
                writer.set_status(status(State.DOWN, i))
        await until(lambda: writer.stats.failures >= 3)  # retried, still down
        assert writer.stats.db_up is False
        assert "***" in writer.stats.last_error
        assert "postgres:postgres@" not in writer.stats.last_error
        assert (writer.stats.buffered_results, writer.stats.buffered_transitions) == (300, 30)
        assert writer.stats.dropped_results == 0

        pg_proxy.restore()
        await until(lambda: writer.stats.buffered_results == 0 and writer.stats.buffered_transitions == 0)
        assert writer.stats.db_up is True
    finally:
        await writer.stop()
        await asyncio.to_thread(store.close)

    with Store.open(fresh_postgres_url, migrate=False) as direct:
        assert sorted(r.started_at for r in direct.results(CHECK)) == [T0 + timedelta(seconds=i) for i in range(310)]
        assert direct.transitions() == [sample_transition(i // 10) for i in reversed(range(10, 310, 10))]
        assert direct.load_statuses() == {FLOW.key: status(State.DOWN, 300)}


@pytest.mark.postgres
async def test_postgres_outage_drops_oldest_results_but_never_transitions(
    pg_proxy: TcpProxy, fresh_postgres_url: str
) -> None:
    store = await open_through(pg_proxy, fresh_postgres_url)
    writer = StoreWriter(store, max_buffered_results=20, flush_interval=0.02, retry_interval=0.05, max_batch=5)
    await writer.start()
    try:
        pg_proxy.cut()
        for i in range(50):
            writer.add_result(sample_result(i))
            if i % 10 == 0:
                writer.add_transition(sample_transition(i // 10))  # a chain: down, up, down…
        await until(lambda: writer.stats.failures >= 2)
        for i in range(50, 60):  # while a failed batch goes back to the front of the buffer
            writer.add_result(sample_result(i))
        await until(lambda: writer.stats.failures >= 4)
        assert writer.stats.buffered_results == 20
        assert writer.stats.dropped_results == 40
        assert writer.stats.buffered_transitions == 5

        pg_proxy.restore()
        await until(lambda: writer.stats.buffered_results == 0 and writer.stats.buffered_transitions == 0)
    finally:
        await writer.stop()
        await asyncio.to_thread(store.close)

    with Store.open(fresh_postgres_url, migrate=False) as direct:
        kept = sorted(r.started_at for r in direct.results(CHECK))
        assert kept == [T0 + timedelta(seconds=i) for i in range(40, 60)]  # the 40 oldest were dropped
        assert direct.transitions() == [sample_transition(i // 10) for i in (40, 30, 20, 10, 0)]


@pytest.mark.postgres
async def test_stop_gives_up_on_a_hung_database(pg_proxy: TcpProxy, fresh_postgres_url: str) -> None:
    store = await open_through(pg_proxy, fresh_postgres_url)
    writer = StoreWriter(store, flush_interval=0.01)
    await writer.start()
    writer.add_result(sample_result(0))
    await until(lambda: writer.stats.written_results == 1)
    pg_proxy.is_stalled = True
    writer.add_result(sample_result(1))
    writer.add_transition(sample_transition(1))
    started = time.monotonic()
    await writer.stop(grace=0.3)
    assert time.monotonic() - started < 2
    assert (writer.stats.buffered_results, writer.stats.buffered_transitions) == (1, 1)  # kept, not lost
    assert "no answer" in writer.stats.last_error
    pg_proxy.cut()  # frees the worker thread still waiting on the hung connection
    await asyncio.to_thread(store.close)


@pytest.mark.postgres
def test_proxied_url_keeps_credentials_and_schema(fresh_postgres_url: str) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    proxy.port = 6543
    url = make_url(proxied_url(proxy, fresh_postgres_url))
    assert (url.port, url.password, url.query) == (6543, "postgres", make_url(fresh_postgres_url).query)
