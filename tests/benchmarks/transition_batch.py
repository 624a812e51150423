"""Store benchmark for transitions: the time to write a batch of 3,000 transitions on PostgreSQL (issue #12).

Not part of the test run. Usage (a few seconds):

    .venv/bin/python tests/benchmarks/transition_batch.py --postgres URL [--transitions 3000] [--repeat 3]
    PYTHONPATH=/path/to/other/tree .venv/bin/python tests/benchmarks/transition_batch.py --postgres URL

On a new schema of that PostgreSQL (dropped at the end), for each repeat: one writer writes a start-up batch
(unknown → operational for `--transitions` checks, new chains), then a batch of changes (operational → down, each
chain extended); then two writers (two Stores, as two instances) write overlapping start-up batches at once (the
second took over two thirds of the checks), each timed, with the errors they got (a deadlock, a deadline).
Reports wall seconds per `Store.write` and the load average; ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from monitor.models import ComponentRef, Source, State, Transition
from monitor.store import Batch, Store

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)


def _transitions(refs: list[ComponentRef], previous: State, state: State, seconds: int) -> list[Transition]:
    at = T0 + timedelta(seconds=seconds)
    return [Transition(r, previous, state, at=at, recorded_at=at, source=Source.PROBE) for r in refs]


def _timed(store: Store, batch: Batch) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        store.write(batch)
    except Exception as exc:
        return time.perf_counter() - started, str(exc).splitlines()[0][-80:]
    return time.perf_counter() - started, ""


def _round(url: str, count: int, run: int) -> dict[str, object]:
    refs = [ComponentRef.for_check("bench", f"r{run}", f"c{i:05d}") for i in range(count)]
    stores = [Store.open(url, migrate=False) for _ in range(2)]
    try:
        new, new_error = _timed(stores[0], Batch(transitions=_transitions(refs, State.UNKNOWN, State.OPERATIONAL, 0)))
        extended, ext_error = _timed(stores[0], Batch(transitions=_transitions(refs, State.OPERATIONAL, State.DOWN, 1)))
        others = [ComponentRef.for_check("bench", f"p{run}", f"c{i:05d}") for i in range(count)]
        batches = [
            Batch(transitions=_transitions(others[: 2 * count // 3], State.UNKNOWN, State.OPERATIONAL, 0)),
            Batch(transitions=_transitions(others[count // 3 :], State.UNKNOWN, State.OPERATIONAL, 1)[::-1]),
        ]
        barrier, pair = threading.Barrier(2), [(0.0, ""), (0.0, "")]

        def write(i: int) -> None:
            barrier.wait()
            pair[i] = _timed(stores[i], batches[i])

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for store in stores:
            store.close()
    return {
        "new_chains_s": round(new, 3),
        "extended_chains_s": round(extended, 3),
        "two_writers_s": [round(seconds, 3) for seconds, _ in pair],
        "errors": [e for e in (new_error, ext_error, *(error for _, error in pair)) if e],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="PostgreSQL URL (a new schema is made and dropped)")
    parser.add_argument("--transitions", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(args.postgres, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(args.postgres).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        Store.open(rendered).close()  # the schema
        rounds = [_round(rendered, args.transitions, run) for run in range(args.repeat)]
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    def median(name: str) -> float:
        return round(statistics.median(float(r[name]) for r in rounds), 3)  # type: ignore[arg-type]

    print(
        json.dumps(
            {
                "benchmark": "transition_batch",
                "transitions": args.transitions,
                "new_chains_s_median": median("new_chains_s"),
                "extended_chains_s_median": median("extended_chains_s"),
                "rounds": rounds,
                "loadavg": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
