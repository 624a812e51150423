"""The write API of the operators' listener, in process over a SQLite file: incidents and maintenance written with
scoped tokens, refused with the field named (as the CLI names it), retried safely with idempotency keys, and
every write in the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from operators_support import Listener, bearer, listener, make_token

from monitor.cli import main
from monitor.opscli.inputs import OPTIONS
from monitor.store.audit_store import audit_events
from monitor.store.declaration_store import Declarations

OPEN = {
    "title": {"fr": "PEC optique impossibles", "en": "Optical PEC unavailable"},
    "impact": "major",
    "status": "identified",
    "message": {"fr": "Les prises en charge échouent.", "en": "PECs fail."},
    "practitioner_consigne": {"fr": "Faites une facture acquittée."},
    "statuses": [{"component": "line:viamedis/optique", "state": "down"}],
}
WEEKLY = {
    "title": {"fr": "Maintenance dominicale"},
    "components": ["flow:viamedis/pec"],
    "start": "2024-02-18T02:00",
    "duration": "2h",
    "recurrence": {"frequency": "weekly", "weekdays": ["sun"]},
}


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Listener]:
    """The listener, asked in English (errors are French by default: see the tests of the language below)."""
    with listener(tmp_path) as found:
        found.client.headers["Accept-Language"] = "en"
        yield found


def post(admin: Listener, path: str, token: str, body: Any = None, **headers: str) -> Any:
    return admin.client.post(path, json=body, headers={**bearer(token), **headers})


def test_open_update_recovering_and_resolve_an_incident(admin: Listener) -> None:
    token = make_token(admin.store, "write:viamedis")
    opened = post(admin, "/api/v1/incidents", token, OPEN)
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert (incident["status"], incident["impact"]) == ("identified", "major")
    assert incident["declared"][0] == {
        "component": "line:viamedis/optique",
        "state": "down",
        "progress": None,
        "since": "2024-02-12T12:00:00+00:00",
    }
    assert incident["practitioner_consigne"] == {"fr": "Faites une facture acquittée.", "en": None}
    admin.clock.advance(hours=2)
    step = {
        "status": "monitoring",
        "message": {"fr": "Optique réactivée à 50 %."},
        "member_consigne": {"fr": "Gardez vos factures.", "en": "Keep your invoices."},
        "statuses": [{"component": "line:viamedis/optique", "state": "recovering", "progress": 0.5}],
    }
    updated = post(admin, f"/api/v1/incidents/{incident['id']}/updates", token, step)
    assert updated.status_code == 200, updated.text
    assert updated.json()["declared"][0]["state"] == "recovering" and updated.json()["declared"][0]["progress"] == 0.5
    declared = admin.client.get("/api/v1/declarations", headers=bearer(token)).json()["declarations"]
    assert [(d["component"], d["state"], d["progress"]) for d in declared] == [
        ("line:viamedis/optique", "recovering", 0.5)
    ]
    assert admin.services.board.get("line:viamedis/optique").state.value == "recovering"  # type: ignore[union-attr]
    admin.clock.advance(hours=1)
    resolved = post(admin, f"/api/v1/incidents/{incident['id']}/resolve", token)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["updates"][0]["message"]["fr"] == "Incident résolu."
    assert admin.client.get("/api/v1/declarations", headers=bearer(token)).json()["declarations"] == []
    again = post(admin, f"/api/v1/incidents/{incident['id']}/resolve", token)
    assert again.status_code == 409 and "already resolved" in again.json()["error"]


def test_every_write_is_audited_with_who_what_before_and_after(admin: Listener) -> None:
    token = make_token(admin.store, "write:viamedis")
    prefix = token[:12]
    incident = post(admin, "/api/v1/incidents", token, OPEN).json()
    post(admin, f"/api/v1/incidents/{incident['id']}/updates", token, {"message": {"fr": "Suite."}})
    window = post(admin, "/api/v1/maintenance", token, WEEKLY).json()
    post(admin, f"/api/v1/maintenance/{window['id']}/occurrences/2024-02-25/cancel", token)
    post(admin, f"/api/v1/maintenance/{window['id']}/cancel", token)
    events = list(reversed(audit_events(admin.store)))
    assert [(e.action, e.target, e.actor, e.listener) for e in events] == [
        ("incident.open", f"incident:{incident['id']}", f"token:{prefix}", "admin"),
        ("incident.update", f"incident:{incident['id']}", f"token:{prefix}", "admin"),
        ("maintenance.add", f"maintenance:{window['id']}", f"token:{prefix}", "admin"),
        ("maintenance.cancel_occurrence", f"maintenance:{window['id']}", f"token:{prefix}", "admin"),
        ("maintenance.cancel", f"maintenance:{window['id']}", f"token:{prefix}", "admin"),
    ]
    opened, updated = events[0], events[1]
    assert opened.before is None and opened.after is not None
    assert opened.after["title"]["fr"] == "PEC optique impossibles"
    assert updated.before is not None and updated.after is not None
    assert (updated.before["updates"], updated.after["updates"]) == (1, 2)
    assert events[3].after is not None and events[3].after["skipped"] == ["2024-02-25"]
    assert events[4].before is not None and (events[4].before["cancelled"], events[4].after["cancelled"]) == (  # type: ignore[index]
        False,
        True,
    )
    assert token not in json.dumps([e.as_json() for e in events])  # the prefix, never the secret


def test_an_editor_token_for_viamedis_cannot_touch_almerys(admin: Listener) -> None:
    viamedis, everything = make_token(admin.store, "write:viamedis"), make_token(admin.store, "admin")
    almerys = {**OPEN, "statuses": [{"component": "line:almerys/optique", "state": "down"}]}
    refused = post(admin, "/api/v1/incidents", viamedis, almerys)
    assert refused.status_code == 403 and "'almerys'" in refused.json()["error"]
    mixed = {**OPEN, "components": ["network:almerys"]}
    assert post(admin, "/api/v1/incidents", viamedis, mixed).status_code == 403
    theirs = post(admin, "/api/v1/incidents", everything, almerys).json()["id"]
    for path, body in [
        (f"/api/v1/incidents/{theirs}/updates", {"message": {"fr": "x"}}),
        (f"/api/v1/incidents/{theirs}/updates", {"message": {"fr": ""}, "status": "investigating"}),  # invalid too
        (f"/api/v1/incidents/{theirs}/resolve", None),
    ]:
        answer = post(admin, path, viamedis, body)
        assert answer.status_code == 403, (path, answer.text)  # not 422: nothing is said of their incident
    ours = post(admin, "/api/v1/incidents", viamedis, OPEN).json()["id"]
    spread = {"message": {"fr": "x"}, "statuses": [{"component": "line:almerys/pharmacie", "state": "down"}]}
    assert post(admin, f"/api/v1/incidents/{ours}/updates", viamedis, spread).status_code == 403
    window = post(admin, "/api/v1/maintenance", everything, {**WEEKLY, "components": ["network:almerys"]}).json()
    assert post(admin, f"/api/v1/maintenance/{window['id']}/cancel", viamedis).status_code == 403
    assert (
        post(admin, "/api/v1/maintenance", viamedis, {**WEEKLY, "components": ["network:almerys"]}).status_code == 403
    )
    incidents = Declarations(admin.store, admin.settings).incidents()
    assert sorted(i.components for i in incidents) == [("line:almerys/optique",), ("line:viamedis/optique",)]
    assert len(incidents[0].updates) == len(incidents[1].updates) == 1


def test_tokens_that_may_not_write_are_refused(admin: Listener) -> None:
    push_only = make_token(admin.store, "push:viamedis")
    expired = make_token(admin.store, "write:viamedis", expires_at=admin.clock.now - timedelta(seconds=1))
    revoked = make_token(admin.store, "write:viamedis")
    from monitor.store.token_store import revoke_token

    revoke_token(admin.store, revoked[:12])
    missing = admin.client.post("/api/v1/incidents", json=OPEN)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="tpmon"'
    for secret, status, words in [
        ("tpm_" + "x" * 43, 401, "unknown token"),
        (expired, 401, "expired"),
        (revoked, 401, "revoked"),
        (push_only, 403, "may not write"),
    ]:
        answer = post(admin, "/api/v1/incidents", secret, OPEN)
        assert answer.status_code == status and words in answer.json()["error"], (words, answer.text)
    assert Declarations(admin.store, admin.settings).incidents() == []
    admin.run(admin.services.desk.flush_refusals)
    refused = {(e.action, e.actor, (e.after or {}).get("reason")) for e in audit_events(admin.store)}
    assert {
        ("push.refused", "anonymous", "write:missing"),
        ("push.refused", f"token:{revoked[:12]}", "write:revoked"),
        ("push.refused", f"token:{expired[:12]}", "write:expired"),
    } <= refused


def test_a_retried_post_never_creates_two_incidents(admin: Listener) -> None:
    token = make_token(admin.store, "write:viamedis")
    first = post(admin, "/api/v1/incidents", token, OPEN, **{"Idempotency-Key": "open-pec-1"})
    again = post(admin, "/api/v1/incidents", token, OPEN, **{"Idempotency-Key": "open-pec-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = post(admin, "/api/v1/incidents", token, {**OPEN, "impact": "minor"}, **{"Idempotency-Key": "open-pec-1"})
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    bad = post(admin, "/api/v1/incidents", token, OPEN, **{"Idempotency-Key": "two words"})
    assert bad.status_code == 400 and bad.json()["field"] == "Idempotency-Key"
    assert len(Declarations(admin.store, admin.settings).incidents()) == 1
    assert [e.action for e in audit_events(admin.store)] == ["incident.open"]


def test_concurrent_retries_with_one_key_create_one_incident(admin: Listener) -> None:
    token = make_token(admin.store, "write:viamedis")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: post(admin, "/api/v1/incidents", token, OPEN, **{"Idempotency-Key": "k"}), range(8))
        )
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409} and codes.count(201) >= 1, codes
    ids = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(ids) == 1
    assert len(Declarations(admin.store, admin.settings).incidents()) == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**OPEN, "title": {"fr": ""}}, "title.fr", "must not be empty"),
        ({**OPEN, "title": {"fr": "deux\nlignes"}}, "title.fr", "single line"),
        ({**OPEN, "title": {"fr": "x", "en": "y" * 201}}, "title.en", "at most 200"),
        ({**OPEN, "statuses": [{"component": "line:viamedis/optique", "state": "cassé"}]}, "statuses", "not a state"),
        (
            {**OPEN, "statuses": [{"component": "line:viamedis/optique", "state": "down", "progress": 0.5}]},
            "statuses",
            "only with 'recovering'",
        ),
        ({**OPEN, "statuses": [{"component": "line:viamedis/dentaire", "state": "down"}]}, "statuses", "no line"),
        ({**OPEN, "components": ["network:nope"]}, "components", "no network"),
        ({**OPEN, "at": "2024-02-12T15:00:00+01:00"}, "at", "in the future"),
        ({**OPEN, "at": "2024-02-12T12:00:00"}, "at", "with its offset"),
        ({**OPEN, "statuses": [{"component": "line:viamedis/optique", "state": "down", "progress": "half"}]},
         "statuses[0].progress", "valid number"),
        ({**OPEN, "colour": "red"}, "colour", "not a field"),
        ({key: value for key, value in OPEN.items() if key != "message"}, "message", "is required"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(admin: Listener, body: dict[str, Any], field: str, words: str) -> None:
    token = make_token(admin.store, "write:viamedis")
    answer = post(admin, "/api/v1/incidents", token, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and words in answer.json()["error"], answer.json()
    assert answer.json()["error"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"duration": "0s"}, "duration", "more than 0"),
        ({"duration": "soon"}, "duration", "a duration"),
        ({"start": "2024-02-30T02:00"}, "start", "not a date-time"),
        ({"start": "2024-02-18T02:00+01:00"}, "start", "without offset"),
        ({"recurrence": {"frequency": "weekly"}}, "recurrence.weekdays", "needs days"),
        ({"recurrence": {"frequency": "weekly", "weekdays": ["sun"], "until": "2024-01-01"}}, "recurrence.until",
         "before the start"),
        ({"recurrence": {"frequency": "none"}, "start": "2024-02-01T02:00"}, "start", "already be over"),
        ({"components": []}, "components", "at least 1"),
    ],
)  # fmt: skip
def test_maintenance_refusals_name_the_field(admin: Listener, change: dict[str, Any], field: str, words: str) -> None:
    token = make_token(admin.store, "write:viamedis")
    answer = post(admin, "/api/v1/maintenance", token, {**WEEKLY, **change})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and words in answer.json()["error"], answer.json()


def test_malformed_requests_are_400_and_unknown_ones_404(admin: Listener) -> None:
    token = make_token(admin.store, "write:viamedis")
    raw = admin.client.post(
        "/api/v1/incidents", content=b"{not json", headers={**bearer(token), "content-type": "application/json"}
    )
    assert raw.status_code == 400 and raw.json()["field"] == "body"
    form = admin.client.post("/api/v1/incidents", data={"title": "x"}, headers=bearer(token))
    assert form.status_code == 400 and form.json()["field"] == "content-type"
    huge = admin.client.post(
        "/api/v1/incidents", content=b"x" * 300_000, headers={**bearer(token), "content-type": "application/json"}
    )
    assert huge.status_code == 400 and "larger than" in huge.json()["error"]
    assert post(admin, "/api/v1/incidents/0/updates", token, {"message": {"fr": "x"}}).status_code == 400
    assert post(admin, "/api/v1/incidents/99/updates", token, {"message": {"fr": "x"}}).status_code == 404
    assert post(admin, "/api/v1/maintenance/1/occurrences/2024-13-01/cancel", token).status_code == 400
    assert admin.client.get("/api/v1/nothing/here").status_code == 404


def test_the_cli_and_the_api_refuse_the_same_things_naming_the_same_fields(
    admin: Listener, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each case as ops type it and as a script sends it: both refuse, the CLI naming the option of the field
    the API names (`opscli.inputs.OPTIONS`), with the same words."""
    monkeypatch.setenv("TPMON_CONFIG", str(tmp_path / "tpmon.yaml"))
    monkeypatch.setenv("TPMON_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    token = make_token(admin.store, "admin")
    base = ["incident", "open", "--title", "T", "--impact", "major", "--message", "M"]
    cases = [
        (["--title", "", "--impact", "major", "--message", "M"], {**OPEN, "title": {"fr": ""}}, "title.fr"),
        ([*base, "--declare", "line:viamedis/optique=cassé"],
         {**OPEN, "statuses": [{"component": "line:viamedis/optique", "state": "cassé"}]}, "statuses"),
        ([*base, "--declare", "line:viamedis/optique=down:0.5"],
         {**OPEN, "statuses": [{"component": "line:viamedis/optique", "state": "down", "progress": 0.5}]}, "statuses"),
        ([*base, "--component", "network:nope"], {**OPEN, "components": ["network:nope"]}, "components"),
        ([*base, "--consigne-ps-en", "English only"], {**OPEN, "practitioner_consigne": {"en": "English only"}},
         "practitioner_consigne.fr"),
    ]  # fmt: skip
    for args, body, field in cases:
        argv = args if args[0] == "incident" else ["incident", "open", *args]
        capsys.readouterr()
        assert main(argv) == 2, argv
        cli = capsys.readouterr().err.strip()
        api = post(admin, "/api/v1/incidents", token, body).json()
        assert api["field"] == field, api
        option = OPTIONS[field]
        problem = api["error"].removeprefix(f"{field}: ")
        assert cli.startswith(f"tpmon: {option}: ") and problem in cli, (cli, api)


def _asked(admin: Listener, lang: str | None, path: str, token: str, body: Any) -> tuple[int, dict[str, Any], str]:
    """A refusal asked without Accept-Language (None) or in `lang`: status, JSON, Content-Language."""
    headers = bearer(token) | ({"Accept-Language": lang} if lang else {})
    admin.client.headers.pop("Accept-Language", None)
    answer = admin.client.post(path, json=body, headers=headers)
    return answer.status_code, answer.json(), answer.headers.get("content-language", "")


def test_errors_are_said_in_the_requests_language_french_by_default_with_stable_fields(admin: Listener) -> None:
    writer, pusher = make_token(admin.store, "write:viamedis"), make_token(admin.store, "push:viamedis")
    empty = {**OPEN, "title": {"fr": ""}}
    cases: list[tuple[str, str, Any, int, dict[str, str | None], str, str]] = [
        ("/api/v1/incidents", writer, {**OPEN, "colour": "red"}, 422,
         {"field": "colour", "code": "invalid"},
         "colour\u00a0: n’est pas un champ de cette requête", "colour: is not a field of this request"),
        ("/api/v1/incidents", pusher, OPEN, 403, {"field": None, "code": "forbidden"},
         "ce jeton ne peut pas écrire (ses portées\u00a0: push:viamedis)",
         "this token may not write (its scopes: push:viamedis)"),
        ("/api/v1/incidents/99/updates", writer, {"message": {"fr": "x"}}, 404, {"field": None, "code": "not_found"},
         "aucun incident 99", "no incident 99"),
        ("/api/v1/maintenance", writer, {**WEEKLY, "start": "2024-02-30T02:00"}, 422,
         {"field": "start", "code": "invalid"},
         "start\u00a0: '2024-02-30T02:00' n’est pas une date et heure comme 2024-03-31T02:30",
         "start: '2024-02-30T02:00' is not a date-time like 2024-03-31T02:30"),
    ]  # fmt: skip
    for path, token, body, status, fields, french, english in cases:
        for lang, expected, language in [(None, french, "fr"), ("fr-FR,fr;q=0.9", french, "fr"),
                                         ("en-GB,en;q=0.9,fr;q=0.5", english, "en")]:  # fmt: skip
            code, answer, said_in = _asked(admin, lang, path, token, body)
            assert code == status, answer
            assert {key: answer[key] for key in fields} == fields, answer  # the same machine fields in each language
            assert expected in answer["error"] and said_in == language, (lang, answer)
    anonymous = admin.client.post("/api/v1/incidents", json=OPEN)
    assert anonymous.status_code == 401 and anonymous.json() == {
        "error": "authorization\u00a0: un jeton Bearer est requis",
        "field": "authorization",
        "code": "unauthorized",
    }
    _, unknown, _ = _asked(admin, None, "/api/v1/incidents", "tpm_" + "x" * 43, OPEN)
    assert unknown["error"] == "authorization\u00a0: jeton inconnu", unknown
    _, unknown, _ = _asked(admin, "en", "/api/v1/incidents", "tpm_" + "x" * 43, OPEN)
    assert unknown["error"] == "authorization: unknown token", unknown
    _, title, _ = _asked(admin, None, "/api/v1/incidents", writer, empty)
    assert title["field"] == "title.fr" and title["error"].startswith("title.fr\u00a0: "), title
    raw = admin.client.post(
        "/api/v1/incidents", content=b"{not json", headers={**bearer(writer), "content-type": "application/json"}
    )
    assert raw.status_code == 400 and raw.json() == {"error": "body\u00a0: JSON invalide", "field": "body",
                                                     "code": "bad_request"}  # fmt: skip
    assert Declarations(admin.store, admin.settings).incidents() == []
