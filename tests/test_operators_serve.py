"""The operators' side of a real `tpmon serve`: two listeners in one process, partner scripts written for Uptime
Kuma and Gatus keeping push checks up, tokens made and revoked with `tpmon token`, refusals audited, an incident
written through the API and shown on the public page, a staff sign-in with a TOTP code, a clean stop."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from targets import Server, wait_for

from monitor.web.admin_routes import OPERATIONS

PARTNERS = Path(__file__).parent / "data" / "partners"
CONFIG = """
defaults: {interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}
admin: {push_per_minute: 600}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {name: kuma, flow: pec, kind: push, interval: 2s, missed_after: 20s}
      - {name: gatus, flow: facturation, kind: push, interval: 2s, missed_after: 20s}
  beta:
    name: Beta
    kind: operateur
    lines: [pharmacie]
"""


class Ops:
    """`tpmon serve` with its two listeners, and the commands ops run beside it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.admin_url = f"http://127.0.0.1:{server.admin_port}"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.admin_url}{path}", timeout=10, **kwargs)

    def tpmon(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            self.server.command(*args, "--config", str(self.server.config)),
            cwd=self.server.workdir,
            env=self.server.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def token(self, *scopes: str) -> str:
        out = self.tpmon("token", "create", "--label", "partner", *(f"--scope={s}" for s in scopes))
        found = re.search(r"^(tpm_[A-Za-z0-9_-]{43})$", out, re.M)
        assert found, out
        return found.group(1)

    def check(self, name: str) -> dict[str, Any]:
        checks = self.server.get("/api/v1/checks?network=alpha").json()["checks"]
        found: dict[str, Any] = next(c for c in checks if c["id"] == name)
        return found

    def audit(self, action: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.tpmon("audit", "list", "--action", action, "--json"))
        return found


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Ops]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    server = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"}).start()
    found = Ops(server)
    wait_for(lambda: found.admin("GET", "/healthz").text == "ok", what="the operators' listener")
    try:
        yield found
    finally:
        server.stop()


def partner(script: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sh", str(PARTNERS / script)], env={"PATH": "/usr/bin:/bin", "INTERVAL": "0.5", **env}, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_partner_scripts_for_uptime_kuma_and_gatus_keep_push_checks_up(ops: Ops) -> None:
    kuma = ops.token("push:alpha/pec/kuma")
    gatus = ops.token("push:alpha/facturation/gatus")
    assert ops.check("kuma")["state"] != "operational"  # unknown, or down if creating the tokens took > missed_after
    scripts = [
        partner("kuma_push.sh", PUSH_URL=f"{ops.admin_url}/api/push/{kuma}"),
        partner("gatus_external.sh", GATUS_URL=ops.admin_url, KEY="alpha_gatus", TOKEN=gatus),
    ]
    try:
        for name in ("kuma", "gatus"):
            wait_for(lambda n=name: ops.check(n)["state"] == "operational", timeout=20, what=f"{name} up")  # type: ignore[misc]
        # for longer than missed_after: only the scripts' heartbeats keep them up
        first = datetime.fromisoformat(ops.check("kuma")["last_result_at"])
        wait_for(
            lambda: datetime.fromisoformat(ops.check("kuma")["last_result_at"]) - first > timedelta(seconds=22),
            timeout=60,
            what="heartbeats over more than missed_after",
        )
        for flow, name in (("pec", "kuma"), ("facturation", "gatus")):
            assert (ops.check(name)["state"], ops.check(name)["source"]) == ("operational", "push")
            history = ops.server.get(f"/api/v1/history/check:alpha/{flow}/{name}").json()["transitions"]
            states = [t["to"] for t in reversed(history)]  # oldest first
            assert states[states.index("operational") :] == ["operational"]  # up once, never down since
    finally:
        for script in scripts:
            script.terminate()
            script.wait(timeout=10)
    for script in scripts:
        assert script.stderr is not None and b"refused" not in script.stderr.read()
    for name in ("kuma", "gatus"):  # silent partners: down once missed_after has passed
        wait_for(lambda n=name: ops.check(n)["state"] == "down", timeout=60, what=f"{name} down")  # type: ignore[misc]


def test_wrong_and_revoked_tokens_are_refused_and_audited(ops: Ops) -> None:
    token = ops.token("push:alpha/pec/kuma")
    assert ops.admin("GET", f"/api/push/{token}?status=up").json() == {"ok": True}
    prefix = token[:12]
    revoked = ops.tpmon("token", "revoke", prefix)
    assert "revoked" in revoked
    wait_for(lambda: ops.admin("GET", f"/api/push/{token}?status=up").status_code == 404, what="the revocation")
    answer = ops.admin("GET", f"/api/push/{token}?status=up")
    assert answer.json() == {"ok": False, "msg": "authorization: this token is revoked"}
    wrong = ops.admin("POST", "/api/v1/push/alpha/pec/kuma", headers={"Authorization": "Bearer tpm_" + "0" * 43})
    assert wrong.status_code == 401
    refused = wait_for(
        lambda: (
            (e := ops.audit("push.refused"))
            and {x["after"]["reason"] for x in e} >= {"push:revoked", "push:unknown"}
            and e
        ),
        what="refusals in the audit trail",
    )
    actors = {(e["actor"], e["after"]["reason"]) for e in refused}
    assert (f"token:{prefix}", "push:revoked") in actors and ("anonymous", "push:unknown") in actors
    assert token not in json.dumps(refused)
    made = ops.audit("token")
    assert [e["action"] for e in made] == ["token.revoke", "token.create"]
    assert made[0]["actor"].startswith("cli:") and made[0]["listener"] == "cli"


def test_the_public_listener_has_no_operators_route(ops: Ops) -> None:
    token = ops.token("admin")
    values = {"network": "alpha", "flow": "pec", "check": "kuma", "id": "1", "date": "2024-03-03", "token": token,
              "key": "alpha_kuma"}  # fmt: skip
    tried = 0
    for op in OPERATIONS:
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], op.path)
        for method in (op.method, *op.extra_methods):
            public = f"http://127.0.0.1:{ops.server.port}{path}"
            answer = httpx.request(method.upper(), public, headers={"Authorization": f"Bearer {token}"}, json={})
            unknown = {  # as any unknown path
                "error": f"aucune adresse {answer.url.path!r}\u00a0; voir /api/v1/openapi.json",
                "field": None,
                "code": "not_found",
            }
            assert (answer.status_code, answer.json()) == (404, unknown), (method, path, answer.status_code)
            tried += 1
    assert tried == len(OPERATIONS) + 1
    assert ops.admin("GET", "/api/v1/openapi.json").json()["info"]["title"] == "tpmon operators' API"
    assert httpx.get(f"http://127.0.0.1:{ops.server.port}/api/v1/openapi.json").json()["info"]["title"] == "tpmon API"


