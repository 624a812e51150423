"""The command line speaks French first: its help, results and usage errors in French by default (an unset or C
locale included), in English for an English locale or TPMON_LANG=en; no text left untranslated."""

from __future__ import annotations

import argparse
import ast
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.app import check_port
from monitor.cli import build_parser
from monitor.errors import MonitorError
from monitor.opscli.texts import cli_lang, install_argparse_texts

ROOT = Path(__file__).resolve().parent.parent
# Help texts that read the same in both languages (component keys are the config's own words).
SAME_IN_BOTH = {"network:x, flow:x/y, line:x/y"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "fr"),
        ({"LANG": "C.UTF-8"}, "fr"),
        ({"LANG": "POSIX"}, "fr"),
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "fr_FR.UTF-8"}, "fr"),  # LC_ALL over LANG, as gettext reads them
        ({"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"}, "en"),
        ({"LANGUAGE": "en_GB:fr", "LANG": "fr_FR.UTF-8"}, "en"),
        ({"LANG": "en_GB.UTF-8", "TPMON_LANG": "fr"}, "fr"),
        ({"LANG": "fr_FR.UTF-8", "TPMON_LANG": "EN"}, "en"),
        ({"LANG": "en_GB.UTF-8", "TPMON_LANG": "de"}, "en"),  # neither fr nor en: the locale decides
        ({"TPMON_LANG": ""}, "fr"),
    ],
)
def test_the_language_is_french_unless_english_is_asked(environ: dict[str, str], expected: str) -> None:
    assert cli_lang(environ) == expected


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def _texts(lang: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every help, description and epilog of every command, built in `lang`, by where it is."""
    monkeypatch.setenv("TPMON_LANG", lang)
    texts: dict[str, str] = {}
    for prog, parser in _parsers(build_parser()):
        for field in ("description", "epilog"):
            if value := getattr(parser, field):
                texts[f"{prog} {field}"] = value
        for action in parser._actions:
            if action.help and action.help != argparse.SUPPRESS:
                texts[f"{prog} {'/'.join(action.option_strings) or action.dest}"] = action.help
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    texts[f"{prog} {choice.dest}"] = choice.help or ""
    return texts


def test_every_help_text_has_its_french_and_its_english(monkeypatch: pytest.MonkeyPatch) -> None:
    install_argparse_texts()
    french, english = _texts("fr", monkeypatch), _texts("en", monkeypatch)
    assert french.keys() == english.keys()
    assert len(french) > 200  # every command's options: the walk found them
    untranslated = {where: text for where, text in french.items() if text == english[where]}
    assert {text for text in untranslated.values()} <= SAME_IN_BOTH, untranslated
    assert "-h, --help" not in "".join(french)  # the walk's keys, not a text
    assert french["tpmon -h/--help"] == "affiche cette aide et quitte"
    assert english["tpmon -h/--help"] == "show this help message and exit"


def _tpmon(*args: str, lang_env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TPMON_", "LC_", "LANG"))}
    env.update(lang_env)
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin if stdin is not None else "",
    )


def test_help_results_and_usage_errors_are_french_by_default() -> None:
    helped = _tpmon("--help", lang_env={"LANG": "C.UTF-8"})
    assert helped.returncode == 0
    assert helped.stdout.startswith("utilisation\u00a0: tpmon")
    assert "Surveillance de l’état des réseaux de tiers payant français." in helped.stdout
    assert "affiche cette aide et quitte" in helped.stdout
    assert "show this help" not in helped.stdout

    checked = _tpmon("check-config", "config/example.yaml", lang_env={})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("config/example.yaml\u00a0: OK — "), checked.stdout
    assert "réseaux" in checked.stdout and "vérifications" in checked.stdout

    refused = _tpmon("serve", "--port", "70000", lang_env={"LANG": "fr_FR.UTF-8"})
    assert refused.returncode == 2
    assert refused.stderr == "tpmon serve: argument --port\u00a0: 70000 n’est pas entre 1 et 65535 (voir --help)\n"

    unknown = _tpmon("probe", "nope/x/y", lang_env={})
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("tpmon: aucune vérification 'nope/x/y' dans la configuration (connues\u00a0: ")

    missing = _tpmon("incident", "open", lang_env={})
    assert missing.returncode == 2
    assert "les arguments suivants sont requis\u00a0: --impact" in missing.stderr, missing.stderr
    assert len(missing.stderr.splitlines()) == 1


def test_an_english_locale_gets_english() -> None:
    helped = _tpmon("--help", lang_env={"LANG": "en_GB.UTF-8"})
    assert helped.stdout.startswith("usage: tpmon")
    assert "Status monitor of the French tiers-payant networks." in helped.stdout
    refused = _tpmon("serve", "--port", "70000", lang_env={"LANG": "fr_FR.UTF-8", "TPMON_LANG": "en"})
    assert refused.stderr == "tpmon serve: argument --port: 70000 is not between 1 and 65535 (see --help)\n"


def test_argparse_texts_follow_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    install_argparse_texts()
    monkeypatch.setenv("TPMON_LANG", "fr")
    assert argparse._("positional arguments") == "arguments positionnels"  # type: ignore[attr-defined]
    monkeypatch.setenv("TPMON_LANG", "en")
    assert argparse._("positional arguments") == "positional arguments"  # type: ignore[attr-defined]


def test_status_says_states_and_sources_in_words_and_a_closed_pipe_is_no_error(tmp_path: Path) -> None:
    database = {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/status.db"}
    french = _tpmon("status", "--config", "config/example.yaml", lang_env=database)
    assert french.returncode == 0, french.stderr
    lines = french.stdout.splitlines()
    assert lines[0].split() == ["COMPOSANT", "ÉTAT", "DEPUIS", "(Paris)", "SOURCE"]
    assert lines[1].split() == ["network:viamedis", "?", "Statut", "inconnu", "—", "aucun", "signal"]
    english = _tpmon("status", "--config", "config/example.yaml", lang_env={**database, "LANG": "en_US.UTF-8"})
    assert english.stdout.splitlines()[1].split() == ["network:viamedis", "?", "Unknown", "status", "—", "no", "signal"]

    env = {name: value for name, value in os.environ.items() if not name.startswith(("TPMON_", "LC_", "LANG"))}
    reader = subprocess.Popen(
        [sys.executable, "-m", "monitor", "status", "--config", "config/example.yaml"],
        cwd=ROOT,
        env={**env, **database},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # `tpmon status | head -0`: the reader is gone before the first line
    _, errors = reader.communicate(timeout=60)
    assert reader.returncode in (0, 141) and errors == b"", errors


FR = {"LANG": "fr_FR.UTF-8"}
EN = {"LANG": "en_GB.UTF-8"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _said(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line `tpmon` said on stderr, after checking it ended with `code` and said nothing else."""
    assert result.returncode == code, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.rstrip("\n")


def test_serve_start_errors_are_said_in_the_command_lines_language(tmp_path: Path) -> None:
    database = {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = ("serve", "--config", "config/example.yaml", "--host", "127.0.0.1", "--port", str(port))
        french = _said(_tpmon(*serve, lang_env={**database, **FR}), 2)
        english = _said(_tpmon(*serve, lang_env={**database, **EN}), 2)
    assert french == (
        f"tpmon: --port\u00a0: impossible d’écouter sur 127.0.0.1:{port} (déjà utilisé)\u00a0; choisissez un autre port"
    )
    assert english == f"tpmon: --port: cannot listen on 127.0.0.1:{port} (already in use); choose another port"

    nowhere = ("serve", "--config", "config/example.yaml", "--host", "no-such-host.invalid", "--port", "8099")
    assert _said(_tpmon(*nowhere, lang_env={**database}), 2) == (
        "tpmon: --host\u00a0: impossible de résoudre 'no-such-host.invalid'"
    )
    assert (
        _said(_tpmon(*nowhere, lang_env={**database, **EN}), 2)
        == "tpmon: --host: cannot resolve 'no-such-host.invalid'"
    )
    assert not (tmp_path / "serve.db").exists()  # refused before the database is touched


def test_an_error_keeps_its_english_for_logs_and_says_each_language_on_demand() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MonitorError) as refused:
            check_port("127.0.0.1", port, options=("--admin-host", "--admin-port"))
    assert (
        str(refused.value) == f"--admin-port: cannot listen on 127.0.0.1:{port} (already in use); choose another port"
    )
    assert refused.value.text("en") == str(refused.value)
    assert refused.value.text("fr").startswith(f"--admin-port\u00a0: impossible d’écouter sur 127.0.0.1:{port} (déjà")


def test_probe_and_incident_refusals_are_said_in_the_command_lines_language(tmp_path: Path) -> None:
    push = ("probe", "viamedis/pec/operateur")
    assert _said(_tpmon(*push, lang_env=FR), 2) == (
        "tpmon: viamedis/pec/operateur est une vérification push\u00a0: `tpmon push` l’alimente, aucune sonde"
    )
    assert _said(_tpmon(*push, lang_env=EN), 2) == (
        "tpmon: viamedis/pec/operateur is a push check: `tpmon push` feeds it, not probes"
    )

    database = {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/incidents.db"}
    empty = ("incident", "open", "--title", " ", "--impact", "minor", "--message", "M")
    assert _said(_tpmon(*empty, lang_env={**database}), 2) == "tpmon: --title\u00a0: ne doit pas être vide"
    assert _said(_tpmon(*empty, lang_env={**database, **EN}), 2) == "tpmon: --title: must not be empty"
    wrong = ("incident", "open", "--title", "T", "--impact", "minor", "--message", "M", "--declare", "line:x/y=down")
    assert _said(_tpmon(*wrong, lang_env={**database, **FR}), 2) == (
        "tpmon: --declare\u00a0: composant inconnu 'line:x/y'\u00a0: aucun réseau 'x' (connus\u00a0: "
        "viamedis, almerys, kalixia, santeclair)"
    )
    assert _said(_tpmon(*wrong, lang_env={**database, **EN}), 2).startswith(
        "tpmon: --declare: unknown component 'line:x/y': no network 'x' (known: viamedis, "
    )


def test_account_token_and_push_refusals_are_said_in_the_command_lines_language(tmp_path: Path) -> None:
    database = {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/staff.db"}
    english = {**database, "TPMON_LANG": "en"}
    short = ("user", "add", "bob", "--role", "admin", "--password-stdin")
    assert _said(_tpmon(*short, lang_env=database, stdin="short\n"), 2) == (
        "tpmon: password\u00a0: au moins 12 caractères (une phrase de quelques mots convient)"
    )
    assert _said(_tpmon(*short, lang_env=english, stdin="short\n"), 2) == (
        "tpmon: password: at least 12 characters (a passphrase of a few words is good)"
    )
    scoped = ("user", "add", "bob", "--role", "viewer", "--network", "viamedis", "--password-stdin")
    phrase = "correct horse battery staple\n"
    assert _said(_tpmon(*scoped, lang_env=database, stdin=phrase), 2) == (
        "tpmon: networks\u00a0: seul un éditeur est limité à des réseaux (pas le rôle viewer)"
    )
    assert _said(_tpmon(*scoped, lang_env=english, stdin=phrase), 2) == (
        "tpmon: networks: only an editor is scoped to networks (not a role viewer)"
    )
    scope = ("token", "create", "--label", "gatus", "--scope", "push:viamedis")
    assert _tpmon(*scope, lang_env=database).returncode == 0
    assert _tpmon("token", "revoke", "1", lang_env=database).returncode == 0
    again = ("token", "revoke", "1")
    assert _said(_tpmon(*again, lang_env=database), 2).startswith("tpmon: token\u00a0: le jeton 1 (")
    assert _said(_tpmon(*again, lang_env=database), 2).endswith(") est déjà révoqué")
    assert _said(_tpmon(*again, lang_env=english), 2).endswith(") is already revoked")
    wrong = ("token", "create", "--label", "x", "--scope", "push:viamedis/pec/nope")
    assert _said(_tpmon(*wrong, lang_env=database), 2) == (
        "tpmon: --scope\u00a0: push:viamedis/pec/nope\u00a0: aucune vérification viamedis/pec/nope dans la config"
    )
    assert _said(_tpmon(*wrong, lang_env=english), 2) == (
        "tpmon: --scope: push:viamedis/pec/nope: no check viamedis/pec/nope in the config"
    )
    detail = ("push", "viamedis/pec/operateur", "--detail", "BAD!")
    assert _said(_tpmon(*detail, lang_env=database), 2) == (
        "tpmon: detail\u00a0: doit être un code court\u00a0: au plus 40 caractères parmi a-z, 0-9, '_', '.', '-'"
    )
    assert _said(_tpmon(*detail, lang_env=english), 2) == (
        "tpmon: detail: must be a short code: at most 40 of a-z, 0-9, '_', '.', '-'"
    )
    probed = ("push", "viamedis/portail_ps/portail")
    assert _said(_tpmon(*probed, lang_env=database), 2).startswith(
        "tpmon: check\u00a0: viamedis/portail_ps/portail est sondée par tpmon (type http)\u00a0: seules les "
    )
    assert _said(_tpmon(*probed, lang_env=english), 2) == (
        "tpmon: check: viamedis/portail_ps/portail is probed by tpmon (kind http): only push checks take signals"
    )


def test_a_database_that_cannot_be_reached_is_said_in_the_command_lines_language() -> None:
    port = _free_port()  # nothing listens there once the probe socket is closed
    database = {"TPMON_DATABASE_URL": f"postgresql://tpmon@127.0.0.1:{port}/tpmon"}
    french = _said(_tpmon("status", "--config", "config/example.yaml", lang_env={**database, **FR}), 1)
    english = _said(_tpmon("status", "--config", "config/example.yaml", lang_env={**database, **EN}), 1)
    assert french.startswith(
        f"tpmon: impossible d’utiliser la base postgresql://tpmon@127.0.0.1:{port}/tpmon "
        "(opération «\u00a0reach the database\u00a0»)\u00a0: "
    )
    assert english.startswith(f"tpmon: cannot reach the database postgresql://tpmon@127.0.0.1:{port}/tpmon: ")
    assert french.split("\u00a0: ", 1)[1] == english.split("/tpmon: ", 1)[1]  # the driver's reason, as it is


# `raise MonitorError(f"…")` and its kin that say a plain English text in every language, each with its reason.
ENGLISH_ONLY = {
    ("monitor/app.py", "metrics not refreshed: shutting down"): "internal: caught by the metrics' refresh, never shown",
    ("monitor/store/signal_store.py", "refused a push signal"): "a guard behind push_signals, which refuses first",
    ("monitor/web/publisher.py", "link(s) of the export lead nowhere"): "logged by `tpmon serve`'s publisher (English)",
    ("monitor/web/static_export.py", "the export cannot list the values of"): "a bug of tpmon, for its developers",
    ("monitor/web/static_export.py", "still has a page"): "a bug of tpmon, for its developers",
}
SAID_ERRORS = {"MonitorError", "StoreError", "NotFound", "ExportError", "WriteRefused", "NotAllowed", "PasswordError"}
# Errors naming a field first, their message second: staff accounts and tokens, push signals, incidents and
# maintenance, the console's forms, the admin API's refusals.
FIELD_ERRORS = {"StaffError", "PushError", "IncidentError", "FormProblem", "FieldError", "Refused"}
# The public API's own `Refused` (status, text): its errors are in English (README, « Langue »).
OWN_REFUSED = {"monitor/web/api_v1.py"}


def _plain_text(node: ast.expr) -> str | None:
    """The text of a message written as a plain string (a literal, an f-string, a sum or a `.format` of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value for part in node.values if isinstance(part, ast.Constant) and isinstance(part.value, str)
        )
    if isinstance(node, ast.BinOp):
        return _plain_text(node.left) or _plain_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _plain_text(node.func.value)
    return None


def test_every_error_tpmon_shows_carries_a_text_in_each_language() -> None:
    found: list[str] = []
    allowed_seen: set[tuple[str, str]] = set()
    kinds: set[str] = set()
    checked = 0
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            called = node.exc.func
            if not (isinstance(called, ast.Name) and called.id in SAID_ERRORS | FIELD_ERRORS):
                continue
            if called.id == "Refused" and where in OWN_REFUSED:
                continue
            position = 1 if called.id in FIELD_ERRORS else 0
            if len(node.exc.args) <= position:
                continue
            checked += 1
            kinds.add(called.id)
            text = _plain_text(node.exc.args[position])
            if text is None:
                continue
            allowed = [key for key in ENGLISH_ONLY if key[0] == where and key[1] in text]
            if allowed:
                allowed_seen.update(allowed)
            else:
                found.append(f"{where}:{node.lineno}: {text[:60]!r}")
    assert checked > 150  # the walk reached the raises
    assert kinds >= (SAID_ERRORS | FIELD_ERRORS) - {"FieldError", "ExportError"}, kinds  # each kind was checked
    assert found == [], (
        "\n".join(found) + "\ngive these errors a said(…) text (monitor.i18n), or list them with a reason"
    )
    assert allowed_seen == set(ENGLISH_ONLY)  # no stale exception
