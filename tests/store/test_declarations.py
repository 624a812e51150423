"""Declarations against every backend: round-trips, lifecycle, and refused inputs that write nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from ops_support import AUDIO, HOUR, OPTIQUE, PEC, SETTINGS, T0, text, update
from sqlalchemy import select

from monitor.declared.incidents import Declared
from monitor.declared.inputs import MAX_TEXT, Bilingual
from monitor.declared.maintenance import MaintenanceWindow, Recurrence
from monitor.errors import IncidentError, NotFound
from monitor.models import ComponentRef, Source, State, Transition
from monitor.store import Batch, Store, WriteRefused, tables
from monitor.store import declaration_store as module
from monitor.store.declaration_store import RESOLVED, Declarations

WEEKLY = MaintenanceWindow(
    None,
    Bilingual("Maintenance hebdomadaire", "Weekly maintenance"),
    (OPTIQUE, "network:almerys"),
    datetime(2024, 3, 24, 2, 30),  # a Paris wall time: naive on purpose
    timedelta(hours=1, minutes=30),
    Recurrence("weekly", weekdays=(6,), until=date(2024, 12, 31)),
)

TITLE = Bilingual("Cyberattaque", "Cyberattack")


@pytest.fixture
def ops(store: Store) -> Declarations:
    return Declarations(store, SETTINGS, clock=lambda: T0 + 5 * HOUR)


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the declaration tables, to show a refused call changed nothing."""
    found = {}
    with store.engine.connect() as connection:
        for table in (tables.incident, tables.incident_update, tables.maintenance_window):
            found[table.name] = [tuple(row) for row in connection.execute(select(table).order_by(table.c.id))]
    return found


def open_one(ops: Declarations, title: Bilingual = TITLE, at: datetime = T0) -> int:
    first = update(
        at,
        statuses={OPTIQUE: State.DOWN, AUDIO: Declared(State.RECOVERING, 0.25)},
        practitioner_consigne=text("Demandez l'attestation papier", "Ask for the paper certificate"),
        member_consigne=text("Avancez les frais si possible"),
        message_en="PEC unavailable",
    )
    incident = ops.open_incident(title=title, impact="major", first=first, components=[PEC])
    assert incident.id is not None
    return incident.id


def test_an_incident_round_trips_with_its_updates(ops: Declarations) -> None:
    incident_id = open_one(ops)
    ops.update_incident(incident_id, update(T0 + HOUR, "identified", statuses={AUDIO: Declared(State.RECOVERING, 0.5)}))
    found = ops.incident(incident_id)
    assert (found.impact, found.status, found.is_open) == ("major", "identified", True)
    assert found.title == TITLE
    assert found.created_at == T0 and found.components == (PEC, OPTIQUE, AUDIO)
    first = found.updates[0]
    assert first.message == Bilingual("Prises en charge impossibles", "PEC unavailable")
    assert first.practitioner_consigne == Bilingual("Demandez l'attestation papier", "Ask for the paper certificate")
    assert first.member_consigne == Bilingual("Avancez les frais si possible")
    assert found.declared() == {OPTIQUE: (Declared(State.DOWN), T0), AUDIO: (Declared(State.RECOVERING, 0.5), T0)}
    assert [u.at for u in found.updates] == [T0, T0 + HOUR] and all(u.id for u in found.updates)


def test_an_incident_title_is_stored_in_both_languages(ops: Declarations, store: Store) -> None:
    both = open_one(ops, Bilingual("Cyberattaque « Viamedis »", "Viamedis cyberattack — portals closed"))
    french_only = open_one(ops, Bilingual("Panne réseau"), T0 + HOUR)
    table = tables.incident
    with store.engine.connect() as connection:
        rows = connection.execute(select(table.c.id, table.c.title_fr, table.c.title_en).order_by(table.c.id)).all()
    assert [tuple(row) for row in rows] == [
        (both, "Cyberattaque « Viamedis »", "Viamedis cyberattack — portals closed"),
        (french_only, "Panne réseau", ""),
    ]
    assert [i.title for i in ops.incidents()] == [
        Bilingual("Panne réseau"),
        Bilingual("Cyberattaque « Viamedis »", "Viamedis cyberattack — portals closed"),
    ]
    assert ops.incident(french_only).title.pick("en") == "Panne réseau"  # no English: French shown


