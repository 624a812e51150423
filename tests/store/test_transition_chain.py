"""One writer per fact: a transition is appended at the end of its component's stored chain, once; the schema
refuses two transitions after the same one (unique (component_key, after_id)), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from monitor.models import State
from monitor.store import Batch, Store, tables

from .store_support import CHECK, sample_transition


def _chain(store: Store) -> list[tuple[str, str, int]]:
    t = tables.transition
    with store.engine.connect() as connection:
        found = connection.execute(sa.select(t.c.previous, t.c.state, t.c.after_id).order_by(t.c.id)).all()
    return [(row.previous, row.state, row.after_id) for row in found]


def test_the_same_fact_from_two_writers_is_written_once(store: Store) -> None:
    down = sample_transition(1)  # operational → down
    assert store.write(Batch(transitions=[down]))
    assert store.write(Batch(transitions=[replace(down, at=down.at.replace(second=5))]))  # another instance's probe
    assert [(p, s) for p, s, _ in _chain(store)] == [("operational", "down")]


def test_a_writer_whose_view_lags_continues_the_stored_chain(store: Store) -> None:
    store.write(Batch(transitions=[sample_transition(1), sample_transition(2)]))  # op → down → op
    lagging = replace(sample_transition(3), previous=State.RECOVERING)  # it never saw the return
    store.write(Batch(transitions=[lagging]))
    chain = _chain(store)
    assert [(p, s) for p, s, _ in chain] == [("operational", "down"), ("down", "operational"), ("operational", "down")]
    assert chain[0][2] == 0


def test_a_recovery_step_is_kept_a_repeat_is_not(store: Store) -> None:
    up = sample_transition(1)
    recovering = replace(up, previous=State.DOWN, state=State.RECOVERING, progress=0.5)
    step = replace(recovering, previous=State.RECOVERING, progress=0.8, at=up.at.replace(second=30))
    store.write(Batch(transitions=[replace(up, previous=State.OPERATIONAL, state=State.DOWN), recovering, step]))
    store.write(Batch(transitions=[step]))  # the same step again (another writer)
    assert [(p, s) for p, s, _ in _chain(store)] == [
        ("operational", "down"),
        ("down", "recovering"),
        ("recovering", "recovering"),
    ]


def test_the_schema_refuses_two_transitions_after_the_same_one(store: Store) -> None:
    store.write(Batch(transitions=[sample_transition(1)]))
    row = {
        "component_key": CHECK.key, "previous": "operational", "state": "down", "at": sample_transition(1).at,
        "recorded_at": sample_transition(1).at, "source": "probe", "after_id": 0,
    }  # fmt: skip
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(sa.insert(tables.transition).values(row))


def test_concurrent_writers_of_one_component_never_fork_its_chain(durable_database_url: str) -> None:
    stores = [Store.open(durable_database_url) for _ in range(4)]
    try:
        stores[0].write(Batch(transitions=[sample_transition(0)]))  # down → operational

        def write(store: Store) -> None:
            for i in range(1, 21):
                store.write(Batch(transitions=[sample_transition(i)]))

        threads = [threading.Thread(target=write, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        chain = _chain(stores[0])
        assert len(chain) >= 2
        assert all(chain[i][0] == chain[i - 1][1] and chain[i][0] != chain[i][1] for i in range(1, len(chain)))
        t = tables.transition
        with stores[0].engine.connect() as connection:
            ids = [row.id for row in connection.execute(sa.select(t.c.id).order_by(t.c.id))]
        assert [after for _, _, after in chain] == [0, *ids[:-1]]  # each follows the one before it
    finally:
        for store in stores:
            store.close()


def test_a_chain_another_writer_extends_at_every_try_is_kept_and_the_give_up_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer appends to the component's chain just before each of this writer's inserts: after
    `_CHAIN_RACES` rereads this batch's transition is left out, the stored chain kept as the other wrote it, the
    batch itself written, and the give-up logged once."""
    store.write(Batch(transitions=[sample_transition(0)]))  # down → operational
    t = tables.transition
    others: list[str] = []
    busy: list[bool] = []

    def other_writer(connection: sa.Connection, _cursor: object, statement: str, *_: object) -> None:
        if not statement.lstrip().upper().startswith("INSERT INTO TRANSITION") or busy or len(others) >= 20:
            return  # not this writer's insert (the other's own, below, included)
        busy.append(True)
        end = connection.execute(
            sa.select(t.c.id, t.c.state).where(t.c.component_key == CHECK.key).order_by(t.c.after_id.desc()).limit(1)
        ).one()
        state = "degraded" if end.state != "degraded" else "operational"  # never this writer's "down": no repeat
        at = sample_transition(0).at
        others.append(state)
        row = {"component_key": CHECK.key, "previous": end.state, "state": state, "at": at, "recorded_at": at,
               "source": "probe", "after_id": end.id, "uid": f"other-{len(others)}"}  # fmt: skip
        connection.execute(sa.insert(t).values(row))
        busy.clear()

    sa.event.listen(store.engine, "before_cursor_execute", other_writer)
    try:
        with caplog.at_level("ERROR", logger="tpmon.store"):
            assert store.write(Batch(transitions=[sample_transition(1)]))  # operational → down
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", other_writer)
    chain = _chain(store)
    assert len(others) == 6  # the first try and five rereads, each found extended
    assert [s for _, s, _ in chain] == ["operational", *others]  # this writer's "down" left out, no fork
    assert len({after for _, _, after in chain}) == len(chain)
    gave_up = [r.getMessage() for r in caplog.records if "extended by another writer" in r.getMessage()]
    assert len(gave_up) == 1 and "5 times" in gave_up[0] and "1 transitions of this instance left out" in gave_up[0]
