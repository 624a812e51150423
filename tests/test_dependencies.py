"""pyproject.toml declares every third-party module that is imported, and requirements-lock.txt pins them all."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
LOCK = (ROOT / "requirements-lock.txt").read_text(encoding="utf-8")


def requirements(*extras: str) -> list[Requirement]:
    """The project's requirements and those of `extras`, a self-reference (`tpmon[demo]`) unfolded."""
    found = [Requirement(text) for text in PROJECT["dependencies"]]
    for extra in extras:
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "tpmon":
                found += requirements(*requirement.extras)
            else:
                found.append(requirement)
    return found


def declared(*extras: str) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements(*extras)}


def third_party_imports(files: list[Path], local: set[str]) -> dict[str, set[str]]:
    """Top-level module → the files importing it, leaving out the standard library, tpmon and `local`."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"__future__", "monitor", *local}:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@cache
def distributions(module: str) -> set[str]:
    return {canonicalize_name(name) for name in metadata.packages_distributions().get(module, [])}


def undeclared(imports: dict[str, set[str]], allowed: set[str]) -> list[str]:
    return sorted(
        f"{module} ({', '.join(sorted(files))})"
        for module, files in imports.items()
        if not distributions(module) & allowed
    )


def locked() -> dict[str, tuple[str, int]]:
    """Name → (pinned version, number of hashes) in requirements-lock.txt."""
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=\S)", LOCK):
        if found := re.match(r"([A-Za-z0-9._-]+)==(\S+)", block):
            pins[canonicalize_name(found.group(1))] = (found.group(2), block.count("--hash=sha256:"))
    return pins


def test_monitor_imports_only_its_declared_dependencies() -> None:
    files = sorted((ROOT / "monitor").rglob("*.py"))
    demo = [path for path in files if "demo" in path.relative_to(ROOT / "monitor").parts]
    core = [path for path in files if path not in demo]
    assert not undeclared(third_party_imports(core, set()), declared())
    assert not undeclared(third_party_imports(demo, set()), declared("demo"))
    assert "cryptography" not in declared(), "only the demo uses it: it belongs to the `demo` extra"


def test_the_tests_import_only_declared_dependencies() -> None:
    files = sorted((ROOT / "tests").rglob("*.py"))
    local = {path.stem for path in files}
    assert not undeclared(third_party_imports(files, local), declared("test", "demo"))


def test_the_lock_pins_every_requirement_within_its_bounds_with_hashes() -> None:
    pins = locked()
    wrong = []
    for requirement in requirements("test", "demo"):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version, hashes = pins.get(canonicalize_name(requirement.name), ("missing", 0))
        if version == "missing" or not requirement.specifier.contains(version, prereleases=True) or hashes == 0:
            wrong.append(f"{requirement}: {version} ({hashes} hashes)")
    assert not wrong, "run `bash .ci/lock.sh`: " + "; ".join(wrong)
    assert all(hashes for _, hashes in pins.values())


def test_what_is_installed_is_what_is_locked() -> None:
    """.ci/setup.sh installs the lock and nothing else: the tests run on exactly the pinned versions."""
    different = {}
    for name, (version, _) in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            different[name] = f"{installed}, locked {version}"
    assert not different, f"run `bash .ci/setup.sh`: {different}"


BLOCKED_IMPORT = """
import sys
from importlib.abc import MetaPathFinder


class Absent(MetaPathFinder):  # as if `pip install tpmon` had been run without the demo extra
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"cryptography", "aiosmtpd"}:
            raise ModuleNotFoundError(name)
        return None


sys.meta_path.insert(0, Absent())
from monitor.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_the_demo_without_its_extra_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    for args, missing in ((["demo"], "cryptography"), (["demo", "--smtp-sink", "mails"], "cryptography, aiosmtpd")):
        done = subprocess.run(
            [sys.executable, "-c", BLOCKED_IMPORT, *args, "--port", "1"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"tpmon: the demo needs {missing}: pip install 'tpmon[demo]' (or bash .ci/setup.sh)"
        ]
