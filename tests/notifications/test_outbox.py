"""The outbox in the store: events written with their cause, fanned out by scope, claimed once, retried, pruned."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.declared.incidents import Declared, IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.models import ComponentRef, Source, State, Transition
from monitor.notify.scopes import Told, line_news
from monitor.store import Store, tables
from monitor.store.declaration_store import Declarations
from monitor.store.outbox_store import Outbox
from monitor.store.store import Batch
from monitor.store.subscriber_store import Subscribers

from .notify_support import T0, Clock, line_transition, settings

SETTINGS = settings()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def events(store: Store) -> list[tuple[str, dict[str, object]]]:
    with store.engine.connect() as connection:
        table = tables.notification_event
        return [(row.kind, dict(row.payload)) for row in connection.execute(select(table).order_by(table.c.id))]


def deliveries(store: Store, **where: object) -> list[object]:
    table = tables.notification_delivery
    query = select(table).order_by(table.c.id)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with store.engine.connect() as connection:
        return list(connection.execute(query))


def subscribe(store: Store, address: str, *scopes: str, confirmed: bool = True) -> int:
    subscribers = Subscribers(store, clock=lambda: T0)
    subscriber = subscribers.request(address, scopes, "fr")
    if confirmed:
        assert subscribers.confirm(subscriber, lambda a: a == address, scopes)
    with store.engine.begin() as connection:  # the confirmation e-mails are not what these tests look at
        table = tables.notification_delivery
        connection.execute(table.delete().where(table.c.kind == "confirm"))
    return subscriber


def test_a_line_transition_writes_its_event_in_the_same_batch_and_only_once(store: Store) -> None:
    down = line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)
    check = Transition(
        ComponentRef.for_check("viamedis", "pec", "api"), State.UNKNOWN, State.DOWN, T0, T0, Source.PROBE
    )
    flow = Transition(ComponentRef("flow", "viamedis", "pec"), State.OPERATIONAL, State.DOWN, T0, T0, Source.PROBE)
    store.write(Batch(transitions=[check, flow, down]))
    store.write(Batch(transitions=[down]))  # the same fact again (a retried batch): one event
    found = events(store)
    assert found == [
        (
            "line",
            {
                "line": "viamedis/optique",
                "previous": "operational",
                "state": "down",
                "progress": 0.0,
                "source": "probe",
            },
        )
    ]


def test_declarations_write_their_events_opened_updated_resolved_and_maintenance(store: Store) -> None:
    clock = Clock()
    declarations = Declarations(store, SETTINGS, clock=clock)
    first = IncidentUpdate(
        T0,
        "investigating",
        Bilingual("Prises en charge impossibles", "No PEC"),
        Bilingual("Faites une facture acquittée.", "Issue a receipted invoice."),
        statuses={"line:viamedis/optique": Declared(State.DOWN)},
    )
    incident = declarations.open_incident(
        title=Bilingual("Cyberattaque", "Cyberattack"), impact="major", first=first, components=["flow:viamedis/pec"]
    )
    assert incident.id is not None
    declarations.update_incident(incident.id, IncidentUpdate(T0, "identified", Bilingual("Cause trouvée")))
    declarations.resolve_incident(incident.id, at=T0)
    found = events(store)
    assert [(kind, payload["phase"]) for kind, payload in found] == [
        ("incident", "opened"),
        ("incident", "updated"),
        ("incident", "resolved"),
    ]
    assert found[0][1]["practitioner_consigne"] == {
        "fr": "Faites une facture acquittée.",
        "en": "Issue a receipted invoice.",
    }


def test_fan_out_reaches_exactly_the_subscribers_of_the_scopes_concerned(store: Store) -> None:
    everything = subscribe(store, "tout@exemple.fr", "*")
    network = subscribe(store, "reseau@exemple.fr", "viamedis")
    optique = subscribe(store, "opticien@exemple.fr", "viamedis/optique", "viamedis")  # two scopes: one delivery
    subscribe(store, "audio@exemple.fr", "viamedis/audio")
    subscribe(store, "kalixia@exemple.fr", "kalixia/optique")
    subscribe(store, "pas-confirme@exemple.fr", "*", confirmed=False)
    store.write(Batch(transitions=[line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)]))
    outbox = Outbox(store, clock=Clock())
    assert outbox.fan_out(SETTINGS) == 1
    assert outbox.fan_out(SETTINGS) == 0  # fanned out once
    told = sorted(row.subscriber_id for row in deliveries(store, channel="email"))  # type: ignore[attr-defined]
    assert told == sorted([everything, network, optique])


def test_an_incident_on_a_flow_reaches_the_lines_that_need_it_and_their_dependents(store: Store) -> None:
    optique = subscribe(store, "opticien@exemple.fr", "viamedis/optique")
    kalixia = subscribe(store, "kalixia@exemple.fr", "kalixia/optique")
    pharmacie = subscribe(store, "pharmacien@exemple.fr", "viamedis/pharmacie")
    first = IncidentUpdate(T0, "investigating", Bilingual("PEC impossibles"))
    Declarations(store, SETTINGS, clock=Clock()).open_incident(
        title=Bilingual("PEC"), impact="major", first=first, components=["flow:viamedis/pec"]
    )
    Outbox(store, clock=Clock()).fan_out(SETTINGS)
    told = {row.subscriber_id for row in deliveries(store, channel="email")}  # type: ignore[attr-defined]
    assert optique in told and kalixia in told
    assert pharmacie not in told  # pharmacie does not need the PEC flow


def test_unknown_is_never_told_and_coming_back_to_the_same_state_is_no_news() -> None:
    down = {"state": "down", "previous": "operational", "progress": 0.0}
    assert line_news(down, None) is not None
    assert line_news({"state": "unknown", "previous": "down"}, Told(State.DOWN)) is None
    assert line_news({"state": "down", "previous": "unknown"}, Told(State.DOWN)) is None
    back = line_news({"state": "operational", "previous": "unknown"}, Told(State.DOWN))
    assert back is not None and back.previous is State.DOWN
    assert line_news({"state": "operational", "previous": "unknown"}, None) is None  # first sight, working: no news
    step = {"state": "recovering", "previous": "recovering", "progress": 0.5}
    assert line_news(step, Told(State.RECOVERING, 0.2)) is not None  # a reactivation step is news
    assert line_news(step, Told(State.RECOVERING, 0.5)) is None


def test_claims_group_a_subscribers_deliveries_and_never_give_them_twice(store: Store) -> None:
    clock = Clock()
    subscriber = subscribe(store, "opticien@exemple.fr", "viamedis/optique")
    transitions = [
        line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0),
        line_transition("viamedis/optique", State.DOWN, State.RECOVERING, T0 + timedelta(seconds=30), 0.4),
    ]
    store.write(Batch(transitions=transitions))
    outbox = Outbox(store, clock=clock)
    outbox.fan_out(SETTINGS)
    assert outbox.claim("email", "a", lease=60) == []  # within the coalescing window: not yet due
    clock.advance(121)
    claimed = outbox.claim("email", "a", lease=60)
    assert len(claimed) == 1
    assert claimed[0].subscriber == subscriber and claimed[0].address == "opticien@exemple.fr"
    assert [e.payload["state"] for e in claimed[0].events] == ["down", "recovering"]
    assert outbox.claim("email", "b", lease=60) == []  # held by a's lease
    clock.advance(61)  # a died: its lease expired
    again = outbox.claim("email", "b", lease=60)
    assert [m.key for m in again] == [claimed[0].key]  # the same message, the same key (Message-ID)
    outbox.sent(again[0].deliveries)
    clock.advance(3600)
    assert outbox.claim("email", "c", lease=60) == []


def test_failures_back_off_then_become_dead_letters_that_retry_brings_back(store: Store) -> None:
    clock = Clock()
    subscribe(store, "opticien@exemple.fr", "viamedis/optique")
    store.write(Batch(transitions=[line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)]))
    outbox = Outbox(store, clock=clock)
    outbox.fan_out(SETTINGS)
    clock.advance(121)
    first = outbox.claim("email", "a", lease=60)[0]
    assert outbox.failed(first.deliveries, "SMTP 451 later", retry_after=30, max_attempts=3) == 0
    assert outbox.claim("email", "a", lease=60) == []  # backing off 30 s
    clock.advance(31)
    second = outbox.claim("email", "a", lease=60)[0]
    assert outbox.failed(second.deliveries, "SMTP 451 later", retry_after=30, max_attempts=3) == 0
    clock.advance(59)
    assert outbox.claim("email", "a", lease=60) == []  # then 60 s
    clock.advance(2)
    third = outbox.claim("email", "a", lease=60)[0]
    assert outbox.failed(third.deliveries, "SMTP 451 later", retry_after=30, max_attempts=3) == 1
    figures = outbox.figures()
    assert figures.failed["email"] == 1 and figures.pending["email"] == 0
    [dead] = outbox.dead_letters()
    assert dead.attempts == 3 and dead.last_error == "SMTP 451 later"
    assert outbox.retry() == 1
    assert len(outbox.claim("email", "a", lease=60)) == 1


def test_prune_deletes_what_is_settled_and_old_only(store: Store) -> None:
    clock = Clock()
    subscribe(store, "opticien@exemple.fr", "viamedis/optique")
    store.write(Batch(transitions=[line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)]))
    outbox = Outbox(store, clock=clock)
    outbox.fan_out(SETTINGS)
    clock.advance(121)
    outbox.sent(outbox.claim("email", "a", lease=60)[0].deliveries)
    store.write(Batch(transitions=[line_transition("viamedis/optique", State.DOWN, State.OPERATIONAL, clock())]))
    outbox.fan_out(SETTINGS)  # a second event, pending
    clock.advance(31 * 86400)
    assert outbox.prune(timedelta(days=30)) == 2  # the sent delivery and its event; the pending ones stay
    assert len(deliveries(store)) == 1 and len(events(store)) == 1


@pytest.mark.postgres
def test_two_claimers_on_one_postgresql_never_take_the_same_delivery(fresh_postgres_url: str) -> None:
    with Store.open(fresh_postgres_url) as setup:
        for index in range(300):
            subscribe(setup, f"abonne{index}@exemple.fr", "viamedis/optique")
        setup.write(Batch(transitions=[line_transition("viamedis/optique", State.OPERATIONAL, State.DOWN, T0)]))
        Outbox(setup, clock=Clock()).fan_out(SETTINGS)
    late = Clock(T0 + timedelta(minutes=5))
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def claimer(name: str) -> None:
        with Store.open(fresh_postgres_url, migrate=False) as own:
            outbox = Outbox(own, clock=late)
            while claimed := outbox.claim("email", name, lease=600, groups=7):
                ids = [d for message in claimed for d in message.deliveries]
                taken[name] += ids
                outbox.sent(ids)

    threads = [threading.Thread(target=claimer, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = taken["a"] + taken["b"]
    assert len(every) == 300 and len(set(every)) == 300
    assert taken["a"] and taken["b"]  # both worked
    with Store.open(fresh_postgres_url, migrate=False) as check, check.engine.connect() as connection:
        table = tables.notification_delivery
        assert connection.execute(select(func.count()).where(table.c.state == "sent")).scalar_one() == 300
