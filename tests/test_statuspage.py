"""/api/v2/…: Statuspage v2-compatible JSON, compared kind by kind with real documents served by Statuspage pages."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from targets import Server, Target, alpha_config, wait_for

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow
from monitor.errors import StoreError
from monitor.i18n import PARIS
from monitor.models import State
from monitor.store.declaration_store import Declarations
from monitor.web.statuspage_json import COMPONENT_STATUS

# Real documents served by Statuspage-hosted pages (GitHub, Discord, a Statuspage test page), stored as found;
# where each comes from: tests/data/statuspage/PROVENANCE.md. tpmon's answers are compared with them kind by kind.
REAL = Path(__file__).parent / "data" / "statuspage"
KINDS = (
    "page",
    "status",
    "component",
    "group",
    "incident",
    "incident_update",
    "affected_component",
    "scheduled_maintenance",
    "maintenance_update",
)
_COMPONENT = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
_INCIDENT = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
_MAINTENANCE = {"scheduled", "in_progress", "verifying", "completed"}
# Statuspage's documented enumerations (developer.statuspage.io, and the `/api` page every page serves); the
# values seen in the real documents are allowed too (a page under maintenance answers the indicator `maintenance`).
DOCUMENTED: dict[tuple[str, str], set[str]] = {
    ("component", "status"): _COMPONENT,
    ("group", "status"): _COMPONENT,
    ("affected_component", "old_status"): _COMPONENT,
    ("affected_component", "new_status"): _COMPONENT,
    ("status", "indicator"): {"none", "minor", "major", "critical"},
    ("incident", "status"): _INCIDENT,
    ("incident_update", "status"): _INCIDENT,
    ("incident", "impact"): {"none", "minor", "major", "critical"},
    ("scheduled_maintenance", "status"): _MAINTENANCE,
    ("maintenance_update", "status"): _MAINTENANCE,
    ("scheduled_maintenance", "impact"): {"none", "minor", "major", "critical", "maintenance"},
}
# The keys tpmon adds to each kind; anything else a real page does not send is a bug.
_ON_COMPONENTS = {
    "tpmon_state",
    "tpmon_state_label",
    "tpmon_progress",
    "tpmon_source",
    "tpmon_since",
    "tpmon_affected",  # raised by a dependency: for whom it fails, in words
    "tpmon_scope",
}
TPMON_EXTRAS: dict[str, set[str]] = {
    "page": set(),
    "status": set(),
    "component": _ON_COMPONENTS,
    "group": _ON_COMPONENTS | {"tpmon_kind"},
    "incident": {
        "tpmon_components",
        *(f"tpmon_{who}_consigne{what}" for who in ("practitioner", "member") for what in ("", "_at", "_standing")),
    },
    "incident_update": {"tpmon_practitioner_consigne", "tpmon_member_consigne"},
    "affected_component": {"tpmon_state", "tpmon_progress"},
    "scheduled_maintenance": {"tpmon_components", "tpmon_window_id", "tpmon_dst"},
    "maintenance_update": set(),
}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
ENDPOINTS = (
    "summary",
    "status",
    "components",
    "incidents",
    "incidents/unresolved",
    "scheduled-maintenances",
    "scheduled-maintenances/upcoming",
    "scheduled-maintenances/active",
)
Objects = dict[str, list[dict[str, Any]]]


def objects(answer: dict[str, Any], found: Objects) -> Objects:
    """Every object of a Statuspage answer, by kind (a component inside an incident is a component too)."""

    def component(item: dict[str, Any]) -> None:
        found["group" if item.get("group") else "component"].append(item)

    for key in ("page", "status"):
        if key in answer:
            found[key].append(answer[key])
    for item in answer.get("components", []):
        component(item)
    for key, kind, update_kind in (
        ("incidents", "incident", "incident_update"),
        ("scheduled_maintenances", "scheduled_maintenance", "maintenance_update"),
    ):
        for incident in answer.get(key, []):
            found[kind].append(incident)
            for item in incident["components"]:
                component(item)
            for update in incident["incident_updates"]:
                found[update_kind].append(update)
                found["affected_component"].extend(update["affected_components"] or [])  # null on real pages
    return found


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@dataclass(frozen=True)
class Shape:
    """What real pages send for one kind: its keys, the JSON types seen for each key (`key[]` for the items of
    a list of scalars, e.g. a group's children ids), and the string values seen (for the enumerations)."""

    keys: frozenset[str]
    types: dict[str, set[str]]
    values: dict[str, set[str]]


def shape(instances: list[dict[str, Any]]) -> Shape:
    types: dict[str, set[str]] = defaultdict(set)
    values: dict[str, set[str]] = defaultdict(set)
    for instance in instances:
        for key, value in instance.items():
            types[key].add(json_type(value))
            if isinstance(value, list):
                types[f"{key}[]"].update(json_type(item) for item in value if not isinstance(item, dict))
            if isinstance(value, str):
                values[key].add(value)
    return Shape(frozenset(k for k in types if not k.endswith("[]")), dict(types), dict(values))


def endpoint_of(document: str) -> str:
    """`scheduled-maintenances-discordstatus-2016-10-19.json` -> `scheduled-maintenances`."""
    return next(
        e
        for e in ("scheduled-maintenances", "summary", "status", "components", "incidents")
        if document.startswith(f"{e}-")
    )


REAL_DOCUMENTS = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(REAL.glob("*.json"))}
REAL_OBJECTS: Objects = defaultdict(list)
for _document in REAL_DOCUMENTS.values():
    objects(_document, REAL_OBJECTS)
