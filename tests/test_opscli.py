"""`tpmon incident …` and `tpmon maintenance …` as ops run them: real processes, one-line errors, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ops_support import CONFIG_YAML, OPTIQUE

from monitor.cli import main


class Ops:
    """Runs `tpmon …` on one config and one SQLite file: in a real process (`real=True`), else through `main`."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        config = tmp_path / "tpmon.yaml"
        config.write_text(CONFIG_YAML, encoding="utf-8")
        self.tmp_path, self.capsys = tmp_path, capsys
        env = {"TPMON_CONFIG": str(config), "TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        self.env = {**os.environ, **env}

    def run(self, *args: str, real: bool = False, stdin: str | None = None) -> tuple[int, str, str]:
        if real:
            done = subprocess.run(
                [sys.executable, "-m", "monitor", *args],
                cwd=self.tmp_path,
                env=self.env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            return done.returncode, done.stdout, done.stderr
        self.capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exited:  # argparse's own refusals
            code = int(exited.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def ok(self, *args: str, real: bool = False, stdin: str | None = None) -> str:
        code, out, err = self.run(*args, real=real, stdin=stdin)
        assert code == 0, err
        return out

    def refused(self, *args: str, real: bool = False) -> str:
        """The one line a refused command prints; exit 2, no traceback."""
        code, out, err = self.run(*args, real=real)
        assert code == 2, (out, err)
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        return err.strip()

    def incidents(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.ok("incident", "list", "--json"))
        return found


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Ops:
    return Ops(tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize(
    "command",
    [
        ["incident"],
        ["incident", "open"],
        ["incident", "update"],
        ["incident", "resolve"],
        ["incident", "list"],
        ["maintenance"],
        ["maintenance", "add"],
        ["maintenance", "list"],
        ["maintenance", "cancel"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tpmon {' '.join(command)}")
    assert "--config" in out or "ACTION" in out


def test_incident_lifecycle(ops: Ops, tmp_path: Path) -> None:
    message = tmp_path / "message.md"
    message.write_text("**Portail fermé** depuis 13:00.\n\n- PEC impossibles\n", encoding="utf-8")
    out = ops.ok(
        "incident", "open", "--title", "Cyberattaque Viamedis", "--title-en", "Viamedis cyberattack",
        "--impact", "major", "--message-file", str(message), "--message-en", "Portal closed",
        "--consigne-ps", "Demandez l'attestation papier", "--consigne-members-file", "-",
        "--component", "flow:viamedis/pec",
        "--declare", "line:viamedis/optique=down", "--declare", "line:viamedis/audio=recovering:40%",
        "--at", "12/02/2024 13:00",
        stdin="Avancez les frais si possible",
        real=True,
    )  # fmt: skip
    assert out.splitlines() == [
        "incident 1 opened (investigating, impact major): Cyberattaque Viamedis",
        "  line:viamedis/optique declared down since 12/02/2024 13:00",
        "  line:viamedis/audio declared recovering 40% since 12/02/2024 13:00",
    ]
    out = ops.ok(
        "incident", "update", "1", "--status", "identified", "--message", "Réactivation progressive",
        "--declare", "line:viamedis/optique=recovering:0.2", "--at", "2024-02-14 09:00",
    )  # fmt: skip
    assert "line:viamedis/optique declared recovering 20% since 14/02/2024 09:00" in out
    listed = ops.ok("incident", "list")
    assert "identified" in listed and "12/02/2024 13:00" in listed and "Cyberattaque Viamedis" in listed

    [incident] = ops.incidents()
    assert incident["title"] == {"fr": "Cyberattaque Viamedis", "en": "Viamedis cyberattack"}
    assert incident["created_at"] == "2024-02-12T12:00:00+00:00"
    assert incident["components"] == ["flow:viamedis/pec", "line:viamedis/optique", "line:viamedis/audio"]
    first = incident["updates"][0]
    assert first["message"] == {"fr": message.read_text(encoding="utf-8"), "en": "Portal closed"}  # as written
    assert first["member_consigne"]["fr"] == "Avancez les frais si possible"
    assert first["statuses"]["line:viamedis/audio"] == {"state": "recovering", "progress": 0.4}

    assert ops.ok("incident", "resolve", "1", "--at", "19/02/2024 09:00").startswith(
        "incident 1 resolved at 19/02/2024 09:00"
    )
    before = ops.incidents()
    assert (
        ops.refused("incident", "resolve", "1", real=True)
        == "tpmon: incident 1 is already resolved; nothing can follow"
    )
    assert ops.refused("incident", "update", "1", "--message", "x") == (
        "tpmon: incident 1 is already resolved; nothing can follow"
    )
    assert ops.incidents() == before
    assert ops.ok("incident", "list", "--open").splitlines()[1:] == []


def test_a_change_of_state_without_new_consignes_warns_that_the_previous_ones_will_be_outdated(ops: Ops) -> None:
    ops.ok(
        "incident", "open", "--title", "PEC", "--impact", "major", "--message", "PEC coupées",
        "--consigne-ps", "Aucune prise en charge ne peut être enregistrée", "--consigne-members", "Avancez les frais",
        "--declare", "line:viamedis/optique=down", "--at", "08/02/2024 10:00",
    )  # fmt: skip
    code, out, err = ops.run(
        "incident", "update", "1", "--message", "Réactivation", "--declare", "line:viamedis/optique=recovering:50%",
        "--at", "14/02/2024 09:00", real=True,
    )  # fmt: skip
    assert code == 0 and "line:viamedis/optique declared recovering 50% since 14/02/2024 09:00" in out
    assert err.splitlines() == [
        "tpmon: warning: line:viamedis/optique changes state and no new consigne was given: the practitioners'"
        " consigne of 08/02/2024 10:00 and the members' consigne of 08/02/2024 10:00 will be shown as outdated"
        " (older than this change); give new ones with --consigne-ps / --consigne-members"
    ]
    # a new practitioners' consigne: only the members' one is said to be outdated
    _, _, err = ops.run(
        "incident", "update", "1", "--message", "Rétabli", "--declare", "line:viamedis/optique=operational",
        "--consigne-ps", "Facturez normalement", "--at", "19/02/2024 09:00",
    )  # fmt: skip
    assert err.count("\n") == 1 and ": the members' consigne of 08/02/2024 10:00 will be shown as outdated" in err
    # no change of state, or new consignes for all: nothing to warn about
    for extra in (
        ["--message", "Point"],
        ["--message", "Point", "--declare", "line:viamedis/optique=operational"],
        ["--message", "P", "--declare", "line:viamedis/optique=down", "--consigne-ps", "a", "--consigne-members", "b"],
    ):
        code, _, err = ops.run("incident", "update", "1", *extra)
        assert (code, err) == (0, ""), extra


def test_incident_titles_from_files_and_list_shows_the_french_one(ops: Ops, tmp_path: Path) -> None:
    title = tmp_path / "title.txt"
    title.write_text("Panne du portail Almerys", encoding="utf-8")
    out = ops.ok(
        "incident", "open", "--title-file", str(title), "--title-en-file", "-", "--impact", "minor",
        "--message", "Portail indisponible", "--component", "network:almerys",
        stdin="Almerys portal outage",
        real=True,
    )  # fmt: skip
    assert out == "incident 1 opened (investigating, impact minor): Panne du portail Almerys\n"
    assert ops.incidents()[0]["title"] == {"fr": "Panne du portail Almerys", "en": "Almerys portal outage"}
    listed = ops.ok("incident", "list").splitlines()
    assert listed[1].endswith(" Panne du portail Almerys") and "Almerys portal outage" not in listed[1]
    out = ops.ok("incident", "update", "1", "--message", "Rétabli en partie")
    assert out == "incident 1 updated (investigating, impact minor): Panne du portail Almerys\n"


def test_bad_inputs_are_refused_in_one_line_naming_the_option_and_write_nothing(ops: Ops, tmp_path: Path) -> None:
    long_text = tmp_path / "long.md"
    long_text.write_text("x" * 5001, encoding="utf-8")
    base = ["incident", "open", "--title", "Panne", "--impact", "minor"]
    said = [*base, "--message", "m"]
    cases = [
        ("tpmon: --declare: unknown component 'line:viamedis/xyz'", [*said, "--declare", "line:viamedis/xyz=down"]),
        ("tpmon: --component: unknown component 'network:nope'", [*said, "--component", "network:nope"]),
        ("tpmon: --title: must not be empty", [*said, "--title", " "]),  # the last --title counts
        ("tpmon: --title-en: is 201 characters long; at most 200", [*said, "--title-en", "y" * 201]),
        ("tpmon: --title-en: must be a single line", [*said, "--title-en", "two\nlines"]),
        ("tpmon: --title-en-file: cannot read", [*said, "--title-en-file", str(tmp_path / "missing.txt")]),
        ("tpmon incident open: argument --title-file: not allowed with argument --title",
         [*said, "--title-file", str(long_text)]),
        ("tpmon incident open: one of the arguments --title --title-file is required",
         ["incident", "open", "--impact", "minor", "--message", "m"]),
        ("tpmon: --message: is 5,001 characters long; at most 5,000", [*base, "--message-file", str(long_text)]),
        ("tpmon: --declare: 'cassé' for line:viamedis/optique is not a state",
         [*said, "--declare", f"{OPTIQUE}=cassé"]),
        ("tpmon: --declare: progress for line:viamedis/optique must be between 0 and 1 (got 1.5)",
         [*said, "--declare", f"{OPTIQUE}=recovering:150%"]),
        ("tpmon: --message-file: cannot read", [*base, "--message-file", str(tmp_path / "missing.md")]),
        ("tpmon incident open: one of the arguments --message --message-file is required", base),
        ("tpmon incident open: argument --impact: invalid choice: 'huge'", [*base[:-1], "huge", "--message", "m"]),
        ("tpmon incident open: argument --at: '31/02/2024 10:00' is not a Paris date-time",
         [*said, "--at", "31/02/2024 10:00"]),
        ("tpmon: --at: ", [*said, "--at", "2099-01-01 10:00"]),
        ("tpmon: no incident 7", ["incident", "update", "7", "--message", "m"]),
    ]  # fmt: skip
    for expected, args in cases:
        assert ops.refused(*args).startswith(expected), args
    assert ops.incidents() == []
    unknown = ops.refused(*base, "--message", "m", "--declare", "line:viamedis/xyz=down", real=True)
    assert unknown.startswith("tpmon: --declare: unknown component 'line:viamedis/xyz'")
    too_long = ops.refused(*said, "--title-en", "y" * 201, real=True)
    assert too_long == "tpmon: --title-en: is 201 characters long; at most 200"
    usage = ops.refused(*base, real=True)
    assert usage == "tpmon incident open: one of the arguments --message --message-file is required (see --help)"


def test_maintenance_add_shows_dst_moves_then_list_and_cancel(ops: Ops) -> None:
    add = ["maintenance", "add", "--title", "Maintenance du portail", "--component", "line:viamedis/optique"]
    out = ops.ok(
        *add, "--start", "2024-03-24 02:30", "--duration", "90m", "--weekly", "sun", "--title-en", "Portal", real=True
    )
    assert out.splitlines() == [
        "maintenance window 1 added: Maintenance du portail (weekly on sun)",
        "  24/03/2024 02:30 → 24/03/2024 04:00",
        "  31/03/2024 03:00 → 31/03/2024 04:30 (DST: 02:30 does not exist that day; starts at 03:00)",
        "  07/04/2024 02:30 → 07/04/2024 04:00",
    ]
    out = ops.ok(
        *add, "--start", "2024-10-26 02:30", "--duration", "1h", "--monthly", "last-sun", "--until", "2025-12-31"
    )
    assert out.splitlines()[1:3] == [
        "  27/10/2024 02:30 CEST → 27/10/2024 02:30 CET"
        " (DST: 02:30 occurs twice that day; runs once, at the first, CEST)",
        "  24/11/2024 02:30 → 24/11/2024 03:30",
    ]
    listed = json.loads(ops.ok("maintenance", "list", "--json", "--horizon", "30d"))
    assert [(w["id"], w["recurrence"]) for w in listed] == [
        (1, "weekly on sun"),
        (2, "monthly on the last sun until 31/12/2025"),
    ]
    assert listed[0]["state"] == "next" and listed[0]["title"] == {"fr": "Maintenance du portail", "en": "Portal"}
    assert ops.ok("maintenance", "cancel", "1") == "maintenance window 1 cancelled: Maintenance du portail\n"
    assert ops.refused("maintenance", "cancel", "1", real=True) == "tpmon: maintenance window 1 is already cancelled"
    assert "cancelled" in ops.ok("maintenance", "list", "--all").splitlines()[0]
    assert [w["id"] for w in json.loads(ops.ok("maintenance", "list", "--json"))] == [2]

    soon = ["--start", "2099-01-01 20:00", "--duration", "1h"]
    refused = [
        ("tpmon: --start: this one-off window would already be over",
         [*add, "--start", "2024-02-01 20:00", "--duration", "10h"]),
        ("tpmon: --component: unknown component 'line:viamedis/xyz'",
         ["maintenance", "add", "--title", "M", "--component", "line:viamedis/xyz", *soon]),
        ("tpmon: --duration: must be more than 0 and at most 7 days", [*add, *soon[:2], "--duration", "8d"]),
        ("tpmon maintenance add: argument --weekly: 'someday' is not a day", [*add, *soon, "--weekly", "someday"]),
        ("tpmon maintenance add: argument --monthly: 'often'", [*add, *soon, "--monthly", "often"]),
        ("tpmon: --title: must be a single line",
         ["maintenance", "add", "--title", "a\nb", "--component", "network:viamedis", *soon]),
    ]  # fmt: skip
    for expected, args in refused:
        assert ops.refused(*args).startswith(expected), args
    assert len(json.loads(ops.ok("maintenance", "list", "--json", "--all"))) == 2


def test_a_title_file_saved_by_an_editor_is_one_line(tmp_path: Path) -> None:
    from monitor.opscli.inputs import read_text

    title = tmp_path / "title.txt"
    title.write_text("Portail PS fermé\n", encoding="utf-8")
    assert read_text("--title-file", str(title)) == "Portail PS fermé"
    body = tmp_path / "message.md"
    body.write_text("Premier paragraphe.\n\nSecond.\n\n", encoding="utf-8")
    assert read_text("--message-file", str(body)) == "Premier paragraphe.\n\nSecond.\n\n"  # Markdown as written
