"""End to end: `tpmon serve` as users run it, probing real local targets, reloading, restarting."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import Server, Target, alpha_config, free_port, wait_for

from monitor.app import create_apps
from monitor.config import load_config

CONFIG = """
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 2, success_threshold: 1}}
stabilization: 1h
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, hospitalisation]
    checks:
      - {{name: portail, flow: portail_ps, kind: http, url: "{url}/portail"}}
      - {{name: dre, flow: facturation, kind: http, url: "{url}/dre"}}
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec", conditions: {{body_not_contains: Maintenance}}}}
{extra}
"""
EXTRA_CHECK = "      - {{name: droits, flow: droits, kind: tcp, host: 127.0.0.1, port: {port}}}"


@pytest.fixture
def server(tmp_path: Path, target: Target) -> Iterator[Server]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=target.url(""), extra=""), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"})
    srv.start()
    yield srv
    srv.stop()


def test_page_api_health_and_ready_answer(server: Server) -> None:
    page = server.get("/")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Alpha" in page.text and "Pharmacie" in page.text
    english = server.get("/?lang=en")
    assert '<html lang="en">' in english.text and "Pharmacy" in english.text
    assert server.get("/healthz").text == "ok"
    ready = wait_for(lambda: server.get("/readyz").status_code == 200, what="readiness")
    assert ready
    assert server.status()["networks"][0]["id"] == "alpha"


def test_states_follow_the_targets(server: Server, target: Target) -> None:
    wait_for(lambda: server.component("alpha", "lines", "hospitalisation")["state"] == "operational", what="up")
    line = server.component("alpha", "lines", "hospitalisation")
    assert line["source"] == "probe" and line["since"]

    target.codes["/pec"] = 503  # the PEC flow fails: the line needs it, however well invoicing runs → down
    wait_for(lambda: server.component("alpha", "flows", "pec")["state"] == "down", what="pec down")
    assert server.component("alpha", "lines", "hospitalisation")["state"] == "down"
    assert server.component("alpha", "lines", "pharmacie")["state"] == "operational"  # needs no PEC
    network = server.status()["networks"][0]
    assert network["state"] == "partial"  # a line down, another working

    del target.codes["/pec"]  # back up: recovering, since stabilization is 1 h here
    wait_for(lambda: server.component("alpha", "flows", "pec")["state"] == "recovering", what="recovering")
    assert server.component("alpha", "flows", "pec")["progress"] == 1.0


def test_reload_applies_added_checks_and_refuses_an_invalid_config(server: Server, target: Target) -> None:
    tcp_port = target.port
    server.config.write_text(
        CONFIG.format(url=target.url(""), extra=EXTRA_CHECK.format(port=tcp_port)), encoding="utf-8"
    )
    done = server.run("reload", "--config", str(server.config), "--pid-file", str(server.pid_file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reloaded: 1 added, 0 removed, 0 changed"
    status_file = server.pid_file.with_suffix(".reload.json")
    said = json.loads(status_file.read_text())["texts"]  # what `tpmon reload` prints, in each language
    assert said == {
        "en": "1 added, 0 removed, 0 changed",
        "fr": "1 vérification(s) ajoutée(s), 0 retirée(s), 0 modifiée(s)",
    }
    wait_for(lambda: server.component("alpha", "checks", "droits")["state"] == "operational", what="new check")

    server.config.write_text("networks: {alpha: {kind: nope}}\n", encoding="utf-8")
    refused = server.run("reload", "--config", str(server.config), "--pid-file", str(server.pid_file))
    assert refused.returncode == 2
    assert "networks.alpha.kind" in refused.stderr and "Traceback" not in refused.stderr

    # the server itself refuses it too when signalled directly, and keeps serving the running config
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: json.loads(status_file.read_text())["ok"] is False, what="refused reload")
    said = json.loads(status_file.read_text())["texts"]
    assert "networks.alpha.kind: doit valoir 'operateur' ou 'reseau_de_soins' (reçu 'nope')" in said["fr"], said
    assert "networks.alpha.kind: must be 'operateur' or 'reseau_de_soins' (got 'nope')" in said["en"], said
    assert server.component("alpha", "checks", "droits")["id"] == "droits"
    assert server.get("/healthz").status_code == 200


def test_restart_restores_states_without_transitions(server: Server, target: Target) -> None:
    target.codes["/portail"] = 500
    wait_for(lambda: server.component("alpha", "flows", "portail_ps")["state"] == "down", what="down")
    wait_for(lambda: server.component("alpha", "lines", "pharmacie")["state"] == "operational", what="pharmacie")
    before = {n["id"]: n for n in server.status()["networks"][0]["flows"]}
    history = "/api/v1/history/flow:alpha/portail_ps"
    stored = wait_for(  # the down transition is written (the writer flushes every half second)
        lambda: (t := server.get(history).json()["transitions"]) and t[0]["to"] == "down" and t, what="stored"
    )
    assert server.stop() == 0

    # the target stays down across the restart: the outage must keep its first date, not restart it
    transitions_before = server.run("status", "--json", "--config", str(server.config))
    assert transitions_before.returncode == 0, transitions_before.stderr
    rows = {r["component"]: r for r in json.loads(transitions_before.stdout)}
    assert rows["line:alpha/pharmacie"]["state"] == "operational"

    server.port = free_port()
    server.start()
    hits = target.hits.get("/portail", 0)
    after = {n["id"]: n for n in server.status()["networks"][0]["flows"]}
    assert after["portail_ps"]["state"] == "down"
    assert after["portail_ps"]["since"] == before["portail_ps"]["since"]
    # probes run again after the restart, and no transition appears: the restart is invisible
    wait_for(lambda: target.hits.get("/portail", 0) >= hits + 2, what="two probes after the restart")
    again = {n["id"]: n for n in server.status()["networks"][0]["flows"]}["portail_ps"]
    assert (again["state"], again["since"]) == ("down", before["portail_ps"]["since"])
    assert server.get(history).json()["transitions"] == stored


def test_database_down_at_start_is_one_line_and_nonzero(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9", extra=""), encoding="utf-8")
    url = f"postgresql+psycopg://tpmon:s3cret-pw@127.0.0.1:{free_port()}/tpmon"
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": url})
    for args in (("serve", "--config", str(config), "--port", str(free_port())), ("status", "--config", str(config))):
        done = srv.run(*args)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("tpmon: ") and "s3cret-pw" not in lines[0]
        assert "Traceback" not in done.stderr


def test_help_and_bad_arguments(tmp_path: Path) -> None:
    srv = Server(tmp_path / "none.yaml", tmp_path, {})
    for args in ((), ("serve",), ("check-config",), ("probe",), ("status",), ("reload",), ("db", "upgrade")):
        done = srv.run(*args, "--help")
        assert done.returncode == 0 and "usage: tpmon" in done.stdout, args
    bad = srv.run("serve", "--port", "eighty")
    assert bad.returncode == 2 and "--port" in bad.stderr and "Traceback" not in bad.stderr
    missing = srv.run("check-config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_probe_command_prints_phases(server: Server, target: Target) -> None:
    done = server.run("probe", "alpha/facturation/dre", "--config", str(server.config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("check:alpha/facturation/dre: OK in ")
    assert "HTTP status     200" in done.stdout and "connect" in done.stdout
    target.codes["/dre"] = 503
    failed = server.run("probe", "alpha/facturation/dre", "--config", str(server.config), "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["reason"] == "http_status"
    unknown = server.run("probe", "alpha/nope/x", "--config", str(server.config))
    assert unknown.returncode == 2 and "no check 'alpha/nope/x'" in unknown.stderr


SECRET_CONFIG = """
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie]
    checks:
      - name: dre
        flow: facturation
        kind: http
        url: "{url}/dre?token=${{TPMON_TEST_TOKEN}}"
        headers: {{Authorization: "Bearer ${{TPMON_TEST_TOKEN}}"}}
