"""/metrics of the demo config as the app builds it: promtool finds nothing, and the series count is pinned."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from starlette.testclient import TestClient
from targets import wait_for

from monitor.app import Services, create_app
from monitor.availability import Window
from monitor.config import load_config
from monitor.declared.incidents import Incident, IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow, active
from monitor.metrics import derive, derive_availability
from monitor.models import ComponentRef, ProbeResult, State

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "demo.yaml"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DEMO_ENV = {"TPMON_DEMO_HTTP": "http://127.0.0.1:9", "TPMON_DEMO_TLS": "https://127.0.0.1:9"}

# Pinned: a change here means a change of cardinality, to be decided, not noticed later in Prometheus.
DEMO_SERIES = 1937  # + the since of the 2 push checks; + 23 of tpmon_notifications_* (5 metrics × 3 or 4 channels)


def promtool() -> str:
    """promtool (Debian's prometheus package, see .ci/prometheus.sh); skipped locally without it, failed on CI."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (bash .ci/prometheus.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def one_result(ref: ComponentRef, url: str) -> ProbeResult:
    tls = url.startswith("https")
    phases = {"resolve": 0.001, "connect": 0.002, "processing": 0.01, "transfer": 0.001}
    phases |= {"tls": 0.02} if tls else {}
    expiry = NOW + timedelta(days=90) if tls else None
    return ProbeResult(ref, NOW, 0.05, True, status_code=200, phases=phases, chain_expiry=expiry, cert_expiry=expiry)


def up_window(key: str, days: int) -> Window:
    return Window(key, NOW - timedelta(days=days), NOW, dict.fromkeys(State, 0.0) | {State.OPERATIONAL: days * 86400.0})


@pytest.fixture(scope="module")
def exposition() -> Iterator[str]:
    """The demo config's /metrics after one result of every probed check."""
    settings = load_config(DEMO, environ=DEMO_ENV)
    app = create_app(settings, database_url="sqlite://", schedule=False, clock=lambda: NOW)
    with TestClient(app) as client:
        services: Services = client.app_state["services"]
        # the first write (the push checks' configuration time) is done: no write changes the page meanwhile
        wait_for(lambda: services.writer.stats.writes >= 1, what="the first write")
        # every line and network with rollups over each window: the full cardinality
        services.metrics.set_availability(derive_availability(settings, up_window))
        for network, check in settings.checks():
            if check.kind != "push":
                ref = ComponentRef.for_check(network, check.flow, check.name)
                services.metrics.observe(one_result(ref, str(getattr(check, "url", ""))))
        body = client.get("/metrics")
        assert body.status_code == 200
        assert body.text == generate_latest(services.metrics.registry).decode()
        yield body.text


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_promtool_check_metrics_finds_nothing(exposition: str) -> None:
    command = [promtool(), "check", "metrics"]
    done = subprocess.run(command, input=exposition, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stdout + done.stderr


def test_series_count_of_the_demo_config_is_pinned(exposition: str) -> None:
    by_metric = Counter(re.split(r"[{ ]", line, maxsplit=1)[0] for line in series(exposition))
    assert sum(by_metric.values()) == DEMO_SERIES, sorted(by_metric.items())


def test_labels_never_carry_urls_or_texts(exposition: str) -> None:
    allowed = {"network", "flow", "line", "check", "state", "window", "phase", "result", "impact", "le", "version"}
    allowed.add("channel")  # notifications: email, webhook, chat, outbox — an enumeration, never an address
    lines = series(exposition)
    assert lines
    for line in lines:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        assert set(labels) <= allowed, line
        assert not any("://" in value or " " in value for value in labels.values()), line


def test_every_impact_and_network_has_its_gauge(exposition: str) -> None:
    assert 'tpmon_incidents_open{impact="critical"} 0.0' in exposition
    assert 'tpmon_maintenance_active{network="viamedis"} 0.0' in exposition
    assert 'tpmon_line_availability_ratio{line="pharmacie",network="viamedis",window="30d"} 1.0' in exposition
    assert 'tpmon_network_availability_ratio{network="viamedis",window="24h"} 1.0' in exposition


def test_derive_counts_open_incidents_by_impact_and_running_maintenance_by_network() -> None:
    settings = load_config(DEMO, environ=DEMO_ENV)
    text = Bilingual("Panne", "Outage")
    update = IncidentUpdate(at=NOW, status="investigating", message=text)
    open_major = Incident(1, text, "major", NOW, ("network:viamedis",), (update,))
    resolved = Incident(2, text, "minor", NOW, (), (update,), resolved_at=NOW)
    paris_start = datetime(2026, 3, 2, 10, 30)  # 09:30 UTC: running at NOW
    touched = ("line:almerys/pharmacie", "flow:almerys/pec")
    running = MaintenanceWindow(3, text, touched, paris_start, timedelta(hours=2))
    later = MaintenanceWindow(4, text, ("network:actil",), paris_start + timedelta(days=1), timedelta(hours=1))
    impacts, networks = derive(settings, [open_major, resolved], active([running, later], NOW))
    assert impacts == {"none": 0, "minor": 0, "major": 1, "critical": 0}
    assert networks["almerys"] == 1 and networks["actil"] == 0 and set(networks) == set(settings.networks)
