"""Each invalid config rule is one `tests/data/config/invalid-*.yaml` with the exact stderr of check-config.

As blackbox_exporter's `testdata/`: adding a pair adds a case. To write a new `.expected`, run from the
repository root `python -m monitor check-config tests/data/config/invalid-NAME.yaml 2> ….expected` with
the environment below, then read it: it is the specification. The suite runs in English (tests/conftest.py);
tests/test_config_french.py checks the French of every case, with French `.expected` files under `fr/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("tests/data/config")  # relative: the messages show the path as given on the command line
SECRET = "s3cr3t-t0ken-value"
# `.expected` files whose `.yaml` must not exist: the missing-file case.
ABSENT = {"invalid-no-such-file"}


def _environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TPMON_")}
    env["TPMON_TEST_TOKEN"] = SECRET  # set: its references are valid and its value must never show
    return env  # TPMON_TEST_UNSET is not set: the invalid-env-unset case


def _cases() -> list[str]:
    stems = {path.stem for path in (ROOT / DATA).glob("invalid-*.yaml")}
    stems |= {path.stem for path in (ROOT / DATA).glob("invalid-*.expected")}
    return sorted(stems)


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor", "check-config", str(path)]
    return subprocess.run(
        command, check=False, cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", _cases())
def test_invalid_config(name: str) -> None:
    config, expected = DATA / f"{name}.yaml", ROOT / DATA / f"{name}.expected"
    assert expected.exists(), f"{config} has no {expected.name}: write the exact stderr it must produce"
    if name in ABSENT:
        assert not (ROOT / config).exists(), f"{config} must not exist: it is the missing-file case"
    else:
        assert (ROOT / config).exists(), f"{expected.name} has no {config.name} (add it to ABSENT if on purpose)"

    result = _check_config(config)

    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert result.stderr == expected.read_text(encoding="utf-8")
    assert result.returncode == 2
    assert SECRET not in result.stderr


def test_every_problem_line_names_file_line_and_field() -> None:
    """`FILE:LINE: field.path: message` for every problem but those about the file as a whole."""
    whole_file = ("invalid YAML", "the file is empty", "the config must be", "no such file", "cannot read")
    for name in _cases():
        lines = (ROOT / DATA / f"{name}.expected").read_text(encoding="utf-8").splitlines()
        assert lines, name
        assert lines[-1] == f"tpmon: {len(lines) - 1} problem(s) in the config; nothing was started"
        for line in lines[:-1]:
            assert line.startswith(f"{DATA / name}.yaml:"), line
            where, _, rest = line.partition(": ")
            if not rest.startswith(whole_file):
                assert where.rsplit(":", 1)[1].isdigit(), line
                assert ": " in rest, line


def test_multi_error_file_reports_both_kinds_in_line_order() -> None:
    problems = (ROOT / DATA / "invalid-multi.expected").read_text(encoding="utf-8").splitlines()[:-1]
    numbers = [int(line.split(":")[1]) for line in problems]
    assert numbers == sorted(numbers)
    assert len(problems) >= 4
    assert any("must be 'operateur'" in line for line in problems)  # field by field (pydantic)
    assert any("duplicate check name" in line for line in problems)  # cross-field
