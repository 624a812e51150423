"""/api/v1: tpmon's own JSON API over real data in a SQLite store, and its OpenAPI 3.1 document."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from starlette.applications import Starlette
from starlette.testclient import TestClient
from targets import alpha_config

from monitor.app import Services, create_app
from monitor.config import Settings, load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow, Recurrence
from monitor.errors import StoreError
from monitor.i18n import PARIS
from monitor.models import ComponentRef, FailureReason, ProbeResult, Source, State, Transition
from monitor.store import Store
from monitor.store.declaration_store import Declarations
from monitor.store.rollup_store import roll_up
from monitor.store.store import Batch
from monitor.web.api_v1 import OPERATIONS, api_routes

NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Paris
PROBED = "http://127.0.0.1:9"  # the checks' URL: must never be shown
HISTORY = "flow:alpha/facturation"  # nothing declared on it: its stored history is only what seed() wrote
# 09:00 up, 10:00 down, 11:00 up, 11:30 no signal, 11:45 up, until 12:00
STEPS = [
    (State.UNKNOWN, State.OPERATIONAL, 3 * 60),
    (State.OPERATIONAL, State.DOWN, 2 * 60),
    (State.DOWN, State.OPERATIONAL, 60),
    (State.OPERATIONAL, State.UNKNOWN, 30),
    (State.UNKNOWN, State.OPERATIONAL, 15),
]


def paris(moment: datetime) -> datetime:
    return moment.astimezone(PARIS).replace(tzinfo=None)  # windows are Paris wall times


def seed(store: Store, settings: Settings) -> dict[str, int]:
    """Incidents, maintenance windows and transitions, written as ops and the status engine write them."""
    declarations = Declarations(store, settings, clock=lambda: NOW)
    fr_en = Bilingual
    old = declarations.open_incident(
        title=fr_en("Ancien incident"),
        impact="minor",
        first=IncidentUpdate(NOW - timedelta(days=3), "investigating", fr_en("Lenteurs.")),
        components=["network:alpha"],
    )
    declarations.resolve_incident(old.id or 0, at=NOW - timedelta(days=2))
    rights = declarations.open_incident(
        title=fr_en("Droits lents", "Slow rights checks"),
        impact="minor",
        first=IncidentUpdate(NOW - timedelta(hours=30), "identified", fr_en("IDB lent.", "IDB is slow.")),
    )
    declarations.resolve_incident(rights.id or 0, at=NOW - timedelta(hours=20))
    pec = declarations.open_incident(
        title=fr_en("PEC optique indisponibles", "Optical PEC unavailable"),
        impact="major",
        first=IncidentUpdate(
            NOW - timedelta(hours=2),
            "identified",
            fr_en("Les PEC échouent.", "PECs fail."),
            practitioner_consigne=fr_en("Différez la vente.", "Postpone the sale."),
            statuses={"line:alpha/optique": declare("down")},
        ),
    )
    declarations.update_incident(
        pec.id or 0,
        IncidentUpdate(
            NOW - timedelta(minutes=30),
            "monitoring",
            fr_en("Réactivation en cours."),
            member_consigne=fr_en("Gardez vos factures."),
            statuses={"flow:alpha/pec": declare("recovering", 0.5)},
        ),
    )
    notice = declarations.open_incident(
        title=fr_en("Alerte hameçonnage", "Phishing alert"),
        impact="none",
        first=IncidentUpdate(NOW - timedelta(hours=1), "investigating", fr_en("Ne donnez aucun identifiant.")),
    )
    running = MaintenanceWindow(
        None,
        fr_en("Bascule", "Switch-over"),
        ("line:alpha/pharmacie",),
        paris(NOW - timedelta(minutes=30)),
        timedelta(hours=2),
    )
    weekly = MaintenanceWindow(
        None,
        fr_en("Maintenance dominicale"),
        ("flow:alpha/facturation",),
        datetime(2024, 2, 4, 2, 0),
        timedelta(hours=3),
        Recurrence("weekly", weekdays=(6,)),
    )
    cancelled = MaintenanceWindow(
        None, fr_en("Annulée"), ("network:alpha",), paris(NOW + timedelta(days=1)), timedelta(hours=1)
    )
    ids = {"old": old.id or 0, "rights": rights.id or 0, "pec": pec.id or 0, "notice": notice.id or 0}
    ids["running"] = declarations.add_window(running).id or 0
    ids["weekly"] = declarations.add_window(weekly).id or 0
    declarations.cancel_window(declarations.add_window(cancelled).id or 0)
    ref = ComponentRef.parse(HISTORY)
    transitions = [
        Transition(ref, before, after, NOW - timedelta(minutes=ago), NOW - timedelta(minutes=ago), Source.PROBE)
        for before, after, ago in STEPS
    ]
    store.write(Batch(transitions=transitions))
    roll_up(store, [HISTORY], NOW)
    return ids


def seeded_app(tmp_path: Path) -> tuple[Starlette, Store, dict[str, int]]:
    """The app over a seeded SQLite file, on a fixed clock, without probes (the caller closes the store)."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(PROBED), encoding="utf-8")
    settings = load_config(config)
    store = Store.open(f"sqlite:///{tmp_path}/api.db")
    ids = seed(store, settings)
    return create_app(settings, store=store, schedule=False, clock=lambda: NOW), store, ids


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, int]]]:
    app, store, ids = seeded_app(tmp_path)
    with store, TestClient(app) as client:
        yield client, ids


