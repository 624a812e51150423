"""Compact probe results: rows of the old shape converted by migration 0030 (and back), check ids, reason codes,
the one index every query of the results uses."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from monitor.models import ComponentRef, FailureReason, ProbeResult
from monitor.store import Batch, Store, WriteRefused, tables
from monitor.store.database import MIGRATIONS, make_engine, upgrade
from monitor.store.latency_store import latency_by_hour
from monitor.store.rollup_store import prune_results
from monitor.store.rows import REASON_CODES

from .store_support import CHECK, T0, sample_result

OTHER = ComponentRef.for_check("almerys", "droits", "idb")
PORTAL = ComponentRef.for_check("viamedis", "pec", "portail")

# What tpmon stored before 0030, one of each kind: HTTPS with every phase and both certificate dates, a failure
# of each sort, TCP (two phases), push (none), a naive moment, microseconds, a NUL-free detail.
OLD_RESULTS = [
    ProbeResult(
        CHECK,
        T0 + timedelta(microseconds=123456),
        0.012345,
        success=True,
        status_code=200,
        phases={"resolve": 0.0, "connect": 0.000123, "tls": 0.004, "processing": 0.0066, "transfer": 0.00005},
        cert_expiry=datetime(2031, 5, 17, 12, 30, tzinfo=UTC),
        chain_expiry=datetime(2030, 1, 1, tzinfo=UTC),
    ),
    ProbeResult(
        CHECK,
        T0 + timedelta(seconds=10),
        5.000001,
        success=False,
        reason=FailureReason.TIMEOUT,
        detail="no answer within 5 s waiting for the response headers",
        phases={"resolve": 0.0, "connect": 0.0001, "tls": 0.0, "processing": 0.0, "transfer": 0.0},
    ),
    ProbeResult(
        CHECK, T0 + timedelta(seconds=20), 0.3, success=True, status_code=200, phases={"connect": 0.01}, slow=True
    ),
    ProbeResult(OTHER, T0, 0.001, success=False, reason=FailureReason.CONNECT, detail="cannot connect: refused"),
    ProbeResult(OTHER, T0 + timedelta(hours=1), 0.0, success=False, reason=FailureReason.NO_HEARTBEAT),
    *(
        ProbeResult(PORTAL, T0 + timedelta(minutes=i), 0.2, success=False, reason=reason, status_code=503)
        for i, reason in enumerate(FailureReason)
    ),
]


def old_table() -> sa.Table:
    """probe_result as migrations 0001 and 0004 left it, with the types tpmon wrote it with."""
    return sa.Table(
        "probe_result",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("check_key", sa.String(), nullable=False),
        sa.Column("started_at", tables.UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String()),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("cert_expiry", tables.UTCDateTime()),
        sa.Column("chain_expiry", tables.UTCDateTime()),
        sa.Column("slow", sa.Boolean(), nullable=False),
    )


def old_row(result: ProbeResult) -> dict[str, Any]:
    """The row tpmon wrote for `result` before 0030 (its rows.result_row)."""
    return {
        "check_key": result.check.key,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "success": result.success,
        "reason": result.reason.value if result.reason is not None else None,
        "detail": result.detail,
        "status_code": result.status_code,
        "phases": dict(result.phases),
        "cert_expiry": result.cert_expiry,
        "chain_expiry": result.chain_expiry,
        "slow": result.slow,
    }


def old_rows(engine: Engine) -> list[dict[str, Any]]:
    table = old_table()
    with engine.connect() as connection:
        found = connection.execute(sa.select(table).order_by(table.c.id))
        return [{k: v for k, v in row._mapping.items() if k != "id"} for row in found]


def newest_first(results: list[ProbeResult], check: ComponentRef) -> list[ProbeResult]:
    return sorted((r for r in results if r.check == check), key=lambda r: r.started_at, reverse=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


# The revision 0030 follows (the chain may gain a revision before it: the test starts from whichever it is).
BEFORE_0030 = str(ScriptDirectory.from_config(alembic_config()).get_revision("0030").down_revision)
RESULT_TABLES = {"probe_result", "probe_check", "alembic_version"}


def downgrade(engine: Engine, revision: str) -> None:
    """Alembic's downgrade to `revision`, as `database.upgrade` runs upgrades."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _value(column: sa.Column[Any]) -> Any:
    """A value of `column`'s type; every foreign key points at the id 1 of its table."""
    kind = column.type
    if isinstance(kind, tables.UTCDateTime | sa.DateTime):
        return T0 + timedelta(minutes=7, microseconds=654321)
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.Float):
        return 0.125
    if isinstance(kind, sa.JSON):
        return {"kept": [column.name, 1]}
    return f"{column.table.name}.{column.name} é"