"""


def test_json_logs_one_object_per_line_and_no_secret_anywhere(tmp_path: Path, target: Target) -> None:
    secret = "tok-7f3a9c-never-shown"
    config = tmp_path / "secret.yaml"
    config.write_text(SECRET_CONFIG.format(url=target.url("")), encoding="utf-8")
    env = {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/t.db", "TPMON_TEST_TOKEN": secret}
    srv = Server(config, tmp_path, env).start("--log-format", "json", "--log-level", "debug")
    try:
        target.codes[f"/dre?token={secret}"] = 503  # the secret reached the target, and failed there
        wait_for(lambda: srv.component("alpha", "checks", "dre")["state"] == "down", what="down")
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGHUP)
        status_file = srv.pid_file.with_suffix(".reload.json")
        wait_for(status_file.exists, what="reload")
        seen = [srv.get(path).text for path in ("/", "/?lang=en", "/api/v1/status", "/metrics")]
        probe = srv.run("probe", "alpha/facturation/dre", "--config", str(config), "--json")
        assert json.loads(probe.stdout)["reason"] == "http_status"
    finally:
        assert srv.stop() == 0
    log_lines = srv.log.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in log_lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "msg"} <= set(events[0])
    assert any("config reloaded" in e["msg"] for e in events)
    assert any(re.match(r"check:alpha/facturation/dre \w+ → down \(probe\)", e["msg"]) for e in events)
    assert not any(e["logger"].startswith(("httpcore", "httpx")) for e in events)
    for text in [*log_lines, *seen, probe.stdout, probe.stderr, status_file.read_text()]:
        assert secret not in text


PUSH_CHECK = "      - {name: virements, flow: paiements, kind: push, interval: 1h}\n"


def test_what_ops_declare_and_partners_push_reaches_the_running_server(tmp_path: Path, target: Target) -> None:
    """The CLI writes to the store; the server picks it up at its next tick, with its source and precedence."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    config = tmp_path / "ops.yaml"
    config.write_text(alpha_config(target.url(""), extra_checks=PUSH_CHECK), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/ops.db"}).start()
    try:
        wait_for(lambda: srv.component("alpha", "lines", "optique")["state"] == "operational", what="up")
        assert srv.component("alpha", "flows", "paiements")["state"] == "unknown"  # no signal yet

        pushed = srv.run("push", "alpha/paiements/virements", "--config", str(config))
        assert pushed.returncode == 0, pushed.stderr
        paiements = wait_for(
            lambda: (f := srv.component("alpha", "flows", "paiements"))["state"] == "operational" and f,
            what="push heartbeat",
        )
        assert paiements["source"] == "push"

        opened = srv.run(
            *("incident", "open", "--config", str(config), "--title", "PEC indisponibles", "--impact", "major"),
            *("--declare", "line:alpha/optique=down", "--message", "Les PEC sont **impossibles**. <script>x</script>"),
            *("--consigne-ps", "Différez la vente.", "--consigne-members", "Gardez la facture acquittée."),
        )
        assert opened.returncode == 0, opened.stderr
        page = wait_for(  # the server reads declarations every tick, whoever wrote them
            lambda: "PEC indisponibles" in (text := srv.get("/").text) and text, what="the incident on the page"
        )
        assert "Les PEC sont <strong>impossibles</strong>. &lt;script&gt;x&lt;/script&gt;" in page
        assert "Différez la vente." in page
        assert "Gardez la facture acquittée." in page
        optique = wait_for(
            lambda: (c := srv.component("alpha", "lines", "optique"))["state"] == "down" and c, what="declared"
        )
        assert optique["source"] == "declared"

        start = datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m-%d %H:%M")
        planned = srv.run(
            *("maintenance", "add", "--config", str(config), "--title", "Intervention", "--component"),
            *("line:alpha/optique", "--start", start, "--duration", "2h"),
        )
        assert planned.returncode == 0, planned.stderr
        optique = wait_for(
            lambda: (c := srv.component("alpha", "lines", "optique"))["state"] == "maintenance" and c,
            what="maintenance over declared",
        )
        assert optique["source"] == "maintenance"
        assert re.search(r"En cours</strong> —\s+Intervention", srv.get("/").text)
    finally:
        assert srv.stop() == 0


def test_history_api_answers_and_refuses_bad_input(server: Server, target: Target) -> None:
    wait_for(lambda: server.component("alpha", "flows", "pec")["state"] == "operational", what="up")
    history = wait_for(  # the store writer flushes every half second
        lambda: (h := server.get("/api/v1/history/flow:alpha/pec").json())["transitions"] and h, what="stored"
    )
    assert history["component"] == "flow:alpha/pec"
    assert history["transitions"][0]["to"] == "operational"
    assert set(history["availability"]) == {"1d", "7d", "30d", "90d"}
    assert server.get("/api/v1/history/flow:alpha/pec?limit=1").json()["transitions"][0]["to"] == "operational"
    for path, code, field in (
        ("/api/v1/history/nonsense", 400, "n’est pas une clé de composant"),  # in French, the default
        ("/api/v1/history/flow:alpha/nope", 404, "aucun composant"),
        ("/api/v1/history/flow:alpha/pec?limit=0", 400, "limit"),
        ("/api/v1/history/flow:alpha/pec?limit=abc", 400, "limit"),
    ):
        answer = server.get(path)
        assert answer.status_code == code, path
        assert field in answer.json()["error"]


def test_a_taken_port_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9", extra=""), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args in (("serve", "--config", str(config), "--port", port), ("demo", "--port", port)):
            done = srv.run(*args)
            assert done.returncode == 2, done
            assert (
                done.stderr
                == f"tpmon: --port: cannot listen on 127.0.0.1:{port} (already in use); choose another port\n"
            )
            assert done.stdout == ""
    assert not (tmp_path / "var").exists()  # the demo did not start replaying


def test_what_startup_built_is_frozen_out_of_the_collectors_passes(tmp_path: Path, target: Target) -> None:
    """`tpmon serve` freezes the heap once started: the board, the config and the jobs (~240,000 objects at 990
    checks) are no longer walked by each full collection (0.33 s of CPU each on a slow machine, a stall of the
    probes and of the publication every few changes)."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=target.url(""), extra=""), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/tpmon.db"

    async def frozen(freeze: bool) -> tuple[int, bool]:
        apps = create_apps(load_config(config), database_url=url, schedule=False, freeze_heap=freeze)
        async with apps.public.router.lifespan_context(apps.public) as state:
            assert state is not None
            board = state["services"].board
            walked = any(found is board for found in gc.get_objects())
            return gc.get_freeze_count(), walked

    try:
        assert asyncio.run(frozen(False)) == (0, True)  # without it (the tests' apps), all is walked as before
        count, walked = asyncio.run(frozen(True))
        assert count > 1000 and not walked
    finally:
        gc.unfreeze()
