"""One truth: the page, /api/v1, the Statuspage JSON, the feeds, the badges and /metrics never disagree.

A scenario runs on an injected clock (no sleep): an incident opened then resolved, a maintenance window that
starts and ends, a line going down under the window. The app's periodic jobs run at their intervals on that
clock, and every surface is sampled every 100 ms of it; at no sample may two surfaces tell different states,
open incidents or running maintenance.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from targets import Target, alpha_config

from monitor.app import Job, Services, create_app, periodic_jobs
from monitor.config import load_config
from monitor.declared.incidents import IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow
from monitor.i18n import PARIS, STATE_LABELS
from monitor.models import State
from monitor.runner import run_check
from monitor.store.declaration_store import Declarations

START = datetime(2024, 2, 12, 12, 0, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=100)
LINES = ("pharmacie", "optique")
ATOM = {"a": "http://www.w3.org/2005/Atom"}
BY_LABEL = {labels["fr"]: state for state, labels in STATE_LABELS.items()}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Told:
    """What one surface says: each line's state, the open incidents, the running maintenance windows."""

    lines: dict[str, str] | None = None
    incidents: frozenset[int] | None = None
    incident_count: int | None = None  # what /metrics can tell: how many, not which
    maintenance: int | None = None


@dataclass
class Site:
    client: TestClient
    services: Services
    clock: Clock
    target: Target
    declarations: Declarations
    jobs: list[Job]
    due: dict[str, datetime] = field(default_factory=dict)

    def run(self, job: Callable[[], Awaitable[None]]) -> None:
        self.client.portal.call(job)  # type: ignore[union-attr]

    def advance(self) -> None:
        """100 ms pass; the periodic jobs due by then run, as the scheduler would run them; each check is probed
        every second (its interval)."""
        self.clock.now += STEP
        if (self.clock.now - START) % timedelta(seconds=1) == timedelta(0):
            for check in ("dre", "pec"):
                self.probe(check)
        for name, every, job in self.jobs:
            due = self.due.setdefault(name, START + timedelta(seconds=every))
            if self.clock.now >= due:
                self.run(job)
                self.due[name] = due + timedelta(seconds=every)

    def probe(self, check: str) -> None:
        found = next(c for c in self.services.settings.networks["alpha"].checks if c.name == check)
        self.client.portal.call(run_check, "alpha", found, self.services.pipeline)  # type: ignore[union-attr]

    def get(self, path: str) -> Any:
        answer = self.client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        return answer


@pytest.fixture
def site(tmp_path: Path, target: Target) -> Iterator[Site]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url("")), encoding="utf-8")
    settings = load_config(config)
    clock = Clock(START)
    app = create_app(settings, database_url=f"sqlite:///{tmp_path}/tpmon.db", schedule=False, clock=clock)
    with TestClient(app) as client:
        services: Services = client.app_state["services"]
        declarations = Declarations(services.store, settings, clock=clock)
        yield Site(client, services, clock, target, declarations, periodic_jobs(services, 5.0, 300.0))


def page(site: Site) -> Told:
    html = site.get("/").text
    cells = re.findall(r'<td class="state-(\w+)">\s*<a href="/reseaux/alpha/(\w+)">', html)
    incidents = re.findall(r'id="(?:incident|notice)-(\d+)"', html)
    section = html[html.index('id="maintenance-title"') :]
    running = section.count("<strong>En cours</strong>")
    lines = {line: state for state, line in cells}
    return Told(lines=lines, incidents=frozenset(map(int, incidents)), maintenance=running)


def api_v1(site: Site) -> list[Told]:
    status = site.get("/api/v1/status").json()
    [alpha] = [n for n in status["networks"] if n["id"] == "alpha"]
    opened = site.get("/api/v1/incidents?status=open").json()["incidents"]
    running = site.get("/api/v1/maintenance").json()["running"]
    return [
        Told(lines={line["id"]: line["state"] for line in alpha["lines"]}),
        Told(incidents=frozenset(i["id"] for i in opened)),
        Told(maintenance=len(running)),
    ]


def statuspage(site: Site) -> Told:
    summary = site.get("/api/v2/summary.json").json()
    lines = {c["id"].rpartition("/")[2]: c["tpmon_state"] for c in summary["components"] if not c["group"]}
    running = [m for m in summary["scheduled_maintenances"] if m["status"] == "in_progress"]
    return Told(lines=lines, incidents=frozenset(int(i["id"]) for i in summary["incidents"]), maintenance=len(running))


