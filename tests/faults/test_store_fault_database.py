"""`tpmon serve` against a real PostgreSQL that fails under it: cut, hung (a proxy that accepts and never answers),
and killed -9 in a loop — the status it gives of its store stays true, it stops in bounded time, and no transition
is lost nor written twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from targets import Server, Target, wait_for
from tcp_proxy import TcpProxy, tcp_proxy

from .store_fault_support import (
    CONFIG,
    assert_chains,
    assert_nothing_lost,
    flapping_target,
    kill,
    metric,
    start,
    stored_transitions,
    terminate,
    timed_get,
    wait_logged,
    wait_stored,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def flapping() -> Iterator[Target]:
    target = flapping_target()
    yield target
    target.close()


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(fresh_postgres_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def serve(tmp_path: Path, target: Target, url: str) -> Server:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=target.url("")), encoding="utf-8")
    return Server(config, tmp_path, {"TPMON_DATABASE_URL": url})


def test_hung_database_is_reported_within_10_s_and_sigterm_loses_nothing(
    tmp_path: Path, flapping: Target, proxy: TcpProxy, fresh_postgres_url: str
) -> None:
    server = serve(tmp_path, flapping, through(proxy, fresh_postgres_url))
    server.log = tmp_path / "serve-1.log"
    start(server)
    try:
        wait_stored(fresh_postgres_url, 6)
        assert metric(server, "tpmon_store_up") == 1.0

        proxy.set_mode("hang")
        hung = time.monotonic()
        before = len(wait_logged(server.log, 1))
        wait_for(lambda: metric(server, "tpmon_store_up") == 0.0, timeout=12, what="tpmon_store_up 0")
        noticed = time.monotonic() - hung
        assert noticed <= 10.0
        ready, took = timed_get(server, "/readyz")
        assert ready.status_code == 503 and took < 1.0
        assert "database" in ready.json()["problems"][0]
        wait_logged(server.log, before + 4)  # the probes go on: transitions keep coming while the database hangs
        code, took = terminate(server, within=15.0)
        print(f"\ndatabase hung: tpmon_store_up 0 after {noticed:.1f} s; SIGTERM exit after {took:.1f} s")
    finally:
        if server.proc is not None:
            kill(server)
    assert code == 0
    assert (tmp_path / "var" / "tpmon.journal.jsonl").stat().st_size > 0  # what the database did not get

    proxy.set_mode("pass")  # the database answers again: the next start writes the journal first
    server.log = tmp_path / "serve-2.log"
    start(server)
    try:
        wait_logged(server.log, 2)
        wait_for(lambda: metric(server, "tpmon_store_replayed_total", '{kind="transition"}'), what="replayed")
        assert metric(server, "tpmon_store_journal_bytes") == 0.0
    finally:
        code, _ = terminate(server, within=15.0)
    assert code == 0
    count = assert_nothing_lost(stored_transitions(fresh_postgres_url), tmp_path / "serve-1.log", server.log)
    assert count >= 10
    print(f"{count} transitions logged, all stored (journal replayed at restart)")


def test_cut_database_comes_back_and_the_journal_is_written_while_running(
    tmp_path: Path, flapping: Target, proxy: TcpProxy, fresh_postgres_url: str
) -> None:
    server = serve(tmp_path, flapping, through(proxy, fresh_postgres_url))
    start(server)
    try:
        wait_stored(fresh_postgres_url, 4)
        proxy.set_mode("cut")
        cut = time.monotonic()
        wait_for(lambda: metric(server, "tpmon_store_up") == 0.0, timeout=12, what="tpmon_store_up 0")
        assert time.monotonic() - cut <= 10.0
        assert server.get("/readyz").status_code == 503
        wait_for(lambda: (metric(server, "tpmon_store_journal_bytes") or 0) > 0, what="journalled")
        journalled = metric(server, "tpmon_store_journalled_total", '{kind="transition"}')
        wait_for(
            lambda: (metric(server, "tpmon_store_journalled_total", '{kind="transition"}') or 0) > (journalled or 0),
            what="transitions journalled while cut",
        )

        proxy.set_mode("pass")
        wait_for(lambda: metric(server, "tpmon_store_up") == 1.0, timeout=15, what="tpmon_store_up 1 again")
        wait_for(lambda: metric(server, "tpmon_store_journal_bytes") == 0.0, what="journal written and emptied")
        assert server.get("/readyz").status_code == 200
        assert (metric(server, "tpmon_store_replayed_total", '{kind="transition"}') or 0) > 0
    finally:
        code, _ = terminate(server, within=15.0)
    assert code == 0
    assert metric_free(tmp_path)
    assert_nothing_lost(stored_transitions(fresh_postgres_url), server.log)


def metric_free(tmp_path: Path) -> bool:
    """The journal is empty after a clean stop with the database up."""
    journal = tmp_path / "var" / "tpmon.journal.jsonl"
    return not journal.exists() or journal.stat().st_size == 0


def test_kill_9_loop_on_postgres_keeps_one_chain_per_component(
    tmp_path: Path, flapping: Target, fresh_postgres_url: str
) -> None:
    server = serve(tmp_path, flapping, fresh_postgres_url)
    stored = 0
    for run in range(6):
        server.log = tmp_path / f"serve-{run}.log"
        start(server)
        try:
            stored = len(wait_stored(fresh_postgres_url, stored + 3))
        finally:
            kill(server)
    assert_chains(stored_transitions(fresh_postgres_url))
