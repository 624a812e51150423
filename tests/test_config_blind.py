"""`tpmon check-config` tells what will stay blind (a line whose required flows nothing feeds), and the README's
table of what each line requires follows the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import read_config
from monitor.config.taxonomy import DEFAULT_LINES, README_END, README_START, readme_table, with_readme_table

ROOT = Path(__file__).resolve().parent.parent
BLIND = """\
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines:
      - pharmacie
      - optique
    checks:
      - {name: portail, flow: portail_ps, kind: tcp, host: portail.example, port: 443}
  kalixia:
    name: Kalixia
    kind: reseau_de_soins
    lines: [optique]
    depends_on:
      - {network: viamedis, flow: facturation}
    checks:
      - {name: pec, flow: pec, kind: push, interval: 5m}
  carte-blanche:
    name: Carte Blanche
    kind: reseau_de_soins
    lines: [optique]
    checks:
      - {name: facturation, flow: facturation, kind: push, interval: 5m}
      - {name: droits, flow: droits, kind: tcp, host: droits.example, port: 443}
"""


def check_config(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "monitor", "check-config", str(path), *args]
    return subprocess.run(command, check=False, cwd=path.parent, capture_output=True, text=True, timeout=60)


@pytest.fixture
def blind(tmp_path: Path) -> Path:
    path = tmp_path / "blind.yaml"
    path.write_text(BLIND, encoding="utf-8")
    return path


def test_lines_nothing_feeds_are_warnings_naming_file_line_and_field(blind: Path) -> None:
    done = check_config(blind)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{blind}: OK — 3 networks, 4 checks, 3 warning(s)\n"
    feeds = "which no check, push check or dependency of this network feeds"
    stays = "the line will stay unknown until ops declare its status"
    assert done.stderr.splitlines() == [
        # viamedis probes only its portal: invoicing (every line) is fed by nothing
        f"{blind}:6: networks.viamedis.lines[0]: warning: 'pharmacie' requires 'facturation', {feeds}: {stays}",
        f"{blind}:7: networks.viamedis.lines[1]: warning: 'optique' requires 'facturation', {feeds}: {stays}",
        # the portal alone is enough for 'portail_ps|pec'; carte-blanche's rights check is optional, not required
        f"{blind}:21: networks.carte-blanche.lines[0]: warning: 'optique' requires 'portail_ps|pec', {feeds}: {stays}",
    ]  # kalixia: its push check feeds PEC, its dependency on Viamedis invoicing feeds the other


def test_strict_makes_them_errors(blind: Path) -> None:
    done = check_config(blind, "--strict")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 4 and lines[-1] == "tpmon: 3 problem(s) in the config; nothing was started"
    assert lines[0].startswith(f"{blind}:6: networks.viamedis.lines[0]: 'pharmacie' requires 'facturation'")
    assert "warning" not in done.stderr


def test_a_config_without_blind_lines_is_ok_even_strict(tmp_path: Path) -> None:
    demo = ROOT / "config" / "demo.yaml"
    env = {"TPMON_DEMO_HTTP": "http://127.0.0.1:9", "TPMON_DEMO_TLS": "https://127.0.0.1:9"}
    settings, warnings = read_config(demo, environ=env)
    assert warnings == [] and settings.networks
    invoicing = "      - {name: dre, flow: facturation, kind: push, interval: 5m}\n"
    fed = tmp_path / "fed.yaml"  # viamedis gets an invoicing check, carte-blanche a PEC one instead of rights
    text = BLIND.replace("port: 443}\n  kalixia", f"port: 443}}\n{invoicing}  kalixia")
    fed.write_text(text.replace("{name: droits, flow: droits", "{name: pec, flow: pec"), encoding="utf-8")
    done = check_config(fed, "--strict")
    assert (done.returncode, done.stderr) == (0, "")


def test_the_readme_table_is_the_code_s_taxonomy() -> None:
    """Regenerate with `python -m monitor.config --write README.md`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_START in readme and README_END in readme
    assert with_readme_table(readme) == readme, (
        "the README's taxonomy table is stale: python -m monitor.config --write README.md"
    )
    table = readme_table()
    assert len(table.splitlines()) == len(DEFAULT_LINES) + 2
    assert (
        "| Optique (`optique`) | Portail professionnels de santé (`portail_ps`) **ou** Prises en charge (PEC) (`pec`) ;"
        in table
    )


def test_the_table_command_prints_and_writes(tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "monitor.config"], capture_output=True, text=True, check=True)
    assert printed.stdout == readme_table() + "\n" and printed.stderr == ""
    stale = tmp_path / "README.md"
    stale.write_text(f"# Titre\n\n{README_START}\n| vieux |\n{README_END}\n\nSuite.\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "monitor.config", "--write", str(stale)], check=True)
    assert stale.read_text(encoding="utf-8") == f"# Titre\n\n{README_START}\n{readme_table()}\n{README_END}\n\nSuite.\n"