REAL_SHAPES = {kind: shape(REAL_OBJECTS[kind]) for kind in KINDS}


def compare_with_real_pages(answers: dict[str, dict[str, Any]]) -> Objects:
    """tpmon's answers, endpoint by endpoint and kind by kind, against the real documents: same top-level keys;
    every key a real page sends, with a JSON type a real page sends (null only where real pages send null);
    no key but those and tpmon's listed extras; enumerations from the real or the documented values."""
    for document, real in REAL_DOCUMENTS.items():
        for name, answer in answers.items():
            if name.split("/")[0] == endpoint_of(document):
                assert set(answer) == set(real), f"{name}.json: {sorted(answer)} where {document} has {sorted(real)}"
    found: Objects = defaultdict(list)
    for answer in answers.values():
        objects(answer, found)
    component = REAL_SHAPES["component"]
    for kind in KINDS:
        real = REAL_SHAPES[kind]
        # a group is a component with children: it may carry every key a real component carries
        # (the one real group stored, Discord's in 2019, predates `start_date`)
        known = real.keys | (component.keys if kind == "group" else frozenset())
        for item in found[kind]:
            assert real.keys <= item.keys(), f"{kind} {item.get('id')} lacks {sorted(real.keys - item.keys())}"
            unknown = item.keys() - known - TPMON_EXTRAS[kind]
            assert not unknown, f"{kind} {item.get('id')}: {sorted(unknown)}, sent by no real page nor listed"
            for key in item.keys() & known:
                value, types = item[key], real.types.get(key) or component.types[key]
                assert json_type(value) in types, f"{kind}.{key} is {json_type(value)}, real: {sorted(types)}"
                if isinstance(value, list) and value and not isinstance(value[0], dict):
                    assert {json_type(v) for v in value} <= real.types[f"{key}[]"], f"{kind}.{key}[]"
                if (kind, key) in DOCUMENTED:
                    assert value in DOCUMENTED[kind, key] | real.values.get(key, set()), f"{kind}.{key}: {value}"
                if isinstance(value, str) and (key.endswith("_at") or key.startswith("scheduled_")):
                    assert STAMP.match(value), f"{kind}.{key}: {value}"
    return found


NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # 13:00 in Paris


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app in process, on a fixed clock, without probes: lines stay unknown unless declared."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9"), encoding="utf-8")
    settings = load_config(config)
    app = create_app(settings, database_url=f"sqlite:///{tmp_path}/t.db", schedule=False, clock=lambda: NOW)
    with TestClient(app) as test_client:
        services: Services = test_client.app_state["services"]
        declarations = Declarations(services.store, settings, clock=lambda: NOW)
        fr_en = Bilingual
        gone = declarations.open_incident(
            title=fr_en("Ancien incident"),
            impact="minor",
            first=IncidentUpdate(NOW - timedelta(days=2), "investigating", fr_en("Lenteurs.")),
            components=["network:alpha"],
        )
        declarations.resolve_incident(gone.id or 0, at=NOW - timedelta(days=1))
        opened = declarations.open_incident(
            title=fr_en("PEC optique indisponibles", "Optical PEC unavailable"),
            impact="major",
            first=IncidentUpdate(
                NOW - timedelta(hours=1),
                "identified",
                fr_en("Les PEC échouent.", "PECs fail."),
                practitioner_consigne=fr_en("Différez la vente.", "Postpone the sale."),
                statuses={"line:alpha/optique": declare("down")},
            ),
        )
        declarations.update_incident(
            opened.id or 0,
            IncidentUpdate(
                NOW - timedelta(minutes=10),
                "monitoring",
                fr_en("Réactivation en cours."),
                statuses={"flow:alpha/pec": declare("recovering", 0.5)},
            ),
        )
        for start, title in ((NOW - timedelta(minutes=30), "En cours"), (NOW + timedelta(days=2), "Plus tard")):
            paris = start.astimezone(PARIS).replace(tzinfo=None)  # windows are Paris wall times
            window = MaintenanceWindow(None, fr_en(title), ("line:alpha/pharmacie",), paris, timedelta(hours=2))
            declarations.add_window(window)
        assert test_client.portal is not None  # set inside `with TestClient(…)`
        test_client.portal.call(services.refresh_overrides)
        yield test_client


def test_every_endpoint_has_the_shape_of_a_real_statuspage_page(client: TestClient) -> None:
    answers = {}
    for name in ENDPOINTS:
        answer = client.get(f"/api/v2/{name}.json")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"] == "application/json"
        answers[name] = answer.json()
    found = compare_with_real_pages(answers)
    # every kind a real page sends was compared with tpmon objects, not with an empty list
    assert {kind: bool(found[kind]) for kind in KINDS} == dict.fromkeys(KINDS, True)
    assert {a["code"] for a in found["affected_component"]} >= {"line:alpha/optique", "line:alpha/pharmacie"}


