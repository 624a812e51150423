"""Bounds on what ops type: dates of this century, durations, ids a database integer holds, texts from real files of
a sane size — one line, exit 2, never a traceback nor "internal error"; and a fuzz over every ops command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops_support import CONFIG_YAML

from monitor.cli import main


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config and a SQLite file (the fuzz runs many commands on them)."""
    folder = tmp_path_factory.mktemp("ops")
    (folder / "tpmon.yaml").write_text(CONFIG_YAML, encoding="utf-8")
    return folder


@pytest.fixture
def env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"TPMON_CONFIG": str(workdir / "tpmon.yaml"), "TPMON_DATABASE_URL": f"sqlite:///{workdir}/tpmon.db"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values}


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exited:  # argparse's refusals
        code = int(exited.code or 0) if not isinstance(exited.code, str) else 2
    return code, capsys.readouterr().err


OPEN = ["incident", "open", "--title", "Panne", "--impact", "minor"]
ADD = ["maintenance", "add", "--title", "Travaux", "--component", "network:viamedis"]
HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["incident", "resolve", HUGE], "argument ID: '99999999999999999999999' is not an id (ids run from 1 to"),
        (["incident", "update", "-5", "--message", "m"], "argument ID: '-5' is not an id"),
        (["incident", "update", "0x10", "--message", "m"], "argument ID: '0x10' is not an id (a whole number"),
        (["maintenance", "cancel", str(2**63)], "argument ID: '9223372036854775808' is not an id"),
        (["incident", "list", "--limit", HUGE], "argument --limit: '99999999999999999999999' is not between 1 and"),
        (["incident", "list", "--limit", "-1"], "argument --limit: '-1' is not between 1 and 10,000"),
        (["incident", "list", "--offset", "-3"], "argument --offset: '-3' is not between 0 and"),
        ([*ADD, "--start", "2030-01-01 00:00", "--duration", "99999999999999d"], "argument --duration: "),
        ([*ADD, "--start", "2030-01-01 00:00", "--duration", "3661d"], "argument --duration: '3661d': must be at most"),
        (
            [*ADD, "--start", "0001-01-01 00:00", "--duration", "1h"],
            "argument --start: '0001-01-01 00:00' is not between",
        ),
        ([*ADD, "--start", "9999-12-31 23:00", "--duration", "1h"], "is not between 2000 and 2099"),
        ([*ADD, "--start", "2030-01-01 00:00", "--duration", "1h", "--until", "9999-12-31"], "argument --until: "),
        (["maintenance", "list", "--horizon", "99999999999999d"], "argument --horizon: '99999999999999d': must be"),
        ([*OPEN, "--message", "m", "--at", "0001-01-01 00:00"], "argument --at: '0001-01-01 00:00' is not between"),
        ([*OPEN, "--message", "m", "--at", "1999-12-31 23:59"], "is not between 2000 and 2099"),
        ([*OPEN, "--message-file", "/dev/zero"], "tpmon: --message-file: cannot read /dev/zero: not a regular file"),
        ([*OPEN, "--message-file", "/"], "tpmon: --message-file: cannot read /: Is a directory"),
        (["reload", "--wait", "nan"], "argument --wait: 'nan' is not between 0 and 600 seconds"),
        (["reload", "--wait", "1e400"], "argument --wait: '1e400' is not between 0 and 600 seconds"),
        (["check-config", "/dev/zero"], "/dev/zero: cannot read: not a regular file"),
        # the operators' and the notifications' commands
        (["audit", "list", "--limit", HUGE], "argument --limit: '99999999999999999999999' is not between 1 and"),
        (["token", "revoke", HUGE], "tpmon: token: no token '99999999999999999999999'"),
        (["webhook", "remove", HUGE], "argument ID: '99999999999999999999999' is not an id"),
        (["webhook", "enable", "-1"], "argument ID: '-1' is not an id"),
        (["webhook", "test", "0"], "argument ID: '0' is not an id"),
        (["notify", "list", "--limit", HUGE], "argument --limit: '99999999999999999999999' is not between 1 and"),
        (["notify", "retry", "1", HUGE], "argument ID: '99999999999999999999999' is not an id"),
        (["notify", "run", "--interval", "nan"], "argument --interval: 'nan' is not above 0 and at most 3600"),
        (["notify", "run", "--batch", "0"], "argument --batch: '0' is not between 1 and 10,000"),
    ],
)
def test_out_of_bounds_arguments_are_one_line_and_exit_2(
    args: list[str], said: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(*args, capsys=capsys)
    assert code == 2, err
    assert said in err
    assert "Traceback" not in err and "internal error" not in err
    assert len(err.strip().splitlines()) <= 3, err  # one line (tpmon's own parsers may add usage and a count)


def test_a_text_file_larger_than_the_cap_is_refused_without_reading_it_all(
    workdir: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    big = workdir / "big.md"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    code, err = run(*OPEN, "--message-file", str(big), capsys=capsys)
    assert (code, err.strip()) == (2, f"tpmon: --message-file: {big} is larger than 64 KiB")


def test_stdin_is_read_only_as_far_as_the_cap(workdir: Path, env: dict[str, str]) -> None:
    """`--message-file -` from an endless producer ends at once (the process reads 64 KiB + 1, then refuses)."""
    producer = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", *OPEN, "--message-file", "-"],
            stdin=producer.stdout,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        producer.kill()
        producer.wait()
    assert (done.returncode, done.stderr.strip()) == (2, "tpmon: --message-file: - is larger than 64 KiB")


# --- fuzz: any argument of any ops command --------------------------------------------------------------------------

_IDS = st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=12))
_DATES = st.one_of(
    st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%d %H:%M")),
    st.sampled_from(["0001-01-01 00:00", "9999-12-31 23:59", "31/02/2024 10:00", "2024-03-31 02:30", ""]),
    st.text(max_size=20),
)
_DURATIONS = st.one_of(
    st.builds(
        lambda n, unit: f"{n}{unit}", st.integers(-(2**60), 2**60), st.sampled_from(["", "ms", "s", "m", "h", "d"])
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=12),
)
_TEXTS = st.text(max_size=300).filter(lambda text: not text.startswith("-"))
_KEYS = st.one_of(
    st.sampled_from(["network:viamedis", "line:viamedis/optique", "flow:viamedis/pec", "network:nope", "x"]),
    st.text(max_size=30),
)
_DECLARED = st.builds(lambda key, value: f"{key}={value}", _KEYS, st.text(max_size=20))
_FILES = st.sampled_from(["/dev/zero", "/dev/null", "/", "/nonexistent/x", "/proc/self/status"])