def test_resolving_clears_declared_statuses_and_a_second_resolve_writes_nothing(
    ops: Declarations, store: Store
) -> None:
    incident_id = open_one(ops)
    assert set(ops.overrides(T0 + HOUR).declared) == {OPTIQUE, AUDIO}
    resolved = ops.resolve_incident(incident_id)
    assert resolved.resolved_at == T0 + 5 * HOUR and resolved.updates[-1].message == RESOLVED  # the clock, injected
    assert ops.overrides(T0 + 6 * HOUR).declared == {}
    before = snapshot(store)
    with pytest.raises(IncidentError, match=f"incident {incident_id} is already resolved"):
        ops.resolve_incident(incident_id, message=Bilingual("encore"))
    assert snapshot(store) == before


def test_listing_newest_first_open_only_and_pages(ops: Declarations) -> None:
    ids = [open_one(ops, Bilingual(f"Incident {n}"), T0 + n * HOUR) for n in range(4)]
    ops.resolve_incident(ids[1])
    assert [i.id for i in ops.incidents()] == ids[::-1]
    assert [i.id for i in ops.incidents(open_only=True)] == [ids[3], ids[2], ids[0]]
    assert [i.id for i in ops.incidents(limit=2, offset=1)] == [ids[2], ids[1]]
    assert ops.incidents(offset=10) == []


Refusal = Callable[[Declarations, int], object]
REFUSED: list[tuple[str, Refusal, str]] = [
    (
        "unknown component",
        lambda ops, i: ops.update_incident(i, update(T0 + HOUR, statuses={"line:viamedis/xyz": State.DOWN})),
        "statuses: unknown component 'line:viamedis/xyz'",
    ),
    (
        "empty title",
        lambda ops, i: ops.open_incident(title=Bilingual(" "), impact="minor", first=update()),
        "title.fr: must not be empty",
    ),
    (
        "too-long English title",
        lambda ops, i: ops.open_incident(title=Bilingual("Panne", "x" * 201), impact="minor", first=update()),
        "title.en: is 201 characters long; at most 200",
    ),
    (
        "too-long text",
        lambda ops, i: ops.update_incident(i, update(T0 + HOUR, message="x" * (MAX_TEXT + 1))),
        "message.fr: is 5,001 characters long",
    ),
    ("going back", lambda ops, i: ops.update_incident(i, update(T0 + HOUR, "investigating")), "cannot go back"),
    ("dated before", lambda ops, i: ops.update_incident(i, update(T0 - HOUR, "monitoring")), "before the last update"),
    ("no such incident", lambda ops, i: ops.update_incident(i + 99, update(T0 + HOUR)), "no incident"),
    ("no such window", lambda ops, i: ops.cancel_window(999), "no maintenance window 999"),
    (
        "bad window",
        lambda ops, i: ops.add_window(MaintenanceWindow(**{**WEEKLY.__dict__, "components": ("network:x",)})),
        "no network 'x'",
    ),
]


