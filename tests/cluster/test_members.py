"""Heartbeats in table `instance` and the leader's advisory lock, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from monitor.cluster.members import Leadership, Members
from monitor.store import Store

pytestmark = pytest.mark.postgres


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
