"""tpmon's own JSON API, /api/v1: board, networks, lines, checks, history, availability, incidents, maintenance.

Every body is built through a model of api_models and dumped by it — the pieces many bodies share (a check's,
a line's, a network's row of the board) once per object they show, kept and joined as encoded (json_bytes.py:
the same bytes); the OpenAPI document at
/api/v1/openapi.json is generated from the same models and from `OPERATIONS`, which also makes the routes.
States, open incidents and maintenance come from the site's snapshot (what the page shows); the store is read
in a thread, for history only, and told as the snapshot tells it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..availability import FORMULA, UNKNOWN_RULE, WINDOWS
from ..config import Check, Network, Settings
from ..config.values import SLUG
from ..declared.incidents import Incident
from ..errors import CODES, FIELD_SEPARATOR, NotFound, StoreError
from ..i18n import LANGS, Lang, Text, said
from ..models import CheckMemory, ComponentRef, ComponentStatus, Source, State
from ..snapshot import Snapshot
from ..store.declaration_store import Declarations
from ..store.rollup_store import availability_over
from . import api_v1_models as m
from .affected_text import explain
from .api_v1_openapi import Operation, PathParam, openapi_document, parameter_problem
from .board_view import NetworkView, States, board_view
from .fragments import Fragments
from .json_bytes import EncodedJSON, joined, model_bytes, spliced
from .page_cache import cached, request_lang
from .site_context import SiteContext

__all__ = ["OPERATIONS", "api_routes"]

UNREACHABLE = said("the database is unreachable; try again shortly")
WINDOW_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
Q = TypeVar("Q", bound=BaseModel)


class Refused(Exception):
    """A request the API answers with an error: 400 naming the parameter, or 404; the problem said in each language,
    the field (parameter) at fault."""

    def __init__(self, status: int, problem: Text, field: str | None = None) -> None:
        super().__init__(problem.render("en"))
        self.status, self.problem, self.field = status, problem, field


def _json(body: BaseModel | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The response of a model, or of its JSON already encoded (put together from kept pieces: `json_bytes`)."""
    headers = {"Cache-Control": "no-cache", **(headers or {})}
    if isinstance(body, bytes):
        return EncodedJSON(body, status_code=status, headers=headers)
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=status, headers=headers)


def _error(request: Request, status: int, problem: Text, field: str | None = None, **headers: str) -> Response:
    """The error document in the request's language (`?lang=`, cookie, Accept-Language; French by default)."""
    lang = request_lang(request)
    where = f"{field}{FIELD_SEPARATOR.get(lang, ': ')}" if field else ""
    answer = m.ErrorAnswer(error=where + problem.render(lang), field=field, code=CODES[status])
    return _json(answer, status, {"Content-Language": lang, "Vary": "Accept-Language, Cookie", **headers})


