"""Helpers of the store's fault suite: `tpmon serve` processes over targets that flap (so that transitions keep
coming), what they logged and what the database holds, and the checks every fault must pass."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from targets import START_WITHIN, Server, Target, wait_for

# Two flows of one network probed every 0.5 s; a recovery is stable after 1 s: a flap of the PEC target makes
# the check, the flow, the lines and the network change state, every time.
CONFIG = """
defaults: {{interval: 500ms, timeout: 400ms, failure_threshold: 1, success_threshold: 1}}
stabilization: 1s
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {{name: dre, flow: facturation, kind: http, url: "{url}/dre"}}
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec"}}
"""
# a transition as it is written; one of a time without a leader is written on taking the lead, and says so
_TRANSITION = re.compile(r"^(\S+:\S+) (\w+) → (\w+) \((\w+)(?:, (?:made up|written) on taking the lead(?: again)?)?\)$")


class FlappingCodes(dict[str, int]):
    """`Target.codes` whose `flapping` paths answer 503 every other `period` seconds, by the clock."""

    def __init__(self, flapping: tuple[str, ...], period: float) -> None:
        super().__init__()
        self.flapping = flapping
        self.period = period

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.flapping:
            return 503 if int(time.monotonic() / self.period) % 2 else 200
        return super().get(key, default)


def flapping_target(period: float = 1.5) -> Target:
    target = Target()
    target.codes = FlappingCodes(("/pec",), period)
    return target


@dataclass(frozen=True)
class Step:
    component: str
    previous: str
    state: str


def logged_transitions(log: Path) -> list[Step]:
    """Every transition a `--log-format json` server logged, in order."""
    steps = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        match = _TRANSITION.match(str(event.get("msg", "")))
        if match:
            steps.append(Step(match.group(1), match.group(2), match.group(3)))
    return steps


def stored_transitions(url: str) -> list[dict[str, Any]]:
    """Every stored transition, in the order written (by id)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, uid, component_key, previous, state, at FROM transition ORDER BY id")
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def by_component(steps: list[Step]) -> dict[str, list[Step]]:
    found: dict[str, list[Step]] = {}
    for step in steps:
        found.setdefault(step.component, []).append(step)
    return found


def assert_chains(rows: list[dict[str, Any]]) -> dict[str, list[Step]]:
    """Each component's stored transitions form one chain (each `previous` is the prior `state`), without
    duplicates; returns them by component."""
    chains = by_component([Step(r["component_key"], r["previous"], r["state"]) for r in rows])
    assert chains, "no transition stored"
    for component, chain in chains.items():
        for before, after in itertools.pairwise(chain):
            assert after.previous == before.state, f"{component}: {before} then {after}"
    uids = [r["uid"] for r in rows]
    assert len(set(uids)) == len(uids), "a transition was written twice"
    keys = [(r["component_key"], r["previous"], r["state"], r["at"]) for r in rows]
    assert len(set(keys)) == len(keys), "a transition was written twice"
    return chains


def assert_nothing_lost(rows: list[dict[str, Any]], *logs: Path) -> int:
    """What the servers logged, run after run, is exactly what the database holds, component by component."""
    chains = assert_chains(rows)
    expected = by_component([step for log in logs for step in logged_transitions(log)])
    assert expected, "no transition logged"
    differing = {key: (chains.get(key), expected.get(key)) for key in chains.keys() | expected.keys()}
    assert chains == expected, {key: f"stored {s}, logged {g}" for key, (s, g) in differing.items() if s != g}
    return sum(len(chain) for chain in chains.values())


def metric(server: Server, name: str, labels: str = "") -> float | None:
    """The value of one series of /metrics (None if absent)."""
    body = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=2).text
    for line in body.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def start(server: Server, *, timeout: float = START_WITHIN) -> Server:
    """`Server.start` with JSON logs (the same deadline: a start through a proxy, with the schema's migrations)."""
    command = server.command(
        "serve", "--config", str(server.config), "--port", str(server.port), "--admin-port", str(server.admin_port)
    )
    with server.log.open("ab") as log:
        server.proc = subprocess.Popen(
            [*command, "--pid-file", str(server.pid_file), "--log-format", "json"],
            cwd=server.workdir,
            env=server.env,
            stdout=log,
            stderr=log,
        )
    server.wait_started(timeout)
    return server


def terminate(server: Server, *, within: float) -> tuple[int, float]:
    """SIGTERM the server; (exit status, seconds it took). Fails if it takes longer than `within`."""
    assert server.proc is not None
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=within + 5)
    took = time.monotonic() - began
    server.proc = None
    assert took <= within, f"SIGTERM took {took:.1f} s"
    return code, took


def kill(server: Server) -> None:
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait(timeout=10)
    server.proc = None


def wait_stored(url: str, count: int, *, timeout: float = 20.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = wait_for(
        lambda: found if len(found := stored_transitions(url)) >= count else None,
        timeout=timeout,
        what=f"{count} stored transitions",
    )
    return rows


def wait_logged(log: Path, count: int, *, timeout: float = 20.0) -> list[Step]:
    steps: list[Step] = wait_for(
        lambda: found if len(found := logged_transitions(log)) >= count else None,
        timeout=timeout,
        what=f"{count} logged transitions",
    )
    return steps


def timed_get(server: Server, path: str) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    answer = httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=5)
    return answer, time.monotonic() - began


def logs_of(workdir: Path) -> Iterator[Path]:
    yield from sorted(workdir.glob("serve*.log"))
