"""The JSON and SVG documents put together from kept pieces (a check's JSON, a line's status, a network's board and
Statuspage components, a badge, one Statuspage page per snapshot): each byte as a fresh rendering writes it, and a
piece made again when anything it shows changed — a status, a check's memory, an upstream flow its words name, the
config, the declarations, the language."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send
from test_kept_views import CONFIG, T0, all_up, status

from monitor.config import Settings, load_config
from monitor.declared.incidents import Incident, IncidentUpdate, declare
from monitor.declared.inputs import Bilingual
from monitor.i18n import STATE_LABELS
from monitor.models import CheckMemory, ComponentStatus, Source, State
from monitor.snapshot import Snapshot
from monitor.web import api_v1_models as m
from monitor.web.api_v1 import (
    api_routes,
    board_answer,
    check_status,
    dependencies,
    flow_status,
    line_status,
    network_summary,
)
from monitor.web.badges import badge
from monitor.web.json_bytes import dumps
from monitor.web.page_cache import PageCache
from monitor.web.statuspage_json import statuspage_routes

ORIGIN = "https://etat.exemple.fr"
DOCUMENTS = [
    "/api/v1/status",
    "/api/v1/status?lang=en",
    "/api/v1/checks",
    "/api/v1/checks?network=sigma",
    "/api/v1/networks/omega",
    "/api/v1/networks/sigma",
    "/api/v1/networks/omega/lines/optique",
    "/api/v1/networks/omega/lines/pharmacie",
    "/api/v1/networks/sigma/lines/optique",
    *(f"/api/v2/{name}.json{query}" for name in ("summary", "components", "status") for query in ("", "?lang=en")),
    "/api/v2/incidents.json",
    "/api/v2/incidents/unresolved.json?lang=en",
    "/badge/omega/optique.svg",
    "/badge/sigma/optique.svg",
    "/badge/sigma/optique.svg?lang=en",
]


@dataclass
class _Board:
    memories: dict[str, CheckMemory] = field(default_factory=dict)

    def memory(self, key: str) -> CheckMemory | None:
        return self.memories.get(key)


@dataclass
class Site:
    """What the documents read (a SiteContext's part of it), with a page cache of its own: its pieces kept."""

    settings: Settings
    shown: Snapshot
    board: _Board = field(default_factory=_Board)
    pages: PageCache = field(default_factory=lambda: PageCache(lambda: 0))

    def snapshot(self) -> Snapshot:
        return self.shown


def app_of(site: Site) -> ASGIApp:
    routes = [Route(path, endpoint) for path, endpoint in statuspage_routes()]
    routes += [*api_routes(), Route("/badge/{network}/{line}.svg", badge)]
    inner = Starlette(routes=routes)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        await inner({**scope, "state": {"services": site, "public_origin": ORIGIN}}, receive, send)

    return serve


def bodies(site: Site) -> dict[str, bytes]:
    with TestClient(app_of(site), base_url=ORIGIN) as client:
        found = {}
        for address in DOCUMENTS:
            response = client.get(address)
            assert response.status_code == 200, (address, response.text)
            found[address] = response.content
        return found


def fresh(site: Site) -> dict[str, bytes]:
    """The documents of `site`'s state made with nothing kept (another page cache: no piece of before)."""
    return bodies(Site(site.settings, site.shown, site.board))


def encoded(model: m.Body) -> bytes:
    """A model's body as `JSONResponse` writes it: what each /api/v1 document was before its pieces were kept."""
    return bytes(JSONResponse(model.model_dump(mode="json", by_alias=True)).body)


def by_models(site: Site) -> dict[str, bytes]:
    """/api/v1's documents built whole through their models, as they were before: the reference of every byte."""
    config, board, memory = site.settings, site.shown, site.board.memory
    found = {
        "/api/v1/status": encoded(board_answer(config, board, "fr")),
        "/api/v1/status?lang=en": encoded(board_answer(config, board, "en")),
        "/api/v1/checks": encoded(
            m.ChecksAnswer(checks=[check_status(board, memory, n, c) for n, c in config.checks()])
        ),
        "/api/v1/checks?network=sigma": encoded(
            m.ChecksAnswer(checks=[check_status(board, memory, n, c) for n, c in config.checks() if n == "sigma"])
        ),
    }
    for name, network in config.networks.items():
        found[f"/api/v1/networks/{name}"] = encoded(
            m.NetworkAnswer(
                **dict(network_summary(board, name, network)),
                website=network.website,
                hotline=network.hotline,
                lines=[line_status(config, board, name, line) for line in network.lines],
                flows=[flow_status(config, board, name, flow) for flow in network.flow_names(config.flows)],
                checks=[check_status(board, memory, name, check) for check in network.checks],
                dependencies=dependencies(board, network),
            )
        )
        for line in network.lines:
            shown = line_status(config, board, name, line)
            flows = {f for group in (*shown.requires, *shown.optional) for f in group.split("|")}
            found[f"/api/v1/networks/{name}/lines/{line}"] = encoded(
                m.LineAnswer(
                    **dict(shown),
                    network=name,
                    checks=[check_status(board, memory, name, c) for c in network.checks if c.flow in flows],
                    dependencies=dependencies(board, network, line),
                )
            )
    return {address: body for address, body in found.items() if address in DOCUMENTS}


def load(tmp_path: Path, text: str = CONFIG) -> Settings:
    path = tmp_path / "tpmon.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def shot(config: Settings, statuses: dict[str, ComponentStatus], version: int, **more: Any) -> Snapshot:
    return Snapshot(
        config, T0, dict(statuses), checked_at=T0 + timedelta(seconds=version), board_version=version, **more
    )


def check_all(site: Site) -> dict[str, bytes]:
    """The kept documents, checked against a fresh rendering and, for /api/v1, against the models whole."""
    kept = bodies(site)
    assert kept == fresh(site)
    for address, body in by_models(site).items():
        assert kept[address] == body, address
    for address, body in kept.items():
        if not address.startswith("/badge/"):
            assert dumps(json.loads(body)) == body, address  # as JSONResponse encodes it
    return kept


def incident(number: int, key: str) -> Incident:
    first = IncidentUpdate(
        T0, "identified", Bilingual("Panne PEC", "PEC down"), statuses={key: declare("down")}, id=number * 10
    )
    return Incident(number, Bilingual("Panne", "Outage"), "major", T0, (key,), (first,))


def test_a_status_a_memory_an_upstream_flow_the_config_and_the_declarations_each_make_their_pieces_again(
    tmp_path: Path,
) -> None:
    config = load(tmp_path)
    statuses = all_up(config)
    site = Site(config, shot(config, statuses, 1))
    before = check_all(site)

    # a check's status: its JSON, its network's and line's documents
    statuses["check:omega/pec/pec"] = status("check:omega/pec/pec", State.DOWN)
    site.shown = shot(config, statuses, 2)
    after = check_all(site)
    assert (
        b'"state":"down"' in after["/api/v1/checks"]
        and after["/api/v1/networks/omega"] != before["/api/v1/networks/omega"]
    )
    assert after["/api/v1/networks/sigma"] == before["/api/v1/networks/sigma"]

    # a check's memory alone (a new result, the same state): its last_result_at
    site.board.memories["check:sigma/pec/plateforme"] = CheckMemory(State.OPERATIONAL, T0, last_result_at=T0)
    memory = check_all(site)
    assert memory["/api/v1/checks?network=sigma"] != after["/api/v1/checks?network=sigma"]
    assert T0.isoformat().encode() in memory["/api/v1/networks/sigma/lines/optique"]

    # an upstream flow of another network: sigma's words (its line's `affected`) say its state
    statuses["flow:omega/pec"] = status("flow:omega/pec", State.DOWN)
    statuses["line:sigma/optique"] = status("line:sigma/optique", State.PARTIAL, Source.DEPENDENCY, "omega/pec")
    site.shown = shot(config, statuses, 3)
    down = check_all(site)
    statuses["flow:omega/pec"] = status("flow:omega/pec", State.RECOVERING, progress=0.5)
    site.shown = shot(config, statuses, 4)
    recovering = check_all(site)
    word = STATE_LABELS[State.RECOVERING]["fr"].encode()
    for address in ("/api/v1/networks/sigma/lines/optique", "/badge/sigma/optique.svg", "/api/v2/components.json"):
        assert word not in down[address] and word in recovering[address], address

    # the config read again, a network renamed
    renamed = load(tmp_path, CONFIG.replace("name: Sigma", "name: Sigmax"))
    site.settings = renamed
    site.shown = shot(renamed, statuses, 5)
    reloaded = check_all(site)
    for address in ("/badge/sigma/optique.svg", "/api/v2/summary.json", "/api/v1/status", "/api/v1/networks/sigma"):
        assert b"Sigmax" in reloaded[address] and b"Sigmax" not in recovering[address], address

    # a declaration: an incident opened (another snapshot, the board's version unchanged)
    site.shown = shot(renamed, statuses, 5, open_incidents=(incident(7, "line:omega/optique"),), newest_incident=7)
    declared = check_all(site)
    assert b'"incidents":[]' in reloaded["/api/v2/summary.json"]
    assert (
        b'"id":"7"' in declared["/api/v2/summary.json"]
        and b'"id":"7"' in declared["/api/v2/incidents/unresolved.json?lang=en"]
    )


def test_the_language_is_part_of_every_piece(tmp_path: Path) -> None:
    config = load(tmp_path)
    statuses = all_up(config)
    statuses["line:omega/optique"] = status("line:omega/optique", State.DOWN)
    site = Site(config, shot(config, statuses, 1))
    kept = check_all(site)
    french, english = STATE_LABELS[State.DOWN]["fr"].encode(), STATE_LABELS[State.DOWN]["en"].encode()
    assert french in kept["/api/v1/status"] and english in kept["/api/v1/status?lang=en"]
    assert french not in kept["/api/v1/status?lang=en"]
    assert english in kept["/api/v2/components.json?lang=en"] and english not in kept["/api/v2/components.json"]


def test_a_component_with_no_date_takes_the_pages_time_which_moves_with_each_result(tmp_path: Path) -> None:
    config = load(tmp_path)
    statuses = all_up(config)
    del statuses["line:sigma/optique"]  # never seen: no date of its own, the page's `updated_at` stands in
    site = Site(config, shot(config, statuses, 1))
    first = check_all(site)
    site.shown = shot(config, statuses, 2)  # another result came (checked_at): the same statuses
    second = check_all(site)
    assert first["/api/v2/components.json"] != second["/api/v2/components.json"]


STATES = st.sampled_from(list(State))
COMPONENTS = sorted(
    [
        "network:omega",
        "line:omega/optique",
        "line:omega/pharmacie",
        "flow:omega/pec",
        "flow:omega/facturation",
        "check:omega/pec/pec",
        "check:omega/facturation/dre",
        "network:sigma",
        "line:sigma/optique",
        "flow:sigma/pec",
        "check:sigma/pec/plateforme",
    ]
)
CHECKS = [key for key in COMPONENTS if key.startswith("check:")]
Step = tuple[str, Any]
STEPS = st.one_of(
    st.tuples(st.just("status"), st.tuples(st.sampled_from(COMPONENTS), STATES, st.floats(0, 1), st.booleans())),
    st.tuples(st.just("forget"), st.sampled_from(COMPONENTS)),
    st.tuples(st.just("same"), st.sampled_from(COMPONENTS)),  # an equal status, another object
    st.tuples(st.just("memory"), st.tuples(st.sampled_from(CHECKS), st.integers(0, 5))),
    st.tuples(st.just("reload"), st.booleans()),
    st.tuples(st.just("incident"), st.sampled_from(COMPONENTS)),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEPS, min_size=1, max_size=6))
