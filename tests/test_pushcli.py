"""`tpmon push` as a real command: a signal is written, every bad input is refused in one line with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.models import ComponentRef
from monitor.store import Store
from monitor.store.signal_store import StoredSignal, signals_after

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-push-t0ken"
CONFIG = """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [optique]
    checks:
      - {name: operateur, flow: pec, kind: push, interval: 5m, token: "${VIAMEDIS_PUSH_TOKEN}"}
      - {name: portail, flow: portail_ps, kind: tcp, host: 127.0.0.1, port: 9}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tpmon.yaml").write_text(CONFIG, encoding="utf-8")
    environ = {name: value for name, value in os.environ.items() if not name.startswith("TPMON_")}
    environ["TPMON_CONFIG"] = str(tmp_path / "tpmon.yaml")
    environ["TPMON_DATABASE_URL"] = f"sqlite:///{tmp_path / 'tpmon.db'}"
    environ["VIAMEDIS_PUSH_TOKEN"] = SECRET
    return environ


def tpmon(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor", "push", *args]
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def stored(env: dict[str, str]) -> list[StoredSignal]:
    with Store.open(env["TPMON_DATABASE_URL"]) as store:
        return signals_after(store, 0)


def test_a_heartbeat_by_default_then_a_reported_down(env: dict[str, str]) -> None:
    beat = tpmon(env, "viamedis/pec/operateur")
    assert (beat.returncode, beat.stderr) == (0, "")
    assert beat.stdout.startswith("viamedis/pec/operateur: operational recorded at ")
    assert beat.stdout.endswith(" UTC (signal #1)\n")
    down = tpmon(env, "viamedis/pec/operateur", "--state", "down", "--detail", "pec.ko-1")
    assert (down.returncode, down.stderr) == (0, "")
    signals = stored(env)
    pec = ComponentRef.for_check("viamedis", "pec", "operateur")
    assert [(s.check, s.state, s.detail) for s in signals] == [(pec, "operational", ""), (pec, "down", "pec.ko-1")]
    assert SECRET not in beat.stdout + down.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["viamedis/pec"], "tpmon: check: 'viamedis/pec' is not NETWORK/FLOW/CHECK"),
        (["viamedis/pec/nope"], "tpmon: check: no check 'viamedis/pec/nope' in the config "
         "(push checks: viamedis/pec/operateur)"),
        (["viamedis/portail_ps/portail"], "tpmon: check: viamedis/portail_ps/portail is probed by tpmon (kind tcp): "
         "only push checks take signals"),
        (["viamedis/pec/operateur", "--state", "up"], "tpmon: state: must be one of operational, degraded, down"),
        (["viamedis/pec/operateur", "--detail", "Mme Dupont, NIR 2 84"], "tpmon: detail: must be a short code: "
         "at most 40 of a-z, 0-9, '_', '.', '-'"),
    ],
)  # fmt: skip
def test_a_bad_input_is_refused_in_one_line_and_nothing_is_written(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = tpmon(env, *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")
    assert not Path(env["TPMON_DATABASE_URL"].removeprefix("sqlite:///")).exists()  # not even opened


def test_an_invalid_config_is_refused_with_its_problems(env: dict[str, str]) -> None:
    del env["VIAMEDIS_PUSH_TOKEN"]
    result = tpmon(env, "viamedis/pec/operateur")
    assert result.returncode == 2
    assert "token: environment variable VIAMEDIS_PUSH_TOKEN is not set" in result.stderr
    assert result.stderr.endswith("tpmon: 1 problem(s) in the config; nothing was started\n")
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_without_traceback(env: dict[str, str]) -> None:
    env["TPMON_DATABASE_URL"] = "postgresql+psycopg://tpmon:pw-not-shown@127.0.0.1:1/tpmon"
    result = tpmon(env, "viamedis/pec/operateur")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tpmon: ")
    assert "pw-not-shown" not in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_states(env: dict[str, str]) -> None:
    result = tpmon(env, "--help")
    assert result.returncode == 0
    assert "{operational,degraded,down}" in result.stdout and "NETWORK/FLOW/CHECK" in result.stdout


def test_probing_a_push_check_is_refused_in_one_line(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.cli import main

    monkeypatch.setenv("VIAMEDIS_PUSH_TOKEN", SECRET)
    assert main(["probe", "--config", env["TPMON_CONFIG"], "viamedis/pec/operateur"]) == 2
    assert capsys.readouterr().err == (
        "tpmon: viamedis/pec/operateur is a push check: `tpmon push` feeds it, not probes\n"
    )
