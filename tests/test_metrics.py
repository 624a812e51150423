"""/metrics: the demo config's page as the app serves it (promtool finds nothing, the series count is pinned),
what each check costs in lines, the cache that formats a check again only when it changed (a cached scrape says
what a fresh one would), the event loop given back during a scrape, and one snapshot per scrape."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from components import missing_component
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from targets import wait_for

from monitor import exposition as fmt
from monitor.app import Services, create_app
from monitor.availability import Window
from monitor.board import Board
from monitor.config import load_config
from monitor.declared.incidents import Incident, IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow, active
from monitor.metrics import SLICE, Metrics, derive, derive_availability
from monitor.models import ComponentRef, ComponentStatus, FailureReason, ProbeResult, State
from monitor.snapshot import Snapshot

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "demo.yaml"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DEMO_ENV = {"TPMON_DEMO_HTTP": "http://127.0.0.1:9", "TPMON_DEMO_TLS": "https://127.0.0.1:9"}

# Pinned: a change here means a change of cardinality, to be decided, not noticed later in Prometheus.
DEMO_SERIES = 1677  # + the since of the 2 push checks; + 7 of the store's journal and buffers;
# + 17 of tpmon_notifications_* (5 metrics × 3 or 4 channels)


def promtool() -> str:
    """promtool (Debian's prometheus package, see .ci/prometheus.sh); skipped locally without it, failed on CI."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (bash .ci/prometheus.sh)"
        missing_component(message)
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
        assert body.text == services.metrics.render().decode()
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
    allowed = {
        "network",
        "flow",
        "line",
        "check",
        "state",
        "window",
        "phase",
        "result",
        "impact",
        "kind",
        "le",
        "version",
    }
    allowed.add("channel")  # notifications: email, webhook, chat, outbox — an enumeration, never an address
    allowed.add("location")  # where a probe ran from: a slug of the config (several locations)
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


def test_notifications_series_are_on_the_page(exposition: str) -> None:
    """The notifier's counters and gauges (on the app's registry) are on the page, every channel, before any send."""
    found = {line.rsplit(" ", 1)[0] for line in series(exposition) if line.startswith("tpmon_notifications_")}
    channels = ("email", "webhook", "chat")
    expected = {
        f'tpmon_notifications_{name}{{channel="{c}"}}' for name in ("sent_total", "failed_total") for c in channels
    }
    expected |= {f'tpmon_notifications_dead_letters{{channel="{c}"}}' for c in channels}
    for name in ("queue_depth", "oldest_pending_age_seconds"):
        expected |= {f'tpmon_notifications_{name}{{channel="{c}"}}' for c in (*channels, "outbox")}
    assert found == expected


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


# --- what a check costs, and what the page says of it

SETTINGS = load_config(DEMO, environ=DEMO_ENV)
BASE: dict[str, ComponentStatus] = dict(Board(SETTINGS, NOW).statuses())
CHECKS = [status.ref for status in BASE.values() if status.ref.kind == "check"]
PORTAIL = ComponentRef.for_check("viamedis", "portail_ps", "portail")
PORTAIL_LABELS = 'check="portail",flow="portail_ps",network="viamedis"'
PROBED_LABELS = 'check="portail",flow="portail_ps",location="default",network="viamedis"'  # where it ran from


def snapshot_of(statuses: dict[str, ComponentStatus], incidents: tuple[Incident, ...] = ()) -> Snapshot:
    return Snapshot(SETTINGS, NOW, dict(statuses), open_incidents=incidents)


def tls_result(ref: ComponentRef, *, success: bool = True, duration: float = 0.05) -> ProbeResult:
    phases = {"resolve": 0.001, "connect": 0.002, "tls": 0.02, "processing": 0.01, "transfer": 0.001}
    expiry = NOW + timedelta(days=90)
    reason = None if success else FailureReason.HTTP_STATUS
    code = 200 if success else 503
    return ProbeResult(ref, NOW, duration, success, reason, "", code, phases, expiry, expiry)


def lines_of(text: str, labels: str) -> list[str]:
    return [line for line in series(text) if labels in line]


def test_a_check_costs_eighteen_lines_and_no_histogram_of_its_own() -> None:
    statuses = dict(BASE)
    statuses[PORTAIL.key] = dataclasses.replace(BASE[PORTAIL.key], state=State.OPERATIONAL, since=NOW)
    metrics = Metrics(lambda: snapshot_of(statuses))
    metrics.observe(tls_result(PORTAIL))
    text = metrics.render().decode()
    mine = lines_of(text, PORTAIL_LABELS) + lines_of(text, PROBED_LABELS)
    names = Counter(re.split(r"[{ ]", line, maxsplit=1)[0] for line in mine)
    assert names == {
        "tpmon_probe_success": 1,
        "tpmon_probe_duration_seconds": 1,
        "tpmon_probe_http_duration_seconds": 5,
        "tpmon_probe_http_status_code": 1,
        "tpmon_probe_ssl_last_chain_expiry_timestamp_seconds": 1,
        "tpmon_probes_total": 1,
        "tpmon_check_state": 7,
        "tpmon_check_state_since_timestamp_seconds": 1,
    }
    assert not [
        line for line in series(text) if line.split("{")[0].endswith(("_bucket", "_created")) and "check=" in line
    ]
    assert not [line for line in text.splitlines() if re.match(r"\w+_created[{ ]", line)]
    # the quantiles come from the network's histogram
    assert 'tpmon_network_probe_duration_seconds_bucket{le="0.05",network="viamedis"} 1.0' in text
    assert 'tpmon_network_probe_duration_seconds_count{network="viamedis"} 1.0' in text


def test_a_phase_a_result_lacks_keeps_its_last_value_and_the_others_take_the_new_ones() -> None:
    metrics = Metrics(lambda: snapshot_of(dict(BASE)))
    metrics.observe(tls_result(PORTAIL))
    refused = ProbeResult(
        PORTAIL, NOW, 0.004, False, FailureReason.CONNECT, "", None, {"resolve": 0.003, "connect": 0.5}
    )
    metrics.observe(refused)
    phases = [line for line in lines_of(metrics.render().decode(), PROBED_LABELS) if "_http_duration_" in line]
    assert [line.split(",phase=")[1] for line in phases] == [
        '"resolve"} 0.003',
        '"connect"} 0.5',
        '"tls"} 0.02',
        '"processing"} 0.01',
        '"transfer"} 0.001',
    ]


def test_the_page_parses_and_tells_the_last_result_of_each_check(exposition: str) -> None:
    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    assert families["tpmon_probe_duration_seconds"].type == "gauge"
    assert families["tpmon_network_probe_duration_seconds"].type == "histogram"
    assert families["tpmon_probes"].type == "counter"

    def value(name: str, **labels: str) -> float:
        found = [s.value for s in families[name].samples if s.labels == {**labels} and s.name.startswith(name)]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    check = {"network": "viamedis", "flow": "portail_ps", "check": "portail"}
    probed = {**check, "location": "default"}  # the probe series say where the probe ran from
    assert value("tpmon_probe_success", **probed) == 1.0
    assert value("tpmon_probe_duration_seconds", **probed) == 0.05
    assert value("tpmon_probe_http_duration_seconds", **probed, phase="processing") == 0.01
    assert value("tpmon_probe_http_status_code", **probed) == 200
    assert value("tpmon_probes", **probed, result="success") == 1
    assert value("tpmon_check_state", **check, state="unknown") == 1.0
    assert value("tpmon_check_state", **check, state="operational") == 0.0


def test_a_new_result_a_new_state_and_a_forgotten_check_show_at_the_next_scrape() -> None:
    statuses = dict(BASE)
    metrics = Metrics(lambda: snapshot_of(statuses))
    metrics.observe(tls_result(PORTAIL))
    first = metrics.render().decode()
    assert f"tpmon_probe_success{{{PROBED_LABELS}}} 1.0" in first
    assert f'tpmon_check_state{{{PORTAIL_LABELS},state="unknown"}} 1.0' in first

    metrics.observe(tls_result(PORTAIL, success=False, duration=0.25))
    statuses[PORTAIL.key] = dataclasses.replace(BASE[PORTAIL.key], state=State.DOWN, since=NOW)
    second = metrics.render().decode()
    assert f"tpmon_probe_success{{{PROBED_LABELS}}} 0.0" in second
    assert f"tpmon_probe_duration_seconds{{{PROBED_LABELS}}} 0.25" in second
    assert f"tpmon_probe_http_status_code{{{PROBED_LABELS}}} 503" in second
    assert f'tpmon_probes_total{{{PROBED_LABELS},result="http_status"}} 1' in second
    assert f'tpmon_probes_total{{{PROBED_LABELS},result="success"}} 1' in second
    assert f'tpmon_check_state{{{PORTAIL_LABELS},state="down"}} 1.0' in second
    assert f'tpmon_check_state{{{PORTAIL_LABELS},state="unknown"}} 0.0' in second
    assert f"tpmon_check_state_since_timestamp_seconds{{{PORTAIL_LABELS}}} {NOW.timestamp()!r}" in second

    metrics.forget(PORTAIL)  # a reload removed it (and the board with it)
    del statuses[PORTAIL.key]
    assert not lines_of(metrics.render().decode(), PORTAIL_LABELS)
    assert not lines_of(metrics.render().decode(), PROBED_LABELS)


# Steps of the cache's property test: a probe result, a new state in the snapshot, a check removed, a scrape.
@dataclasses.dataclass(frozen=True)
class Observe:
    check: int
    success: bool
    duration: float
    code: int | None
    phases: dict[str, float]
    tls: bool


@dataclasses.dataclass(frozen=True)
class Restate:
    component: int
    state: State
    hours: int
    progress: float


@dataclasses.dataclass(frozen=True)
class Forget:
    check: int


@dataclasses.dataclass(frozen=True)
class Scrape:
    pass


Step = Observe | Restate | Forget | Scrape
PHASES = st.sampled_from(["resolve", "connect", "tls", "processing", "transfer"])
STEPS = st.one_of(
    st.builds(
        Observe,
        st.integers(0, len(CHECKS) - 1),
        st.booleans(),
        st.sampled_from([0.001, 0.05, 0.3, 7.5]),
        st.sampled_from([None, 200, 503]),
        st.dictionaries(PHASES, st.sampled_from([0.001, 0.01])),
        st.booleans(),
    ),
    st.builds(
        Restate,
        st.integers(0, len(BASE) - 1),
        st.sampled_from(list(State)),
        st.integers(0, 3),
        st.sampled_from([0, 0.5]),
    ),
    st.builds(Forget, st.integers(0, len(CHECKS) - 1)),
    st.just(Scrape()),
)


@settings(deadline=None, max_examples=150)
@given(st.lists(STEPS, max_size=40))
def test_a_cached_scrape_says_what_a_fresh_one_would(steps: list[Step]) -> None:
    """Whatever happened since, a scrape from the cache is byte for byte the page a new `Metrics`, fed the same
    results and reading the same snapshot, renders from nothing."""
    statuses = dict(BASE)
    keys = list(BASE)
    cached = Metrics(lambda: snapshot_of(statuses))
    history: list[ProbeResult | ComponentRef] = []  # results observed, checks forgotten
    for step in [*steps, Scrape()]:
        if isinstance(step, Observe):
            expiry = NOW + timedelta(days=step.check) if step.tls else None
            reason = None if step.success else FailureReason.TIMEOUT
            result = ProbeResult(
                CHECKS[step.check], NOW, step.duration, step.success, reason, "", step.code, step.phases, expiry
            )
            cached.observe(result)
            history.append(result)
        elif isinstance(step, Restate):
            key = keys[step.component]
            since = NOW - timedelta(hours=step.hours) if step.hours else None
            statuses[key] = dataclasses.replace(statuses[key], state=step.state, since=since, progress=step.progress)
        elif isinstance(step, Forget):
            cached.forget(CHECKS[step.check])
            history.append(CHECKS[step.check])
        else:
            fresh = Metrics(lambda: snapshot_of(statuses))
            for event in history:
                if isinstance(event, ProbeResult):
                    fresh.observe(event)
                else:
                    fresh.forget(event)
            assert cached.render() == fresh.render()


# --- a scrape on the event loop


def many_checks(metrics: Metrics, count: int) -> list[ComponentRef]:
    """`count` checks of the probe series (no need for them in the config: a scrape shows what was observed)."""
    refs = [ComponentRef.for_check("viamedis", "pec", f"c{n:04d}") for n in range(count)]
    for ref in refs:
        metrics.observe(tls_result(ref))
    return refs


def test_a_scrape_gives_the_event_loop_back_while_it_renders() -> None:
    statuses = dict(BASE)
    metrics = Metrics(lambda: snapshot_of(statuses))
    many_checks(metrics, 2000)

    async def scrape() -> tuple[bytes, int]:
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        worker = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        before = turns
        body = b"".join([piece async for piece in metrics.exposition(step_s=0.0)])
        during = turns - before
        worker.cancel()
        return body, during

    body, during = asyncio.run(scrape())
    assert during >= 6 * -(-2000 // SLICE)  # at least once per slice of the checks' lines of each of 6 families
    assert body == metrics.render()


def test_a_scrape_gives_the_loop_a_turn_every_slice_of_lines_even_when_sending_does_not() -> None:
    """A server's `send` need not give the loop back (it does not when the client keeps up): the page comes in
    pieces of at most `SLICE` checks' lines of one family, and the loop gets a turn between two of them however
    many checks there are (with a zero step: one turn per piece)."""
    metrics = Metrics(lambda: snapshot_of(dict(BASE)))
    many_checks(metrics, 3 * SLICE)

    async def scrape() -> list[tuple[int, bytes]]:
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        worker = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        received = [(turns, piece) async for piece in metrics.exposition(step_s=0.0)]  # never awaits a send
        worker.cancel()
        return received

    received = asyncio.run(scrape())
    assert b"".join(piece for _, piece in received) == metrics.render()
    lines_between_turns: Counter[int] = Counter()
    for turn, piece in received:
        lines_between_turns[turn] += piece.count(b"\n")
    phases = sum(piece.count(b"tpmon_probe_http_duration_seconds{") for _, piece in received)
    assert phases == 5 * 3 * SLICE  # every check's five phases are there...
    # ...but never more than one slice of a family (+ its HELP and TYPE) between two turns: 7 lines a state set
    assert max(lines_between_turns.values()) <= 7 * SLICE + 2


def test_a_scrape_reads_one_snapshot_while_the_board_moves_on() -> None:
    """The states, the open incidents and the maintenance of one page come from the snapshot read when the scrape
    began, even when the board and the declarations change while it runs (DESIGN §2, one truth)."""
    text = Bilingual("Panne", "Outage")
    incident = Incident(1, text, "critical", NOW, ("network:viamedis",), (IncidentUpdate(NOW, "investigating", text),))
    before = snapshot_of(BASE)
    down = dict(BASE)
    down[PORTAIL.key] = dataclasses.replace(BASE[PORTAIL.key], state=State.DOWN, since=NOW)
    after = snapshot_of(down, (incident,))
    current = [before]
    metrics = Metrics(lambda: current[0])
    many_checks(metrics, 1000)
    metrics.observe(tls_result(PORTAIL))

    async def scrape() -> tuple[str, bool]:
        moved = False

        async def board_moves() -> None:
            nonlocal moved
            current[0] = after
            metrics.observe(tls_result(PORTAIL, success=False))
            moved = True

        mover = asyncio.create_task(board_moves())
        pieces = [piece async for piece in metrics.exposition(step_s=0.0)]
        moved_meanwhile = moved
        await mover
        return b"".join(pieces).decode(), moved_meanwhile

    page, moved_meanwhile = asyncio.run(scrape())
    assert moved_meanwhile
    assert f'tpmon_check_state{{{PORTAIL_LABELS},state="unknown"}} 1.0' in page
    assert f'tpmon_check_state{{{PORTAIL_LABELS},state="down"}} 0.0' in page
    assert 'tpmon_incidents_open{impact="critical"} 0.0' in page
    # and the next scrape tells the new snapshot, whole
    page = metrics.render().decode()
    assert f'tpmon_check_state{{{PORTAIL_LABELS},state="down"}} 1.0' in page
    assert 'tpmon_incidents_open{impact="critical"} 1.0' in page
    assert f"tpmon_probe_success{{{PROBED_LABELS}}} 0.0" in page


# --- the text format


@pytest.mark.parametrize("value", ["plain", 'qu"ote', "back\\slash", "new\nline", "é à ç"])
def test_label_values_are_escaped_as_the_format_wants(value: str) -> None:
    closed = fmt.series("x", {"b": value, "a": "z"})
    opened = fmt.open_series("x", {"a": "y"}, "b")
    text = f'# TYPE x gauge\n{closed}1.0\n{opened}{fmt.escape(value)}"}} 2.0\n'
    samples = next(iter(text_string_to_metric_families(text))).samples
    assert [(s.labels, s.value) for s in samples] == [({"a": "z", "b": value}, 1.0), ({"a": "y", "b": value}, 2.0)]


def test_numbers_are_what_prometheus_parses() -> None:
    assert [fmt.number(v) for v in (0, 1, 0.05, 1764600000.5, math.inf, -math.inf)] == [
        "0.0",
        "1.0",
        "0.05",
        "1764600000.5",
        "+Inf",
        "-Inf",
    ]
    assert fmt.number(math.nan) == "NaN"
    assert float(fmt.number(1 / 3)) == 1 / 3
