"""Store benchmark for probe results: bytes per stored result and the time to write a batch of 10,000.

Not part of the test run. Usage (≈ 1 min per backend):

    .venv/bin/python tests/benchmarks/store_results.py [--rows 100000] [--batch 10000] [--postgres URL]
    PYTHONPATH=/path/to/other/tree .venv/bin/python tests/benchmarks/store_results.py   # another tree's store

Writes `--rows` results through `Store.write` in batches of `--batch` (as the store writer does), on a new SQLite
file and, with `--postgres`, on a new schema of that PostgreSQL (dropped at the end). The results look like the
probe benchmark's: `--checks` HTTP checks over 10 networks, one in two HTTPS (five phases, certificate dates),
2 % failures with a detail. Reports per batch the wall and CPU time of `Store.write` (the first batch also
registers the check keys), then the bytes per result: SQLite's file after VACUUM over the rows, and the pages of
the results' tables and indexes (`dbstat`); PostgreSQL's `pg_total_relation_size` of those tables (after VACUUM)
over the rows, and each heap and index apart. ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from monitor.models import ComponentRef, FailureReason, ProbeResult
from monitor.store import Batch, Store

RESULT_TABLES = ("probe_result", "probe_check")  # probe_check: only with compact results
START = datetime(2026, 12, 1, 12, tzinfo=UTC)


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def results(count: int, checks: int, seed: int = 16) -> list[ProbeResult]:
    """`count` results of `checks` checks probed every 10 s, in the order a writer receives them."""
    rng = random.Random(seed)
    refs = [ComponentRef.for_check(f"net{n % 10:02d}", "pec", f"c{n:05d}") for n in range(checks)]
    expiry = datetime(2027, 3, 1, 23, 59, 59, tzinfo=UTC)
    found = []
    for number in range(count):
        ref = refs[number % checks]
        started = START + timedelta(seconds=10 * (number // checks), microseconds=rng.randrange(10_000_000))
        https = number % checks % 2 == 1
        phases = {
            "resolve": 0.0,
            "connect": rng.uniform(5e-5, 3e-4),
            "tls": rng.uniform(1e-3, 3e-3) if https else 0.0,
            "processing": rng.uniform(2e-4, 2e-3),
            "transfer": rng.uniform(2e-5, 1e-4),
        }
        duration = sum(phases.values()) + rng.uniform(1e-4, 5e-4)
        failed = rng.random() < 0.02
        found.append(
            ProbeResult(
                ref,
                started,
                5.0 if failed else duration,
                success=not failed,
                reason=FailureReason.TIMEOUT if failed else None,
                detail="no answer within 5 s waiting for the response headers" if failed else "",
                status_code=None if failed else 200,
                phases=phases,
                cert_expiry=expiry if https else None,
                chain_expiry=expiry if https else None,
            )
        )
    return found


def write_all(store: Store, rows: list[ProbeResult], batch: int) -> list[dict[str, float]]:
    timings = []
    for first in range(0, len(rows), batch):
        chunk = Batch(rows[first : first + batch])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        store.write(chunk)
        timings.append({"wall_ms": (time.perf_counter() - wall0) * 1000, "cpu_ms": (time.process_time() - cpu0) * 1000})
    return timings


def summary(timings: list[dict[str, float]]) -> dict[str, Any]:
    later = timings[1:] or timings
    return {
        "first_batch_wall_ms": round(timings[0]["wall_ms"], 1),
        "batch_wall_ms_median": round(statistics.median(t["wall_ms"] for t in later), 1),
        "batch_cpu_ms_median": round(statistics.median(t["cpu_ms"] for t in later), 1),
        "batch_wall_ms": [round(t["wall_ms"], 1) for t in timings],
    }


def sqlite_run(rows: list[ProbeResult], batch: int, root: Path) -> dict[str, Any]:
    path = root / "results.db"
    with Store.open(f"sqlite:///{path}") as store:
        timings = write_all(store, rows, batch)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        count = int(conn.execute("SELECT count(*) FROM probe_result").fetchone()[0])
        names = [
            row[0]
            for row in conn.execute(
                f"SELECT name FROM sqlite_master WHERE tbl_name IN ({','.join('?' * len(RESULT_TABLES))})",
                RESULT_TABLES,
            )
        ]
        pages: int | None = None
        per_object: dict[str, int] = {}
        with contextlib.suppress(sqlite3.Error):  # dbstat is compiled in on Debian, maybe not elsewhere
            for name in names:
                size = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (name,)).fetchone()[0]
                per_object[name] = int(size or 0)
            pages = sum(per_object.values())
    size = sum(p.stat().st_size for p in root.glob("results.db*"))
    return {
        "backend": "sqlite",
        "rows": count,
        "bytes_per_result_file_after_vacuum": round(size / count, 1),
        "bytes_per_result_tables_and_indexes": round(pages / count, 1) if pages else None,
        "bytes_per_result_by_object": {name: round(b / count, 1) for name, b in per_object.items()},
        **summary(timings),
    }


def postgres_run(rows: list[ProbeResult], batch: int, url: str) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    try:
        with Store.open(scoped) as store:
            timings = write_all(store, rows, batch)
        engine = create_engine(scoped, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
            count = int(connection.execute(text("SELECT count(*) FROM probe_result")).scalar_one())
            per_object = {}
            for table in RESULT_TABLES:
                size = connection.execute(
                    text("SELECT pg_total_relation_size(to_regclass(:t))"), {"t": f'"{schema}".{table}'}
                ).scalar_one()
                if size is not None:
                    per_object[table] = int(size)
            relations = connection.execute(  # each table's heap (with its TOAST) and each of its indexes
                text(
                    "SELECT c.relname, pg_table_size(c.oid)"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = :s AND c.relkind IN ('r', 'i')"
                    " AND (c.relname = ANY(:t) OR c.oid IN (SELECT indexrelid FROM pg_index"
                    " WHERE indrelid IN (SELECT oid FROM pg_class WHERE relname = ANY(:t) AND relnamespace = n.oid)))"
                ),
                {"s": schema, "t": list(RESULT_TABLES)},
            )
            per_relation = {str(name): int(size) for name, size in relations}
        engine.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return {
        "backend": "postgresql",
        "rows": count,
        "bytes_per_result_tables_and_indexes": round(sum(per_object.values()) / count, 1),
        "bytes_per_result_by_table": {name: round(b / count, 1) for name, b in per_object.items()},
        "bytes_per_result_by_relation": {name: round(b / count, 1) for name, b in sorted(per_relation.items())},
        **summary(timings),
    }


def shown_command(argv: list[str]) -> str:
    """The command line as run, the PostgreSQL URL's password masked (the JSON is kept in the repository)."""
    shown, after_flag = [Path(argv[0]).as_posix()], False
    for arg in argv[1:]:
        hidden = arg
        if after_flag:
            hidden = make_url(arg).render_as_string(hide_password=True)
        elif arg.startswith("--postgres="):
            hidden = "--postgres=" + make_url(arg.removeprefix("--postgres=")).render_as_string(hide_password=True)
        after_flag = arg == "--postgres"
        shown.append(hidden)
    return " ".join(shown)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="results written (and measured)")
    parser.add_argument("--batch", type=int, default=10_000, help="results per Store.write")
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--postgres", help="also on a new schema of this PostgreSQL URL")
    args = parser.parse_args()
    if min(args.rows, args.batch, args.checks) <= 0:
        parser.error("counts must be positive")
    import monitor

    rows = results(args.rows, args.checks)
    out: dict[str, Any] = {
        "command": shown_command(sys.argv),
        "monitor_from": str(Path(monitor.__file__).parent),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cores": os.cpu_count(),
        "load_1m_start": load_1m(),
        "runs": [],
    }
    root = Path(tempfile.mkdtemp(prefix="tpmon-store-bench-"))
    try:
        out["runs"].append(sqlite_run(rows, args.batch, root))
        if args.postgres:
            out["runs"].append(postgres_run(rows, args.batch, args.postgres))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["load_1m_end"] = load_1m()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
