"""Proof on a real Prometheus: tpmon scraped, every PromQL expression of the dashboards and rules runs and has
data, every metric they name is exposed, promtool accepts rules, rule tests and the exposition; the Grafana
dashboards have the structure Grafana 11 imports unchanged.

Prometheus and promtool come from Debian (`.ci/prometheus.sh`); without them the tests are skipped locally
and fail under CI=true.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml
from components import missing_component
from targets import Server, Target, free_port, wait_for

from monitor.config import load_config
from monitor.store import Store
from monitor.store.housekeeping import component_keys
from monitor.store.rollup_store import roll_up

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "alerts.yml"
RULE_TESTS = DASHBOARDS / "tests" / "alerts_test.yml"
GRAFANA = sorted((DASHBOARDS / "grafana").glob("*.json"))

# alpha works; every check of beta fails (one over HTTPS, so certificate series exist): its lines are down. The site
# is published into a folder, so that the publication's series exist too.
CONFIG = """
web: {{public_url: "https://etat.example", publish_dir: "{site}"}}
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}}
stabilization: 1h
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, hospitalisation]
    checks:
      - {{name: portail, flow: portail_ps, kind: http, url: "{http}/alpha/portail"}}
      - {{name: droits, flow: droits, kind: http, url: "{http}/alpha/droits"}}
      - {{name: pec, flow: pec, kind: http, url: "{http}/alpha/pec"}}
      - {{name: dre, flow: facturation, kind: http, url: "{http}/alpha/dre"}}
  beta:
    name: Beta
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {{name: portail, flow: portail_ps, kind: http, url: "{https}/beta/portail", ca_file: "{ca}"}}
      - {{name: droits, flow: droits, kind: http, url: "{http}/beta/droits"}}
      - {{name: pec, flow: pec, kind: http, url: "{http}/beta/pec"}}
      - {{name: dre, flow: facturation, kind: http, url: "{http}/beta/dre"}}
"""
NETWORK, LINE = "beta", "pharmacie"  # what the dashboards' template variables are set to
SUBSTITUTIONS = {"$network": NETWORK, "$line": LINE, "$__rate_interval": "30s", "$__interval": "5s"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (bash .ci/prometheus.sh installs Debian's prometheus)"
        missing_component(message)
    return found


class TlsTarget:
    """An HTTPS server on 127.0.0.1 answering 503 to everything, with a certificate from a test CA."""

    def __init__(self, ca: trustme.CA) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"<h1>Maintenance en cours</h1>"
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Stack:
    tpmon: Server
    prometheus: str  # base URL

    def query(self, expr: str) -> httpx.Response:
        return httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer.status_code == 200, f"{expr}: HTTP {answer.status_code} {answer.text}"
        body = answer.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def start_prometheus(workdir: Path, tpmon_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "tpmon", "static_configs": [{"targets": [f"127.0.0.1:{tpmon_port}"]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (workdir / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tool("prometheus")
    workdir = tmp_path_factory.mktemp("observability")
    ca = trustme.CA()
    ca_file = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    http, https = Target(), TlsTarget(ca)
    for path in ("/beta/droits", "/beta/pec", "/beta/dre"):
        http.codes[path] = 503
    config = workdir / "tpmon.yaml"
    site = workdir / "site"
    text = CONFIG.format(http=http.url(""), https=f"https://127.0.0.1:{https.port}", ca=ca_file, site=site)
    config.write_text(text, encoding="utf-8")
    url = f"sqlite:///{workdir}/tpmon.db"
    tpmon = Server(config, workdir, {"TPMON_DATABASE_URL": url})
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        # a first run records the transitions (beta goes down); rolled up while tpmon is stopped, they give
        # the availability ratios the second run reads at startup (its own roll-up only comes after 5 min)
        tpmon.start()
        wait_for(lambda: tpmon.component(NETWORK, "lines", LINE)["state"] == "down", what="beta down")
        assert tpmon.stop() == 0
        store = Store.open(url)
        try:
            roll_up(store, component_keys(load_config(config)), datetime.now(UTC))
        finally:
            store.close()
        tpmon.port = free_port()
        tpmon.start()

        prometheus, base = start_prometheus(workdir, tpmon.port)
        stack = Stack(tpmon, base)

        def scraped() -> bool:
            if prometheus is not None and prometheus.poll() is not None:
                log = (workdir / "prometheus.log").read_text()
                raise AssertionError(f"prometheus exited {prometheus.returncode}: {log}")
            answer = stack.query('up{job="tpmon"} == 1')  # 503 until Prometheus is ready
            return answer.status_code == 200 and bool(answer.json()["data"]["result"])

        wait_for(scraped, timeout=30, what="Prometheus's first scrape of tpmon")
        # rate() needs two samples in its range: wait until the probes' rate has data
        wait_for(lambda: stack.series("sum(rate(tpmon_probes_total[30s])) > 0"), timeout=20, what="a rate")
        yield stack
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=20)
        tpmon.stop()
        http.close()
        https.close()


# --- what the dashboards and rules query


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) for every panel target and query variable of every dashboard."""
    found: list[tuple[str, str]] = []
    for path in GRAFANA:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
                values = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
                assert values, f"{path.name}: variable {variable['name']}: {query}"
                found.append((f"{path.name}: ${variable['name']}", values.group(1)))
    return found


def rule_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def substitute(expr: str) -> str:
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


_SPLIT = re.compile(r"\s+(?:and|or|unless)\s+|\s*(?:==|!=|>=|<=|>|<)\s*")
_MODIFIERS = re.compile(r"^(?:(?:on|ignoring|group_left|group_right)\s*\([^)]*\)\s*|bool\s+)+")


