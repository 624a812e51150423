"""The first page: the whole picture in one sentence, the matrix, incidents, reactivation timelines, maintenance."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from markupsafe import Markup

from ..errors import StoreError
from ..i18n import PARIS, Lang
from ..models import ComponentRef, State, Transition
from ..store.store import Store
from .board_view import BoardView, Cell, NetworkView, board_view, first_sights
from .incident_view import declarations_view
from .page_cache import PageCache
from .reactivation_timeline import Episode, episodes
from .render import Links, PageArgs, render, render_macro
from .site_context import SiteContext

__all__ = [
    "FILTER",
    "TIMELINE_DAYS",
    "LineEpisode",
    "LineList",
    "NowGroup",
    "NowRow",
    "build_index",
    "line_episodes",
    "line_lists",
    "now_groups",
]

TIMELINE_DAYS = 30
T = TypeVar("T")
_STILL_OUT = (State.DOWN, State.PARTIAL, State.RECOVERING)
_MARGIN = timedelta(minutes=2)  # the pages under one stamp (one minute) ask for windows starting within it


@dataclass(frozen=True)
class LineEpisode:
    """An outage of one network's line, with the names to show."""

    network: str
    network_name: str
    line: str
    line_label: str
    episode: Episode
    steps: Markup  # its steps as the pages show them (macros.html's episode_steps), rendered once (`steps_html`)


def _read_now(_key: Hashable, read: Callable[[], T]) -> T:
    return read()


@dataclass
class _Kept:
    """A store's line transitions of the window, by id, as last read (each made a Transition once)."""

    rows: dict[int, Transition] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_kept_lines: weakref.WeakKeyDictionary[Store, _Kept] = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()


def line_history(store: Store, ref: ComponentRef, limit: int) -> list[Transition]:
    """Blocking: the last `limit` transitions of line `ref`, newest first (one read of their ids, and of the rows
    not read before: those of the 30-day window are)."""
    with _kept_lock:
        kept = _kept_lines.setdefault(store, _Kept())
    with kept.lock:
        return store.transitions_known(ref, known=kept.rows, limit=limit)


def _line_transitions(store: Store, since: datetime) -> dict[str, list[Transition]]:
    """Blocking: every line's transitions at or after `since`, newest first, by line key (one read of their ids, and
    of the rows not read before)."""
    with _kept_lock:
        kept = _kept_lines.setdefault(store, _Kept())
    with kept.lock:
        window = store.transitions_of_kind("line", since=since, known=kept.rows)
    found: dict[str, list[Transition]] = {}
    for transition in window:
        found.setdefault(transition.ref.key, []).append(transition)
    return found


def _episodes_of(
    store: Store, keys: set[str], current: dict[str, State], now: datetime, pages: PageCache | None = None
) -> dict[str, list[Episode]]:
    """Each line's outages going on at some time in the window; one read for all lines (once per stamp, shared by
    every page and language showing outages), plus the older history of the lines that were already out when
    the window began (their outage started before it). Without `pages`, read each time."""
    since = now - timedelta(days=TIMELINE_DAYS)
    reuse = pages.reuse if pages is not None else _read_now
    # read from a little earlier than any page under this stamp (its minute) asks, each page taking its own window
    window = reuse(("line transitions",), lambda: _line_transitions(store, since - _MARGIN))
    found: dict[str, list[Episode]] = {}
    for key in keys:
        mine = [transition for transition in window.get(key, ()) if transition.at >= since]
        first = min(mine, key=lambda t: (t.at, t.recorded_at)) if mine else None
        out_at_start = first.previous in _STILL_OUT if first else current.get(key) in _STILL_OUT
        if out_at_start:
            ref = ComponentRef.parse(key)
            mine = reuse(("transitions", key, 1000), lambda ref=ref: store.transitions(ref, limit=1000))  # type: ignore[misc]
        if shown := episodes(mine, since):
            found[key] = shown
    return found


def _every_lines_episodes(services: SiteContext, now: datetime) -> dict[str, list[Episode]]:
    """Blocking: every line's outages of the window ending at `now`, by line key."""
    snapshot = services.snapshot()
    current: dict[str, State] = {}
    for name, net in snapshot.settings.networks.items():
        for offered in net.lines:
            ref = ComponentRef("line", name, offered)
            status = snapshot.get(ref)
            current[ref.key] = status.state if status else State.UNKNOWN
    return _episodes_of(services.store, set(current), current, now, services.pages)


def line_episodes(
    services: SiteContext, lang: Lang, network: str | None = None, line: str | None = None
) -> list[LineEpisode]:
    """Outages of lines (of `network`, of its `line`) going on at some time in the last 30 days (to the minute),
    the ongoing ones first, then newest first. Every line's are found once per stamp and minute: the home page in
    each language, the network's and the lines' pages of a change all show them."""
    settings = services.snapshot().settings
    now = services.clock().replace(second=0, microsecond=0)
    found = services.pages.reuse(("line episodes", now), lambda: _every_lines_episodes(services, now))
    shown = [
        LineEpisode(
            name,
            settings.networks[name].name,
            offered,
            getattr(settings.lines[offered].label, lang),
            episode,
            steps_html(services.pages, episode, lang),
        )
        for name, net in settings.networks.items()
        if network is None or name == network
        for offered in net.lines
        if line is None or offered == line
        for episode in found.get(ComponentRef("line", name, offered).key, [])
    ]
    return sorted(shown, key=lambda e: (not e.episode.open, -e.episode.started.timestamp()))


