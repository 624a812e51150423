"""`web.publish_dir`: `tpmon serve` keeps the static export in a folder, within a second of every change, so that
nginx or a CDN serves the readers of a national outage at the speed of files.

The first publication is a whole export, each page rendered once, checked and synced off the event loop, swapped
in as `tpmon export` does. Then, woken by every change of the board (`wake`) or every `POLL` seconds (what ops
declared, the history, the minute), what changed since the last one is published: the snapshot's statuses are
compared, and only the pages and files of the networks whose components changed (and of the networks depending
on them) are rendered again — but a line's page showing none of the components that changed, which says the
current states already, goes with the background — with the pages showing every network (home, Statuspage and
/api/v1 documents);
incidents' pages and the feeds (incident updates) when what ops declared changes. The other units are rendered
again in the background, `SLICE` seconds of work per cycle (giving way to any change), when the history or what
ops declared changed, after a reload, and at least every `REFRESH_EVERY` seconds: each page says the time of
the last check it was written with, so none shows an old time for long, and none a recent one when it is old.

After a change, the documents clients poll are written first, then the network's page and the home page, each
as soon as it is rendered, then the rest every `FLUSH_EVERY` seconds of rendering. A newer change goes before
the rest of an older one's files (put off, then `SLICE` seconds of them per cycle, never starved), and before the
rest of its pages once the cycle has rendered for `PAGES_UNCUT` seconds, if it changed a network with no page
left in the cycle (a line page rendered after a change of its own network shows it, and is not rendered again for
it); the folder is
said to hold the live state (`published_at`) only once they are written. A file the app could only answer late
(its last rendering, with an `Age`) is written and asked again first at the next cycle. Only files whose bytes
changed are written, each into a temporary file beside it, synced, then renamed over it: a reader of the folder
gets the previous file or the new one, never a part, even after a crash. Files no unit writes any more (a
network removed, a shorter list) are deleted. When the folder refuses a write (disk full, permissions), it is
said once in the log, counted, shown in readiness, and tried again every `RETRY_EVERY` seconds; the files
already there keep saying how old they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp

from ..config import Settings
from ..errors import StoreError
from ..models import ComponentRef
from .export_folder import ExportError, check_target, staging, swap_in, sync_folder, write_marker
from .site_context import SiteContext
from .static_export import (
    Inventory,
    Site,
    Unit,
    broken_links_in,
    export_client,
    units,
    write_unit,
)

__all__ = [
    "BEHIND_AFTER",
    "POLL",
    "REFRESH_EVERY",
    "RETRY_EVERY",
    "SLICE",
    "PublishReport",
    "Publisher",
    "write_atomically",
]

log = logging.getLogger("tpmon.publish")

POLL = 0.2  # seconds between looks at the snapshot: a change is in the folder within POLL + its rendering
SLICE = 0.2  # seconds of background rendering per cycle, after the changes
REFRESH_EVERY = 300.0  # seconds: every unit is rendered again at least this often (the time its pages say)
RETRY_EVERY = 5.0  # seconds between attempts while the folder refuses writes or a page cannot be rendered
# seconds a change may go unpublished before it is said (log; `tpmon_publish_behind_seconds` shows it all along):
# a change is in the folder within a second or two, 5 s at most at load 10, ~20 s in a storm of changes on that
# machine (tests/benchmarks/publish.py); past a minute, the pages say an older state than the JSON or the live site
BEHIND_AFTER = 60.0
WATCH_EVERY = 5.0  # seconds between looks at how far behind the folder is (a task of its own: a stuck cycle too)


@dataclass(frozen=True)
class PublishReport:
    """One publication: files written and deleted, seconds it took (rendering and writing)."""

    written: int
    removed: int
    seconds: float


def write_atomically(root: Path, relative: str, body: bytes, mode: int, *, sync: bool = True) -> Path:
    """Blocking: `root/relative` holds `body`, replaced in one rename (a reader never sees a part of it); the
    bytes are on disk before the rename (a crash never leaves an empty or partial file under its name), and
    with `sync` the rename too. Returns the file's folder (to sync once for many files, without `sync`)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)  # mkstemp makes it 0600: the web server may run as another user
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if sync:
        sync_folder(path.parent)
    return path.parent