def _answer(
    handler: Callable[[Request, SiteContext], Awaitable[BaseModel | bytes]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return _json(await handler(request, request.state.services))
        except Refused as exc:
            return _error(request, exc.status, exc.problem, exc.field)
        except StoreError:
            return _error(request, 503, UNREACHABLE, **{"Retry-After": "30"})

    return endpoint


def _query(request: Request, model: type[Q]) -> Q:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        location = exc.errors()[0]["loc"]
        name = str(location[0]) if location else "query"
        raise Refused(400, parameter_problem(model, name), name) from None


def _network(services: SiteContext, name: str) -> Network:
    network = services.settings.networks.get(name)
    if network is None:
        raise Refused(404, said("no network {name}", name=repr(name)), "network")
    return network


def _component(request: Request, services: SiteContext) -> ComponentRef:
    key: str = request.path_params["component"]
    try:
        ref = ComponentRef.parse(key)
    except ValueError:
        raise Refused(
            400, said("{key} is not a component key like line:viamedis/optique", key=repr(key)), "component"
        ) from None
    if services.snapshot().get(ref) is None:
        raise Refused(404, said("no component {key}", key=repr(key)), "component")
    return ref


async def status(request: Request, services: SiteContext) -> bytes:
    lang = _query(request, m.StatusQuery).lang
    snapshot = services.snapshot()
    return board_json(services.pages.pieces, snapshot.settings, snapshot, lang)


async def networks(request: Request, services: SiteContext) -> m.NetworksAnswer:
    board = services.snapshot()
    return m.NetworksAnswer(networks=[network_summary(board, name, n) for name, n in board.settings.networks.items()])


async def network(request: Request, services: SiteContext) -> bytes:
    board, name = services.snapshot(), request.path_params["network"]
    settings, pieces = board.settings, services.pages.pieces
    found = _network(services, name)
    head = m.NetworkAnswer(
        **dict(network_summary(board, name, found)),
        website=found.website,
        hotline=found.hotline,
        lines=[],
        flows=[flow_status(settings, board, name, flow) for flow in found.flow_names(settings.flows)],
        checks=[],
        dependencies=dependencies(board, found),
    )
    lines = [kept_line_status(pieces, settings, board, name, line)[1] for line in found.lines]
    checks = b"[" + checks_json(pieces, board, services.board.memory, name, found) + b"]"
    return spliced(head.model_dump(mode="json", by_alias=True), {"lines": joined(lines), "checks": checks})


async def line(request: Request, services: SiteContext) -> bytes:
    board, pieces = services.snapshot(), services.pages.pieces
    settings = board.settings
    name, line_id = request.path_params["network"], request.path_params["line"]
    found = _network(services, name)
    if line_id not in found.lines:
        raise Refused(404, said("{network} has no line {line}", network=name, line=repr(line_id)), "line")
    shown = kept_line_status(pieces, settings, board, name, line_id)[0]
    flows = {f for group in (*shown.requires, *shown.optional) for f in group.split("|")}
    head = m.LineAnswer(**dict(shown), network=name, checks=[], dependencies=dependencies(board, found, line_id))
    checks = [check_json(pieces, board, services.board.memory, name, c) for c in found.checks if c.flow in flows]
    return spliced(head.model_dump(mode="json", by_alias=True), {"checks": joined(checks)})


async def checks(request: Request, services: SiteContext) -> bytes:
    wanted = _query(request, m.ChecksQuery).network
    if wanted is not None:
        _network(services, wanted)
    board, pieces, memory = services.snapshot(), services.pages.pieces, services.board.memory
    found = [
        checks_json(pieces, board, memory, name, network)
        for name, network in board.settings.networks.items()
        if wanted is None or name == wanted
    ]
    return b'{"checks":[' + b",".join(part for part in found if part) + b"]}"


async def history(request: Request, services: SiteContext) -> m.HistoryAnswer:
    """A component's transitions (newest first, `?limit=`) and its availability over 1/7/30/90 days."""
    ref = _component(request, services)
    limit = _query(request, m.HistoryQuery).limit
    now, store = services.clock(), services.store

    def read() -> m.HistoryAnswer:
        transitions = store.transitions(ref, limit=limit)
        windows = {f"{days}d": availability_over(store, ref, now, days) for days in WINDOWS}
        return m.HistoryAnswer(
            component=ref.key,
            at=now,
            availability={
                name: m.WindowAvailability(ratio=w.availability, coverage=w.coverage, start=w.start)
                for name, w in windows.items()
            },
            transitions=[
                m.HistoryTransition(from_=t.previous, to=t.state, at=t.at, source=t.source, progress=t.progress)
                for t in transitions
            ],
        )

    return await services.pages.run(read)


async def availability(request: Request, services: SiteContext) -> m.AvailabilityAnswer:
    ref = _component(request, services)
    window = _query(request, m.AvailabilityQuery).window
    found = await services.pages.run(availability_over, services.store, ref, services.clock(), WINDOW_DAYS[window])
    return m.AvailabilityAnswer(
        component=ref.key,
        window=window,
        start=found.start,
        end=found.end,
        availability=found.availability,
        coverage=found.coverage,
        seconds=dict(found.seconds),
        formula=m.BilingualText(fr=FORMULA["fr"], en=FORMULA["en"]),
        unknown_rule=m.BilingualText(fr=UNKNOWN_RULE["fr"], en=UNKNOWN_RULE["en"]),
    )


def incident_answer(incident: Incident, snapshot: Snapshot) -> m.IncidentAnswer:
    """An incident with its consignes dated against the snapshot's states."""
    return m.IncidentAnswer.of(incident, snapshot.last_change(incident.components))


async def incidents(request: Request, services: SiteContext) -> m.IncidentsAnswer:
    query = _query(request, m.IncidentsQuery)
    snapshot = services.snapshot()
    if query.status == "open":  # what the page shows, from the snapshot: no store read
        opened = list(snapshot.open_incidents)
        found, more = opened[query.offset : query.offset + query.limit], len(opened) > query.offset + query.limit
    else:
        declarations = Declarations(services.store, snapshot.settings)
        found, more = await services.pages.run(incidents_page, declarations, query.status, query.limit, query.offset)
        found = snapshot.as_known(found)
        if query.status == "resolved":  # resolved in the store since the snapshot: not yet for the site
            found = [i for i in found if not i.is_open]
    return m.IncidentsAnswer(
        status=query.status,
        limit=query.limit,
        offset=query.offset,
        next_offset=query.offset + query.limit if more else None,
        incidents=[incident_answer(i, snapshot) for i in found],
    )


async def incident(request: Request, services: SiteContext) -> m.IncidentAnswer:
    raw: str = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= m.MAX_ID):
        raise Refused(400, said("must be an integer between 1 and {max}", max=m.MAX_ID), "id")
    snapshot, number = services.snapshot(), int(raw)
    known = snapshot.incident(number)
    if known is not None:
        return incident_answer(known, snapshot)
    declarations = Declarations(services.store, snapshot.settings)
    try:
        found = await services.pages.run(declarations.incident, number)
    except NotFound:
        found = None
    if found is None or not snapshot.shows(number):  # stored after the snapshot: not shown yet, as on the page
        raise Refused(404, said("no incident {number}", number=number), "id")
    return incident_answer(found, snapshot)


async def maintenance(request: Request, services: SiteContext) -> m.MaintenanceAnswer:
    """Running (as the states show it) and upcoming maintenance, from the snapshot."""
    horizon = _query(request, m.MaintenanceQuery).horizon_days
    snapshot = services.snapshot()
    return m.MaintenanceAnswer(
        at=snapshot.at,
        horizon_days=horizon,
        running=[m.OccurrenceAnswer.of(o, running=True) for o in snapshot.running],
        upcoming=[m.OccurrenceAnswer.of(o, running=False) for o in snapshot.upcoming(timedelta(days=horizon))],
    )


async def openapi(request: Request) -> Response:
    """The document, with the running config's networks, lines and components as examples."""
    document = openapi_document(OPERATIONS, _examples(request.state.services))
    return JSONResponse(document, headers={"Cache-Control": "no-cache"})


async def no_such_path(request: Request) -> Response:
    return _error(request, 404, said("no such path {path}; see /api/v1/openapi.json", path=repr(request.url.path)))


async def api_not_found(request: Request, exc: Exception) -> Response:
    """A 404 no route took (a path no route pattern can match, a newline in it…): JSON under /api/, as documented."""
    if request.url.path.startswith("/api/"):
        return await no_such_path(request)
    if isinstance(exc, HTTPException):  # as Starlette's own handler answers
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse("Not Found", status_code=404)


def _examples(services: SiteContext) -> dict[str, list[Any]]:
    settings = services.settings
    first, network = next(iter(settings.networks.items()))
    keys = [f"network:{first}", f"line:{first}/{network.lines[0]}"]
    keys += [ComponentRef.for_check(first, c.flow, c.name).key for c in network.checks[:1]]
    return {"network": list(settings.networks)[:5], "line": list(network.lines), "component": keys}


# From the board and the config to the models (on the loop: the board changes there)


def _shown(status: ComponentStatus | None) -> dict[str, Any]:
    if status is None:  # nothing known yet: never shown as green
        return {"state": State.UNKNOWN, "since": None, "source": Source.NONE, "progress": 0.0}
    return {"state": status.state, "since": status.since, "source": status.source, "progress": status.progress}


def board_answer(settings: Settings, board: States, lang: Lang) -> m.BoardAnswer:
    view = board_view(settings, board, lang)
    found = [_board_network(n) for n in view.networks]
    return m.BoardAnswer(lang=view.lang, checked_at=view.checked_at, networks=found)


def board_json(pieces: Fragments, settings: Settings, board: Snapshot, lang: Lang) -> bytes:
    """`board_answer`'s JSON, each network's encoded once per view of it (a view is kept while nothing it shows
    changes: `board_view`), for every document of the snapshots that keep it."""
    view = board_view(settings, board, lang)
    found = [pieces.keep(("board", n.id, lang), (n,), functools.partial(_board_network_json, n)) for n in view.networks]
    head = m.BoardAnswer(lang=view.lang, checked_at=view.checked_at, networks=[])
    return spliced(head.model_dump(mode="json", by_alias=True), {"networks": joined(found)})


def _board_network(n: NetworkView) -> m.BoardNetwork:
    return m.BoardNetwork(
        **{k: v for k, v in asdict(n.status).items() if k != "since_floor"},  # pages' wording only
        name=n.name,
        kind=n.kind,
        lines=[m.BoardCell.model_validate(c) for c in n.lines.values()],
        flows=[m.BoardCell.model_validate(c) for c in n.flows],
        checks=[m.BoardCell.model_validate(c) for c in n.checks],
    )


def _board_network_json(n: NetworkView) -> bytes:
    return model_bytes(_board_network(n))


def network_summary(board: States, name: str, network: Network) -> m.NetworkSummary:
    shown = _shown(board.get(ComponentRef("network", name)))
    return m.NetworkSummary(id=name, name=network.name, kind=network.kind, **shown)


def flow_status(settings: Settings, board: States, network: str, flow: str) -> m.FlowStatus:
    ref, label = ComponentRef("flow", network, flow), settings.flows[flow].label
    return m.FlowStatus(id=flow, key=ref.key, label=m.BilingualText(fr=label.fr, en=label.en), **_shown(board.get(ref)))


def line_status(settings: Settings, board: States, network: str, line: str) -> m.LineStatus:
    ref, label = ComponentRef("line", network, line), settings.lines[line].label
    requires, optional = settings.networks[network].requirements(line, settings.lines)
    status = board.get(ref)
    fr, en = (explain(settings, board, network, line, status, lang) for lang in LANGS)
    return m.LineStatus(
        id=line,
        key=ref.key,
        label=m.BilingualText(fr=label.fr, en=label.en),
        detail=status.detail if status else "",
        affected=m.BilingualText(fr=fr[0], en=en[0]) if fr[0] else None,
        scope=m.BilingualText(fr=fr[1], en=en[1]) if fr[1] else None,
        requires=list(requires),
        optional=list(optional),
        **_shown(status),
    )


def kept_line_status(
    pieces: Fragments, settings: Settings, board: Snapshot, network: str, line: str
) -> tuple[m.LineStatus, bytes]:
    """`line_status` and its JSON, made again only when the network's view is another: a view is kept while every
    status it read is the same object (the line's own, and each upstream flow its words name) and the config is the
    same — what `line_status` reads, in either language (which statuses `explain` reads depends on states, never on
    the language: the French view stands for both, and no English one is built for it)."""
    view = _network_view(settings, board, network, "fr")

    def make() -> tuple[m.LineStatus, bytes]:
        shown = line_status(settings, board, network, line)
        return shown, model_bytes(shown)

    return pieces.keep(("line", network, line), (settings, view), make)


def _network_view(settings: Settings, board: Snapshot, network: str, lang: Lang) -> NetworkView:
    return next(n for n in board_view(settings, board, lang).networks if n.id == network)


def checks_json(
    pieces: Fragments, board: States, memories: Callable[[str], CheckMemory | None], name: str, network: Network
) -> bytes:
    """The JSON of `network`'s checks (`check_json`'s, joined by commas: the inside of a list), joined again only
    when one of them changed."""
    keys = pieces.keep(("check keys", name), (network,), lambda: _check_keys(name, network))
    statuses = tuple(board.get(key) for key in keys)
    memory = tuple(memories(key) for key in keys)
    return pieces.keep(
        ("checks", name),
        (network, *statuses, *memory),
        lambda: b",".join(check_json(pieces, board, memories, name, check) for check in network.checks),
    )


def _check_keys(name: str, network: Network) -> list[str]:
    return [ComponentRef.for_check(name, check.flow, check.name).key for check in network.checks]


def check_json(
    pieces: Fragments, board: States, memories: Callable[[str], CheckMemory | None], network: str, check: Check
) -> bytes:
    """`check_status`'s JSON, encoded again only when the check's config, status or memory is another object (each
    is frozen: the board replaces it when it changes)."""
    key = ComponentRef.for_check(network, check.flow, check.name).key
    status, memory = board.get(key), memories(key)
    return pieces.keep(
        ("check", key), (check, status, memory), lambda: model_bytes(check_status(board, memories, network, check))
    )


def check_status(
    board: States, memories: Callable[[str], CheckMemory | None], network: str, check: Check
) -> m.CheckStatus:
    ref = ComponentRef.for_check(network, check.flow, check.name)
    memory = memories(ref.key)
    return m.CheckStatus(
        id=check.name,
        key=ref.key,
        network=network,
        flow=check.flow,
        kind=check.kind,
        description=check.title("fr") if check.description else "",
        interval_s=check.interval,
        last_result_at=memory.last_result_at if memory else None,
        consecutive_failures=memory.fails.count if memory else 0,
        **_shown(board.get(ref)),
    )


def dependencies(board: States, network: Network, line: str | None = None) -> list[m.DependencyStatus]:
    """The upstream flows `network` (or only its `line`) relies on, with their state now."""
    found = []
    for dep in network.depends_on:
        if line is None or not dep.lines or line in dep.lines:
            upstream = _shown(board.get(ComponentRef("flow", dep.network, dep.flow)))
            found.append(
                m.DependencyStatus(
                    network=dep.network,
                    flow=dep.flow,
                    lines=list(dep.lines),
                    state=upstream["state"],
                    since=upstream["since"],
                )
            )
    return found


def incidents_page(declarations: Declarations, status: str, limit: int, offset: int) -> tuple[list[Incident], bool]:
    """Blocking: a page of incidents newest first, and whether another page follows."""
    if status != "resolved":
        found = declarations.incidents(open_only=status == "open", limit=limit + 1, offset=offset)
        return found[:limit], len(found) > limit
    # The store filters open incidents only: scan newest first for resolved ones, a chunk at a time.
    resolved: list[Incident] = []
    scanned, chunk = 0, 200
    while len(resolved) < offset + limit + 1:
        batch = declarations.incidents(limit=chunk, offset=scanned)
        resolved += [i for i in batch if not i.is_open]
        scanned += len(batch)
        if len(batch) < chunk:
            break
    return resolved[offset : offset + limit], len(resolved) > offset + limit


_SLUG = "[a-z0-9][a-z0-9_-]{0,62}"
NETWORK = PathParam("network", "a network's id, e.g. viamedis", {"type": "string", "pattern": SLUG})
LINE = PathParam("line", "a service line's id, e.g. optique", {"type": "string", "pattern": SLUG})
COMPONENT = PathParam(
    "component",
    "a component key: network:<network>, flow:<network>/<flow>, line:<network>/<line> or"
    " check:<network>/<flow>/<check>; its slashes may be sent as they are",
    {"type": "string", "pattern": f"^(network:{_SLUG}|(flow|line):{_SLUG}/{_SLUG}|check:{_SLUG}/{_SLUG}/{_SLUG})$"},
    slashes=True,
)
INCIDENT = PathParam("id", "an incident's number", {"type": "integer", "minimum": 1, "maximum": m.MAX_ID})

OPERATIONS: list[Operation] = [
    Operation("/api/v1/status", _answer(status), "getStatus", "The whole board in one language", m.BoardAnswer,
              m.StatusQuery, errors=(400,)),
    Operation("/api/v1/networks", _answer(networks), "listNetworks", "Every network and its state", m.NetworksAnswer),
    Operation("/api/v1/networks/{network}", _answer(network), "getNetwork",
              "A network with its lines, flows, checks and dependencies", m.NetworkAnswer, None, (NETWORK,), (404,)),
    Operation("/api/v1/networks/{network}/lines/{line}", _answer(line), "getLine",
              "A service line's state and the checks that feed it", m.LineAnswer, None, (NETWORK, LINE), (404,)),
    Operation("/api/v1/checks", _answer(checks), "listChecks", "Checks and their last state (never a URL or header)",
              m.ChecksAnswer, m.ChecksQuery, errors=(400, 404)),
    Operation("/api/v1/history/{component}", _answer(history), "getHistory",
              "A component's transitions and its availability over 1, 7, 30 and 90 days", m.HistoryAnswer,
              m.HistoryQuery, (COMPONENT,), (400, 404, 503)),
    Operation("/api/v1/availability/{component}", _answer(availability), "getAvailability",
              "A component's time-weighted availability and coverage over a window", m.AvailabilityAnswer,
              m.AvailabilityQuery, (COMPONENT,), (400, 404, 503)),
    Operation("/api/v1/incidents", _answer(incidents), "listIncidents", "Incidents, newest first, by pages",
              m.IncidentsAnswer, m.IncidentsQuery, errors=(400, 503)),
    Operation("/api/v1/incidents/{id}", _answer(incident), "getIncident", "One incident with its updates",
              m.IncidentAnswer, None, (INCIDENT,), (400, 404, 503)),
    Operation("/api/v1/maintenance", _answer(maintenance), "listMaintenance",
              "Running and upcoming maintenance occurrences (recurring windows expanded)", m.MaintenanceAnswer,
              m.MaintenanceQuery, errors=(400, 503)),
    Operation("/api/v1/openapi.json", openapi, "getOpenApi", "This document (OpenAPI 3.1)", None),
]  # fmt: skip


# Answers read from the store: always built afresh (the store may hold a transition the board's version does not
# show yet), but kept, so that while the store is down or hung the last good one is served, with its age.
FROM_STORE = frozenset({"getHistory", "getAvailability", "listIncidents", "getIncident", "listMaintenance"})


def _route(op: Operation) -> Route:
    endpoint = op.endpoint
    if op.operation_id in FROM_STORE:
        params = tuple(op.query.model_fields) if op.query is not None else ()
        endpoint = cached(endpoint, params=params, always_fresh=True)
    return Route(op.route_path, endpoint, methods=["GET"])


def api_routes() -> list[Route]:
    """The routes of /api/v1; unknown paths under its trees answer a JSON 404 (as documented), never a text one."""
    routes = [_route(op) for op in OPERATIONS]
    routes += [
        Route(f"/api/v1/{tree}/{{rest:path}}", no_such_path, methods=["GET"]) for tree in ("networks", "incidents")
    ]
    return routes
