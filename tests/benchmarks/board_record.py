"""Board benchmark: the CPU cost of `Board.record` on the demo config, in process, without I/O.

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/board_record.py [--steady 200000] [--flapping 20000]

Two figures, each the process CPU time per call: `steady` — a success like the previous one on each probed check in
turn (the probe path's common case: no transition, nothing re-derived); `flapping` — one check alternating two
failures and two successes (its threshold), so that most calls move the check and re-derive its network, its
dependents and their recoveries. Prints ONE JSON object on stdout; `host_load_1m` tells how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta

from monitor.board import Board
from monitor.config import load_config
from monitor.demo.run import CONFIG
from monitor.models import ComponentRef, FailureReason, ProbeResult

ENV = {"TPMON_DEMO_HTTP": "http://127.0.0.1:9", "TPMON_DEMO_TLS": "https://127.0.0.1:9"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=int, default=200_000, help="calls without a transition")
    parser.add_argument("--flapping", type=int, default=20_000, help="calls of a check going down and up")
    args = parser.parse_args()

    settings = load_config(CONFIG, environ=ENV)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    board = Board(settings, now)
    refs = [ComponentRef.for_check(n, c.flow, c.name) for n, c in settings.checks() if c.kind != "push"]
    for ref in refs:
        board.record(ProbeResult(ref, now, 0.1, True), now)

    start = time.process_time()
    for i in range(args.steady):
        now += timedelta(milliseconds=10)
        board.record(ProbeResult(refs[i % len(refs)], now, 0.1, True), now)
    steady = (time.process_time() - start) / args.steady

    flapping = ComponentRef.for_check("viamedis", "pec", "pec-1")  # Viamedis PEC: care networks depend on it
    transitions = 0
    start = time.process_time()
    for i in range(args.flapping):
        now += timedelta(seconds=1)
        ok = (i // 2) % 2 == 0
        result = ProbeResult(flapping, now, 0.1, ok, None if ok else FailureReason.CONNECT)
        transitions += len(board.record(result, now).transitions)
    flap = (time.process_time() - start) / args.flapping

    print(
        json.dumps(
            {
                "checks": len(refs),
                "steady_record_us": round(steady * 1e6, 2),
                "flapping_record_us": round(flap * 1e6, 2),
                "flapping_transitions": transitions,
                "host_load_1m": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