@pytest.fixture
def client(seeded: tuple[TestClient, dict[str, int]]) -> TestClient:
    return seeded[0]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app, store, _ = seeded_app(tmp_path_factory.mktemp("doc"))
    with store, TestClient(app) as client:
        found: dict[str, Any] = client.get("/api/v1/openapi.json").json()
        return found


def conforms(document: dict[str, Any], path: str, answer: Any) -> Any:
    """The answer's JSON, after checking it against what the document says of `path` and its status."""
    operation = document["paths"][path]["get"]
    code = str(answer.status_code)
    assert code in operation["responses"], f"{path}: {code} is not documented"
    schema = operation["responses"][code]["content"]["application/json"]["schema"]
    body = answer.json()
    validator = jsonschema_rs.validator_for({**schema, "components": document["components"]}, validate_formats=True)
    errors = [str(error) for error in validator.iter_errors(body)]
    assert not errors, f"{path} {code}: {errors[:3]}"
    assert answer.headers["cache-control"] == "no-cache"
    return body


def test_networks_lines_and_their_checks(client: TestClient, document: dict[str, Any]) -> None:
    networks = conforms(document, "/api/v1/networks", client.get("/api/v1/networks"))["networks"]
    assert [(n["id"], n["name"], n["kind"], n["state"]) for n in networks] == [("alpha", "Alpha", "operateur", "down")]
    alpha = conforms(document, "/api/v1/networks/{network}", client.get("/api/v1/networks/alpha"))
    lines = {line["id"]: line for line in alpha["lines"]}
    assert (lines["optique"]["state"], lines["optique"]["source"]) == ("down", "declared")
    assert lines["optique"]["since"].endswith("+00:00")  # UTC, with its offset
    assert lines["optique"]["label"] == {"fr": "Optique", "en": "Optics"}
    assert (lines["pharmacie"]["state"], lines["pharmacie"]["source"]) == ("maintenance", "maintenance")
    flows = {flow["id"]: flow for flow in alpha["flows"]}
    assert (flows["pec"]["state"], flows["pec"]["progress"]) == ("recovering", 0.5)
    assert [c["key"] for c in alpha["checks"]] == ["check:alpha/facturation/dre", "check:alpha/pec/pec"]
    assert alpha["dependencies"] == []

    optique = conforms(
        document, "/api/v1/networks/{network}/lines/{line}", client.get("/api/v1/networks/alpha/lines/optique")
    )
    assert optique["requires"] == ["portail_ps|pec", "facturation"] and optique["network"] == "alpha"
    assert {c["id"] for c in optique["checks"]} == {"dre", "pec"}
    pharmacie = client.get("/api/v1/networks/alpha/lines/pharmacie").json()
    assert [c["id"] for c in pharmacie["checks"]] == ["dre"]  # droits + facturation: only dre probes one of them
    for path in ("/api/v1/networks/nope", "/api/v1/networks/alpha/lines/nope", "/api/v1/networks/alpha/lines/dentaire"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert conforms(document, "/api/v1/networks/{network}/lines/{line}", answer)["error"].startswith(
            ("network", "line")
        )
    assert client.get("/api/v1/networks/alpha/extra/deep").json()["error"].startswith("aucune adresse")
    # a path no route pattern matches (a newline in it, found by schemathesis): JSON too, as documented
    for path in ("/api/v1/availability/a%0Ab", "/api/v1/nothing%0A/here"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["content-type"]) == (404, "application/json"), path
        assert answer.json()["error"].startswith("aucune adresse"), path
        assert answer.json()["code"] == "not_found", path
    assert client.get("/nothing%0Ahere").headers["content-type"].startswith("text/plain")  # pages: as before


def test_status_keeps_its_shape_and_language(client: TestClient, document: dict[str, Any]) -> None:
    board = conforms(document, "/api/v1/status", client.get("/api/v1/status"))
    assert set(board) == {"lang", "checked_at", "networks"}
    network = board["networks"][0]
    assert set(network) == {"id", "label", "state", "state_label", "since", "source", "source_label", "progress",
                            "detail", "affected", "scope", "cause", "action", "meaning", "name", "kind", "lines",
                            "flows", "checks"}  # fmt: skip
    optique = next(line for line in network["lines"] if line["id"] == "optique")
    assert (optique["state_label"], optique["source_label"]) == ("Indisponible", "déclaration")
    english = client.get("/api/v1/status?lang=en").json()["networks"][0]["lines"]
    assert next(line for line in english if line["id"] == "optique")["state_label"] == "Unavailable"


def test_checks_show_their_last_state_and_never_a_url(client: TestClient, document: dict[str, Any]) -> None:
    services: Services = client.app_state["services"]
    ref = ComponentRef.for_check("alpha", "pec", "pec")
    failed = ProbeResult(ref, NOW, 0.2, False, FailureReason.HTTP_STATUS, "HTTP 500", status_code=500)
    assert client.portal is not None
    client.portal.call(lambda: services.pipeline.record(services.board.record(failed, NOW)))
    checks = conforms(document, "/api/v1/checks", client.get("/api/v1/checks?network=alpha"))["checks"]
    pec = next(c for c in checks if c["id"] == "pec")
    assert (pec["state"], pec["source"], pec["consecutive_failures"]) == ("down", "probe", 1)
    assert pec["last_result_at"] == "2024-02-12T12:00:00+00:00" and pec["kind"] == "http"
    assert next(c for c in checks if c["id"] == "dre")["state"] == "unknown"
    assert client.get("/api/v1/checks").json() == {"checks": checks}  # one network: the same list
    for path in ("/api/v1/checks", "/api/v1/networks/alpha", "/api/v1/networks/alpha/lines/optique", "/api/v1/status"):
        text = client.get(path).text
        assert "127.0.0.1" not in text and '"url"' not in text and '"headers"' not in text, path
    assert conforms(document, "/api/v1/checks", client.get("/api/v1/checks?network=beta")) == {
        "error": "network\u00a0: aucun réseau 'beta'",
        "field": "network",
        "code": "not_found",
    }


def test_history_and_availability_of_a_known_down_hour(client: TestClient, document: dict[str, Any]) -> None:
    history = conforms(document, "/api/v1/history/{component}", client.get(f"/api/v1/history/{HISTORY}"))
    assert [(t["from"], t["to"], t["at"][11:16]) for t in history["transitions"]] == [
        ("unknown", "operational", "11:45"),
        ("operational", "unknown", "11:30"),
        ("down", "operational", "11:00"),
        ("operational", "down", "10:00"),
        ("unknown", "operational", "09:00"),
    ]
    assert len(client.get(f"/api/v1/history/{HISTORY}?limit=2").json()["transitions"]) == 2
    # 3 h of history: 1 h down, 15 min without a signal, the rest up
    assert history["availability"]["1d"]["ratio"] == pytest.approx(1 - 1 / 2.75)
    assert history["availability"]["1d"]["coverage"] == pytest.approx(2.75 / 3)
    answer = client.get(f"/api/v1/availability/{HISTORY}?window=7d")
    week = conforms(document, "/api/v1/availability/{component}", answer)
    assert (week["window"], week["start"], week["end"]) == (
        "7d",
        "2024-02-05T13:00:00+00:00",
        "2024-02-12T13:00:00+00:00",
    )
    assert week["availability"] == pytest.approx(1 - 1 / 2.75) and week["coverage"] == pytest.approx(2.75 / 3)
    assert (
        week["seconds"]["down"] == 3600 and week["seconds"]["unknown"] == 900 and week["seconds"]["operational"] == 6300
    )
    assert week["formula"]["fr"].startswith("disponibilité = 1 −") and week["formula"]["en"].startswith("availability")
    assert client.get(f"/api/v1/availability/{HISTORY}").json()["window"] == "24h"
    never = client.get("/api/v1/availability/line:alpha/optique?window=90d").json()
    assert (never["availability"], never["coverage"]) == (None, None)  # no rollup yet: no data, never 100 %


def test_incidents_pages_filters_and_bilingual_fields(
    seeded: tuple[TestClient, dict[str, int]], document: dict[str, Any]
) -> None:
    client, ids = seeded
    first = conforms(document, "/api/v1/incidents", client.get("/api/v1/incidents?limit=3"))
    assert [i["id"] for i in first["incidents"]] == [ids["notice"], ids["pec"], ids["rights"]]  # newest first
    assert (first["limit"], first["offset"], first["next_offset"]) == (3, 0, 3)
    last = client.get("/api/v1/incidents?limit=3&offset=3").json()
    assert [i["id"] for i in last["incidents"]] == [ids["old"]] and last["next_offset"] is None
    opened = client.get("/api/v1/incidents?status=open").json()["incidents"]
    assert [i["id"] for i in opened] == [ids["notice"], ids["pec"]]
    resolved = client.get("/api/v1/incidents?status=resolved&limit=1").json()
    assert [i["id"] for i in resolved["incidents"]] == [ids["rights"]] and resolved["next_offset"] == 1
    assert [i["id"] for i in client.get("/api/v1/incidents?status=resolved&offset=1").json()["incidents"]] == [
        ids["old"]
    ]

    pec = conforms(document, "/api/v1/incidents/{id}", client.get(f"/api/v1/incidents/{ids['pec']}"))
    assert pec == next(i for i in opened if i["id"] == ids["pec"])
    assert pec["title"] == {"fr": "PEC optique indisponibles", "en": "Optical PEC unavailable"}
    assert (pec["status"], pec["impact"], pec["resolved_at"]) == ("monitoring", "major", None)
    assert pec["practitioner_consigne"] == {"fr": "Différez la vente.", "en": "Postpone the sale."}
    assert pec["member_consigne"] == {"fr": "Gardez vos factures.", "en": None}  # no English written
    assert [u["status"] for u in pec["updates"]] == ["monitoring", "identified"]  # newest first
    assert pec["updates"][1]["statuses"] == [{"component": "line:alpha/optique", "state": "down", "progress": None}]
    assert pec["updates"][0]["message"] == {"fr": "Réactivation en cours.", "en": None}
    assert {d["component"]: (d["state"], d["progress"], d["since"]) for d in pec["declared"]} == {
        "line:alpha/optique": ("down", None, "2024-02-12T10:00:00+00:00"),
        "flow:alpha/pec": ("recovering", 0.5, "2024-02-12T11:30:00+00:00"),
    }
    rights = client.get(f"/api/v1/incidents/{ids['rights']}").json()
    assert rights["resolved_at"] == "2024-02-11T16:00:00+00:00" and rights["declared"] == []
    assert rights["updates"][0]["message"] == {"fr": "Incident résolu.", "en": "Incident resolved."}
    for path, code in ((f"/api/v1/incidents/{ids['notice'] + 100}", 404), ("/api/v1/incidents/abc", 400),
                       ("/api/v1/incidents/0", 400), (f"/api/v1/incidents/{2**63}", 400),
                       ("/api/v1/incidents/1/updates", 404)):  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == code, path
        refused = conforms(document, "/api/v1/incidents/{id}", answer)
        assert refused["error"].startswith(("id\u00a0: ", "aucune adresse")), path


def test_maintenance_running_and_upcoming_expanded(
    seeded: tuple[TestClient, dict[str, int]], document: dict[str, Any]
) -> None:
    client, ids = seeded
    week = conforms(document, "/api/v1/maintenance", client.get("/api/v1/maintenance"))
    assert [(o["window_id"], o["running"]) for o in week["running"]] == [(ids["running"], True)]
    running = week["running"][0]
    assert running["title"] == {"fr": "Bascule", "en": "Switch-over"} and running["components"] == [
        "line:alpha/pharmacie"
    ]
    assert (running["start"], running["end"]) == ("2024-02-12T11:30:00+00:00", "2024-02-12T13:30:00+00:00")
    assert [o["start"] for o in week["upcoming"]] == ["2024-02-18T01:00:00+00:00"]  # Sunday 02:00 in Paris
    sunday = week["upcoming"][0]
    assert sunday["recurrence"]["frequency"] == "weekly" and sunday["recurrence"]["weekdays"] == ["sun"]
    assert (sunday["running"], sunday["dst"]) == (False, None)
    fortnight = client.get("/api/v1/maintenance?horizon_days=14").json()
    assert [o["start"][:10] for o in fortnight["upcoming"]] == ["2024-02-18", "2024-02-25"]  # the cancelled one: never


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/status?lang=de", "lang: must be one of fr, en"),
        ("/api/v1/checks?network=Not%20a%20slug", "network: must match"),
        ("/api/v1/history/nonsense", "component: 'nonsense' is not a component key"),
        (f"/api/v1/history/{HISTORY}?limit=0", "limit: must be an integer between 1 and 1000"),
        (f"/api/v1/history/{HISTORY}?limit=abc", "limit: must be an integer between 1 and 1000"),
        (f"/api/v1/availability/{HISTORY}?window=1y", "window: must be one of 24h, 7d, 30d, 90d"),
        ("/api/v1/availability/line:alpha", "component: 'line:alpha' is not a component key"),
        ("/api/v1/incidents?status=closed", "status: must be one of open, resolved, all"),
        ("/api/v1/incidents?limit=101", "limit: must be an integer between 1 and 100"),
        ("/api/v1/incidents?offset=-1", "offset: must be an integer between 0 and"),
        ("/api/v1/maintenance?horizon_days=91", "horizon_days: must be an integer between 1 and 90"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(client: TestClient, path: str, field: str) -> None:
    answer = client.get(path, headers={"Accept-Language": "en"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(field)
    assert (answer.json()["field"], answer.json()["code"]) == (field.split(":", maxsplit=1)[0], "bad_request")


def test_errors_are_said_in_the_request_language_french_first(client: TestClient) -> None:
    french = client.get("/api/v1/incidents?limit=101")
    assert french.status_code == 400
    assert french.json() == {
        "error": "limit\u00a0: doit être un entier entre 1 et 100",
        "field": "limit",
        "code": "bad_request",
    }
    assert french.headers["content-language"] == "fr" and "Accept-Language" in french.headers["vary"]
    english = client.get("/api/v1/incidents?limit=101", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert english.json()["error"] == "limit: must be an integer between 1 and 100"
    assert english.headers["content-language"] == "en"
    assert client.get("/api/v1/networks/nope?lang=en").json() == {
        "error": "network: no network 'nope'",
        "field": "network",
        "code": "not_found",
    }
    assert client.get("/api/v1/networks/nope").json()["error"] == "network\u00a0: aucun réseau 'nope'"
    missing = client.get("/api/v1/nothing")
    assert missing.json() == {
        "error": "aucune adresse '/api/v1/nothing'\u00a0; voir /api/v1/openapi.json",
        "field": None,
        "code": "not_found",
    }


def test_unknown_components_are_404(client: TestClient) -> None:
    for path in ("/api/v1/history/flow:alpha/nope", "/api/v1/availability/line:beta/optique"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error"].startswith("component\u00a0: aucun composant")


def test_an_unreachable_store_is_a_503_in_json(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database unreachable")

    for verb in ("incidents", "incident", "windows"):
        monkeypatch.setattr(Declarations, verb, broken)
    monkeypatch.setattr(Store, "transitions", broken)
    monkeypatch.setattr(Store, "_read", broken)
    for path in (f"/api/v1/history/{HISTORY}", f"/api/v1/availability/{HISTORY}", "/api/v1/incidents",
                 "/api/v1/incidents?status=resolved"):  # fmt: skip  # history: from the store
        answer = client.get(path, headers={"Accept-Language": "en"})
        assert answer.status_code == 503, path
        assert answer.json() == {
            "error": "the database is unreachable; try again shortly",
            "field": None,
            "code": "unavailable",
        }
        assert answer.headers["retry-after"] == "30"
    for path in ("/api/v1/status", "/api/v1/networks", "/api/v1/networks/alpha", "/api/v1/checks",
                 "/api/v1/incidents?status=open", "/api/v1/incidents/1", "/api/v1/maintenance"):  # fmt: skip
        assert client.get(path).status_code == 200, path  # the snapshot is in memory, as the page


def test_the_document_is_openapi_3_1_and_describes_every_operation(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    routed = {route.path.replace(":path", "") for route in api_routes() if "{rest" not in route.path}
    assert set(document["paths"]) == routed == {op.path for op in OPERATIONS}
    for path, item in document["paths"].items():
        operation = item["get"]
        assert "200" in operation["responses"], path
        for code in ("400", "404", "503"):
            if code in operation["responses"]:
                ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorAnswer", path
        for parameter in operation.get("parameters", []):
            assert parameter["schema"].get("type") in ("string", "integer"), (path, parameter["name"])
            assert parameter["description"], (path, parameter["name"])
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert parameters["status"]["schema"] == {"type": "string", "enum": ["open", "resolved", "all"], "default": "all"}
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert set(document["paths"]["/api/v1/maintenance"]["get"]["responses"]) == {"200", "400", "503"}
    assert set(document["paths"]["/api/v1/networks/{network}"]["get"]["responses"]) == {"200", "404"}
    component = document["paths"]["/api/v1/history/{component}"]["get"]["parameters"][0]["schema"]
    assert component["examples"][:2] == ["network:alpha", "line:alpha/pharmacie"]  # from the running config
    for name, model in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(model), name  # each schema is valid JSON Schema 2020-12


def test_the_store_is_read_off_the_event_loop(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[bool] = []  # for each store session: was an event loop running in its thread?
    session = Store._session

    def watched(self: Store, doing: str, *, write: bool = False) -> Any:
        try:
            asyncio.get_running_loop()
            opened.append(True)
        except RuntimeError:
            opened.append(False)
        return session(self, doing, write=write)

    monkeypatch.setattr(Store, "_session", watched)
    for path in (f"/api/v1/history/{HISTORY}", f"/api/v1/availability/{HISTORY}", "/api/v1/incidents?status=resolved",
                 "/api/v1/incidents/1", "/api/v1/maintenance"):  # fmt: skip
        assert client.get(path).status_code == 200, path
    assert opened and not any(opened)
