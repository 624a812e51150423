"""The layering of DESIGN §3: data flows one way, lower layers never import higher ones; the API is pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import monitor

ROOT = Path(monitor.__file__).parent

# A module may import only modules of a strictly lower rank (or its own package's modules).
RANKS = {
    "errors": 0,
    "models": 0,
    "taxonomy": 1,
    "yamlsource": 1,
    "i18n": 1,
    "logs": 1,
    "config": 2,
    "configcheck": 2,
    "configerrors": 2,
    "history": 2,  # pure, like status, but below the store that persists its rollups
    "probes": 3,
    "status": 3,
    "declared": 3,  # texts and component keys shared by incidents and maintenance
    "incidents": 4,  # pure, but they build status.Override
    "maintenance": 4,
    "store": 5,  # store.declarations persists incidents and maintenance windows
    "board": 4,
    "metrics": 5,
    "scheduler": 5,
    "runner": 6,
    "push": 6,  # push signals: validated, read from the store's inbox, folded into the board
    "web": 7,
    "app": 8,
    "opscli": 9,  # the incident/maintenance commands, registered by cli
    "pushcli": 9,  # `tpmon push`, registered by cli
    "demo": 9,
    "cli": 10,
    "__main__": 11,
    "__init__": 12,
}
# config and configcheck import each other (configcheck only for type names or lazily, inside functions).
ALLOWED = {
    ("config", "configcheck"),
    ("configcheck", "config"),
    ("config", "configerrors"),
    ("configerrors", "config"),
    ("configcheck", "configerrors"),
}


def _top(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Top-level monitor modules imported by `path`, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("monitor", *path.relative_to(ROOT).parent.parts))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found.update(n.split(".")[1] for n in names if n.startswith("monitor.") and len(n.split(".")) > 1)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("monitor."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_every_module_has_a_rank() -> None:
    tops = {_top(p) for p in ROOT.rglob("*.py")}
    assert tops <= set(RANKS), f"modules without a layer: {sorted(tops - set(RANKS))}"


def test_lower_layers_never_import_higher_ones() -> None:
    violations = []
    for path in sorted(ROOT.rglob("*.py")):
        me = _top(path)
        for other in _imports(path):
            if other != me and (me, other) not in ALLOWED and RANKS[other] >= RANKS[me]:
                violations.append(f"{path.relative_to(ROOT)} ({me}) imports {other}")
    assert not violations, "\n".join(violations)


def test_only_the_store_tables_module_defines_tables() -> None:
    holders = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if "table=True" in p.read_text()]
    assert holders == ["store/tables.py"]


def test_public_api_is_pinned() -> None:
    assert monitor.__all__ == [
        "ComponentRef",
        "ConfigError",
        "MonitorError",
        "NotFound",
        "ProbeResult",
        "Settings",
        "Source",
        "State",
        "StoreError",
        "create_app",
        "load_config",
    ]
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None