def data_parts(expr: str) -> list[str]:
    """The operands of `expr`'s top-level comparisons and set operators, without the numeric thresholds and
    with `absent(x)` read as `x`: what must have data for the alert to be able to fire."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        char = expr[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == '"':
            i = expr.index('"', i + 1)
        elif depth == 0 and (match := _SPLIT.match(expr, i)) and match.group().strip():
            parts.append(expr[start:i])
            start = i = match.end()
            continue
        i += 1
    parts.append(expr[start:])
    found = []
    for part in (_MODIFIERS.sub("", p.strip()).strip() for p in parts):
        if re.fullmatch(r"[\d\s.*+/()-]+", part):
            continue
        absent = re.fullmatch(r"absent\((.*)\)", part, re.DOTALL)
        found.append(absent.group(1) if absent else part)
    return found


def test_data_parts_reads_the_operands() -> None:
    expr = '(time() - x_seconds) > 24 * 3600\nand on (network, line) x_state{state="recovering"} == 1'
    assert data_parts(expr) == ["(time() - x_seconds)", 'x_state{state="recovering"}']
    assert data_parts('absent(up{job="tpmon"})') == ['up{job="tpmon"}']
    assert data_parts('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=">"}[5m]))) > 1') == [
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=">"}[5m])))'
    ]


def test_every_dashboard_expression_runs_and_returns_series(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) > 30
    empty = [(where, expr) for where, expr in queries if not stack.series(substitute(expr))]
    assert not empty, empty


def test_every_rule_expression_runs_and_its_operands_have_data(stack: Stack) -> None:
    queries = rule_queries()
    assert len(queries) >= 8
    for _, expr in queries:
        stack.series(expr)  # runs (HTTP 200, success), firing or not
    empty = [(alert, part) for alert, expr in queries for part in data_parts(expr) if not stack.series(part)]
    assert not empty, empty
    # the beta line is down: its alert condition holds now (pending for 5 min before firing)
    down = stack.series(dict(queries)["TpmonLineDown"])
    assert {(s["metric"]["network"], s["metric"]["line"]) for s in down} == {("beta", "pharmacie"), ("beta", "optique")}


def test_prometheus_loaded_and_evaluates_every_rule(stack: Stack) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules: list[dict[str, Any]] = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) else []

    rules = wait_for(evaluated, what="rules evaluated")
    assert {rule["name"] for rule in rules} == {alert for alert, _ in rule_queries()}
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    states = {rule["name"]: rule["state"] for rule in rules}
    assert states["TpmonLineDown"] == "pending" and states["TpmonNotScraped"] == "inactive"


def exposition(stack: Stack) -> str:
    answer = stack.tpmon.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return answer.text


def test_every_metric_named_in_dashboards_is_exposed(stack: Stack) -> None:
    exposed = set(re.findall(r"^(tpmon_\w+)", exposition(stack), re.MULTILINE))
    named: set[str] = set()
    for path in [*GRAFANA, RULES, DASHBOARDS / "prometheus.yml"]:
        named |= set(re.findall(r"\btpmon_\w+", path.read_text(encoding="utf-8")))
    assert named and named <= exposed, sorted(named - exposed)


def test_promtool_check_metrics_on_the_live_exposition(stack: Stack) -> None:
    text = exposition(stack)
    assert 'tpmon_line_availability_ratio{line="pharmacie",network="beta",window="24h"}' in text
    done = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_promtool_check_rules_and_config_and_test_rules() -> None:
    promtool = tool("promtool")
    for command in (["check", "rules", str(RULES)], ["check", "config", str(DASHBOARDS / "prometheus.yml")]):
        done = subprocess.run([promtool, *command], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_rule_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for alert, _ in rule_queries():
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert}
        assert outcomes == {True, False}, alert


# --- the Grafana JSON model, as Grafana 11 imports it


@pytest.mark.parametrize("path", GRAFANA, ids=lambda p: p.name)
def test_grafana_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    for key in ("uid", "title", "panels", "templating", "schemaVersion", "time", "annotations"):
        assert key in board, key
    assert board["schemaVersion"] == 39
    assert "__inputs" not in board and "id" not in board  # imported unchanged, no data source to map
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"} and pos["x"] + pos["w"] <= 24 and pos["w"] > 0 and pos["h"] > 0
        covered = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not covered & cells, f"panel {panel['title']} overlaps another"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["title"] and panel["targets"] and "fieldConfig" in panel and "options" in panel
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}"
    used = {m for m in re.findall(r"\$\{?(\w+)", path.read_text(encoding="utf-8")) if not m.startswith("__")}
    assert used <= set(variables), used - set(variables)


def test_grafana_dashboards_type_check_against_grafana_schema(tmp_path: Path) -> None:
    """tsc over every dashboard `satisfies` @grafana/schema's Dashboard (pinned in dashboards/typecheck)."""
    npm = tool("npm")
    work = tmp_path / "typecheck"
    shutil.copytree(DASHBOARDS / "typecheck", work, ignore=shutil.ignore_patterns("node_modules", "check"))
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (work / "check").mkdir()
    for path in GRAFANA:
        source = path.read_text(encoding="utf-8").rstrip()
        header = 'import type { DashboardJson } from "../loose";\n\nexport const dashboard = '
        (work / "check" / f"{path.stem}.ts").write_text(f"{header}{source} satisfies DashboardJson;\n")
    tsc = work / "node_modules" / ".bin" / "tsc"
    checked = subprocess.run([str(tsc), "-p", "."], cwd=work, capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
