"""The board as a view: networks × lines with state, since when and source, in one language."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from ..config import Network, Settings
from ..errors import StoreError
from ..i18n import SOURCE_LABELS, STATE_LABELS, Lang
from ..models import ComponentRef, ComponentStatus, Source, State
from ..snapshot import Snapshot
from ..store import Store
from ..store.housekeeping import component_keys
from .affected_text import explain


@dataclass(frozen=True)
class Cell:
    """One component as shown: state word, since when, where the status comes from."""

    id: str
    label: str
    state: State
    state_label: str
    since: datetime | None
    source: Source
    source_label: str
    progress: float
    detail: str
    affected: str = ""  # raised by a dependency: its state for whom ("Indisponible pour les assurés dont …")
    scope: str = ""  # that dependency's scope alone ("assurés dont le tiers payant est géré par Viamedis")
    cause: str = ""  # the flow at fault and what it means at the counter ("vérification des droits … indisponible")
    action: str = ""  # what a practitioner does meanwhile, in one line
    meaning: str = ""  # recovering: what its percentage means ("environ 1 prise en charge sur 2 aboutit ; …")
    # `since` is tpmon's first sight of the component (its first start, the start of a replayed history), not an
    # event: the state may be older, and a page says "since at least"
    since_floor: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state.value,
            "state_label": self.state_label,
            "since": self.since.isoformat() if self.since else None,
            "source": self.source.value,
            "progress": self.progress,
            "detail": self.detail,
            "affected": self.affected or None,
            "scope": self.scope or None,
            "cause": self.cause or None,
            "action": self.action or None,
            "meaning": self.meaning or None,
        }


@dataclass(frozen=True)
class NetworkView:
    id: str
    name: str
    kind: str
    status: Cell
    lines: dict[str, Cell]
    flows: list[Cell]
    checks: list[Cell]


@dataclass
class BoardView:
    lang: Lang
    line_ids: list[str]
    line_labels: dict[str, str]
    networks: list[NetworkView] = field(default_factory=list)
    checked_at: datetime | None = None

    @property
    def overall(self) -> State:
        from ..models import worst

        return worst([n.status.state for n in self.networks]) if self.networks else State.UNKNOWN

    def as_json(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "networks": [
                {
                    **n.status.as_json(),
                    "name": n.name,
                    "kind": n.kind,
                    "lines": [c.as_json() for c in n.lines.values()],
                    "flows": [c.as_json() for c in n.flows],
                    "checks": [c.as_json() for c in n.checks],
                }
                for n in self.networks
            ],
        }


def _floor(key: str, since: datetime | None, first_seen: Mapping[str, datetime] | None) -> bool:
    """Whether `since` is only a lower bound: no transition of the component is known before it (when the store
    could not tell, `first_seen` is empty and every date is one: "since at least" is always true)."""
    if since is None or first_seen is None:
        return False
    first = first_seen.get(key)
    return first is None or since <= first


def _cell(
    ref: ComponentRef,
    label: str,
    status: ComponentStatus | None,
    lang: Lang,
    first_seen: Mapping[str, datetime] | None = None,
) -> Cell:
    state = status.state if status else State.UNKNOWN
    source = status.source if status else Source.NONE
    return Cell(
        id=ref.check or ref.name or ref.network,
        label=label,
        state=state,
        state_label=STATE_LABELS[state][lang],
        since=status.since if status else None,
        source=source,
        source_label=SOURCE_LABELS[source][lang],
        progress=status.progress if status else 0.0,
        detail=status.detail if status else "",
        since_floor=_floor(ref.key, status.since if status else None, first_seen),
    )


class States(Protocol):
    """What a view reads: each component's status, and when the last probe result arrived (a board, or the
    site's snapshot of it)."""

    @property
    def checked_at(self) -> datetime | None: ...

    def get(self, ref: ComponentRef | str) -> ComponentStatus | None: ...


