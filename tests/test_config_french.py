"""Config problems speak French first: every problem of every `tests/data/config/invalid-*.yaml` has a French text
(no English left but what a parser says, quoted « »), pydantic's errors are said by their type (every type the
config can produce has its French), `tests/data/config/fr/*.expected` give the exact French output of the most
common problems, and an error type without a translation falls back to pydantic's English, never to a crash."""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from test_config_blind import BLIND

from monitor.cli import _warning
from monitor.config import Settings, load_config, read_config
from monitor.config.problems import HANDLED, _data_path, _message
from monitor.errors import ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("tests/data/config")  # relative: the messages show the path as given on the command line
FRENCH = DATA / "fr"
SECRET = "s3cr3t-t0ken-value"
NBSP = "\u00a0"

# Words of an English message that a French one never has (config words — interval, timeout, url, push, true… —
# may appear in both).
_ENGLISH = (
    "must be is are not the of and or with without unknown field required missing should input valid invalid got "
    "expected between than least most only allowed never needs cannot empty file such duplicate key characters "
    "items list string integer number mapping name names network flow line lines check shorter longer greater "
    "less equal did you mean known at to in its this which will has no host refers value contains itself too "
    "large aliases expand values read regular directory permission denied neither nor like"
)
ENGLISH_WORDS = frozenset(_ENGLISH.split())
# What a French message may quote as it is: « a parser's words », 'a value', `yaml`, {a: yaml, flow: example},
# dotted field paths and addresses (web.public_url, etat.exemple.fr, $.items[0].state), header names (X-API-Key), URLs.
QUOTED = re.compile(r"«[^»]*»|'[^']*'|`[^`]*`|\{[^}]*\}|[\w$]+(?:[.-][\w$\[\]]+)+|https?://\S*")


def english_words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z]+", QUOTED.sub(" ", text).lower()) if word in ENGLISH_WORDS}


def _cases() -> list[Path]:
    stems = {path.stem for path in (ROOT / DATA).glob("invalid-*.yaml")}
    stems |= {path.stem for path in (ROOT / DATA).glob("invalid-*.expected")}  # the missing file too
    return [DATA / f"{stem}.yaml" for stem in sorted(stems)]


def _problems(path: Path) -> tuple[ConfigProblem, ...]:
    environ = {"TPMON_TEST_TOKEN": SECRET}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        load_config(path, environ)
    except ConfigError as exc:
        return exc.problems
    finally:
        os.chdir(cwd)
    raise AssertionError(f"{path} is valid")


def test_every_invalid_config_is_said_in_french() -> None:
    said = [(path, problem) for path in _cases() for problem in _problems(path)]
    assert len(said) > 100, len(said)  # every case was read, each with its problems
    english = [problem.message_in("fr") for _, problem in said if english_words(problem.message_in("fr"))]
    assert not english, f"{len(english)} message(s) left in English: {english}"
    # the heuristic sees English: it flags the English text of nearly every problem
    flagged = [problem.message for _, problem in said if english_words(problem.message)]
    assert len(flagged) >= 0.9 * len(said), [p.message for _, p in said if p.message not in flagged]
    same = [problem.message for _, problem in said if problem.message_in("fr") == problem.message]
    assert not same, same


def test_french_texts_keep_french_typography() -> None:
    texts = {problem.message_in("fr") for path in _cases() for problem in _problems(path)}
    assert any(f"{NBSP}:" in text for text in texts) and any(f"{NBSP}?" in text for text in texts)
    plain = [text for text in texts if re.search(r"(?<=\S) [:;?!»]|« ", text)]
    assert not plain, plain


def _french_cases() -> list[str]:
    return sorted(path.stem for path in (ROOT / FRENCH).glob("invalid-*.expected"))


