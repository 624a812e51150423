"""Partners' pushes over HTTP, in process: tpmon's own endpoint, Uptime Kuma's push URL and Gatus' external
endpoint, each with its request and answer shapes; scopes, rates, refusals audited; the public listener serves
them only when the operator opens them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from operators_support import LIGHT, Clock, Listener, bearer, listener, make_token
from starlette.testclient import TestClient

from monitor.app import create_apps
from monitor.config import load_config
from monitor.push_signals import PushInbox
from monitor.store import Store
from monitor.store.audit_store import audit_events
from monitor.store.signal_store import signals_after
from monitor.store.token_store import revoke_token
from monitor.web.push_api import gatus_key, go_duration, short_code

PEC = "/api/v1/push/viamedis/pec/operateur"


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Listener]:
    with listener(tmp_path) as found:
        yield found


def inbox(admin: Listener) -> list[tuple[str, str, str, str, float | None]]:
    return [(s.check.key, s.state, s.detail, s.author, s.latency_s) for s in signals_after(admin.store, 0)]


def refusals(admin: Listener) -> dict[tuple[str, str, str], int]:
    admin.run(admin.services.desk.flush_refusals)
    found: dict[tuple[str, str, str], int] = {}
    for event in audit_events(admin.store, action="push.refused"):
        assert event.after is not None
        key = (event.actor, event.after["reason"], event.target)
        found[key] = found.get(key, 0) + event.after["count"]
    return found


def test_short_codes_are_kept_free_text_never() -> None:
    assert short_code("OK") == ("ok", True)
    assert short_code("  batch_12.3-b ") == ("batch_12.3-b", True)
    assert short_code("") == ("", True)
    assert short_code("Dupont Jean, né le 01/02/1960") == ("", False)
    assert short_code("x" * 41) == ("", False)


def test_go_durations_and_gatus_keys() -> None:
    assert go_duration("1.5s") == 1.5 and go_duration("150ms") == pytest.approx(0.15)
    assert go_duration("1m30s") == 90.0 and go_duration("0") == 0.0 and go_duration("2us") == pytest.approx(2e-6)
    for bad in ("", "-1s", "1", "1d", "s", "1.5.2s"):
        with pytest.raises(ValueError, match="invalid duration"):
            go_duration(bad)
    assert gatus_key("viamedis", "operateur") == "viamedis_operateur"
    assert gatus_key("sp_sante", "api.pec") == "sp-sante_api-pec"


def test_a_push_as_json_or_query_is_stored_with_its_author_and_latency(admin: Listener) -> None:
    token = make_token(admin.store, "push:viamedis/pec/operateur")
    heartbeat = admin.client.post(PEC, headers=bearer(token))
    assert heartbeat.status_code == 202, heartbeat.text
    assert heartbeat.json() == {
        "check": "check:viamedis/pec/operateur",
        "state": "operational",
        "received_at": "2024-02-12T12:00:00+00:00",
        "detail": "",
        "message_kept": True,
    }
    down = admin.client.post(
        PEC, json={"state": "down", "message": "PEC_KO", "latency_ms": 1200}, headers=bearer(token)
    )
    assert down.status_code == 202 and down.json()["detail"] == "pec_ko"
    queried = admin.client.post(
        f"{PEC}?state=degraded&message=Lent%20pour%20M.%20Dupont&latency_ms=30", headers=bearer(token)
    )
    assert queried.status_code == 202 and queried.json()["message_kept"] is False and queried.json()["detail"] == ""
    author = f"token:{token[:12]}"
    assert inbox(admin) == [
        ("check:viamedis/pec/operateur", "operational", "", author, None),
        ("check:viamedis/pec/operateur", "down", "pec_ko", author, 1.2),
        ("check:viamedis/pec/operateur", "degraded", "", author, 0.03),
    ]
    assert token not in str(inbox(admin))


def test_signals_reach_the_board_through_the_inbox(admin: Listener) -> None:
    token = make_token(admin.store, "push:viamedis")
    assert admin.client.post(PEC, headers=bearer(token)).status_code == 202
    services = admin.services
    admin.clock.advance(seconds=5)  # past the inbox's settling delay
    folded = admin.run(
        lambda: PushInbox(services.store).pump(services.board, services.pipeline.record, admin.clock.now)
    )
    assert folded == 1
    status = services.board.get("check:viamedis/pec/operateur")
    assert status is not None and (status.state.value, status.source.value) == ("operational", "push")


def test_refusals_of_the_native_push(admin: Listener) -> None:
    one = make_token(admin.store, "push:viamedis/pec/operateur")
    writer = make_token(admin.store, "write:viamedis")
    revoked = make_token(admin.store, "push:viamedis")
    revoke_token(admin.store, revoked[:12])
    cases = [
        ({}, PEC, 401, "a Bearer token is required"),
        (bearer("tpm_" + "0" * 43), PEC, 401, "unknown token"),
        (bearer(revoked), PEC, 401, "revoked"),
        (bearer(one), "/api/v1/push/viamedis/facturation/concentrateur", 403, "may not push"),
        (bearer(writer), PEC, 403, "may not push"),
        (bearer(one), "/api/v1/push/almerys/pec/operateur", 403, "may not push"),
    ]
    for headers, path, status, words in cases:
        answer = admin.client.post(path, headers=headers)
        assert answer.status_code == status and words in answer.json()["error"], (path, answer.text)
    assert inbox(admin) == []
    assert refusals(admin) == {
        ("anonymous", "push:missing", ""): 1,
        ("anonymous", "push:unknown", ""): 1,
        (f"token:{revoked[:12]}", "push:revoked", ""): 1,
        (f"token:{one[:12]}", "push:not-allowed", "check:viamedis/facturation/concentrateur"): 1,
        (f"token:{writer[:12]}", "push:not-allowed", "check:viamedis/pec/operateur"): 1,
        (f"token:{one[:12]}", "push:not-allowed", "check:almerys/pec/operateur"): 1,
    }


def test_invalid_pushes_name_the_field(admin: Listener) -> None:
    token = make_token(admin.store, "push:viamedis")
    for path, body, status, field in [
        (PEC, {"state": "broken"}, 422, "state"),
        (PEC, {"latency_ms": -1}, 422, "latency_ms"),
        (PEC, {"colour": "red"}, 422, "colour"),
        ("/api/v1/push/viamedis/portail_ps/portail", {}, 422, "check"),
        ("/api/v1/push/viamedis/pec/nope", {}, 404, "check"),
    ]:
        answer = admin.client.post(path, json=body, headers=bearer(token))
        assert answer.status_code == status and answer.json()["field"] == field, (body, answer.text)
    query = admin.client.post(f"{PEC}?state=broken", headers=bearer(token))
    assert query.status_code == 422 and query.json()["field"] == "state"
    assert inbox(admin) == []


def test_each_token_has_its_rate(tmp_path: Path) -> None:
    with listener(tmp_path, rate=3) as admin:
        first, second = make_token(admin.store, "push:viamedis"), make_token(admin.store, "push:viamedis")
        assert [admin.client.post(PEC, headers=bearer(first)).status_code for _ in range(3)] == [202] * 3
        limited = admin.client.post(PEC, headers=bearer(first))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert admin.client.post(PEC, headers=bearer(second)).status_code == 202
        assert len(inbox(admin)) == 4
        assert refusals(admin) == {(f"token:{first[:12]}", "push:rate-limited", "check:viamedis/pec/operateur"): 1}


def test_an_address_sending_wrong_tokens_must_wait(admin: Listener) -> None:
    good = make_token(admin.store, "push:viamedis")
    codes = [admin.client.post(PEC, headers=bearer(f"tpm_{i:043d}")).status_code for i in range(31)]
    assert codes == [401] * 30 + [429]
    assert admin.client.post(PEC, headers=bearer(good)).status_code == 429  # even a right one, from this address
    assert refusals(admin)[("anonymous", "push:unknown", "")] == 30


def test_uptime_kuma_push_urls_work_unchanged(admin: Listener) -> None:
    token = make_token(admin.store, "push:viamedis/pec/operateur")
    wide = make_token(admin.store, "push:viamedis")
    for method, query, state, detail, latency in [
        ("GET", "?status=up&msg=OK&ping=", "operational", "ok", None),
        ("GET", "", "operational", "ok", None),  # Kuma's defaults: up, "OK"
        ("POST", "?status=down&msg=Timeout&ping=12", "down", "timeout", 0.012),
        ("GET", "?status=pending&msg=Free%20text%20here", "down", "", None),  # not "up" is down, as Kuma reads it
    ]:
        answer = admin.client.request(method, f"/api/push/{token}{query}")
        assert (answer.status_code, answer.json()) == (200, {"ok": True}), answer.text
        assert inbox(admin)[-1][1:3] == (state, detail) and inbox(admin)[-1][4] == latency
    for query, status in [("?ping=abc", 400), ("?ping=-1", 400), ("?ping=86400001", 400), ("?ping=nan", 400)]:
        answer = admin.client.get(f"/api/push/{token}{query}")
        assert answer.status_code == status and answer.json()["ok"] is False
    unknown = admin.client.get("/api/push/tpm_" + "z" * 43 + "?status=up")
    assert unknown.status_code == 404 and unknown.json() == {"ok": False, "msg": "authorization: unknown token"}
    assert admin.client.get(f"/api/push/{wide}").status_code == 400  # which check? a Kuma URL names one
    assert len(inbox(admin)) == 4


def test_gatus_external_endpoints_work_unchanged(admin: Listener) -> None:
    token = make_token(admin.store, "push:viamedis/pec/operateur")
    url = "/api/v1/endpoints/viamedis_operateur/external"
    ok = admin.client.post(f"{url}?success=true&error=&duration=250ms", headers=bearer(token))
    assert (ok.status_code, ok.text) == (200, "")
    failed = admin.client.post(f"{url}?success=false&error=http_503", headers=bearer(token))
    assert failed.status_code == 200
    assert [row[1:] for row in inbox(admin)] == [
        ("operational", "", f"token:{token[:12]}", 0.25),
        ("down", "http_503", f"token:{token[:12]}", None),
    ]
    for path, headers, status, text in [
        (f"{url}?success=maybe", bearer(token), 400, "missing or invalid success query parameter"),
        (f"{url}", bearer(token), 400, "missing or invalid success query parameter"),
        (f"{url}?success=true", {}, 401, "invalid Authorization header"),
        (f"{url}?success=true", {"Authorization": "Bearer "}, 401, "bearer token must not be empty"),
        (f"{url}?success=true&duration=soon", bearer(token), 400, "invalid duration"),
        ("/api/v1/endpoints/viamedis_nope/external?success=true", bearer(token), 404, "not found"),
        ("/api/v1/endpoints/almerys_operateur/external?success=true", bearer(token), 401, "invalid token"),
        (f"{url}?success=true", bearer("tpm_" + "1" * 43), 401, "unknown token"),
    ]:
        answer = admin.client.post(path, headers=headers)
        assert answer.status_code == status and text in answer.text, (path, answer.text)
    assert len(inbox(admin)) == 2


def unknown(path: str) -> dict[str, str | None]:
    """What the public API answers for any path it has no route for (in French, the default)."""
    return {"error": f"aucune adresse {path!r}\u00a0; voir /api/v1/openapi.json", "field": None, "code": "not_found"}


@pytest.mark.parametrize("opened", [False, True])
def test_the_public_listener_serves_pushes_only_when_opened(tmp_path: Path, opened: bool) -> None:
    with listener(tmp_path, which="public", public=opened) as public:
        token = make_token(public.store, "push:viamedis/pec/operateur")
        answers = [
            public.client.post(PEC, headers=bearer(token)),
            public.client.get(f"/api/push/{token}?status=up"),
            public.client.post("/api/v1/endpoints/viamedis_operateur/external?success=true", headers=bearer(token)),
        ]
        if opened:
            assert [a.status_code for a in answers] == [202, 200, 200]
            assert len(inbox(public)) == 3
        else:
            assert [(a.status_code, a.json()) for a in answers] == [(404, unknown(a.url.path)) for a in answers]
            assert inbox(public) == []
        for method, path in [
            ("POST", "/api/v1/incidents"),
            ("POST", "/api/v1/session"),
            ("GET", "/api/v1/session"),
            ("POST", "/api/v1/maintenance"),
            ("GET", "/api/v1/declarations"),
        ]:
            answer = public.client.request(method, path, headers=bearer(token), json={})
            assert (answer.status_code, answer.json()) == (404, unknown(path)), path  # no admin route at all


def test_a_push_check_may_take_a_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret, short = "s" * 40, "tooshort"
    monkeypatch.setenv("PARTNER_SECRET", secret)
    monkeypatch.setenv("SHORT_SECRET", short)
    config = tmp_path / "tpmon.yaml"
    config.write_text(
        """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [optique]
    checks:
      - {name: operateur, flow: pec, kind: push, token: "${PARTNER_SECRET}"}
      - {name: concentrateur, flow: facturation, kind: push, token: "${SHORT_SECRET}"}
""",
        encoding="utf-8",
    )
    settings = load_config(config)
    with Store.open(f"sqlite:///{tmp_path}/t.db") as store:
        apps = create_apps(settings, store=store, schedule=False, clock=Clock(), passwords=LIGHT, environ=os.environ)
        with TestClient(apps.admin) as client:
            assert client.post(PEC, headers=bearer(secret)).status_code == 202
            assert client.get(f"/api/push/{secret}?status=up").json() == {"ok": True}  # one check: Kuma's URL works
            other = "/api/v1/push/viamedis/facturation/concentrateur"
            assert client.post(other, headers=bearer(secret)).status_code == 403  # for its own check only
            assert client.post(other, headers=bearer(short)).status_code == 401  # under 32 characters: ignored
        assert [(s.check.key, s.author) for s in signals_after(store, 0)] == [
            ("check:viamedis/pec/operateur", "token:config/viamedis/pec/operateur")
        ] * 2