def _option(name: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """`[]` (absent) or `[name, value]`."""
    given: st.SearchStrategy[list[str]] = value.map(lambda item: [name, item])
    return st.one_of(st.just([]), given)


def _options(*pairs: tuple[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    chosen = [_option(name, value) for name, value in pairs]
    return st.tuples(*chosen).map(lambda parts: [word for part in parts for word in part])


_TEXT_OPTIONS = [("--message", _TEXTS), ("--message-file", _FILES), ("--consigne-ps", _TEXTS), ("--at", _DATES)]
COMMANDS = st.one_of(
    _options(
        ("--title", _TEXTS), ("--impact", _TEXTS), ("--component", _KEYS), ("--declare", _DECLARED), *_TEXT_OPTIONS
    ).map(lambda rest: ["incident", "open", *rest]),
    st.tuples(_IDS, _options(("--status", _TEXTS), ("--declare", _DECLARED), *_TEXT_OPTIONS)).map(
        lambda parts: ["incident", "update", parts[0], *parts[1]]
    ),
    st.tuples(_IDS, _options(*_TEXT_OPTIONS)).map(lambda parts: ["incident", "resolve", parts[0], *parts[1]]),
    _options(("--limit", _IDS), ("--offset", _IDS)).map(lambda rest: ["incident", "list", *rest]),
    _options(
        ("--title", _TEXTS),
        ("--title-file", _FILES),
        ("--component", _KEYS),
        ("--start", _DATES),
        ("--duration", _DURATIONS),
        ("--weekly", _TEXTS),
        ("--until", _DATES.map(lambda text: text[:10])),
    ).map(lambda rest: ["maintenance", "add", *rest]),
    _options(("--horizon", _DURATIONS)).map(lambda rest: ["maintenance", "list", *rest]),
    _IDS.map(lambda value: ["maintenance", "cancel", value]),
    _options(("--limit", _IDS), ("--since", _DATES), ("--until", _DATES)).map(lambda rest: ["audit", "list", *rest]),
    _IDS.map(lambda value: ["token", "revoke", value]),
    st.tuples(st.sampled_from(["remove", "enable", "test"]), _IDS).map(lambda parts: ["webhook", *parts]),
    _options(("--limit", _IDS)).map(lambda rest: ["notify", "list", *rest]),
    st.lists(_IDS.filter(lambda text: not text.startswith("-")), max_size=3).map(lambda ids: ["notify", "retry", *ids]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=COMMANDS)
def test_no_ops_command_ends_in_a_traceback_or_an_internal_error(
    args: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(*args, capsys=capsys)
    assert code in (0, 2), (args, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