def test_the_reference_documents_are_real_statuspage_answers() -> None:
    """The stored documents cover every kind and every endpoint, each is named in PROVENANCE.md, and tpmon's
    timestamp format is the one real pages use."""
    provenance = (REAL / "PROVENANCE.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in provenance for name in REAL_DOCUMENTS)
    assert {endpoint_of(name) for name in REAL_DOCUMENTS} == {e for e in ENDPOINTS if "/" not in e}
    assert {kind: len(REAL_OBJECTS[kind]) > 0 for kind in KINDS} == dict.fromkeys(KINDS, True)
    assert REAL_SHAPES["group"].types["components[]"] == {"string"}
    assert "maintenance" in REAL_SHAPES["status"].values["indicator"]  # a page under maintenance says so
    stamps = [v for objs in REAL_OBJECTS.values() for o in objs for k, v in o.items() if k.endswith("_at") and v]
    assert len(stamps) > 100 and all(STAMP.match(stamp) for stamp in stamps)


def test_components_groups_and_tpmon_fields(client: TestClient) -> None:
    body = client.get("/api/v2/summary.json").json()
    assert body["page"] == {
        "id": "tpmon",
        "name": "tpmon",
        "url": "http://testserver",
        "time_zone": "Europe/Paris",
        "updated_at": body["page"]["updated_at"],
    }
    components = {c["id"]: c for c in body["components"]}
    group = components["network:alpha"]
    assert group["group"] is True and group["group_id"] is None
    assert group["components"] == ["line:alpha/pharmacie", "line:alpha/optique"]
    optique = components["line:alpha/optique"]
    assert optique["group_id"] == "network:alpha"
    assert (optique["status"], optique["tpmon_state"], optique["tpmon_source"]) == ("major_outage", "down", "declared")
    board = client.get("/api/v1/status").json()["networks"][0]["lines"][1]  # tpmon's own view of optique
    assert datetime.fromisoformat(optique["tpmon_since"]) == datetime.fromisoformat(board["since"])
    assert optique["updated_at"] == optique["tpmon_since"] and optique["tpmon_since"].endswith("+01:00")
    pharmacie = components["line:alpha/pharmacie"]
    assert (pharmacie["status"], pharmacie["tpmon_state"]) == ("under_maintenance", "maintenance")
    assert body["status"] == {"indicator": "major", "description": "Panne en cours"}
    english = client.get("/api/v2/status.json?lang=en").json()["status"]
    assert english == {"indicator": "major", "description": "Major Service Outage"}


def test_incidents_updates_consignes_and_maintenance(client: TestClient) -> None:
    unresolved = client.get("/api/v2/incidents/unresolved.json").json()["incidents"]
    assert [i["name"] for i in unresolved] == ["PEC optique indisponibles"]
    incident = unresolved[0]
    assert (incident["status"], incident["impact"], incident["resolved_at"]) == ("monitoring", "major", None)
    assert incident["shortlink"] == f"http://testserver/incidents/{incident['id']}"
    assert incident["tpmon_practitioner_consigne"] == "Différez la vente."
    assert [u["status"] for u in incident["incident_updates"]] == ["monitoring", "identified"]  # newest first
    first = incident["incident_updates"][1]
    assert first["affected_components"][0]["new_status"] == "major_outage"
    assert first["created_at"] == "2024-02-12T12:00:00.000+01:00"
    assert [c["id"] for c in incident["components"]] == ["line:alpha/optique"]  # the flow is no component
    assert incident["tpmon_components"] == ["line:alpha/optique", "flow:alpha/pec"]
    codes = {c["code"] for u in incident["incident_updates"] for c in u["affected_components"]}
    assert codes == {"line:alpha/optique"}  # every code names a component of components.json; the flow is not one
    english = client.get("/api/v2/incidents.json?lang=en").json()["incidents"]
    assert [i["name"] for i in english] == ["Optical PEC unavailable", "Ancien incident"]  # French when no English
    assert english[0]["incident_updates"][1]["tpmon_practitioner_consigne"] == "Postpone the sale."
    assert english[1]["status"] == "resolved" and english[1]["resolved_at"]

    active = client.get("/api/v2/scheduled-maintenances/active.json").json()["scheduled_maintenances"]
    upcoming = client.get("/api/v2/scheduled-maintenances/upcoming.json").json()["scheduled_maintenances"]
    assert [(m["name"], m["status"]) for m in active] == [("En cours", "in_progress")]
    assert [(m["name"], m["status"]) for m in upcoming] == [("Plus tard", "scheduled")]
    assert active[0]["scheduled_for"] == "2024-02-12T12:30:00.000+01:00"
    listed = client.get("/api/v2/scheduled-maintenances.json").json()["scheduled_maintenances"]
    assert [m["id"] for m in listed] == [upcoming[0]["id"], active[0]["id"]]


def test_every_state_maps_to_statuspage_and_unknown_is_never_green() -> None:
    assert set(COMPONENT_STATUS) == set(State)
    assert set(COMPONENT_STATUS.values()) <= DOCUMENTED["component", "status"]
    assert COMPONENT_STATUS[State.UNKNOWN] not in ("operational", "major_outage")


def test_unknown_lines_are_not_green(tmp_path: Path) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9"), encoding="utf-8")
    app = create_app(load_config(config), database_url="sqlite://", schedule=False, clock=lambda: NOW)
    with TestClient(app) as fresh:
        body = fresh.get("/api/v2/summary.json").json()
    assert {(c["status"], c["tpmon_state"]) for c in body["components"]} == {("partial_outage", "unknown")}
    assert body["status"]["indicator"] == "minor"
    assert body["incidents"] == [] and body["scheduled_maintenances"] == []


def test_critical_only_when_every_line_is_down(client: TestClient) -> None:
    services: Services = client.app_state["services"]
    declarations = Declarations(services.store, services.settings, clock=lambda: NOW)
    assert client.get("/api/v2/status.json").json()["status"]["indicator"] == "major"  # pharmacie: maintenance
    for window in declarations.windows():
        declarations.cancel_window(window.id or 0)
    statuses = {"line:alpha/pharmacie": declare("down")}
    first = IncidentUpdate(NOW, "investigating", Bilingual("Pharmacie aussi."), statuses=statuses)
    declarations.open_incident(title=Bilingual("Panne totale"), impact="critical", first=first)
    assert client.portal is not None
    client.portal.call(services.refresh_overrides)
    lines = [c for c in client.get("/api/v2/components.json").json()["components"] if not c["group"]]
    assert {c["status"] for c in lines} == {"major_outage"}
    expected = {"indicator": "critical", "description": "Critical System Outage"}
    assert client.get("/api/v2/status.json?lang=en").json()["status"] == expected


def test_an_unreachable_store_changes_nothing_they_tell(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer comes from the snapshot in memory, as the page: the same with the database down."""
    before = {name: client.get(f"/api/v2/{name}.json").json() for name in ENDPOINTS}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database unreachable")

    for verb in ("incidents", "incident", "windows", "current"):
        monkeypatch.setattr(Declarations, verb, broken)
    services: Services = client.app_state["services"]
    client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]  # a tick that cannot read
    for name in ENDPOINTS:
        answer = client.get(f"/api/v2/{name}.json")
        assert answer.status_code == 200, name
        assert answer.json() == before[name], name
    assert before["summary"]["incidents"] and before["summary"]["scheduled_maintenances"]


def test_a_running_server_answers_the_eight_endpoints(tmp_path: Path, target: Target) -> None:
    """`tpmon serve` as users run it; ops declare through the CLI; Statuspage consumers see it."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url("")), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/e2e.db"}).start()

    def component(key: str) -> dict[str, Any]:
        found: dict[str, Any] = {c["id"]: c for c in srv.get("/api/v2/components.json").json()["components"]}[key]
        return found

    try:
        wait_for(lambda: component("line:alpha/optique")["status"] == "operational", what="optique up")
        assert srv.get("/api/v2/status.json").json()["status"]["indicator"] == "none"
        now = datetime.now(PARIS)
        for start, title in ((now, "Intervention"), (now + timedelta(days=1), "Demain")):
            planned = srv.run(
                *("maintenance", "add", "--config", str(config), "--title", title),
                *("--component", "line:alpha/pharmacie", "--start", f"{start:%Y-%m-%d %H:%M}", "--duration", "2h"),
            )
            assert planned.returncode == 0, planned.stderr
        pharmacie = wait_for(
            lambda: (c := component("line:alpha/pharmacie"))["status"] == "under_maintenance" and c, what="maint."
        )
        assert pharmacie["tpmon_source"] == "maintenance"
        # only maintenance besides operational: the indicator a real page answers then
        during = {"indicator": "maintenance", "description": "Service Under Maintenance"}
        assert srv.get("/api/v2/status.json?lang=en").json()["status"] == during
        opened = srv.run(
            *("incident", "open", "--config", str(config), "--title", "PEC optique indisponibles"),
            *("--impact", "major", "--declare", "line:alpha/optique=down", "--message", "Les PEC échouent."),
            *("--consigne-ps", "Différez la vente."),
        )
        assert opened.returncode == 0, opened.stderr
        optique = wait_for(
            lambda: (c := component("line:alpha/optique"))["tpmon_state"] == "down" and c, what="declared down"
        )
        assert (optique["status"], optique["tpmon_source"]) == ("major_outage", "declared")
        answers = {name: srv.get(f"/api/v2/{name}.json") for name in ENDPOINTS}
        assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(ENDPOINTS, 200)
        body = {name: a.json() for name, a in answers.items()}
        found = compare_with_real_pages(body)
        assert {kind: bool(found[kind]) for kind in KINDS} == dict.fromkeys(KINDS, True)
        unresolved = body["incidents/unresolved"]["incidents"]
        assert [i["name"] for i in unresolved] == ["PEC optique indisponibles"]
        assert unresolved[0]["tpmon_practitioner_consigne"] == "Différez la vente."
        # the line was operational when the incident was declared: that is its old status, not "partial_outage"
        [declared] = unresolved[0]["incident_updates"][-1]["affected_components"]
        assert (declared["code"], declared["old_status"], declared["new_status"]) == (
            "line:alpha/optique",
            "operational",
            "major_outage",
        )
        assert unresolved[0]["tpmon_practitioner_consigne_standing"] == "current"
        assert body["summary"]["incidents"] == unresolved
        assert body["status"]["status"] == {"indicator": "major", "description": "Panne en cours"}
        active = body["scheduled-maintenances/active"]["scheduled_maintenances"]
        upcoming = body["scheduled-maintenances/upcoming"]["scheduled_maintenances"]
        assert [m["name"] for m in active] == ["Intervention"] and active[0]["status"] == "in_progress"
        assert [m["name"] for m in upcoming] == ["Demain"] and upcoming[0]["status"] == "scheduled"
        assert len(body["summary"]["scheduled_maintenances"]) == 2
    finally:
        assert srv.stop() == 0