@pytest.mark.parametrize(("what", "call", "says"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_refused_call_writes_nothing(ops: Declarations, store: Store, what: str, call: Refusal, says: str) -> None:
    incident_id = open_one(ops)
    ops.update_incident(incident_id, update(T0 + HOUR, "identified"))
    ops.add_window(WEEKLY)
    before = snapshot(store)
    with pytest.raises((IncidentError, NotFound), match=says):
        call(ops, incident_id)
    assert snapshot(store) == before


def test_a_failure_after_the_first_insert_leaves_no_half_written_incident(
    ops: Declarations, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "_update_row", lambda incident_id, change: {"incident_id": incident_id, "at": None})
    with pytest.raises(WriteRefused):
        open_one(ops)
    assert snapshot(store) == {"incident": [], "incident_update": [], "maintenance_window": []}


def test_an_incident_changed_meanwhile_is_refused(
    ops: Declarations, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = open_one(ops)
    stale = ops.incident(incident_id)  # what another instance read before this one resolved it
    ops.resolve_incident(incident_id)
    before = snapshot(store)
    monkeypatch.setattr(module, "_load_one", lambda connection, wanted: stale)
    with pytest.raises(IncidentError, match="changed meanwhile"):
        ops.update_incident(incident_id, update(T0 + 6 * HOUR, "monitoring"))
    assert snapshot(store) == before


def test_windows_round_trip_list_and_cancel_once(ops: Declarations, store: Store) -> None:
    saved = ops.add_window(WEEKLY)
    once = ops.add_window(
        MaintenanceWindow(None, Bilingual("Vérifications"), (PEC,), datetime(2024, 2, 1, 20), 10 * HOUR)
    )
    assert saved.id is not None and once.id is not None
    assert ops.window(saved.id) == MaintenanceWindow(saved.id, *list(WEEKLY.__dict__.values())[1:])
    assert ops.window(saved.id).start.tzinfo is None  # still the wall time ops gave, whatever the backend
    assert [w.id for w in ops.windows()] == [once.id, saved.id]  # by start
    cancelled = ops.cancel_window(saved.id)
    assert cancelled.cancelled and [w.id for w in ops.windows()] == [once.id]
    assert [w.id for w in ops.windows(include_cancelled=True)] == [once.id, saved.id]
    before = snapshot(store)
    with pytest.raises(IncidentError, match=f"^id: maintenance window {saved.id} is already cancelled$"):
        ops.cancel_window(saved.id)
    assert snapshot(store) == before
    with pytest.raises(NotFound):
        ops.window(12345)


def test_overrides_put_running_maintenance_over_open_declarations(ops: Declarations) -> None:
    open_one(ops)
    ops.add_window(WEEKLY)
    during = datetime.fromisoformat("2024-03-31T01:30+00:00")  # 03:30 CEST: the 02:30 window moved to 03:00
    overrides = ops.overrides(during)
    assert overrides.maintenance[OPTIQUE].since == datetime.fromisoformat("2024-03-31T01:00+00:00")
    assert overrides.declared[OPTIQUE].source is Source.DECLARED
    found = overrides.for_component(ComponentRef.parse(OPTIQUE))
    assert found is not None and found.source is Source.MAINTENANCE
    almerys = overrides.for_component(ComponentRef("line", "almerys", "optique"))  # through its network
    assert almerys is not None and almerys.detail.startswith("maintenance:")


def test_current_reads_open_and_newest_incidents_with_their_updates_and_the_windows(ops: Declarations) -> None:
    """What a snapshot of the site holds, read at once: every open incident, the newest ones, the windows."""
    old_open = open_one(ops, Bilingual("Ouvert depuis longtemps"), T0 - 100 * HOUR)
    ids = [open_one(ops, Bilingual(f"Incident {n}"), T0 + n * HOUR) for n in range(4)]
    for incident_id in ids:
        ops.resolve_incident(incident_id)
    window = ops.add_window(WEEKLY)
    cancelled = ops.cancel_window(ops.add_window(WEEKLY).id or 0)
    current = ops.current(recent=3)
    assert [i.id for i in current.open] == [old_open]  # open ones, however old
    assert [i.id for i in current.recent] == ids[:0:-1]  # the three newest, newest first
    assert current.newest_id == max(ids)
    assert current.recent[0] == ops.incident(ids[-1]) and current.open[0] == ops.incident(old_open)
    assert [w.id for w in current.windows] == [window.id] and cancelled.cancelled
    empty = Declarations(ops.store, SETTINGS)
    with ops.store.engine.begin() as connection:
        for table in (tables.incident_update, tables.incident, tables.maintenance_window):
            connection.execute(table.delete())
    assert empty.current() == module.Current([], [], 0, [])


def test_each_declared_component_keeps_what_it_was_shown_as_just_before(ops: Declarations, store: Store) -> None:
    """For Statuspage's old_status: the state of its last transition at or before the update, else unknown."""
    optique = ComponentRef.parse(OPTIQUE)
    store.write(
        Batch(
            transitions=[
                Transition(optique, State.UNKNOWN, State.OPERATIONAL, T0 - HOUR, T0 - HOUR, Source.PROBE),
                Transition(optique, State.OPERATIONAL, State.DEGRADED, T0 + HOUR, T0 + HOUR, Source.PROBE),
            ]
        )
    )
    incident_id = open_one(ops)  # at T0: optique was operational then, audio had no transition at all
    ops.update_incident(incident_id, update(T0 + 2 * HOUR, "identified", statuses={OPTIQUE: State.PARTIAL}))
    first, second = ops.incident(incident_id).updates
    assert first.shown_before == {OPTIQUE: State.OPERATIONAL, AUDIO: State.UNKNOWN}
    assert second.shown_before == {OPTIQUE: State.DEGRADED}
