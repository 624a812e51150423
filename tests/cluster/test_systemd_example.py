"""config/systemd/: the units the README gives for several instances, run as systemd would run them — the
ExecStart line with its ${VAR} from the environment files — against a real PostgreSQL: two instances (paris, lyon)
start, register their locations and answer the same page."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from targets import free_port, wait_for

from .farm_support import Farm, fleet_config, query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "config" / "systemd"
BINARY = "/opt/tpmon/.venv/bin/tpmon"


def _environment(path: Path) -> dict[str, str]:
    """An EnvironmentFile: KEY=value lines, # comments."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key] = value
    return found


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNITS / "tpmon@.service", encoding="utf-8")
    return unit


def _expand(line: str, env: dict[str, str]) -> str:
    """${VAR} as systemd expands it in ExecStart, from the unit's environment."""
    return re.sub(r"\$\{(\w+)\}", lambda found: env[found.group(1)], line)


def _answers(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_the_unit_reads_the_shared_and_the_instance_environment_and_runs_tpmon_serve() -> None:
    text = (UNITS / "tpmon@.service").read_text(encoding="utf-8")
    assert re.findall(r"^EnvironmentFile=(.*)$", text, re.M) == ["/etc/tpmon/tpmon.env", "/etc/tpmon/%i.env"]
    command = shlex.split(_unit()["Service"]["ExecStart"])
    assert command[:2] == [BINARY, "serve"]
    shared = _environment(UNITS / "tpmon.env")
    assert make_url(shared["TPMON_DATABASE_URL"]).get_backend_name() == "postgresql"
    assert make_url(shared["TPMON_DATABASE_URL"]).password is None  # the password in PGPASSFILE, never here
    needed = set(re.findall(r"\$\{(\w+)\}", _unit()["Service"]["ExecStart"]))
    for instance in ("paris", "lyon"):
        assert needed <= set(_environment(UNITS / f"{instance}.env")), instance
    assert "tpmon@.service" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_two_instances_started_as_the_unit_says_share_one_postgresql(tmp_path: Path, fresh_postgres_url: str) -> None:
    farm = Farm()
    config = tmp_path / "tpmon.yaml"
    config.write_text(fleet_config(farm, 4, interval="2s", heartbeat="1s"), encoding="utf-8")
    line = _unit()["Service"]["ExecStart"]
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for instance in ("paris", "lyon"):
            env = {**_environment(UNITS / "tpmon.env"), **_environment(UNITS / f"{instance}.env")}
            env.update(TPMON_DATABASE_URL=fresh_postgres_url, TPMON_CONFIG=str(config), TPMON_HOST="127.0.0.1")
            env.update(TPMON_PORT=str(free_port()), TPMON_ADMIN_PORT=str(free_port()))
            env.pop("PGPASSFILE")
            workdir = tmp_path / instance
            workdir.mkdir()
            expanded = _expand(line.replace("%i", instance), env)
            expanded = expanded.replace("/etc/tpmon/tpmon.yaml", str(config))
            expanded = expanded.replace(f"/var/lib/tpmon/{instance}", str(workdir))
            command = shlex.split(expanded)
            assert command[0] == BINARY
            with (workdir / "serve.log").open("ab") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "monitor", *command[1:]],
                        cwd=workdir,
                        env={**os.environ, **env},
                        stdout=log,
                        stderr=log,
                    )
                )
            ports.append(int(env["TPMON_PORT"]))
        for port in ports:
            wait_for(partial(_answers, port), timeout=90, what="serve to answer")
        rows = query(fresh_postgres_url, "SELECT location FROM instance ORDER BY location")
        assert [row.location for row in rows] == ["lyon", "paris"]
        assert all((tmp_path / name / "tpmon.pid").exists() for name in ("paris", "lyon"))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        farm.close()
