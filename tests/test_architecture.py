"""The layering of DESIGN §3 and ARCHITECTURE.md: data flows one way, at the scale of packages and inside them.

Every import counts — at module level, inside functions (lazy) and under `if TYPE_CHECKING:` alike — so that the
import graph has no circle at all. The rules are checked on sources, so a test can feed them a module that does
not exist and see it refused.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import monitor

ROOT = Path(monitor.__file__).parent
REPO = ROOT.parent

# A module may import a module of another top-level package only if that package's rank is strictly lower.
RANKS: dict[str, float] = {
    "errors": 0,
    "models": 0,
    "i18n": 1,
    "logs": 1,
    "exposition": 1,  # the Prometheus text format: metrics write it, /metrics names its content type
    "config": 2,
    "availability": 3,  # pure, like the engine, but below the store that persists its roll-ups
    "engine": 3,
    "probes": 3,
    "declared": 4,  # incidents and maintenance build engine.overrides.Override
    "staff": 4,  # roles, passwords, second factor, tokens, sessions, throttles, audit events: pure
    "board": 4,
    "snapshot": 4.5,  # the board's states and what ops declared, at one instant: what every surface reads
    "notify": 4.5,  # what is worth telling: events built from the board's transitions and what ops declare
    "store": 5,  # store.declaration_store persists what ops declared
    "metrics": 5,
    "scheduler": 5,
    "runner": 6,
    "probe_wire": 2.5,  # what probe workers and the main process tell each other: settings and results
    "probe_worker": 5.5,  # a probe worker process: the scheduler and the probes, no board, no store
    "probe_pool": 6,  # the workers seen from the main process: started, restarted, read, stopped
    "push_signals": 6,  # validated, read from the store's inbox, folded into the board
    "operators": 6,  # audited writes, tokens in memory, push intake, staff access: over the store
    "delivery": 6,  # senders: claim from the store's outbox, send by e-mail, webhook, chat
    "cluster": 6.5,  # several instances: SQLite's file lock, membership, partition of the checks, one leader
    "web": 7,
    "app": 8,
    "listener_limits": 8,  # the listeners' limits around uvicorn: config and errors only
    "opscli": 9,
    "demo": 9,
    "listeners": 9,  # both uvicorn servers of `tpmon serve`, over the composition root
    "cli": 10,
    "__main__": 11,
    "__init__": 12,
}
# Inside a package, a module may import only modules of a strictly lower rank (its own package's).
INNER: dict[str, dict[str, float]] = {
    "config": {
        "texts": -1,  # problems' messages in each language, through the catalogs
        "values": 0,
        "taxonomy": 0,
        "yaml_source": 0,
        "model": 1,
        "problems": 2,
        "rules": 3,
        "loader": 4,
        "__init__": 5,
        "__main__": 6,  # python -m monitor.config: the README's taxonomy table
    },
    "engine": {
        **dict.fromkeys(("check_state", "overrides", "timers", "quorum"), 0),
        "aggregate": 1,
        **dict.fromkeys(("check_tally", "graph"), 2),
        "__init__": 3,
    },
    "notify": {"events": 0, "tokens": 0, "scopes": 1, "messages": 2, "payloads": 2, "__init__": 3},
    "declared": {"inputs": 0, "incidents": 1, "maintenance": 1, "__init__": 2},
    "staff": {
        **dict.fromkeys(("roles", "passwords", "second_factor", "sessions", "throttle", "audit"), 0),
        "tokens": 1,
        "__init__": 2,
    },
    "operators": {
        **dict.fromkeys(("audited", "push_intake", "token_registry", "staff_access"), 0),
        "desk": 1,
        "__init__": 2,
    },
    "probes": {
        **dict.fromkeys(("clients", "net", "phases", "certs", "starvation"), 0),
        **dict.fromkeys(("context", "conditions", "wire"), 1),
        "outcome": 2,
        **dict.fromkeys(("http", "tcp", "tls", "dns"), 3),
        "__init__": 4,
        "once": 5,
    },
    "store": {
        **dict.fromkeys(("tables", "rows", "database", "deadlines", "changes"), 0),
        "outbox_rows": 0.5,  # events into the outbox, in the transaction of the store and the declarations
        **dict.fromkeys(("store", "migrations"), 1),
        **dict.fromkeys(
            (
                "journal",
                "rollup_store",
                "signal_store",
                "latency_store",
                "declaration_store",
                "staff_store",
                "token_store",
                "audit_store",
                "idempotency_store",
                "outbox_store",
                "subscriber_store",
                "webhook_store",
            ),
            2,
        ),
        **dict.fromkeys(("writer", "housekeeping"), 3),
        "__init__": 4,
    },
    "web": {
        "fragments": 0,  # pieces of pages rendered once, below the page cache that holds them
        "json_bytes": 0,  # JSON documents joined from pieces already encoded
        **dict.fromkeys(
            (
                "ops_markdown",
                "security_headers",
                "export_folder",
                "reactivation_timeline",
                "page_cache",
                "render",
                "latency_chart",
                "affected_text",
                "console_forms",  # the console's forms read into the domain
            ),
            1,
        ),
        **dict.fromkeys(
            (
                "availability_bars",
                "board_view",
                "incident_view",
                "statuspage_incidents",
                "site_context",
                "api_v1_models",
                "admin_context",
                "revalidation",
            ),
            2,
        ),
        **dict.fromkeys(
            (
                "api_v1_openapi",
                "badges",  # a line's badge kept while its network's view (board_view) is
                "feeds",
                "home_page",
                "incident_pages",
                "member_pages",
                "statuspage_json",
                "staff_auth",
                "admin_models",
                "subscription_pages",
            ),
            3,
        ),
        **dict.fromkeys(("api_v1", "info_pages", "network_page", "admin_openapi", "admin_api", "console_base"), 4),
        **dict.fromkeys(("line_page", "push_api", "sign_in_api", "console_pages", "console_admin"), 5),
        **dict.fromkeys(("page_routes", "admin_routes"), 6),
        **dict.fromkeys(("__init__", "static_export"), 7),
        "publisher": 8,  # the export kept in a folder by `tpmon serve`
    },
    "delivery": {
        **dict.fromkeys(("address_guard", "smtp_sender", "notify_metrics", "subscription_desk"), 0),
        **dict.fromkeys(("chat_sender", "webhook_sender"), 1),
        "notifier": 2,
        "__init__": 3,
    },
    "cluster": {
        **dict.fromkeys(("single_instance", "ownership", "lead_gap"), 0),
        **dict.fromkeys(("members", "follower"), 1),
        "coordinator": 2,
        "__init__": 3,
    },
    "demo": {
        "__init__": 0,
        "certs": 0,
        "clock": 0,
        "mail_sink": 0,
        "scenario": 1,
        "simulator": 2,
        "events": 2,
        "replay": 3,
        "run": 4,
    },
    "opscli": {
        "texts": -1,  # the command line's language, under every command module
        "inputs": 0,
        **dict.fromkeys(
            (
                "incident_commands",
                "maintenance_commands",
                "push_command",
                "user_commands",
                "token_commands",
                "audit_commands",
                "notify_commands",
            ),
            1,
        ),
        "__init__": 2,
    },
}
# Edges the ranks would allow but the design forbids: (importer prefix, imported prefix).
FORBIDDEN = [
    ("web", "probes"),  # the web reads the board, never the probes
    ("web", "scheduler"),
    ("web", "runner"),
    ("web", "metrics"),  # /metrics reads the page through SiteContext
    ("web", "app"),
    ("store", "web"),
    ("store", "board"),
    ("probes", "store"),
    ("probes", "board"),
    ("engine", "store"),
    ("engine", "probes"),
    ("metrics", "store"),  # the writer's figures come through a callable
]


def module_name(path: Path) -> str:
    """`monitor/web/home_page.py` → `monitor.web.home_page`; a package's `__init__.py` → the package."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, tuple[str, bool]]:
    """Every module of monitor: name → (source, is a package)."""
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in ROOT.rglob("*.py")}


