"""Heartbeats in table `instance` and the leader's advisory lock, on a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tcp_proxy import tcp_proxy

from monitor.cluster.members import RELEASE_WITHIN, Leadership, Members
from monitor.errors import StoreError
from monitor.store import Store
from monitor.store.database import CONNECT_TIMEOUT

pytestmark = pytest.mark.postgres

T = TypeVar("T")


@pytest.fixture
def store(fresh_postgres_url: str) -> Iterator[Store]:
    opened = Store.open(fresh_postgres_url)
    yield opened
    opened.close()


def test_heartbeats_register_read_and_forget(store: Store) -> None:
    one = Members(store, "one", "paris", 1.0, host="h1", pid=1)
    two = Members(store, "two", "paris", 1.0, host="h2", pid=2)
    lyon = Members(store, "three", "lyon", 1.0, host="h3", pid=3)
    first = one.beat()
    assert [m.id for m in first.members] == ["one"]
    assert first.members[0].joined_at == first.members[0].heartbeat_at == first.at
    two.beat()
    lyon.beat()
    again = one.beat()
    assert sorted((m.id, m.location) for m in again.members) == [("one", "paris"), ("three", "lyon"), ("two", "paris")]
    mine = next(m for m in again.members if m.id == "one")
    assert mine.joined_at == first.at and mine.heartbeat_at == again.at > first.at
    with store.engine.begin() as connection:  # "two" went silent ten heartbeats ago
        connection.execute(
            text("UPDATE instance SET heartbeat_at = heartbeat_at - interval '11 seconds' WHERE id='two'")
        )
    assert sorted(m.id for m in one.beat().members) == ["one", "three"]  # "two" forgotten
    one.leave()
    back = two.beat()  # "two" comes back: a new row, joined now
    assert sorted(m.id for m in back.members) == ["three", "two"]
    assert next(m for m in back.members if m.id == "two").joined_at == back.at
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM instance")).scalar_one() == 2  # two and three


def test_one_leader_at_a_time_and_another_takes_over(store: Store, fresh_postgres_url: str) -> None:
    other = Store.open(fresh_postgres_url)  # another process's engine
    try:
        first, second = Leadership(store, 1.0), Leadership(other, 1.0)
        assert first.hold() is True
        assert second.hold() is False
        assert first.hold() is True  # kept
        assert second.hold() is False
        first.release()  # as when its process dies: the session ends, the lock with it
        assert second.hold() is True and second.leading
        assert first.hold() is False and not first.leading
        second.release()
    finally:
        other.close()


def test_each_schema_has_its_own_leader(store: Store, postgres_url: str) -> None:
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with store.engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    elsewhere = Store.open(
        make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    )
    try:
        here, there = Leadership(store, 1.0), Leadership(elsewhere, 1.0)
        assert here.hold() and there.hold()
        here.release()
        there.release()
    finally:
        elsewhere.close()
        with store.engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_a_lost_connection_ends_the_lead(store: Store, fresh_postgres_url: str) -> None:
    other = Store.open(fresh_postgres_url)
    try:
        leader, waiting = Leadership(store, 1.0), Leadership(other, 1.0)
        assert leader.hold()
        assert leader._held is not None
        pid = leader._held.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with other.engine.connect() as connection:  # the server ends the leader's session (a cut, a restart)
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert leader.hold() is False  # noticed at its next heartbeat
        assert waiting.hold() is True
        waiting.release()
    finally:
        other.close()


def within(seconds: float, call: Callable[[], T]) -> T:
    """`call()`'s result, made in a daemon thread that must end within `seconds` (else the test fails, not hangs)."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_a_database_that_hangs_never_holds_the_heartbeat_nor_the_stop_past_their_deadlines(
    fresh_postgres_url: str,
) -> None:
    """A proxy that accepts and never answers: keeping the lead, writing the heartbeat and letting the lead go each
    fail within their deadline (a heartbeat, plus the connection timeout when a new connection is needed;
    `RELEASE_WITHIN` at a stop) instead of blocking their thread forever — a stop waits for them, and a process
    whose threads cannot end cannot exit."""
    url = make_url(fresh_postgres_url)
    bound = 1.0 + CONNECT_TIMEOUT + 1.5
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        store = Store.open(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        try:
            leadership, members = Leadership(store, 1.0), Members(store, "one", "paris", 1.0, host="h", pid=1)
            members.beat()
            assert leadership.hold() is True
            proxy.set_mode("hang")
            assert within(1.0 + RELEASE_WITHIN + 1.5, leadership.hold) is False  # no answer: the lead let go
            assert not leadership.leading
            with pytest.raises(StoreError, match="heartbeat not written"):
                within(bound, members.beat)
            assert within(bound, leadership.hold) is False  # not taken either: connecting hangs as well
            within(bound, members.leave)  # logged, not raised
            proxy.set_mode("pass")
            assert within(bound, leadership.hold) is True  # the database answers again: the lead is taken back
            proxy.set_mode("hang")
            within(RELEASE_WITHIN + 1.5, leadership.release)  # a stop while it hangs: the lock goes with the session
            assert not leadership.leading
        finally:
            proxy.set_mode("pass")
            store.close()
