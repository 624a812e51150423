"""A config of our own (not the demo), served as users run it, against loopback targets the test makes fail: a line
whose required flow is down says so, a dependent line says for whom it fails on every surface, an optional flow
down degrades without hiding which, and nothing reads "operational" while a required flow recovers."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from targets import Server, Target, wait_for

CONFIG = """
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}}
stabilization: 1h
networks:
  omega:
    name: Oméga
    kind: operateur
    flows: [pec, facturation, droits]
    lines: [optique, pharmacie]
    line_overrides:
      optique: {{requires: [pec, facturation], optional: [droits]}}
    checks:
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec"}}
      - {{name: dre, flow: facturation, kind: http, url: "{url}/dre"}}
      - {{name: droits, flow: droits, kind: http, url: "{url}/droits"}}
  sigma:
    name: Sigma
    kind: reseau_de_soins
    flows: [pec]
    lines: [optique, audio]
    line_overrides: {{optique: {{requires: [pec]}}, audio: {{requires: [pec]}}}}
    depends_on:
      - network: omega
        flow: pec
        lines: [optique]
        scope: {{fr: adhérents dont la complémentaire passe par Oméga, en: members whose insurer goes through Omega}}
    checks:
      - {{name: plateforme, flow: pec, kind: http, url: "{url}/sigma"}}
"""
AFFECTED_FR = "Indisponible pour les adhérents dont la complémentaire passe par Oméga"
AFFECTED_EN = "Unavailable for members whose insurer goes through Omega"


@pytest.fixture
def target() -> Iterator[Target]:
    found = Target()
    yield found
    found.close()


@pytest.fixture
def server(tmp_path: Path, target: Target) -> Iterator[Server]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=target.url("")), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"})
    srv.start()
    yield srv
    srv.stop()


def line(server: Server, network: str, name: str) -> dict[str, Any]:
    return server.component(network, "lines", name)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_surface_says_who_a_dependency_fails_and_lines_never_under_report(server: Server, target: Target) -> None:
    wait_for(lambda: line(server, "sigma", "optique")["state"] == "operational", what="all up")
    assert line(server, "omega", "optique")["affected"] is None

    target.codes["/pec"] = 503  # Oméga PEC down; invoicing still works
    wait_for(lambda: line(server, "sigma", "optique")["state"] == "partial", what="the dependency")
    omega = line(server, "omega", "optique")
    assert omega["state"] == "down"  # needs PEC, however well invoicing runs: never "partiellement"
    # pharmacie does not need PEC: operational (on a starved machine its checks may go stale a moment: unknown,
    # never down nor partial; it is read again until its next results)
    assert line(server, "omega", "pharmacie")["state"] in ("operational", "unknown")
    wait_for(lambda: line(server, "omega", "pharmacie")["state"] == "operational", what="pharmacie unaffected")
    sigma = line(server, "sigma", "optique")
    assert (sigma["source"], sigma["detail"], sigma["affected"]) == ("dependency", "omega/pec", AFFECTED_FR)
    assert sigma["scope"] == "adhérents dont la complémentaire passe par Oméga"
    assert line(server, "sigma", "audio")["state"] == "operational"  # not covered by the dependency
    english = server.get("/api/v1/status?lang=en").json()
    sigma_en = next(n for n in english["networks"] if n["id"] == "sigma")["lines"][0]
    assert sigma_en["affected"] == AFFECTED_EN
    one = server.get("/api/v1/networks/sigma/lines/optique").json()
    assert one["affected"] == {"fr": AFFECTED_FR, "en": AFFECTED_EN}

    # ops declare the upstream incident, with consignes: the dependent line's page shows it
    done = server.run(
        "incident", "open", "--config", str(server.config), "--title", "PEC Oméga indisponibles", "--impact", "major",
        "--declare", "flow:omega/pec=down", "--message", "Les PEC échouent.",
        "--consigne-ps", "Faites une facture acquittée.",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    def page_tells() -> str | None:
        page = text(server.get("/reseaux/sigma/optique").text)
        return page if "PEC Oméga indisponibles" in page else None

    page = wait_for(page_tells, what="the upstream incident on the dependent line's page")
    assert AFFECTED_FR + "." in page
    assert "Chez Oméga, dont dépend ce domaine pour les adhérents dont la complémentaire passe par Oméga" in page
    assert "Faites une facture acquittée." in page
    assert AFFECTED_FR in text(server.get("/").text)  # the first page
    upstream = text(server.get("/reseaux/omega").text)  # the upstream's page: who relies on it, for whom
    assert "Sigma (Optique) dépend de Oméga — Prises en charge (PEC) (pour les adhérents dont" in upstream
    assert AFFECTED_FR + "." in text(server.get("/assures/sigma").text)  # and the members' answer
    components = server.get("/api/v2/components.json").json()["components"]
    card = next(c for c in components if c["id"] == "line:sigma/optique")
    assert (card["status"], card["description"], card["tpmon_affected"]) == ("partial_outage", AFFECTED_FR, AFFECTED_FR)
    assert card["tpmon_scope"] == "adhérents dont la complémentaire passe par Oméga"
    badge = server.get("/badge/sigma/optique.svg").text
    assert f'aria-label="Sigma · Optique\u00a0: Partiellement indisponible — {AFFECTED_FR}"' in badge
    feed = server.get("/reseaux/sigma/optique/feed.atom").text
    assert "PEC Oméga indisponibles" in feed  # the upstream's incident, in the dependent's feed
    assert "Sigma · Optique en dépend pour les adhérents dont la complémentaire passe par Oméga." in feed
    everything = server.get("/feed.atom").text
    assert "Sigma (Optique)\u00a0: adhérents dont la complémentaire passe par Oméga" in everything

    # an optional flow down: degraded, and which one is said
    target.codes["/droits"] = 503
    wait_for(lambda: line(server, "omega", "pharmacie")["state"] == "degraded", what="the optional flow")
    pharmacie = line(server, "omega", "pharmacie")
    assert pharmacie["cause"] == "vérification des droits en ligne indisponible"  # the taxonomy's words for it
    assert pharmacie["action"] == "utilisez l'attestation papier (carte de tiers payant) et facturez normalement"
    page = html.unescape(text(server.get("/reseaux/omega/pharmacie").text))
    assert "Pourquoi : vérification des droits en ligne indisponible" in page
    assert "Que faire : utilisez l'attestation papier" in page


def test_a_required_flow_recovering_keeps_its_lines_recovering(server: Server, target: Target) -> None:
    wait_for(lambda: line(server, "sigma", "optique")["state"] == "operational", what="all up")
    target.codes["/pec"] = 503
    wait_for(lambda: line(server, "omega", "optique")["state"] == "down", what="PEC down")
    del target.codes["/pec"]  # back: recovering for the stabilization (1 h here)
    wait_for(lambda: server.component("omega", "flows", "pec")["state"] == "recovering", what="PEC recovering")
    for network in ("omega", "sigma"):
        found = line(server, network, "optique")
        assert (found["state"], found["progress"]) == ("recovering", 1.0), network
    assert "Réactivation progressive (100" in text(server.get("/reseaux/sigma/optique").text)