def test_the_kept_documents_are_a_fresh_rendering_whatever_the_changes(tmp_path: Path, steps: list[Step]) -> None:
    config = load(tmp_path)
    statuses: dict[str, ComponentStatus] = all_up(config)
    site = Site(config, shot(config, statuses, 0))
    check_all(site)
    changes: dict[str, Callable[[Any], None]] = {}
    version = 0

    def set_status(args: tuple[str, State, float, bool]) -> None:
        key, state, progress, upstream = args
        source, detail = (
            (Source.DEPENDENCY, "omega/pec") if upstream and key == "line:sigma/optique" else (Source.PROBE, "")
        )
        statuses[key] = replace(status(key, state, source, detail, progress), since=T0 + timedelta(minutes=version))

    def reload(renamed: bool) -> None:
        site.settings = load(tmp_path, CONFIG.replace("name: Oméga", "name: Oméga2") if renamed else CONFIG)

    changes["status"] = set_status

    def forget(key: str) -> None:
        statuses.pop(key, None)

    changes["forget"] = forget
    changes["same"] = lambda key: statuses.__setitem__(key, replace(statuses[key])) if key in statuses else None
    changes["memory"] = lambda args: site.board.memories.__setitem__(
        args[0], CheckMemory(State.OPERATIONAL, T0, last_result_at=T0 + timedelta(seconds=args[1]))
    )
    changes["reload"] = reload
    opened: list[Incident] = []
    changes["incident"] = lambda key: opened.insert(0, incident(len(opened) + 1, key))
    for kind, args in steps:
        version += 1
        changes[kind](args)
        site.shown = shot(site.settings, statuses, version, open_incidents=tuple(opened), newest_incident=len(opened))
        check_all(site)


def test_a_piece_is_kept_while_nothing_it_shows_changed(tmp_path: Path) -> None:
    """The pieces are reused (what makes them worth keeping): a second publication of one snapshot makes none."""
    config = load(tmp_path)
    site = Site(config, shot(config, all_up(config), 1))
    bodies(site)
    renders = site.pages.pieces.renders
    bodies(site)
    assert site.pages.pieces.renders == renders and site.pages.pieces.hits > 0
    statuses = all_up(config)  # every status another object: every piece of them made again
    site.shown = shot(config, statuses, 2)
    bodies(site)
    assert site.pages.pieces.renders > renders
