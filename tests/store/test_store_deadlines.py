"""Deadlines on the store: a hung PostgreSQL (a proxy that accepts and never answers) fails every operation in time
and frees its thread; the writer reports it (`store_up`) as soon as a write is late, journals what it holds, and
writes it back when the database answers again; PostgreSQL sessions carry server-side timeouts; files are private."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy, tcp_proxy

from monitor.errors import StoreError
from monitor.models import ComponentRef, ComponentStatus, Source, State
from monitor.store import Batch, Store, StoreWriter
from monitor.store.database import default_url
from monitor.store.journal import Journal
from monitor.store.writer import replay_journal

from .store_support import CHECK, T0, sample_result, sample_transition, until

FLOW = ComponentRef("flow", "viamedis", "portail_ps")


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(fresh_postgres_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_a_hung_database_fails_reads_and_writes_within_the_deadline(proxy: TcpProxy, fresh_postgres_url: str) -> None:
    with Store.open(through(proxy, fresh_postgres_url), deadline=0.5) as store:
        store.write(Batch([sample_result(0)]))
        proxy.set_mode("hang")
        for operation in (store.ping, lambda: store.results(CHECK), lambda: store.write(Batch([sample_result(1)]))):
            began = time.monotonic()
            with pytest.raises(StoreError, match=r"no answer within (0.5|1) s|timeout") as raised:
                operation()
            assert time.monotonic() - began < 3.0  # the deadline, or a new connection's connect timeout
            assert "\n" not in str(raised.value) and "postgres:postgres@" not in str(raised.value)
        proxy.set_mode("pass")
        store.write(Batch([sample_result(2)]))  # the pool reconnects: nothing to restart
        assert [r.started_at for r in store.results(CHECK)] == [sample_result(i).started_at for i in (2, 0)]


@pytest.mark.postgres
def test_abort_operations_frees_a_thread_blocked_on_a_hung_database(proxy: TcpProxy, fresh_postgres_url: str) -> None:
    with Store.open(through(proxy, fresh_postgres_url), deadline=60) as store:
        store.ping()
        proxy.set_mode("hang")
        failed: list[BaseException] = []

        def read() -> None:
            try:
                store.results(CHECK)
            except StoreError as exc:
                failed.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 5
        while store._watchdog.running() == 0 or store._watchdog._running[0].connection is None:
            assert time.monotonic() < deadline, "the read never got its connection"
            time.sleep(0.01)
        assert store.abort_operations() == 1
        reader.join(3)
        assert not reader.is_alive() and len(failed) == 1


@pytest.mark.postgres
def test_postgres_sessions_carry_server_side_timeouts(fresh_postgres_url: str) -> None:
    with Store.open(fresh_postgres_url) as store, store.engine.connect() as connection:
        shown = {
            name: connection.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "search_path")
        }
    assert shown["statement_timeout"] == "15s" and shown["lock_timeout"] == "5s"
    assert shown["idle_in_transaction_session_timeout"] == "1min"
    assert shown["search_path"].startswith("test_")  # the URL's own options are kept
    mine = make_url(fresh_postgres_url).update_query_dict({"options": "-c statement_timeout=2s"})
    with (
        Store.open(mine.render_as_string(hide_password=False), migrate=False) as store,
        store.engine.connect() as connection,
    ):
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "2s"  # what the URL says wins


@pytest.mark.postgres
async def test_writer_reports_a_late_write_then_journals_and_writes_it_back(
    proxy: TcpProxy, fresh_postgres_url: str, tmp_path: Path
) -> None:
    store = await asyncio.to_thread(Store.open, through(proxy, fresh_postgres_url), deadline=1.0)
    journal = Journal.open(tmp_path / "j.jsonl")
    writer = StoreWriter(store, journal=journal, flush_interval=0.02, retry_interval=0.1)
    await writer.start()
    try:
        writer.add_result(sample_result(0))
        await until(lambda: writer.stats.written_results == 1)
        proxy.set_mode("hang")
        writer.add_transition(sample_transition(1))
        writer.set_status(ComponentStatus(FLOW, State.DOWN, T0, Source.PROBE, State.DOWN))
        await until(lambda: writer.stats.write_started is not None)
        assert writer.stats.store_up is True  # under way, not late yet
        await until(lambda: not writer.stats.store_up, deadline=3)  # late, before the write has even failed
        await until(lambda: writer.stats.journalled_transitions == 1, deadline=5)
        assert writer.stats.buffered_transitions == 0 and writer.stats.journal_bytes > 0
        for i in range(2, 5):
            writer.add_transition(sample_transition(i))
        await until(lambda: writer.stats.journalled_transitions == 4, deadline=10)

        proxy.set_mode("pass")
        await until(lambda: writer.stats.store_up and writer.stats.journal_bytes == 0, deadline=10)
        assert (writer.stats.replayed_transitions, writer.stats.replayed_results) == (4, 0)
    finally:
        await writer.stop()
        await asyncio.to_thread(store.close)
        journal.close()
    with Store.open(fresh_postgres_url, migrate=False) as direct:
        assert sorted(direct.transitions(), key=lambda t: t.at) == [sample_transition(i) for i in range(1, 5)]
        assert direct.load_statuses()[FLOW.key].state is State.DOWN


@pytest.mark.postgres
async def test_stop_on_a_hung_database_is_bounded_and_journals_everything(
    proxy: TcpProxy, fresh_postgres_url: str, tmp_path: Path
) -> None:
    store = await asyncio.to_thread(Store.open, through(proxy, fresh_postgres_url))  # the default 5 s deadline
    journal = Journal.open(tmp_path / "j.jsonl")
    writer = StoreWriter(store, journal=journal, flush_interval=0.02)
    await writer.start()
    writer.add_result(sample_result(0))
    await until(lambda: writer.stats.written_results == 1)
    proxy.set_mode("hang")
    for i in range(1, 4):
        writer.add_result(sample_result(i))
        writer.add_transition(sample_transition(i))
    await until(lambda: writer.stats.write_started is not None)
    began = time.monotonic()
    await writer.stop(grace=0.5)
    assert time.monotonic() - began < 2.5  # grace, then the write under way is aborted
    assert (writer.stats.buffered_results, writer.stats.buffered_transitions) == (0, 0)
    assert (writer.stats.journalled_results, writer.stats.journalled_transitions) == (3, 3)
    await asyncio.to_thread(store.close)
    journal.close()

    proxy.set_mode("pass")
    again = Journal.open(journal.path)
    with Store.open(fresh_postgres_url, migrate=False) as direct:
        assert replay_journal(direct, again) == (3, 3)
        assert sorted(r.started_at for r in direct.results(CHECK)) == [sample_result(i).started_at for i in range(4)]
        assert sorted(direct.transitions(), key=lambda t: t.at) == [sample_transition(i) for i in range(1, 4)]
    again.close()


async def test_idle_writer_pings_and_reports_a_sqlite_store_that_fails(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/t.db")
    writer = StoreWriter(store, flush_interval=0.01, retry_interval=0.01, heartbeat=0.05)
    await writer.start()
    try:
        await until(lambda: writer.stats.failures == 0 and writer.stats.write_started is None)
        store.engine.dispose()
        (tmp_path / "t.db").unlink()
        (tmp_path / "t.db").mkdir()  # not a database any more: the next ping fails
        await until(lambda: not writer.stats.store_up)
        assert writer.stats.writes == 0  # nothing was written: the ping found it
    finally:
        await writer.stop()
        store.close()


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_sqlite_file_and_var_folder_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: int) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TPMON_DATABASE_URL", raising=False)
    previous = os.umask(mask)
    try:
        with Store.open(default_url()) as store:
            store.write(Batch([sample_result(0)]))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    for name in ("tpmon.db", "tpmon.db-wal", "tpmon.db-shm"):
        if (tmp_path / "var" / name).exists():
            assert stat.S_IMODE((tmp_path / "var" / name).stat().st_mode) == 0o600, name


def test_existing_files_keep_their_mode(tmp_path: Path) -> None:
    (tmp_path / "shared.db").touch(mode=0o640)
    os.chmod(tmp_path / "shared.db", 0o640)
    with Store.open(f"sqlite:///{tmp_path}/shared.db"):
        pass
    assert stat.S_IMODE((tmp_path / "shared.db").stat().st_mode) == 0o640


@pytest.mark.postgres
async def test_results_are_journalled_up_to_a_bound_then_dropped_and_counted_never_transitions(
    proxy: TcpProxy, fresh_postgres_url: str, tmp_path: Path
) -> None:
    store = await asyncio.to_thread(Store.open, through(proxy, fresh_postgres_url))
    journal = Journal.open(tmp_path / "j.jsonl", max_results=10)
    writer = StoreWriter(store, journal=journal, max_buffered_results=5, flush_interval=0.01, retry_interval=0.02)
    await writer.start()
    try:
        proxy.set_mode("cut")
        for round_, journalled in enumerate((5, 10, 10, 10)):
            failures = writer.stats.failures
            for i in range(5 * round_, 5 * round_ + 5):
                writer.add_result(sample_result(i))
            writer.add_transition(sample_transition(round_))

            def tried(failures: int = failures, round_: int = round_) -> bool:
                return writer.stats.failures > failures and writer.stats.journalled_transitions > round_

            await until(tried)
            assert writer.stats.journalled_results == journalled
        assert writer.stats.buffered_results == 5  # the journal is full: the newest wait in memory
        assert writer.stats.dropped_results == 5  # the oldest of those that did not fit anywhere

        proxy.set_mode("pass")
        await until(lambda: writer.stats.journal_bytes == 0 and writer.stats.buffered_results == 0, deadline=15)
    finally:
        await writer.stop()
        await asyncio.to_thread(store.close)
        journal.close()
    with Store.open(fresh_postgres_url, migrate=False) as direct:
        kept = sorted(r.started_at for r in direct.results(CHECK))
        assert kept == [sample_result(i).started_at for i in [*range(10), *range(15, 20)]]
        assert sorted(direct.transitions(), key=lambda t: t.at) == [sample_transition(i) for i in range(4)]