def feed(site: Site) -> Told:
    """The incidents whose newest entry is not their resolution."""
    newest: dict[int, str] = {}
    for entry in ET.fromstring(site.get("/feed.atom").content).findall("a:entry", ATOM):
        number = int((entry.findtext("a:id", "", ATOM)).split(":")[3])
        newest.setdefault(number, entry.findtext("a:title", "", ATOM))  # newest first
    return Told(incidents=frozenset(n for n, title in newest.items() if not title.endswith("— Résolu")))


def badges(site: Site) -> Told:
    told = {}
    for line in LINES:
        label = re.search(r'aria-label="[^"]*\u00a0: ([^"]+)"', site.get(f"/badge/alpha/{line}.svg").text)
        assert label, line
        told[line] = BY_LABEL[label.group(1)].value
    return Told(lines=told)


def metrics(site: Site) -> Told:
    text = site.get("/metrics").text
    pattern = r'tpmon_line_state\{line="(\w+)",network="alpha",state="(\w+)"\} 1\.0'
    lines = dict(re.findall(pattern, text))
    opened = sum(int(float(v)) for v in re.findall(r"tpmon_incidents_open\{impact=\"\w+\"\} ([0-9.]+)", text))
    active = re.search(r'tpmon_maintenance_active\{network="alpha"\} ([0-9.]+)', text)
    assert active
    return Told(lines=lines, incident_count=opened, maintenance=int(float(active.group(1))))


def disagreements(site: Site) -> list[str]:
    said = {"page": page(site), "badges": badges(site), "metrics": metrics(site), "statuspage": statuspage(site)}
    said |= {f"api_v1.{n}": told for n, told in enumerate(api_v1(site))}
    said |= {"feed": feed(site)}
    found = []
    for what in ("lines", "incidents", "maintenance"):
        values = {name: getattr(told, what) for name, told in said.items() if getattr(told, what) is not None}
        if len({repr(v) for v in values.values()}) > 1:
            found.append(f"{what}: {values}")
    counts = {name: told.incident_count for name, told in said.items() if told.incident_count is not None}
    if any(count != len(said["page"].incidents or ()) for count in counts.values()):
        found.append(f"open incidents: {counts} but the page shows {sorted(said['page'].incidents or ())}")
    running = said["page"].maintenance or 0
    in_maintenance = [line for line, state in (said["page"].lines or {}).items() if state == State.MAINTENANCE.value]
    if bool(running) != bool(in_maintenance):
        found.append(f"maintenance running {running} but lines in maintenance {in_maintenance}")
    return found


def test_every_surface_tells_the_same_at_every_100_ms_of_a_scenario(site: Site) -> None:
    paris = (START + timedelta(seconds=12)).astimezone(PARIS).replace(tzinfo=None)
    site.declarations.add_window(
        MaintenanceWindow(None, Bilingual("Bascule DRE"), ("line:alpha/pharmacie",), paris, timedelta(seconds=20))
    )
    site.probe("dre")
    site.probe("pec")
    opened = 0

    def open_incident() -> None:
        nonlocal opened
        first = IncidentUpdate(
            site.clock(), "identified", Bilingual("PEC coupées."), statuses={"line:alpha/optique": declare("down")}
        )
        opened = site.declarations.open_incident(title=Bilingual("PEC"), impact="major", first=first).id or 0

    def dre_fails() -> None:
        site.target.codes["/dre"] = 503

    def dre_back() -> None:
        site.target.codes["/dre"] = 200

    def resolve() -> None:
        site.declarations.resolve_incident(opened, at=site.clock())

    events: dict[int, Callable[[], None]] = {  # at this many 100 ms steps
        23: open_incident,  # 2.3 s, between two ticks
        204: dre_fails,  # 20.4 s (probed at 21 s): pharmacie fails under its maintenance window (12 s → 32 s)
        411: resolve,
        523: dre_back,
    }
    seen: Counter[str] = Counter()
    problems: list[str] = []
    for step in range(1, 651):
        site.advance()
        if step in events:
            events[step]()
        told = page(site)
        seen.update({f"{line}:{state}" for line, state in (told.lines or {}).items()})
        seen.update({"incident open" if told.incidents else "no incident", f"maintenance {told.maintenance}"})
        problems += [f"{site.clock().time()}: {problem}" for problem in disagreements(site)]
    # the scenario did show each thing at some point: the assertions above were not about an empty page
    assert {"optique:down", "pharmacie:maintenance", "pharmacie:down", "incident open", "maintenance 1"} <= set(seen)
    kinds = Counter(re.sub(r"^[0-9:.]+: ", "", p) for p in problems)
    summary = "\n".join(f"{n} × {k}" for k, n in kinds.most_common(12))
    assert not problems, f"{summary}\n… {len(problems)} disagreeing samples"
