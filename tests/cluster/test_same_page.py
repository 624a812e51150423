"""Every instance serves the same page: three `tpmon serve` on one real PostgreSQL answer the same
`/api/v1/status` within one second of each change being written — a probe's verdict, a recovery, what ops
declare through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from targets import wait_for

from .farm_support import Farm, Instance, fleet, fleet_config, query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHECKS = 8
SAME_WITHIN = 1.0  # seconds, from the change being written (seen in the database) to every instance answering it
POLL = 0.02  # seconds between two looks at the database or the instances


@pytest.fixture
def farm() -> Iterator[Farm]:
    server = Farm()
    yield server
    server.close()


def _board(server: Instance) -> dict[str, Any]:
    """`/api/v1/status` without `checked_at` (when this instance last received a probe result: its own)."""
    body: dict[str, Any] = server.get("/api/v1/status").json()
    body.pop("checked_at")
    return body


def _cell(board: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    [network] = board["networks"]
    found: dict[str, Any] = next(cell for cell in network[kind] if cell["id"] == name)
    return found


def _written(url: str, sql: str) -> float | None:
    """The instant (epoch seconds) a row answering `sql` is seen in the database (the change is written; polled
    every 50 ms by `wait_for`), None before."""
    return time.time() if query(url, sql) else None


def _same_within(servers: list[Instance], written: float, shows: Callable[[dict[str, Any]], bool]) -> float:
    """Poll every instance until all answer the same board, which `shows` the change; seconds since `written`."""
    deadline = written + SAME_WITHIN
    boards: list[dict[str, Any]] = []
    while True:
        boards, asked = [], 0.0
        for server in servers:
            asked = time.time()  # when the last instance was asked: all answered the same by then, at the latest
            boards.append(_board(server))
        if asked > deadline:
            break
        if all(shows(board) for board in boards) and all(board == boards[0] for board in boards):
            return asked - written
        time.sleep(POLL)
    differing = [_differences(boards[0], board) for board in boards[1:]]
    shown = [shows(board) for board in boards]
    raise AssertionError(f"{time.time() - written:.2f} s after the change: shown {shown}, differences {differing}")


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON bodies differ, as paths with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}"]


def _cli(config: Path, url: str, *args: str) -> float:
    """Run `tpmon …` (its own process, the same database); the instant it returned: its change is written."""
    env = {**os.environ, "TPMON_DATABASE_URL": url, "TPMON_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return time.time()


def test_three_instances_answer_the_same_status_within_one_second_of_each_change(
    tmp_path: Path, farm: Farm, fresh_postgres_url: str
) -> None:
    url = fresh_postgres_url
    config = tmp_path / "tpmon.yaml"
    config.write_text(fleet_config(farm, CHECKS, interval="2s", heartbeat="1s"), encoding="utf-8")
    with fleet(config, tmp_path, url, 3) as servers:
        wait_for(
            lambda: all(_cell(_board(s), "lines", "optique")["state"] == "operational" for s in servers),
            timeout=60,
            what="every instance green",
        )
        figures: dict[str, float] = {}

        # A probe's verdict: c01 (flow pec) fails; its owner writes the transition, all show it.
        farm.codes["/c01"] = 500
        key = "check:alpha/pec/c01"
        written = wait_for(
            lambda: _written(
                url,
                f"SELECT 1 FROM transition WHERE component_key = '{key}' "
                "AND previous = 'operational' AND state = 'down'",
            ),
            timeout=30,
            what="c01's fall written",
        )
        figures["check down"] = _same_within(servers, written, lambda b: _cell(b, "checks", "c01")["state"] == "down")

        # Back: the check recovers, the flow and lines recover, then end their recovery (stabilization: 2 s).
        farm.codes.pop("/c01")
        written = wait_for(
            lambda: _written(url, f"SELECT 1 FROM transition WHERE component_key = '{key}' AND previous = 'down'"),
            timeout=30,
            what="c01's return written",
        )
        figures["check back"] = _same_within(
            servers, written, lambda b: _cell(b, "checks", "c01")["state"] == "operational"
        )
        written = wait_for(
            lambda: _written(
                url,
                "SELECT 1 FROM transition WHERE component_key = 'flow:alpha/pec' "
                "AND previous = 'recovering' AND state = 'operational'",
            ),
            timeout=30,
            what="the flow's recovery ended, written by the leader",
        )
        figures["recovery ended"] = _same_within(
            servers, written, lambda b: _cell(b, "flows", "pec")["state"] == "operational"
        )

        # What ops declare, through the CLI (another process): an incident that declares optique down, resolved.
        written = _cli(
            config, url, "incident", "open", "--title", "Panne optique", "--impact", "major",
            "--message", "Optique coupée", "--declare", "line:alpha/optique=down",
        )  # fmt: skip
        figures["incident declared"] = _same_within(
            servers, written, lambda b: _cell(b, "lines", "optique")["state"] == "down"
        )
        written = _cli(config, url, "incident", "resolve", "1")
        figures["incident resolved"] = _same_within(
            servers, written, lambda b: _cell(b, "lines", "optique")["state"] in ("recovering", "operational")
        )  # recovering first, for the stabilization (2 s), unless already over
        written = wait_for(
            lambda: _written(
                url,
                "SELECT 1 FROM transition WHERE component_key = 'line:alpha/optique' "
                "AND previous = 'recovering' AND state = 'operational' AND at > "
                "(SELECT max(at) FROM transition WHERE component_key = 'line:alpha/optique' AND state = 'down')",
            ),
            timeout=30,
            what="the line's recovery after the incident ended, written by the leader",
        )
        figures["line back"] = _same_within(
            servers, written, lambda b: _cell(b, "lines", "optique")["state"] == "operational"
        )
        print(f"same page, seconds after each change was written: {figures}")