def test_an_incident_written_through_the_api_shows_on_the_public_page(ops: Ops) -> None:
    editor = ops.token("write:alpha")
    auth = {"Authorization": f"Bearer {editor}"}
    opened = ops.admin(
        "POST",
        "/api/v1/incidents",
        headers={**auth, "Idempotency-Key": "pec-1"},
        json={
            "title": {"fr": "PEC optique indisponibles"},
            "impact": "major",
            "message": {"fr": "Les PEC échouent."},
            "statuses": [{"component": "line:alpha/optique", "state": "down"}],
        },
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()["id"]
    page = wait_for(lambda: "PEC optique indisponibles" in (t := ops.server.get("/").text) and t, what="on the page")
    assert "Indisponible" in page
    assert ops.server.component("alpha", "lines", "optique")["state"] == "down"
    beta = ops.admin("POST", "/api/v1/incidents", headers=auth, json={
        "title": {"fr": "x"}, "impact": "minor", "message": {"fr": "x"}, "components": ["network:beta"]})  # fmt: skip
    assert beta.status_code == 403
    step = {
        "status": "monitoring",
        "message": {"fr": "Optique réactivée à 50 %."},
        "statuses": [{"component": "line:alpha/optique", "state": "recovering", "progress": 0.5}],
    }
    assert ops.admin("POST", f"/api/v1/incidents/{incident}/updates", headers=auth, json=step).status_code == 200
    wait_for(lambda: ops.server.component("alpha", "lines", "optique")["state"] == "recovering", what="recovering")
    assert ops.server.component("alpha", "lines", "optique")["progress"] == 0.5
    assert ops.admin("POST", f"/api/v1/incidents/{incident}/resolve", headers=auth).status_code == 200
    wait_for(lambda: ops.server.component("alpha", "lines", "optique")["source"] != "declared", what="resolved")
    public = ops.server.get(f"/api/v1/incidents/{incident}").json()
    assert public["status"] == "resolved" and len(public["updates"]) == 3
    trail = ops.audit("incident")
    assert [e["action"] for e in trail] == ["incident.resolve", "incident.update", "incident.open"]
    assert {e["actor"] for e in trail} == {f"token:{editor[:12]}"} and {e["listener"] for e in trail} == {"admin"}


def test_staff_sign_in_with_a_totp_code_on_the_operators_listener(ops: Ops) -> None:
    ops.tpmon("user", "add", "ada", "--role", "admin", "--password-stdin", stdin="une phrase de passe solide\n")
    client = httpx.Client(base_url=ops.admin_url, timeout=10)
    first = client.post("/api/v1/session", json={"name": "ada", "password": "une phrase de passe solide"})
    assert first.status_code == 200 and first.json()["stage"] == "enrol"
    secret = client.get("/api/v1/session/enrolment").json()["secret"]
    csrf = first.json()["csrf_token"]
    enrolled = client.post(
        "/api/v1/session/enrolment", json={"code": pyotp.TOTP(secret).now()}, headers={"X-CSRF-Token": csrf}
    )
    assert enrolled.status_code == 200 and enrolled.json()["stage"] == "full"
    listed = json.loads(ops.tpmon("user", "list", "--json"))
    assert listed == [{"name": "ada", "role": "admin", "networks": [], "disabled": False, "second_factor": "enrolled",
                       "locked_until": None}]  # fmt: skip
    ops.tpmon("user", "disable", "ada")
    assert client.get("/api/v1/session").status_code == 401  # its sessions ended at once


def test_both_listeners_stop_cleanly_on_sigterm(ops: Ops) -> None:
    assert ops.server.proc is not None
    ops.server.proc.send_signal(signal.SIGTERM)
    assert ops.server.proc.wait(timeout=20) == 0
    for port in (ops.server.port, ops.server.admin_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    log = ops.server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log
    ops.server.proc = None
