"""/api/v2/…: Statuspage v2-compatible JSON, checked against the field shape of a real Statuspage page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from targets import Server, Target, alpha_config, wait_for

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared import Bilingual
from monitor.errors import StoreError
from monitor.i18n import PARIS
from monitor.incidents import IncidentUpdate, declare
from monitor.maintenance import MaintenanceWindow
from monitor.models import State
from monitor.store.declarations import Declarations
from monitor.web.statuspage import COMPONENT_STATUS

# A Statuspage v2 `summary.json`, reconstructed from Atlassian's public Status API documentation (the
# "/api" page every Statuspage page serves, e.g. https://metastatuspage.com/api#summary, and
# https://developer.statuspage.io) with the keys that real pages answer today (incidents' `started_at` and
# `components`, updates' `affected_components`, `deliver_notifications`, `custom_tweet`, `tweet_id`).
# Values are Atlassian's examples; only keys and JSON types matter here, never tpmon's own answer.
REFERENCE_SUMMARY: dict[str, Any] = json.loads("""
{"page": {"id": "y2j98763l56x", "name": "Atlassian Statuspage", "url": "https://metastatuspage.com",
          "time_zone": "Etc/UTC", "updated_at": "2014-05-14T14:35:21.711-06:00"},
 "components": [
  {"id": "y4xb1pqhvqfw", "name": "Web", "status": "partial_outage", "created_at": "2014-05-03T01:22:07.274Z",
   "updated_at": "2014-05-14T20:34:43.340Z", "position": 1, "description": null, "showcase": false,
   "start_date": null, "group_id": null, "page_id": "y2j98763l56x", "group": true, "only_show_if_degraded": false,
   "components": ["b13yz5g2cw10"]},
  {"id": "b13yz5g2cw10", "name": "API", "status": "partial_outage", "created_at": "2014-05-03T01:22:07.274Z",
   "updated_at": "2014-05-14T20:34:43.340Z", "position": 2, "description": null, "showcase": true,
   "start_date": null, "group_id": "y4xb1pqhvqfw", "page_id": "y2j98763l56x", "group": false,
   "only_show_if_degraded": false}],
 "incidents": [
  {"id": "cp306tmzcl0y", "name": "Unplanned Database Outage", "status": "identified", "impact": "critical",
   "created_at": "2014-05-14T14:22:39.441-06:00", "updated_at": "2014-05-14T14:35:21.711-06:00",
   "monitoring_at": null, "resolved_at": null, "shortlink": "http://stspg.co/Q0E",
   "started_at": "2014-05-14T14:22:39.441-06:00", "page_id": "y2j98763l56x",
   "incident_updates": [
    {"id": "jdy3tw5mt5r5", "status": "identified", "body": "Our master database has ham sandwiches flying out.",
     "incident_id": "cp306tmzcl0y", "created_at": "2014-05-14T14:22:40.301-06:00",
     "updated_at": "2014-05-14T14:22:40.301-06:00", "display_at": "2014-05-14T14:22:40.301-06:00",
     "affected_components": [{"code": "b13yz5g2cw10", "name": "API", "old_status": "operational",
                              "new_status": "major_outage"}],
     "deliver_notifications": true, "custom_tweet": null, "tweet_id": null}],
   "components": [
    {"id": "b13yz5g2cw10", "name": "API", "status": "partial_outage", "created_at": "2014-05-03T01:22:07.274Z",
     "updated_at": "2014-05-14T20:34:43.340Z", "position": 2, "description": null, "showcase": true,
     "start_date": null, "group_id": "y4xb1pqhvqfw", "page_id": "y2j98763l56x", "group": false,
     "only_show_if_degraded": false}]}],
 "scheduled_maintenances": [
  {"id": "w1zdr745wmfy", "name": "Web and API Maintenance", "status": "in_progress", "impact": "maintenance",
   "created_at": "2014-05-14T14:24:40.430-06:00", "updated_at": "2014-05-14T14:35:12.258-06:00",
   "monitoring_at": null, "resolved_at": null, "shortlink": "http://stspg.co/Q0G",
   "started_at": "2014-05-14T14:30:00.000-06:00", "page_id": "y2j98763l56x",
   "scheduled_for": "2014-05-14T14:30:00.000-06:00", "scheduled_until": "2014-05-14T16:30:00.000-06:00",
   "incident_updates": [
    {"id": "drs62w8df6fs", "status": "in_progress", "body": "Scheduled maintenance is currently in progress.",
     "incident_id": "w1zdr745wmfy", "created_at": "2014-05-14T14:34:20.036-06:00",
     "updated_at": "2014-05-14T14:34:20.036-06:00", "display_at": "2014-05-14T14:34:20.036-06:00",
     "affected_components": [{"code": "b13yz5g2cw10", "name": "API", "old_status": "operational",
                              "new_status": "under_maintenance"}],
     "deliver_notifications": true, "custom_tweet": null, "tweet_id": null}],
   "components": [
    {"id": "b13yz5g2cw10", "name": "API", "status": "under_maintenance", "created_at": "2014-05-03T01:22:07.274Z",
     "updated_at": "2014-05-14T20:34:43.340Z", "position": 2, "description": null, "showcase": true,
     "start_date": null, "group_id": "y4xb1pqhvqfw", "page_id": "y2j98763l56x", "group": false,
     "only_show_if_degraded": false}]}],
 "status": {"indicator": "major", "description": "Partial System Outage"}}