# the views of the latest snapshots: every page of one snapshot (a network's, each of its lines', the home page…)
# shares one view per language instead of building the whole board again (what made an export O(networks²))
_MEMO_SIZE = 8
_memo: list[tuple[Snapshot, Settings, Lang, Mapping[str, datetime] | None, BoardView]] = []
_memo_lock = threading.Lock()


@dataclass
class _FirstSights:
    """A store's first sights: each component's once read (a stored first transition is a fact), and the answer for
    the last config — the same dict object while no new first sight is found, so that pages compare it by `is`."""

    known: dict[str, datetime] = field(default_factory=dict)
    settings: Settings | None = None
    answer: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))  # replaced, never changed
    missing: list[str] = field(default_factory=list)  # the config's components with no first sight yet


_first_seen: weakref.WeakKeyDictionary[Store, _FirstSights] = weakref.WeakKeyDictionary()


def first_sights(store: Store, settings: Settings, *, store_up: bool = True) -> Mapping[str, datetime]:
    """When tpmon first saw each component (its first stored transition), for `board_view`'s `first_seen`;
    blocking (one grouped read of the components not seen yet). Empty when the store is down or fails: every date
    is then told as a lower bound. Read-only, and the very same object from one page to the next while no
    component is seen for the first time."""
    if not store_up:
        return {}
    with _memo_lock:
        sights = _first_seen.setdefault(store, _FirstSights())
        if sights.settings is not settings:  # another config: its keys listed once
            sights.settings, sights.missing = settings, list(component_keys(settings))
            _answer(sights, settings)
        wanted, answer = sights.missing, sights.answer
    if not wanted:
        return answer
    try:
        found = store.first_transitions(wanted)
    except StoreError:
        return {}
    if not found:
        return answer
    with _memo_lock:
        sights.known.update(found)
        if sights.settings is not settings:  # another config came meanwhile: this answer is not kept
            return MappingProxyType({key: sights.known[key] for key in component_keys(settings) if key in sights.known})
        return _answer(sights, settings)


def _answer(sights: _FirstSights, settings: Settings) -> Mapping[str, datetime]:
    """Under the lock: `settings`' components first seen, kept as `sights.answer` (a new read-only object, which
    `board_view` keeps without a copy), and those still missing."""
    sights.missing = [key for key in sights.missing if key not in sights.known]
    keys = component_keys(settings)
    sights.answer = MappingProxyType({key: sights.known[key] for key in keys if key in sights.known})
    return sights.answer


def board_view(
    settings: Settings, board: States, lang: Lang, first_seen: Mapping[str, datetime] | None = None
) -> BoardView:
    """The board in `lang`; with `first_seen` (`first_sights`), each cell says whether its `since` is only tpmon's
    first sight of it. A snapshot's view is built once per language and `first_seen` and shared: read-only."""
    if not isinstance(board, Snapshot):  # a board that moves: built each time
        return _build(settings, board, lang, first_seen)
    with _memo_lock:
        for shown, config, said, seen, view in _memo:
            if shown is board and config is settings and said == lang and (seen is first_seen or seen == first_seen):
                return view
    view = _build(settings, board, lang, first_seen)
    with _memo_lock:
        # first sights from `first_sights` are read-only (a new one is a new object): kept as they are
        kept = first_seen if first_seen is None or isinstance(first_seen, MappingProxyType) else dict(first_seen)
        _memo.insert(0, (board, settings, lang, kept, view))
        del _memo[_MEMO_SIZE:]
    return view


def _build(settings: Settings, board: States, lang: Lang, first_seen: Mapping[str, datetime] | None) -> BoardView:
    used = {line for network in settings.networks.values() for line in network.lines}
    line_ids = [line for line in settings.lines if line in used]
    view = BoardView(lang, line_ids, {line: getattr(settings.lines[line].label, lang) for line in line_ids})
    view.checked_at = board.checked_at
    with _memo_lock:
        if _kept_from[0] is not settings:  # another config: no view of the previous one is of use
            _kept.clear()
            _kept_from[0] = settings
    for name, network in settings.networks.items():
        key = (name, lang, first_seen is not None)
        with _memo_lock:
            kept = _kept.get(key)
        if kept is not None and kept.holds(settings, board, first_seen):
            view.networks.append(kept.view)
            continue
        reading = _Reading(board, first_seen)
        built = _network_view(settings, reading, lang, reading.sights, view.line_labels, name, network)
        with _memo_lock:
            _kept[key] = _Kept(settings, tuple(reading.read.items()), tuple(reading.seen.items()), built)
        view.networks.append(built)
    return view