def imports(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The monitor modules `name` imports, anywhere in its source (functions and TYPE_CHECKING included).

    `from package import submodule` is an edge to the submodule only: the package is already being imported.
    """
    package = name if is_package else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known]
            found.update(submodules if len(submodules) == len(node.names) else [target, *submodules])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def graph(modules: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: imports(name, source, package, known) for name, (source, package) in modules.items()}


def _place(name: str) -> tuple[str, str]:
    """(top-level package or module, module inside it or '__init__')."""
    parts = name.split(".")[1:] or ["__init__"]
    return parts[0], (parts[1] if len(parts) > 1 else "__init__")


def violations(edges: Mapping[str, set[str]]) -> list[str]:
    found = []
    for importer, imported in sorted((a, b) for a, targets in edges.items() for b in targets):
        (top_a, inner_a), (top_b, inner_b) = _place(importer), _place(imported)
        short_a, short_b = importer.removeprefix("monitor."), imported.removeprefix("monitor.")
        for forbidden_a, forbidden_b in FORBIDDEN:
            if top_a == forbidden_a and top_b == forbidden_b:
                found.append(f"{short_a} imports {short_b}: {forbidden_a} never imports {forbidden_b}")
        if top_a != top_b:
            if RANKS.get(top_b, 99) >= RANKS.get(top_a, -1):
                found.append(
                    f"{short_a} ({top_a}, rank {RANKS.get(top_a)}) imports {short_b} (rank {RANKS.get(top_b)})"
                )
        elif top_a in INNER:
            ranks = INNER[top_a]
            if ranks.get(inner_b, 99) >= ranks.get(inner_a, -1):
                found.append(f"{short_a} imports {short_b}: not below it inside {top_a}")
    return found


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_rank() -> None:
    unranked = []
    for name in sources():
        top, inner = _place(name)
        if top not in RANKS or (top in INNER and inner not in INNER[top]):
            unranked.append(name)
    assert not unranked, f"modules without a layer: {unranked}"


def test_lower_layers_never_import_higher_ones() -> None:
    assert violations(graph(sources())) == []


def test_the_import_graph_has_no_circle() -> None:
    assert cycles(graph(sources())) == []


def _with(name: str, source: str) -> dict[str, set[str]]:
    modules = {**sources(), name: (source, False)}
    return graph(modules)


def test_the_rules_refuse_the_web_importing_the_composition_root_even_for_types() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..app import Services\n"
    found = violations(_with("monitor.web.temporary", source))
    assert "web.temporary imports app: web never imports app" in found


def test_the_rules_refuse_the_web_reading_the_probes() -> None:
    found = violations(_with("monitor.web.temporary", "def f():\n    from ..probes import PROBES\n"))
    assert "web.temporary imports probes: web never imports probes" in found


def test_the_rules_refuse_an_upward_import_inside_a_package() -> None:
    # config.model importing the loader (a higher module of its own package) would make a circle
    source = sources()["monitor.config.model"][0] + "\nfrom .loader import load_config\n"
    edges = _with("monitor.config.model", source)
    assert "config.model imports config.loader: not below it inside config" in violations(edges)
    assert any({"monitor.config.model", "monitor.config.loader"} <= set(c) for c in cycles(edges))


def test_only_the_store_tables_module_defines_tables() -> None:
    holders = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if "table=True" in p.read_text()]
    assert holders == ["store/tables.py"]


def test_architecture_md_names_every_module_and_only_real_ones() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(monitor/[\w/]+\.py)`", text))
    real = {p.relative_to(REPO).as_posix() for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    assert named - real == set(), "ARCHITECTURE.md names modules that do not exist"
    assert {m for m in real if not m.endswith("__init__.py")} - named == set(), "modules it does not describe"


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


def test_the_app_does_not_load_httpx_command_line_client() -> None:
    """httpx imports its CLI (rich, pygments: ~6 MiB) when rich is installed, as it is here (schemathesis)."""
    code = "import sys, monitor.app, httpx; print(sorted({'rich', 'pygments'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
    assert importlib.util.find_spec("rich") is not None  # else this proves nothing


_CHECK_CONFIG_AND_TELL = """
import sys
from monitor.cli import main
try:
    main(["check-config", sys.argv[1]])
except SystemExit:
    pass
print(sorted({name.split(".")[0] for name in sys.modules} & {"sqlalchemy", "sqlmodel", "alembic", "starlette"}))
"""


def test_the_command_line_imports_the_store_only_for_a_command_that_uses_it() -> None:
    """`tpmon --help`, `check-config` and a refused argument start in half the time without the store (SQLAlchemy,
    SQLModel and its tables), which notify_commands imports only in the commands that open one."""
    config = str(REPO / "config" / "example.yaml")
    command = [sys.executable, "-c", _CHECK_CONFIG_AND_TELL, config]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