def fill_the_other_tables(engine: Engine) -> None:
    """One row in every table but the results' (operators', notifications', incidents'…), foreign keys in order;
    the tables as tables.py has them, which 0030 leaves alone."""
    with engine.begin() as connection:
        there = {
            name: {c["name"] for c in sa.inspect(connection).get_columns(name)}
            for name in sa.inspect(connection).get_table_names()
        }
        for table in tables.metadata.sorted_tables:
            if table.name not in RESULT_TABLES and table.name in there:  # those of later migrations: not yet
                values = {c.name: _value(c) for c in table.columns if c.name in there[table.name]}
                as_there = sa.Table(table.name, sa.MetaData(), autoload_with=connection)
                connection.execute(sa.insert(as_there).values(values))


def the_other_tables(engine: Engine) -> dict[str, Any]:
    """The schema (columns, keys, indexes, constraints) and the rows of every table but the results'."""
    found: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for name in sorted(set(inspector.get_table_names()) - RESULT_TABLES):
            columns = [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(name)
            ]
            table = sa.Table(name, sa.MetaData(), autoload_with=connection)  # as it is at this revision
            found[name] = {
                "columns": columns,
                "primary_key": inspector.get_pk_constraint(name),
                "foreign_keys": sorted(map(repr, inspector.get_foreign_keys(name))),
                "indexes": sorted(map(repr, inspector.get_indexes(name))),
                "unique": sorted(map(repr, inspector.get_unique_constraints(name))),
                "rows": [tuple(row) for row in connection.execute(sa.select(table).order_by(*table.primary_key))],
            }
    return found


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = make_engine(database_url)
    yield built
    built.dispose()


def test_migration_0030_converts_the_results_of_the_old_shape_and_back(engine: Engine) -> None:
    upgrade(engine, BEFORE_0030)
    with engine.begin() as connection:
        connection.execute(sa.insert(old_table()), [old_row(r) for r in OLD_RESULTS])
    fill_the_other_tables(engine)
    before = old_rows(engine)
    others = the_other_tables(engine)
    assert {"staff_user", "api_token", "audit_event", "notification_event", "subscriber", "webhook"} <= set(others)
    assert all(len(table["rows"]) == 1 for table in others.values())

    upgrade(engine, "0030")
    with engine.begin() as connection:  # the converted rows have ids, and PostgreSQL's sequence was moved past them
        ids = connection.execute(sa.text("SELECT id FROM probe_result")).scalars().all()
        assert len(set(ids)) == len(OLD_RESULTS)
        if connection.dialect.name == "postgresql":
            assert connection.execute(sa.text("SELECT nextval('probe_result_id_seq')")).scalar_one() > max(ids)
    upgrade(engine, "0035")  # the narrow results of 0035; the other tables as 0035 leaves them (later ones change)
    store = Store(engine)
    for check in (CHECK, OTHER, PORTAL):
        assert store.results(check, limit=100) == newest_first(OLD_RESULTS, check)
    hours = latency_by_hour(store, [CHECK.key], T0)
    assert [(h.start, h.count, h.failures, round(h.max_s, 6)) for h in hours[CHECK.key]] == [(T0, 3, 1, 5.000001)]
    later = sample_result(30)  # written after the conversion
    store.write(Batch([later, sample_result(40, OTHER)]))
    assert store.results(CHECK, limit=1) == [later]
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(tables.probe_result)).scalar_one()
        assert count == len(OLD_RESULTS) + 2
    assert the_other_tables(engine) == others

    downgrade(engine, BEFORE_0030)  # the old shape again, the same values
    after = old_rows(engine)
    assert after[: len(before)] == before
    assert after[len(before) :] == [old_row(later), old_row(sample_result(40, OTHER))]
    assert the_other_tables(engine) == others
    upgrade(engine)
    assert Store(engine).results(CHECK, limit=100) == newest_first([*OLD_RESULTS, later], CHECK)


def test_every_failure_reason_has_its_own_stable_code() -> None:
    assert set(REASON_CODES) == set(FailureReason)
    assert sorted(REASON_CODES.values()) == list(range(1, len(FailureReason) + 1))
    assert REASON_CODES[FailureReason.TIMEOUT] == 1  # the codes are in the stored rows: never renumbered
    assert REASON_CODES[FailureReason.NO_HEARTBEAT] == 13