def _tpmon(*args: str, lang_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TPMON_", "LC_", "LANG"))}
    env.update(lang_env, TPMON_TEST_TOKEN=SECRET)
    command = [sys.executable, "-m", "monitor", *args]
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", _french_cases())
def test_french_expected_output(name: str) -> None:
    """`tests/data/config/fr/NAME.expected`: the exact stderr of check-config on `tests/data/config/NAME.yaml` with
    no locale set (French). To write one: `env -u LANGUAGE -u LANG python -m monitor check-config …`, then read it."""
    assert (ROOT / DATA / f"{name}.yaml").exists(), f"{FRENCH / name}.expected has no {DATA / name}.yaml"
    result = _tpmon("check-config", str(DATA / f"{name}.yaml"), lang_env={})
    assert result.stdout == ""
    assert result.stderr == (ROOT / FRENCH / f"{name}.expected").read_text(encoding="utf-8")
    assert result.returncode == 2


def test_the_french_expected_files_cover_the_common_problems() -> None:
    assert len(_french_cases()) >= 5
    said = "".join((ROOT / FRENCH / f"{name}.expected").read_text(encoding="utf-8") for name in _french_cases())
    for text in ("champ obligatoire manquant", "inconnu (vouliez-vous dire", "doit être une liste", "doit valoir"):
        assert text in said, text


def test_serve_and_an_english_locale() -> None:
    config = str(DATA / "invalid-unknown-field.yaml")
    french = _tpmon("serve", "--config", config, lang_env={"LANG": "fr_FR.UTF-8"})
    assert french.returncode == 2
    assert french.stderr.splitlines() == [
        f"{config}:2: stabilisation: champ 'stabilisation' inconnu (vouliez-vous dire 'stabilization'{NBSP}?)",
        f"tpmon{NBSP}: 1 problème(s) dans la configuration{NBSP}; rien n’a été démarré",
    ]
    english = _tpmon("check-config", config, lang_env={"LANG": "en_GB.UTF-8"})
    assert english.stderr == (ROOT / DATA / "invalid-unknown-field.expected").read_text(encoding="utf-8")


def test_warnings_are_french_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "blind.yaml"
    path.write_text(BLIND, encoding="utf-8")
    _, warnings = read_config(path)
    assert len(warnings) == 3
    monkeypatch.setenv("TPMON_LANG", "fr")
    said = _warning(warnings[0])
    assert said.startswith(f"{path}:6: networks.viamedis.lines[0]: avertissement: 'pharmacie' exige 'facturation', ")
    assert "le domaine restera inconnu" in said
    monkeypatch.setenv("TPMON_LANG", "en")
    assert _warning(warnings[0]) == f"{path}:6: networks.viamedis.lines[0]: warning: {warnings[0].message}"


# --- every pydantic error type the config can produce has its French ----------------------------------------

BAD_VALUES: list[Any] = [
    None,
    "x",
    "Bad Name",
    -1,
    0,
    10**12,
    1.5,
    math.inf,
    True,
    [],
    ["x"],
    {},
    {"zz": 1},
    "a" * 70000,  # longer than any text
    ["x"] * 60,  # longer than any list
    {1: "x"},  # a key that is no text
]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a tree: mapping keys and list items."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:1]):  # the next items have the same shape
            yield (*path, index)
            yield from _paths(value, (*path, index))


def _mutations(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The example with one value replaced by a bad one, or removed, or a key added, everywhere."""
    for path in _paths(data):
        for bad in [*BAD_VALUES, "removed"]:
            changed = copy.deepcopy(data)
            parent = changed
            for part in path[:-1]:
                parent = parent[part]
            if bad == "removed":
                if isinstance(parent, dict):
                    del parent[path[-1]]
            else:
                parent[path[-1]] = bad
            yield changed
        changed = copy.deepcopy(data)
        parent = changed
        for part in path:
            parent = parent[part]
        if isinstance(parent, dict):
            parent["zz_unknown"] = 1
            yield changed


def _errors() -> Iterator[tuple[dict[str, Any], ValidationError]]:
    for example in EXAMPLES:
        data = yaml.safe_load(example.read_text(encoding="utf-8"))
        for changed in _mutations(data):
            try:
                Settings.model_validate(changed)
            except ValidationError as exc:
                yield changed, exc


def test_every_pydantic_error_type_the_config_produces_is_translated() -> None:
    """Each example config with every value replaced by bad ones: every error type met is said by its type, in a
    French text of its own (not pydantic's English, which an untranslated type falls back to)."""
    assert len(EXAMPLES) >= 4
    said: dict[str, tuple[str, str]] = {}
    for data, exc in _errors():
        for error in exc.errors():
            if error["type"] in said:
                continue
            text = _message(error, _data_path(tuple(error["loc"]), data), data)
            said[error["type"]] = (text.render("en"), text.render("fr"))
    untranslated = {kind: english for kind, (english, french) in said.items() if english == french}
    assert not untranslated, f"pydantic error types said in English only (add them to problems.py): {untranslated}"
    assert set(said) <= HANDLED, set(said) - HANDLED
    expected = {"missing", "extra_forbidden", "int_parsing", "greater_than", "greater_than_equal", "less_than_equal"}
    expected |= {"literal_error", "string_pattern_mismatch", "string_type", "value_error", "dict_type", "tuple_type"}
    expected |= {"string_too_long", "union_tag_invalid", "bool_parsing", "int_from_float", "float_parsing"}
    expected |= {"too_long", "too_short", "string_too_short", "union_tag_not_found", "model_type", "invalid_key"}
    assert expected <= set(said), expected - set(said)  # the walk reached every kind of field


def test_an_error_type_without_a_translation_says_pydantics_english() -> None:
    error = {"type": "made_up_type", "msg": "Input should be shiny", "loc": ("web",), "input": 3, "ctx": {}}
    text = _message(error, ("web",), {"web": 3})
    assert text.render("fr") == text.render("en") == "must be shiny"
    bound = {"type": "greater_than", "msg": "Input should be greater than 0", "loc": ("jitter",), "input": 0}
    assert _message(bound, ("jitter",), {}).render("fr") == "must be greater than 0"  # no ctx: no crash
    with_ctx = {**bound, "ctx": {"gt": 0}}
    assert _message(with_ctx, ("jitter",), {}).render("fr") == "doit être supérieur à 0"


def test_a_translation_with_wrong_placeholders_says_the_english(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import i18n
    from monitor.config import texts

    text = texts._("unknown flow {name!r}{hint}", name="pecc", hint=texts._(" (did you mean {name!r}?)", name="pec"))
    assert text.render("fr") == f"flux 'pecc' inconnu (vouliez-vous dire 'pec'{NBSP}?)"
    monkeypatch.setattr(i18n, "translate", lambda lang, message: "flux {nom!r} inconnu")  # Text lives in i18n
    assert text.render("fr") == "unknown flow 'pecc' (did you mean 'pec'?)"  # the hint's too: said in English