def _remove(root: Path, relative: str) -> None:
    """Blocking: delete `root/relative`, then its folders left empty (a removed network's pages)."""
    path = root / relative
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    parent = path.parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:  # not empty (or gone): the folders above are not empty either
            return
        parent = parent.parent


def _dependants(settings: Settings) -> dict[str, frozenset[str]]:
    """network → the networks whose states it may change (itself, and whoever depends on it, transitively)."""
    direct: dict[str, set[str]] = {name: set() for name in settings.networks}
    for name, network in settings.networks.items():
        for dependency in network.depends_on:
            if dependency.network in direct:
                direct[dependency.network].add(name)
    reached: dict[str, frozenset[str]] = {}
    for name in direct:
        seen, todo = {name}, [name]
        while todo:
            for other in direct[todo.pop()]:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        reached[name] = frozenset(seen)
    return reached


LINE_PAGE = "/reseaux/{network}/{line}"


def _shown_by_line(settings: Settings, network: str, line: str) -> frozenset[str]:
    """The components whose status a line's page shows (and nothing else of the board): the line, the flows it
    relies on and their checks, and the other networks' flows its network depends on."""
    config = settings.networks[network]
    required, optional = config.requirements(line, settings.lines)
    flows = {flow for group in required for flow in group.split("|")} | set(optional)
    keys = {ComponentRef("line", network, line).key}
    keys |= {ComponentRef("flow", network, flow).key for flow in flows}
    keys |= {ComponentRef.for_check(network, c.flow, c.name).key for c in config.checks if c.flow in flows}
    keys |= {ComponentRef("flow", dep.network, dep.flow).key for dep in config.depends_on}
    return frozenset(keys)


def _kind(unit: Unit) -> str:
    """What makes a unit change: `static` nothing (the package's files), `incidents` what ops declared, `network`
    its network's statuses, `global` any status, declaration or the minute (the home page's "last checked")."""
    if unit.pattern == "/static/":
        return "static"
    if unit.incident or unit.pattern.startswith(("/incidents", "/api/v1/incidents")) or "/feed." in unit.pattern:
        return "incidents"  # the feeds are incident updates only
    return "network" if unit.network is not None else "global"


# written first after a change, each group as soon as it is rendered: the documents clients poll (a few ms each),
# then the pages most readers look at (a network's, the home page), then the other pages, then the other files
FIRST_DOCUMENTS = (
    "/api/v1/networks/{network}",
    "/api/v1/status",
    "/api/v2/summary.json",
    "/api/v2/status.json",
)
FIRST_PAGES = ("/reseaux/{network}", "/")
FLUSH_EVERY = 0.1  # seconds of rendering between writes after the first groups
# seconds of a cycle during which its pages (a change's line pages) are not cut by a newer change: a network failing
# check by check changes about once a second, and each cycle cut after its first pages put its line pages off to
# the 0.2 s slices, 1.8 s behind the live state at 990 checks (2.9 s at worst); past it (a storm of changes in many
# networks), the newer change's documents go first — unless it changed only networks with pages still to come
PAGES_UNCUT = 0.5
WRITE_THREADS = 4  # files of one batch written at once: their syncs overlap
STORED_WAIT = 0.2  # seconds a change's pages wait for the store to hold what the board saw (else: what it holds)


def _priority(unit: Unit) -> int:
    if unit.pattern in FIRST_DOCUMENTS:
        return 0
    if unit.pattern in FIRST_PAGES:
        return 1
    return 2 if unit.kind == "page" else 3


def _network_of(key: str) -> str:
    return key.partition(":")[2].partition("/")[0]