""")
# Statuspage's enumerations (same documentation).
ENUMS = {
    "component": {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"},
    "indicator": {"none", "minor", "major", "critical"},
    "incident": {"investigating", "identified", "monitoring", "resolved", "postmortem"},
    "maintenance": {"scheduled", "in_progress", "verifying", "completed"},
    "impact": {"none", "minor", "major", "critical", "maintenance"},
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


def kind(value: Any) -> str:
    if value is None or isinstance(value, str):
        return "null-or-string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "list" if isinstance(value, list) else "object"


def same_shape(reference: Any, actual: Any, path: str, seen: set[str]) -> None:
    """Every key of `reference` is in `actual` with the same JSON type, recursively; `seen` collects the
    paths actually compared, so that a test can tell an empty list from a checked one."""
    assert kind(actual) == kind(reference), f"{path}: {kind(actual)} where Statuspage has {kind(reference)}"
    seen.add(path)
    if isinstance(reference, dict):
        for key, value in reference.items():
            assert key in actual, f"{path}.{key} is missing"
            same_shape(value, actual[key], f"{path}.{key}", seen)
    elif isinstance(reference, list) and reference:
        for item in actual:
            model = reference[0]
            if isinstance(item, dict) and "group" in item:  # a component: a group or not
                model = next((r for r in reference if r["group"] == item["group"]), model)
            same_shape(model, item, f"{path}[]", seen)


def check_enums(answer: dict[str, Any]) -> None:
    for component in answer.get("components", []):
        assert component["status"] in ENUMS["component"]
        assert STAMP.match(component["updated_at"])
    if "status" in answer:
        assert answer["status"]["indicator"] in ENUMS["indicator"]
    for incident in answer.get("incidents", []):
        assert incident["status"] in ENUMS["incident"] and incident["impact"] in ENUMS["impact"]
        for update in incident["incident_updates"]:
            assert update["status"] in ENUMS["incident"] and STAMP.match(update["display_at"])
            for affected in update["affected_components"]:
                assert {affected["old_status"], affected["new_status"]} <= ENUMS["component"]
    for maintenance in answer.get("scheduled_maintenances", []):
        assert maintenance["status"] in ENUMS["maintenance"] and maintenance["impact"] in ENUMS["impact"]
        assert STAMP.match(maintenance["scheduled_for"]) and STAMP.match(maintenance["scheduled_until"])
        for update in maintenance["incident_updates"]:
            assert update["status"] in ENUMS["maintenance"]


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
        test_client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]
        yield test_client


def test_every_endpoint_has_the_shape_of_a_real_statuspage_page(client: TestClient) -> None:
    seen: set[str] = set()
    for name in ENDPOINTS:
        answer = client.get(f"/api/v2/{name}.json")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        for key, value in body.items():
            if key in REFERENCE_SUMMARY:
                same_shape(REFERENCE_SUMMARY[key], value, key, seen)
        check_enums(body)
    # every object type of the reference was compared with a real object, not with an empty list
    for path in (
        "page",
        "status",
        "components[].components",
        "components[].group_id",
        "incidents[].incident_updates[].affected_components[].new_status",
        "incidents[].components[].id",
        "scheduled_maintenances[].incident_updates[].affected_components[].code",
        "scheduled_maintenances[].components[].status",
    ):
        assert path in seen, path


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
    assert set(COMPONENT_STATUS.values()) <= ENUMS["component"]
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
    client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]
    lines = [c for c in client.get("/api/v2/components.json").json()["components"] if not c["group"]]
    assert {c["status"] for c in lines} == {"major_outage"}
    expected = {"indicator": "critical", "description": "Critical System Outage"}
    assert client.get("/api/v2/status.json?lang=en").json()["status"] == expected


def test_a_store_error_is_a_503_in_json(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database unreachable")

    monkeypatch.setattr(Declarations, "incidents", broken)
    monkeypatch.setattr(Declarations, "windows", broken)
    for name in ENDPOINTS:
        answer = client.get(f"/api/v2/{name}.json")
        if name in ("status", "components"):  # from the board in memory: they still answer
            assert answer.status_code == 200, name
        else:
            assert answer.status_code == 503, name
            assert answer.json() == {"error": "the database is unreachable; try again shortly"}


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
        opened = srv.run(
            *("incident", "open", "--config", str(config), "--title", "PEC optique indisponibles"),
            *("--impact", "major", "--declare", "line:alpha/optique=down", "--message", "Les PEC échouent."),
            *(
                "--consigne-ps",
                "Différez la vente.",
            ),
        )
        assert opened.returncode == 0, opened.stderr
        now = datetime.now(PARIS)
        for start, title in ((now, "Intervention"), (now + timedelta(days=1), "Demain")):
            planned = srv.run(
                *("maintenance", "add", "--config", str(config), "--title", title),
                *("--component", "line:alpha/pharmacie", "--start", f"{start:%Y-%m-%d %H:%M}", "--duration", "2h"),
            )
            assert planned.returncode == 0, planned.stderr
        optique = wait_for(
            lambda: (c := component("line:alpha/optique"))["tpmon_state"] == "down" and c, what="declared down"
        )
        assert (optique["status"], optique["tpmon_source"]) == ("major_outage", "declared")
        answers = {name: srv.get(f"/api/v2/{name}.json") for name in ENDPOINTS}
        assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(ENDPOINTS, 200)
        body = {name: a.json() for name, a in answers.items()}
        seen: set[str] = set()
        for answer in body.values():
            check_enums(answer)
            for key, value in answer.items():
                if key in REFERENCE_SUMMARY:
                    same_shape(REFERENCE_SUMMARY[key], value, key, seen)
        assert "incidents[].incident_updates[].affected_components[].old_status" in seen
        unresolved = body["incidents/unresolved"]["incidents"]
        assert [i["name"] for i in unresolved] == ["PEC optique indisponibles"]
        assert unresolved[0]["tpmon_practitioner_consigne"] == "Différez la vente."
        assert body["summary"]["incidents"] == unresolved
        assert body["status"]["status"] == {"indicator": "major", "description": "Panne en cours"}
        active = body["scheduled-maintenances/active"]["scheduled_maintenances"]
        upcoming = body["scheduled-maintenances/upcoming"]["scheduled_maintenances"]
        assert [m["name"] for m in active] == ["Intervention"] and active[0]["status"] == "in_progress"
        assert [m["name"] for m in upcoming] == ["Demain"] and upcoming[0]["status"] == "scheduled"
        assert len(body["summary"]["scheduled_maintenances"]) == 2
        pharmacie = wait_for(
            lambda: (c := component("line:alpha/pharmacie"))["status"] == "under_maintenance" and c, what="maint."
        )
        assert pharmacie["tpmon_source"] == "maintenance"
    finally:
        assert srv.stop() == 0