def steps_html(pages: PageCache, episode: Episode, lang: Lang) -> Markup:
    """An outage's steps in `lang`, rendered once for every page and publication showing it while they say the same:
    the first page shows every line's outages of the last 30 days (each step dated in words), re-read after every
    change; a new step, or the outage's end, is another key (its words are all in the key: no object to compare)."""
    steps = tuple(episode.steps)
    return pages.fragments.render(
        ("episode steps", episode.key, lang, steps, episode.open),
        (),
        lambda: render_macro("macros.html", "episode_steps", lang, Links(lang), episode),
    )


def matrix_row(
    pages: PageCache, network: NetworkView, shown: tuple[str, ...], lang: Lang, links: Links, now: datetime
) -> Markup:
    """A network's row of the grid (the lines `shown`), rendered once per language and kind of links while its view is
    the same (a network's view is kept while none of its statuses changes): a change renders its network's row."""
    return pages.fragments.render(
        ("matrix row", network.id, lang, links.exported, shown, now.astimezone(PARIS).year),  # the year: its dates
        (network,),
        lambda: render_macro("macros.html", "matrix_row", lang, links, network, shown, now),
    )


_NOT_WELL = (State.DOWN, State.PARTIAL, State.RECOVERING, State.MAINTENANCE, State.UNKNOWN, State.DEGRADED)
FILTER = "domaine"  # ?domaine=optique: the first page for one service line


@dataclass(frozen=True)
class NowRow:
    """Lines of one network that share a trouble and its start: one row of the first screen, each line a link."""

    network: NetworkView
    cells: list[Cell]
    since: datetime | None

    @property
    def since_floor(self) -> bool:
        """`since` is tpmon's first sight of these lines, not the start of their trouble."""
        return any(cell.since_floor for cell in self.cells)


@dataclass(frozen=True)
class NowGroup:
    """Lines in the same state for the same reason, with the same thing to do: the first screen's answer."""

    state: State
    progress: float  # recovering: the share back
    said: str  # for whom (a dependency), or the flow at fault, in words
    action: str
    meaning: str
    rows: list[NowRow]

    @property
    def count(self) -> int:
        """How many lines it holds."""
        return sum(len(row.cells) for row in self.rows)


def now_groups(view: BoardView, line: str | None = None) -> list[NowGroup]:
    """What does not work now (of `line` only, if given): the lines not operational, the worst state first, grouped
    by what is said of them (state, reason, action), and in each group one row per network and start."""
    found: dict[tuple[State, float, str, str, str], dict[tuple[str, datetime | None], list[Cell]]] = {}
    networks = {n.id: n for n in view.networks}
    for state in _NOT_WELL:
        for network in view.networks:
            for cell in network.lines.values():
                if cell.state is not state or (line is not None and cell.id != line):
                    continue
                progress = cell.progress if state is State.RECOVERING else 0.0
                key = (state, progress, cell.affected or cell.cause, cell.action, cell.meaning)
                found.setdefault(key, {}).setdefault((network.id, cell.since), []).append(cell)
    return [
        NowGroup(
            state,
            progress,
            said,
            action,
            meaning,
            [NowRow(networks[network], cells, since) for (network, since), cells in rows.items()],
        )
        for (state, progress, said, action, meaning), rows in found.items()
    ]


@dataclass(frozen=True)
class LineList:
    """One service line in the phone's list: the networks where it does not work (each said with its state and since
    when), then those where it works, said together."""

    id: str
    label: str
    troubled: list[tuple[NetworkView, Cell]]
    working: list[NetworkView]


def line_lists(view: BoardView, line: str | None = None) -> list[LineList]:
    """The grid as a list per service line (of `line` only, if given), networks in the board's order."""
    shown = [line] if line is not None else view.line_ids
    lists = []
    for line_id in shown:
        offered = [(network, network.lines[line_id]) for network in view.networks if line_id in network.lines]
        troubled = [(network, cell) for network, cell in offered if cell.state is not State.OPERATIONAL]
        working = [network for network, cell in offered if cell.state is State.OPERATIONAL]
        lists.append(LineList(line_id, view.line_labels[line_id], troubled, working))
    return lists


def build_index(services: SiteContext, lang: Lang, links: Links, args: PageArgs) -> str | None:
    """`/` and `/?domaine=optique`: blocking (reads the last 30 days of transitions); None (404) for a domaine that
    is not a line of the board (only known values make a page, and a cache entry)."""
    now, snapshot = services.clock(), services.snapshot()
    sights = first_sights(services.store, snapshot.settings, store_up=services.store_up)
    view = board_view(snapshot.settings, snapshot, lang, sights)
    line = args.get(FILTER)
    if line is not None and line not in view.line_ids:
        return None
    declared = declarations_view(snapshot, lang)
    timelines, history_ok = [], False
    if services.store_up:  # a store known down is not asked: the board alone answers at once
        try:
            timelines = [e for e in line_episodes(services, lang) if line is None or e.line == line]
            history_ok = True
        except StoreError:  # the board is in memory: the page still answers, without the history
            pass
    path = "/" if line is None else f"/?{FILTER}={line}"
    shown = (line,) if line is not None else tuple(view.line_ids)
    return render(
        "index.html",
        lang,
        links,
        path,
        view=view,
        line=line,
        groups=now_groups(view, line),
        rows=[matrix_row(services.pages, network, shown, lang, links, now) for network in view.networks],
        line_lists=line_lists(view, line),
        declared=declared,
        timelines=timelines,
        history_ok=history_ok,
        timeline_days=TIMELINE_DAYS,
        now=now,
    )