@dataclass
class Publisher:
    """Keeps `target` a static export of the public app `app` (its lifespan's `state`), served at `origin`."""

    services: SiteContext
    app: ASGIApp
    state: Mapping[str, Any]
    target: Path
    origin: str
    on_published: Callable[[PublishReport], None] = lambda report: None
    on_failed: Callable[[], None] = lambda: None
    # writes what the board has seen (results, transitions) into the store; True when done: a change's pages then
    # read its last results and transitions, once for all of them, not the store's older ones (a read per page)
    store_seen: Callable[[], Awaitable[bool]] | None = None
    published_at: float | None = None  # wall time when the folder was last known to hold the live state
    failures: int = 0
    problem: str | None = None  # why the folder is behind, while it is
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _on_disk: dict[str, bytes] = field(default_factory=dict)  # relative path → bytes, as the folder holds them
    _owner: dict[str, frozenset[str]] = field(default_factory=dict)  # unit address → the files it wrote
    _pending: dict[str, bytes | None] = field(default_factory=dict)  # to write (None: to delete), not yet done
    _units: dict[str, Unit] = field(default_factory=dict)  # by address, from the last inventory
    _kinds: dict[str, list[Unit]] = field(default_factory=dict)  # `global` and `incidents` units, in inventory order
    _of_network: dict[str, list[Unit]] = field(default_factory=dict)  # each network's units, in inventory order
    _rank: dict[str, int] = field(default_factory=dict)  # address → its place in the inventory
    _newer_seen: tuple[Any, set[str]] | None = None  # a snapshot, and the networks changed in it since the cycle began
    _ordered_for: Any = None  # the snapshot the rest of this cycle's units were last put in order for
    # a line page's address → the statuses it shows (`_shown_by_line`), as they were just before its last rendering:
    # one rendered after a newer change (its cycle not cut) is not rendered again for it
    _shown_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _shown_with: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _background: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _deferred: OrderedDict[str, None] = field(default_factory=OrderedDict)  # a change's, put off for a newer change
    _late: dict[str, None] = field(default_factory=dict)  # answered late by the app: rendered again at once
    _seen: tuple[Any, ...] | None = None  # what the last cycle published from
    _statuses: Mapping[str, Any] | None = None
    _dependants: dict[str, frozenset[str]] = field(default_factory=dict)
    _refreshed_at: float = 0.0
    _retry_at: float = 0.0
    _mode: int = 0o644
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _woken_at: float | None = None  # wall time of the first change (wake) since the last cycle began
    _unpublished_since: float | None = None  # wall time of the oldest change taken by a cycle, not all written yet
    _said_behind: bool = False  # this episode of falling behind was logged
    _writers: ThreadPoolExecutor | None = None  # a batch's files written at once (see `_write`)
    _counting: threading.Lock = field(default_factory=threading.Lock)

    def wake(self) -> None:
        """The board changed: publish now rather than at the next poll (from the event loop or any thread)."""
        if self._woken_at is None:
            self._woken_at = self.wall()
        loop = self._loop
        if loop is None:
            return  # not running yet: the first publication takes whatever is current
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    # --- the first publication -----------------------------------------------------------------------------------
    async def publish_all(self) -> PublishReport:
        """A whole export, checked for broken links, swapped in at `target` (its previous content replaced)."""
        started = self.clock()
        self._taking(changed=True)
        snapshot, seen = self.services.snapshot(), self._what()  # what is rendered is at least this
        inventory = await self.services.pages.run(Inventory.read, self.services)
        self._take_inventory(inventory)
        site = Site()
        async with export_client(self.app, self.state, self.origin) as client:
            for unit in self._units.values():
                problem = await self._write_unit(unit, client, site)
                if problem is not None:
                    raise ExportError(problem)
        broken = await self.services.pages.run(broken_links_in, site, self.origin)  # seconds: off the loop
        if broken:
            raise ExportError(f"{len(broken)} link(s) of the export lead nowhere, first {broken[0]}")
        await self.services.pages.run(self._swap, site)
        self._on_disk = dict(site.bodies)
        self._pending.clear()
        self._background.clear()
        self._deferred.clear()
        # a change while it rendered (a page before it, a document after) is published next: compared from here
        self._seen, self._statuses = seen, snapshot.statuses
        self._refreshed_at = self.clock()
        report = PublishReport(site.files, 0, self.clock() - started)
        self._succeeded(report)
        return report

    def _swap(self, site: Site) -> None:
        target = check_target(self.target)
        umask = os.umask(0)
        os.umask(umask)
        self._mode = 0o666 & ~umask
        with staging(target) as root:
            site.save(root)
            for path in root.rglob("*"):
                path.chmod(0o777 & ~umask if path.is_dir() else self._mode)
            write_marker(root, site.files, site.size)
            swap_in(root, target)
        self.target = target

    # --- then, what changed --------------------------------------------------------------------------------------
    def _what(self) -> tuple[Any, ...]:
        """What, besides the statuses, makes pages change: the config, declarations, history, the minute."""
        stamp = self.services.pages.stamp()
        return tuple(stamp) if isinstance(stamp, tuple) else (stamp,)

    def _take_inventory(self, inventory: Inventory) -> None:
        found = {unit.address: unit for unit in units(inventory)}
        for address in self._units.keys() - found.keys():  # gone: its files go too
            for relative in self._owner.pop(address, frozenset()):
                self._pending[relative] = None
            self._background.pop(address, None)
            self._deferred.pop(address, None)
        self._units = found
        self._dependants = _dependants(self.services.settings)
        # a change looks at its networks' units and the pages showing every network, not at every unit (~2,200 at
        # 990 checks, each asked its kind: ~10 ms a cycle)
        self._kinds, self._of_network = {"global": [], "incidents": []}, {}
        for unit in found.values():
            kind = _kind(unit)
            if kind in self._kinds:
                self._kinds[kind].append(unit)
            elif kind == "network" and unit.network is not None:
                self._of_network.setdefault(unit.network, []).append(unit)
        self._rank = {address: rank for rank, address in enumerate(found)}
        self._shown_keys.clear()
        self._shown_with.clear()

    async def publish_changes(self) -> PublishReport | None:
        """Render what changed since the last publication (then some background work) and write it; None when
        there was nothing to do."""
        started = self.clock()
        snapshot = self.services.snapshot()
        seen = self._what()
        previous = self._seen or ()
        self._newer_seen = self._ordered_for = None  # newer changes: compared with this cycle's snapshot
        self._taking(changed=seen != previous)
        urgent = await self._urgent(snapshot.statuses, seen, previous)
        # only the minute passed (the pages' "last check" line): any of it gives way to a change of the board
        minute_only = len(seen) == len(previous) and seen[:-1] == previous[:-1]
        yields_from = 0 if minute_only else 2
        if self.clock() - self._refreshed_at >= REFRESH_EVERY:
            self._background.update(dict.fromkeys(self._units))
            self._refreshed_at = self.clock()
        if not urgent and not self._background and not self._deferred and not self._pending:
            self._seen, self._statuses, self._unpublished_since = seen, snapshot.statuses, None
            self.published_at = self.wall()  # nothing changed: the folder is up to date
            return None
        site = Site()
        failed: str | None = None
        written = removed = 0
        refused: str | None = None
        # the store takes what the board saw while the documents, the home page and the network's page are rendered:
        # its line pages (which show the last results and transitions) wait for it
        storing = self._store_seen() if any(unit.pattern == LINE_PAGE for unit in urgent) else None
        async with export_client(self.app, self.state, self.origin) as client:
            # `owed`: files put off by an earlier cycle get their SLICE below even if this cycle is cut in turn (a
            # board changing during every cycle, as in a storm on a loaded machine, never starves them)
            flushed, interrupted, owed = self.clock(), False, bool(self._deferred)
            for number, unit in enumerate(urgent):
                if storing is not None and unit.pattern == LINE_PAGE:
                    await storing
                    storing = None
                failed = await self._write_unit(unit, client, site) or failed
                self._background.pop(unit.address, None)
                self._deferred.pop(unit.address, None)
                following = urgent[number + 1] if number + 1 < len(urgent) else None
                if following is not None and not minute_only and self._wakeup.is_set():
                    following = self._newer_first(urgent, number + 1, snapshot.statuses)
                if (
                    following is not None
                    and _priority(following) >= yields_from
                    and self._wakeup.is_set()
                    and (
                        minute_only
                        or _priority(following) > 2
                        or self._cuts_pages(snapshot.statuses, started, urgent[number + 1 :])
                    )
                ):
                    # the board changed again: its first files before the rest of this one's (next, first in line)
                    self._deferred.update(dict.fromkeys(rest.address for rest in urgent[number + 1 :]))
                    interrupted = True
                    break
                # the first groups out as soon as they are rendered (the pages one by one), then every FLUSH_EVERY
                first = _priority(unit) == 1 or (_priority(unit) == 0 and (following is None or _priority(following)))
                if (first or self.clock() - flushed >= FLUSH_EVERY) and refused is None:
                    more, fewer, refused = await self._flush_site(site)
                    written, removed, flushed = written + more, removed + fewer, self.clock()
            self._seen, self._statuses = seen, snapshot.statuses  # what is rendered now is what was seen
            sliced = self.clock() + SLICE
            # a change's files put off for a newer one: after that one's first files, SLICE seconds of them whatever
            # comes (never starved by a storm: its pages first, then the oldest first, even when this cycle was cut
            # too); then the background's, until the board changes again
            while (
                (self._deferred and (owed or not interrupted)) or (self._background and not self._wakeup.is_set())
            ) and self.clock() < sliced:
                address = self._next_put_off() if self._deferred else self._background.popitem(last=False)[0]
                queued = self._units.get(address)
                if queued is not None:
                    failed = await self._write_unit(queued, client, site) or failed
        return await self._conclude(site, (written, removed), refused or failed, refused is not None, started)

    async def _conclude(
        self, site: Site, done: tuple[int, int], problem: str | None, refused: bool, started: float
    ) -> PublishReport | None:
        """A cycle's end: what is left of `site` written (unless the folder refused already: then at the next
        attempt), the outcome said; `done`: (files written, deleted) so far."""
        written, removed = done
        if not refused:
            more, fewer, refusal = await self._flush_site(site)
            written, removed, problem = written + more, removed + fewer, refusal or problem
        else:
            self._note(site)
        if problem is not None:
            self._fail(problem)
            return None
        report = PublishReport(written, removed, self.clock() - started)
        self._succeeded(report)
        return report

    def _next_put_off(self) -> str:
        """The put-off unit to render next, taken out of the queue: its pages (a line's page, the other pages)
        before the files of any change, each group the oldest first. Before, a network changing every second (its
        checks failing one by one) put its line pages behind the badges, feeds and documents of its earlier changes
        each time: 2 to 25 s late at 990 checks (tests/benchmarks/publish.py)."""
        address = min(self._deferred, key=lambda queued: _priority(self._units[queued]) if queued in self._units else 3)
        del self._deferred[address]
        return address

    def _store_seen(self) -> asyncio.Future[None] | None:
        """The store taking what the board saw (`store_seen`), awaited at most STORED_WAIT seconds: a slow or down
        store never holds a publication (its pages then say what the store holds)."""
        if self.store_seen is None:
            return None
        writing = asyncio.ensure_future(self.store_seen())

        async def stored() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writing), STORED_WAIT)

        return asyncio.ensure_future(stored())

    async def _urgent(
        self, statuses: Mapping[str, Any], seen: tuple[Any, ...], previous: tuple[Any, ...]
    ) -> list[Unit]:
        """The units to render now, what most readers look at first: those a change since the last cycle reaches,
        and those the app answered late last time."""
        urgent: list[Unit] = []
        changed: set[str] | None = None
        if seen != previous:
            # the page cache's stamp: (config, board version, declarations' version, history's version, minute)
            reloaded = len(seen) != len(previous) or seen[0] != previous[0]
            declared = reloaded or seen[2] != previous[2]
            if declared or seen[3] != previous[3]:  # new incidents, a network added or removed, fresh roll-ups
                self._take_inventory(await self.services.pages.run(Inventory.read, self.services))
                self._background.update(dict.fromkeys(self._units))
            affected, changed = self._affected(statuses), self._changed(statuses)
            urgent.extend(self._kinds.get("global", ()))
            if declared:
                urgent.extend(self._kinds.get("incidents", ()))
            for network in affected:
                for unit in self._of_network.get(network, ()):
                    if changed is not None and unit.pattern == LINE_PAGE and not self._shows(unit, changed):
                        # none of what its page shows changed (another line's trouble): its states are the
                        # folder's already, rendered again after the change's files (its time, last results)
                        self._background[unit.address] = None
                    elif unit.pattern != LINE_PAGE or self._shown(unit, statuses) != self._shown_with.get(unit.address):
                        urgent.append(unit)
                    else:  # rendered after this change already (the last cycle's pages were not cut for it): its
                        # states are the folder's; its history and last results again with the background
                        self._background[unit.address] = None
        late = [self._units[address] for address in self._late if address in self._units]
        self._late.clear()
        chosen = {unit.address for unit in urgent}
        urgent += [unit for unit in late if unit.address not in chosen]
        return sorted(
            urgent, key=lambda unit: (_priority(unit), self._stays(unit, changed), self._rank.get(unit.address, 0))
        )

    @staticmethod
    def _stays(unit: Unit, changed: set[str] | None) -> bool:
        """Whether `unit` is a line's page whose state word stays as it was (only the details it shows changed: a
        check, a flow): such pages come after those of the lines whose state changed — the answer a reader looks
        for, up to 22 pages later otherwise (11 lines in two languages, about 0.2 s at 990 checks)."""
        if unit.pattern != LINE_PAGE or changed is None:
            return False
        params = dict(unit.params)
        return ComponentRef("line", params.get("network", ""), params.get("line", "")).key not in changed

    def _changed(self, statuses: Mapping[str, Any]) -> set[str] | None:
        """The components whose status differs from the last publication's (None: all, nothing published yet)."""
        before = self._statuses
        if before is None:
            return None
        return {key for key, status in statuses.items() if before.get(key) is not status} | (
            before.keys() - statuses.keys()
        )

    def _shows(self, unit: Unit, changed: set[str]) -> bool:
        """Whether the line page `unit` shows one of the `changed` components."""
        params = dict(unit.params)
        settings = self.services.settings
        if params.get("network") not in settings.networks:
            return True
        if params.get("line") not in settings.networks[params["network"]].lines:
            return True
        return not changed.isdisjoint(_shown_by_line(settings, params["network"], params["line"]))

    def _shown(self, unit: Unit, statuses: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The statuses (the very objects) the line page `unit` shows in `statuses`; None if it is not a line of the
        config (a page to render whatever it shows)."""
        keys = self._shown_keys.get(unit.address)
        if keys is None:
            params, settings = dict(unit.params), self.services.settings
            network = settings.networks.get(params.get("network", ""))
            if network is None or params.get("line") not in network.lines:
                return None
            keys = self._shown_keys[unit.address] = tuple(_shown_by_line(settings, params["network"], params["line"]))
        return tuple(statuses.get(key) for key in keys)

    def _newer(self, statuses: Mapping[str, Any]) -> set[str]:
        """The networks the board's newer changes reach since this cycle's `statuses` (once per snapshot)."""
        current = self.services.snapshot()
        if self._newer_seen is None or self._newer_seen[0] is not current:
            self._newer_seen = (current, self._affected(current.statuses, statuses))
        return self._newer_seen[1]

    def _newer_first(self, urgent: list[Unit], start: int, statuses: Mapping[str, Any]) -> Unit:
        """The rest of this cycle's units (from `start`) with the pages of the networks a newer change reached first
        (then the other pages, then the files, each in their order), once per newer snapshot; the next unit. A cycle
        with many networks' pages (the first after the whole export, which catches up with the changes made while it
        was rendered) otherwise made a new change wait for all of them — 3.9 s at 990 checks."""
        current = self.services.snapshot()
        if self._ordered_for is not current:
            self._ordered_for = current
            newer = self._newer(statuses)
            if newer:
                urgent[start:] = sorted(
                    urgent[start:], key=lambda unit: (_priority(unit) > 2, unit.network not in newer)
                )
        return urgent[start]

    def _cuts_pages(self, statuses: Mapping[str, Any], started: float, rest: list[Unit]) -> bool:
        """Whether the board's newer change cuts this cycle (begun at `started`, from `statuses`) before its next
        page: once it has rendered for PAGES_UNCUT seconds, and only for a change of a network with no page in the
        `rest` of this cycle — the pages still to come show that change (each reads the board when it is
        rendered), and the next cycle renders their network's documents and pages for it at once anyway; but the
        pages of a network rendered before the change do not, and a long cycle (the first after the whole export
        renders every network's) kept that change off the folder until its end: 1.6 s at 990 checks."""
        if self.clock() - started < PAGES_UNCUT:
            return False
        ahead = {unit.network for unit in rest if unit.kind == "page"}
        return not self._newer(statuses) <= ahead

    def _affected(self, statuses: Mapping[str, Any], since: Mapping[str, Any] | None = None) -> set[str]:
        """The networks whose pages may differ from the last publication's (or from `since`'s): those with a
        changed status and those depending on them."""
        before = self._statuses if since is None else since
        if before is None:
            return set(self._dependants)
        changed = {_network_of(key) for key, status in statuses.items() if before.get(key) is not status} | {
            _network_of(key) for key in before.keys() - statuses.keys()
        }
        affected: set[str] = set()
        for network in changed:
            affected |= self._dependants.get(network, frozenset({network}))
        return affected

    async def _write_unit(self, unit: Unit, client: httpx.AsyncClient, site: Site) -> str | None:
        """Render `unit` into `site` and note its files; the problem in words when it cannot be rendered (it is
        tried again at the next cycle)."""
        own = Site()
        if unit.pattern == LINE_PAGE:  # what it shows, from the board as it is now (its rendering reads it later)
            shown = self._shown(unit, self.services.snapshot().statuses)
            if shown is not None:
                self._shown_with[unit.address] = shown
        try:
            if await write_unit(unit, self.services, client, own):  # the app's last rendering, not a fresh one:
                self._late[unit.address] = None  # written (it is no older than the folder's), asked again first
                self._shown_with.pop(unit.address, None)
        except (ExportError, StoreError) as exc:
            self._background[unit.address] = None
            self._shown_with.pop(unit.address, None)
            return f"{unit.address} not rendered: {exc}"
        for relative in self._owner.get(unit.address, frozenset()) - own.bodies.keys():
            self._pending[relative] = None  # a page of a list that is shorter now
        self._owner[unit.address] = frozenset(own.bodies)
        site.bodies.update(own.bodies)
        return None

    def _note(self, site: Site) -> None:
        """What `site` holds that the folder does not becomes pending; `site` is emptied."""
        for relative, body in site.bodies.items():
            if self._on_disk.get(relative) != body:
                self._pending[relative] = body
            else:
                self._pending.pop(relative, None)
        site.bodies.clear()

    async def _flush_site(self, site: Site) -> tuple[int, int, str | None]:
        """`_note(site)`, then write what is pending."""
        self._note(site)
        return await self._flush()

    async def _flush(self) -> tuple[int, int, str | None]:
        """Write what is pending: (files written, deleted, why it stopped short)."""
        if not self._pending:
            return 0, 0, None
        done = [0, 0]
        try:
            await self.services.pages.run(self._write, dict(self._pending), done)
        except OSError as exc:
            return done[0], done[1], f"cannot write into {self.target}: {exc.strerror or exc}"
        return done[0], done[1], None

    def _write(self, pending: dict[str, bytes | None], done: list[int]) -> None:
        """Blocking: every pending file written (or deleted), each noted as done as soon as it is; each file's
        bytes on disk before its rename. The renames are not synced: after a crash a file is its previous version
        or this one, whole either way, each saying its age, and tpmon starts again with a whole new export (a
        folder sync per write would add 2 to 4 ms each on this machine's disk, measured by the benchmark). The
        files of one batch are written by WRITE_THREADS threads at once: their syncs, 2 to 15 ms each on a busy
        shared disk, overlap (the file system commits them together) instead of adding up."""
        for relative, body in pending.items():
            if body is None:
                _remove(self.target, relative)
                self._on_disk.pop(relative, None)
                done[1] += 1
                self._written(relative, body)
        files = [(relative, body) for relative, body in pending.items() if body is not None]
        if len(files) == 1:
            self._write_one(*files[0], done)
        elif files:
            if self._writers is None:
                self._writers = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="tpmon-publish-write")
            writes = [self._writers.submit(self._write_one, relative, body, done) for relative, body in files]
            futures.wait(writes)  # each done or failed: none still writing once the batch is said done
            for wrote in writes:
                wrote.result()  # the first error (disk full, permissions) is the batch's

    def _write_one(self, relative: str, body: bytes, done: list[int]) -> None:
        write_atomically(self.target, relative, body, self._mode, sync=False)
        self._on_disk[relative] = body
        with self._counting:
            done[0] += 1
        self._written(relative, body)

    def _written(self, relative: str, body: bytes | None) -> None:
        """`relative` is no longer pending — unless a newer body came meanwhile (noted by the event loop)."""
        if self._pending.get(relative, body) is body:
            self._pending.pop(relative, None)

    # --- outcomes ------------------------------------------------------------------------------------------------
    def _succeeded(self, report: PublishReport) -> None:
        if self.problem is not None:
            log.info("publishing into %s again", self.target)
        self.problem = None
        if not self._deferred:  # else a change's files are still to come: the folder is not the live state yet
            self.published_at = self.wall()
            self._unpublished_since = None  # every change taken by this cycle is written (later ones: `_woken_at`)
        self.on_published(report)

    def _fail(self, problem: str) -> None:
        if self.problem is None:  # said once per episode; the metrics count every failed attempt
            log.error("publishing into %s failed, retrying every %g s: %s", self.target, RETRY_EVERY, problem)
        self.problem = problem
        self.failures += 1
        self._retry_at = self.clock() + RETRY_EVERY
        self.on_failed()

    # --- how far behind ------------------------------------------------------------------------------------------
    def _taking(self, *, changed: bool) -> None:
        """A cycle begins: the changes woken for until now are what it publishes (behind until written); with
        `changed`, something else changed too (declared, history, the minute: no wake for those) — from now."""
        woken, self._woken_at = self._woken_at, None
        if self._unpublished_since is None:
            self._unpublished_since = woken if woken is not None or not changed else self.wall()

    def behind(self) -> float:
        """Seconds since the oldest change of the board (or of what ops declared, the history) that the folder
        does not show yet; 0 when it shows them all. Read from any thread (the metric, at scrape time)."""
        oldest = [at for at in (self._unpublished_since, self._woken_at) if at is not None]
        return max(0.0, self.wall() - min(oldest)) if oldest else 0.0

    def check_behind(self) -> float:
        """`behind()`; logged once when it passes BEHIND_AFTER (a publication stuck or starved: the folder's pages
        say an older state than the live one), and once when it is back under."""
        behind = self.behind()
        if behind >= BEHIND_AFTER and not self._said_behind:
            self._said_behind = True
            log.error(
                "the published folder %s has not shown a change for %.0f s (more than %g s): its pages say an older "
                "state than the live one%s",
                self.target,
                behind,
                BEHIND_AFTER,
                f" ({self.problem})" if self.problem else "",
            )
        elif behind < BEHIND_AFTER and self._said_behind:
            self._said_behind = False
            log.warning("the published folder %s follows the changes again", self.target)
        return behind

    async def _watch(self) -> None:
        while True:
            self.check_behind()
            await asyncio.sleep(WATCH_EVERY)

    async def run(self) -> None:
        """The publishing loop, until cancelled: the whole export first (tried again until it is in place),
        then what changes: at once when the board changes (`wake`), else every POLL seconds. How far behind
        the folder is, is watched by a task of its own (said even while a cycle is stuck)."""
        self._loop = asyncio.get_running_loop()
        watch = self._loop.create_task(self._watch(), name="tpmon-publish-watch")
        try:
            await self._run()
        finally:
            watch.cancel()
            if self._writers is not None:
                self._writers.shutdown(wait=False)

    async def _run(self) -> None:
        while True:
            try:
                await self.publish_all()
                break
            except (ExportError, StoreError, OSError) as exc:
                self._fail(str(exc) if not isinstance(exc, OSError) else f"cannot write: {exc.strerror or exc}")
            await asyncio.sleep(RETRY_EVERY)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), POLL)
            self._wakeup.clear()
            if self.problem is not None and self.clock() < self._retry_at:
                continue
            try:
                await self.publish_changes()
            except (ExportError, StoreError) as exc:
                self._fail(str(exc))