def _network_view(
    settings: Settings,
    board: States,
    lang: Lang,
    first_seen: Mapping[str, datetime] | None,
    line_labels: Mapping[str, str],
    name: str,
    network: Network,
) -> NetworkView:
    net_ref = ComponentRef("network", name)
    lines = {}
    for line in network.lines:
        ref = ComponentRef("line", name, line)
        shown = board.get(ref)
        said = explain(settings, board, name, line, shown, lang)
        lines[line] = replace(_cell(ref, line_labels[line], shown, lang, first_seen), **said._asdict())
    flows = [
        _cell(
            ComponentRef("flow", name, flow),
            getattr(d.label, lang),
            board.get(ComponentRef("flow", name, flow)),
            lang,
            first_seen,
        )
        for flow, d in settings.flows.items()
        if flow in network.flow_names(settings.flows)
    ]
    checks = []
    for check in network.checks:
        ref = ComponentRef.for_check(name, check.flow, check.name)
        checks.append(_cell(ref, check.title(lang), board.get(ref), lang, first_seen))
    status = _cell(net_ref, network.name, board.get(net_ref), lang, first_seen)
    return NetworkView(name, network.name, network.kind, status, lines, flows, checks)


class _Reading:
    """A board (and first sights) that notes every status (and first sight) a network's view reads."""

    def __init__(self, board: States, first_seen: Mapping[str, datetime] | None) -> None:
        self.board = board
        self.read: dict[str, ComponentStatus | None] = {}
        self.seen: dict[str, datetime | None] = {}
        self.sights = _Sights(first_seen, self.seen) if first_seen is not None else None

    @property
    def checked_at(self) -> datetime | None:
        return self.board.checked_at

    def get(self, ref: ComponentRef | str) -> ComponentStatus | None:
        status = self.board.get(ref)
        self.read[ref if isinstance(ref, str) else ref.key] = status
        return status


class _Sights(Mapping[str, datetime]):
    """First sights, noting each one read (`_floor` reads them with `get`)."""

    def __init__(self, found: Mapping[str, datetime], seen: dict[str, datetime | None]) -> None:
        self.found, self.seen = found, seen

    def __getitem__(self, key: str) -> datetime:
        at = self.found.get(key)
        self.seen[key] = at
        if at is None:
            raise KeyError(key)
        return at

    def __iter__(self) -> Iterator[str]:
        return iter(self.found)

    def __len__(self) -> int:
        return len(self.found)


@dataclass(frozen=True)
class _Kept:
    """A network's view and everything it was built from: the config, each status and first sight it read."""

    settings: Settings
    read: tuple[tuple[str, ComponentStatus | None], ...]
    seen: tuple[tuple[str, datetime | None], ...]
    view: NetworkView

    def holds(self, settings: Settings, board: States, first_seen: Mapping[str, datetime] | None) -> bool:
        """Whether this view is what building it again from `board` would give: the same config, the very same
        status objects (the board replaces a status that changes), the same first sights."""
        if settings is not self.settings:
            return False
        if any(board.get(key) is not status for key, status in self.read):
            return False
        return first_seen is None or all(first_seen.get(key) == at for key, at in self.seen)


# each network's last view, by (network, language, with first sights): a new snapshot's view takes the networks
# none of whose shown statuses changed from here (a change of one network renders one network again, not 30)
_kept: dict[tuple[str, Lang, bool], _Kept] = {}
_kept_from: list[Settings | None] = [None]