def test_a_check_key_is_stored_once_and_survives_a_refused_batch(store: Store) -> None:
    poison = ProbeResult(OTHER, T0, float("nan"), success=True)  # a new key, in a batch the database refuses
    with pytest.raises(WriteRefused):
        store.write(Batch([sample_result(1, OTHER), poison]))
    assert store.results(OTHER) == []
    store.write(Batch([sample_result(2, OTHER)]))
    store.write(Batch([sample_result(3, OTHER), sample_result(3)]))
    assert store.results(OTHER) == [sample_result(3, OTHER), sample_result(2, OTHER)]
    with store.engine.connect() as connection:
        keys = connection.execute(sa.select(tables.probe_check.c.key)).scalars().all()
    assert sorted(keys) == sorted([OTHER.key, CHECK.key])


def test_two_stores_on_one_database_share_the_check_ids(durable_database_url: str) -> None:
    with Store.open(durable_database_url) as first, Store.open(durable_database_url) as second:
        first.write(Batch([sample_result(1)]))
        second.write(Batch([sample_result(2), sample_result(2, OTHER)]))
        first.write(Batch([sample_result(3, OTHER)]))
        assert [r.started_at for r in first.results(CHECK)] == [sample_result(i).started_at for i in (2, 1)]
        assert second.results(OTHER) == [sample_result(3, OTHER), sample_result(2, OTHER)]


def test_the_check_ids_are_kept_by_the_callers_keys_not_the_databases_copies(store: Store) -> None:
    """Memory at 10,000 checks: one string per key (interned by ComponentRef.key), not one more per table."""
    store.write(Batch([sample_result(1), sample_result(1, OTHER)]))
    assert {key for key in store._check_ids if key == CHECK.key}.pop() is CHECK.key
    assert {key for key in store._check_ids if key == OTHER.key}.pop() is OTHER.key


def test_a_phase_that_is_not_a_number_is_left_out_and_the_result_kept(store: Store) -> None:
    odd = ProbeResult(CHECK, T0, 0.5, success=True, phases={"connect": float("inf"), "processing": 0.25})
    store.write(Batch([odd]))
    assert store.results(CHECK)[0].phases == {"processing": 0.25}


def test_pruning_goes_through_every_check(store: Store) -> None:
    now = T0 + timedelta(days=31)
    store.write(Batch([sample_result(i, check) for check in (CHECK, OTHER, PORTAL) for i in range(5)]))
    store.write(Batch([sample_result(i, OTHER) for i in range(86400 * 30, 86400 * 30 + 3)]))
    assert prune_results(store, now, 30, batch_size=2) == 15
    assert store.results(CHECK) == store.results(PORTAL) == []
    assert len(store.results(OTHER)) == 3


def test_every_read_of_the_results_uses_the_one_index(tmp_path: Path) -> None:
    """SQLite's query plans: results by check, latency by hour and pruning search the index, never scan."""
    path = tmp_path / "plans.db"
    statements: list[tuple[str, Any]] = []

    def note(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "probe_result" in statement and not statement.lstrip().upper().startswith("INSERT"):
            statements.append((statement, parameters))

    with Store.open(f"sqlite:///{path}") as store:
        store.write(Batch([sample_result(i, check) for check in (CHECK, OTHER) for i in range(50)]))
        sa.event.listen(store.engine, "before_cursor_execute", note)
        store.results(CHECK, since=T0, limit=10)
        latency_by_hour(store, [CHECK.key, OTHER.key], T0)
        store.last_results([CHECK, OTHER])
        assert prune_results(store, T0 + timedelta(days=30, seconds=5), 30, batch_size=10) == 10
        sa.event.remove(store.engine, "before_cursor_execute", note)
        with store.engine.connect() as connection:
            indexes = [i["name"] for i in sa.inspect(connection).get_indexes("probe_result")]
    assert indexes == ["ix_probe_result_check_id_started_us"]
    assert len(statements) >= 5  # results, latency, prune: the checks, then per check a select and a delete
    with contextlib.closing(sqlite3.connect(path)) as raw:
        for statement, parameters in statements:
            plan = " / ".join(row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
            if "probe_result" in plan:
                assert "SCAN probe_result" not in plan, (statement, plan)
