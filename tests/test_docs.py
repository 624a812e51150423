"""The README stays true to the code: its commands exist, and every command is in it (as datasette's test_docs)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from monitor.cli import build_parser

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> set[str]:
    """Every `tpmon` command and sub-command, e.g. `incident open`, `db upgrade`."""
    found: set[str] = set()

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.add(f"{prefix}{name}".strip())
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return found


def test_every_command_is_in_the_readme() -> None:
    missing = []
    for command in sorted(commands()):
        head, _, rest = command.partition(" ")
        # "incident open" may be written `tpmon incident open|update|…`
        pattern = rf"tpmon {re.escape(head)}" + (rf"[ \w|\\]*\b{re.escape(rest)}\b" if rest else r"\b")
        if not re.search(pattern, README):
            missing.append(command)
    assert not missing, f"commands not documented in README.md: {missing}"


def test_the_readme_names_only_real_commands() -> None:
    named = set(re.findall(r"`tpmon ([a-z-]+)", README))
    assert named <= {c.split(" ")[0] for c in commands()}, named - {c.split(" ")[0] for c in commands()}


def test_the_quick_start_is_two_commands_that_exist_and_ci_runs_the_second() -> None:
    start = README.split("## Démarrage rapide", 1)[1].split("## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", start, re.S)
    assert block is not None
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert lines == ["bash .ci/demo", "bash .ci/test"]
    assert (ROOT / ".ci" / "demo").exists()
    assert "tpmon demo" in (ROOT / ".ci" / "demo").read_text()
    assert 'exec bash "$(dirname "${BASH_SOURCE[0]}")/test"' in (ROOT / ".ci" / "run").read_text()


def test_every_public_page_is_in_the_readme() -> None:
    from monitor.web.page_routes import PAGES

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    named = {shape(path) for path in re.findall(r"`(/[^`\s]*)`", README)}
    missing = [path for path in PAGES if shape(path) not in named]
    assert not missing, f"pages not described in README.md: {missing}"


def test_the_safe_operation_table_lists_every_web_setting_with_its_default() -> None:
    from monitor.config import WebSettings

    section = README.split("## Exploitation sûre", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M))
    assert set(rows) == set(WebSettings.model_fields)
    for name, field in WebSettings.model_fields.items():
        default = field.default
        if default in (None, ()):
            assert rows[name].strip() == "—", name
        elif isinstance(default, float):
            assert rows[name].strip() == f"{default:g} s", name
        elif isinstance(default, int):
            assert rows[name].strip().replace("\u202f", "").replace(" ", "") == str(default), name
    from monitor.web import page_cache

    said = section.replace("\n  ", " ")
    for number, words in (
        (page_cache.MAX_PAGES, "pages"),
        (page_cache.MAX_QUERIED, "adresses à paramètres"),
        (page_cache.BUILD_THREADS, "fils"),
        (page_cache.MAX_NEW_BUILDS, "pages jamais vues"),
    ):
        assert f"{number:,}".replace(",", " ") + " " + words in said, words
    from monitor import listener_limits

    shares = {8: "un huitième"}  # of the file descriptors' room, for the operators' listener
    assert f"{shares[listener_limits.ADMIN_SHARE]} (au moins {listener_limits.MIN_CONNECTIONS})" in said
