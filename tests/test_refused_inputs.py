"""Input that must be refused, in one line and exit 2: ports outside 1–65535 on `serve` and `demo`, and `tpmon
probe` on a URL that cannot be probed (no host, port out of range) — never "internal error", never a traceback.
The config side of the same rules has its `tests/data/config/invalid-url-*` and `invalid-header-*` cases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import HttpCheck, load_config
from monitor.errors import MonitorError
from monitor.probes.once import probe_once

CONFIG = """\
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie]
    checks:
      - {{name: dre, flow: facturation, kind: http, url: "{url}"}}
"""


def tpmon(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TPMON_")} | (env or {})
    command = [sys.executable, "-m", "monitor", *args]
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=60, check=False)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr and "internal error" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1", "eighty", "8080.5"])
@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_port_outside_1_65535_is_refused_before_anything_starts(tmp_path: Path, command: str, port: str) -> None:
    """99999 used to listen on 34463 (99999 mod 65536) without a word."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/dre"), encoding="utf-8")
    extra = ["--config", str(config)] if command == "serve" else []
    line = one_line(tpmon(command, *extra, "--port", port, cwd=tmp_path))
    assert line.startswith(f"tpmon {command}: argument --port: ") and "1" in line and "65535" in line, line
    assert not (tmp_path / "var").exists()  # no database, no pid file: nothing was started


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:99999/dre", "url: the port 99999 is not between 1 and 65535"),
        ("http://127.0.0.1:0/dre", "url: the port 0 is not between 1 and 65535"),
        ("http:///dre", "url: has no host"),
        ("https://ops:hunter2@127.0.0.1/dre", "url: credentials written in clear"),
    ],
)
def test_probe_on_a_url_that_cannot_be_probed_names_the_file_line_and_field(
    tmp_path: Path, url: str, problem: str
) -> None:
    """It used to end in "internal error (ExceptionGroup …)" for port 99999."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=url), encoding="utf-8")
    done = tpmon("probe", "--config", str(config), "alpha/facturation/dre", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr and "hunter2" not in done.stderr
    first, summary = done.stderr.splitlines()
    assert first.startswith(f"{config}:7: networks.alpha.checks[0].{problem}"), first
    assert summary == "tpmon: 1 problem(s) in the config; nothing was started"


def test_probe_once_refuses_an_unusable_url_in_one_error_never_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the config's rules (a check built in code, a variable changed since): one MonitorError each."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/dre"), encoding="utf-8")
    settings = load_config(config, environ={})
    monkeypatch.setenv("TPMON_TEST_HOST", "127.0.0.1:70000")
    monkeypatch.delenv("TPMON_TEST_UNSET", raising=False)
    cases = {
        "http://127.0.0.1:99999/": "alpha/facturation/dre: url: the port 99999 is not between 1 and 65535",
        "http://${TPMON_TEST_HOST}/": "alpha/facturation/dre: url: the port 70000 is not between 1 and 65535",
        "http://${TPMON_TEST_UNSET}/": "alpha/facturation/dre: url: environment variable TPMON_TEST_UNSET is not set",
        "http://[::1/": "alpha/facturation/dre: url: has an invalid IPv6 host",
    }
    for url, message in cases.items():
        check = HttpCheck(name="dre", flow="facturation", kind="http", url=url)
        with pytest.raises(MonitorError) as refused:
            asyncio.run(probe_once("alpha", check, settings))
        assert str(refused.value) == message, url
