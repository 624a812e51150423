"""The demo's scenario and simulator: real HTTP and HTTPS on loopback, probed by tpmon's own probes."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.config import HttpCheck, load_config
from monitor.demo.certs import DemoCerts, make_certs
from monitor.demo.clock import VirtualClock
from monitor.demo.scenario import Scenario, load_scenario
from monitor.demo.simulator import SLOW_SECONDS, Simulator
from monitor.models import FailureReason
from monitor.probes import ProbeContext
from monitor.probes.clients import HttpClients
from monitor.probes.http import probe

ROOT = Path(__file__).parents[2]
SCENARIO = load_scenario()
NAMES = {"viamedis": "Viamedis", "almerys": "Almerys", "sp-sante": "SP Santé"}


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DemoCerts:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def simulator(certs: DemoCerts) -> AsyncIterator[tuple[Simulator, VirtualClock, str, str]]:
    clock = VirtualClock(SCENARIO.live_from)
    sim = Simulator(SCENARIO, clock, NAMES)
    http_url, tls_url = await sim.start(certs)
    yield sim, clock, http_url, tls_url
    await sim.stop()


def test_the_scenario_is_the_february_2024_story() -> None:
    assert SCENARIO.history_from < SCENARIO.live_from < SCENARIO.story_until
    assert SCENARIO.mode("viamedis/visiodroits", paris("2024-01-29T14:59+01:00")) == "up"
    assert SCENARIO.mode("viamedis/visiodroits", paris("2024-01-29T15:00+01:00")) == "down"
    assert SCENARIO.mode("viamedis/portail", paris("2024-02-12T13:00+01:00")) == "slow"
    assert SCENARIO.mode("viamedis/portail", paris("2024-02-19T09:00+01:00")) == "up"
    assert SCENARIO.reported("viamedis/paiements", paris("2024-02-01T00:00+01:00")) == "down"
    fictional = [e for e in SCENARIO.events if e.fictional]
    assert fictional and all(e.prov == "F" for e in fictional)
    assert SCENARIO.events[0].prov == "S"  # 29/01 15:00, reported by the pharmacy press


def test_every_simulated_endpoint_is_probed_by_the_demo_config() -> None:
    env = {"TPMON_DEMO_HTTP": "http://127.0.0.1:1", "TPMON_DEMO_TLS": "https://127.0.0.1:2"}
    settings = load_config(ROOT / "config" / "demo.yaml", environ=env)
    urls = {c.url.split("}/", 1)[1] for _, c in settings.checks() if c.kind == "http"}
    endpoints = {key for event in SCENARIO.events for key in event.endpoints}
    assert endpoints <= urls, endpoints - urls
    declared = [component for event in SCENARIO.events for component in (event.incident or {}).get("statuses", {})]
    assert declared
    for component in declared:
        kind, _, path = component.partition(":")
        network, _, name = path.partition("/")
        assert network in settings.networks, component
        assert name in (settings.networks[network].lines if kind == "line" else settings.flows), component
    networks = {"viamedis", "almerys", "sp-sante", "isante", "actil", "santeclair", "kalixia", "itelis"}
    assert networks | {"carte-blanche", "seveane"} == set(settings.networks)
    assert {line for n in settings.networks.values() for line in n.lines} == set(settings.lines)


async def test_endpoints_behave_as_the_scenario_says(
    simulator: tuple[Simulator, VirtualClock, str, str], certs: DemoCerts
) -> None:
    _, clock, http_url, tls_url = simulator
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=certs.ca_file)) as client:
        clock.set(paris("2024-01-30T12:00+01:00"))
        login = await client.get(f"{tls_url}/viamedis/portail")  # HTTPS, verified against the demo CA
        assert login.status_code == 200
        assert "Viamedis" in login.text
        assert "Maintenance en cours" not in login.text
        assert (await client.get(f"{http_url}/viamedis/visiodroits")).status_code == 503

        clock.set(paris("2024-02-01T12:00+01:00"))
        banner = await client.get(f"{tls_url}/viamedis/portail")
        assert banner.status_code == 200
        assert "Maintenance en cours" in banner.text
        assert (await client.get(f"{http_url}/viamedis/pec-1")).status_code == 503
        assert (await client.get(f"{http_url}/almerys/pec")).json() == {"status": "ok", "service": "pec"}
        assert (await client.get(f"{http_url}/nope/x")).status_code == 404


async def test_tpmon_probes_see_banners_slowness_and_resets(
    simulator: tuple[Simulator, VirtualClock, str, str], certs: DemoCerts, tmp_path: Path
) -> None:
    sim, clock, http_url, tls_url = simulator
    env = {"TPMON_DEMO_HTTP": http_url, "TPMON_DEMO_TLS": tls_url}
    settings = load_config(ROOT / "config" / "demo.yaml", environ=env)
    portail = next(c for n, c in settings.checks() if n == "viamedis" and c.name == "portail")
    assert isinstance(portail, HttpCheck)
    portail = portail.model_copy(update={"ca_file": str(certs.ca_file)})
    async with HttpClients() as clients:
        ctx = ProbeContext("viamedis", clients.get(), "tpmon-test", env, clock, clients)
        clock.set(paris("2024-01-30T12:00+01:00"))
        up = await probe(portail, ctx)
        assert up.success, up
        assert up.cert_expiry is not None
        clock.set(paris("2024-02-01T12:00+01:00"))
        banner = await probe(portail, ctx)
        assert (banner.success, banner.reason) == (False, FailureReason.BODY)
        clock.set(paris("2024-02-13T12:00+01:00"))
        slow = await probe(portail, ctx)
        assert slow.success
        assert slow.slow
        assert slow.duration_s >= SLOW_SECONDS

        reset_scenario = Scenario.model_validate(
            {
                **SCENARIO.model_dump(),
                "events": [{"at": "2024-01-01T00:00+01:00", "prov": "F", "endpoints": {"viamedis/dre": "reset"}}],
            }
        )
        sim.scenario = reset_scenario
        dre = next(c for n, c in settings.checks() if n == "viamedis" and c.name == "dre")
        assert isinstance(dre, HttpCheck)
        reset = await probe(dre, ctx)
        assert not reset.success
        assert reset.reason in (FailureReason.CONNECT, FailureReason.PROTOCOL)
        assert not re.search(r"127\.0\.0\.1", reset.detail)


async def test_replayed_results_agree_with_real_probes_of_the_simulator(
    simulator: tuple[Simulator, VirtualClock, str, str], certs: DemoCerts
) -> None:
    """History is replayed from the scenario; it must say what probing the simulator says, at every change."""
    from monitor.demo.replay import expected_result
    from monitor.probes import PROBES

    _, clock, http_url, tls_url = simulator
    env = {"TPMON_DEMO_HTTP": http_url, "TPMON_DEMO_TLS": tls_url}
    settings = load_config(ROOT / "config" / "demo.yaml", environ=env)
    checks = [
        (n, c.model_copy(update={"ca_file": str(certs.ca_file)}) if getattr(c, "ca_file", None) else c)
        for n, c in settings.checks()
        if n in NAMES and c.kind == "http"
    ]

    def endpoint(network: str, check: Any) -> str:
        return f"{network}/{check.url.rsplit('/', 1)[-1]}"

    # each check at the start of the story and at every change of its own endpoint
    moments: dict[datetime, list[tuple[str, Any]]] = {SCENARIO.history_from: list(checks)}
    for event in SCENARIO.events:
        moments.setdefault(event.at, []).extend(nc for nc in checks if endpoint(*nc) in event.endpoints)
    compared = 0
    async with HttpClients() as clients:
        for moment, due in sorted(moments.items()):
            clock.set(moment)
            ctxs = {n: ProbeContext(n, clients.get(), "tpmon-test", env, clock, clients) for n, _ in due}
            reals = await asyncio.gather(*(PROBES[c.kind](c, ctxs[n]) for n, c in due))
            for (network, check), real in zip(due, reals, strict=True):
                replayed = expected_result(SCENARIO, network, check, moment)
                got = (replayed.success, replayed.reason, replayed.slow)
                assert got == (real.success, real.reason, real.slow), (moment, network, check.name, real)
                compared += 1
    assert compared >= 30
