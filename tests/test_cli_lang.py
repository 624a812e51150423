"""The command line speaks French first: its help, results and usage errors in French by default (an unset or C
locale included), in English for an English locale or TPMON_LANG=en; no text left untranslated."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import build_parser
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


def _tpmon(*args: str, lang_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
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
