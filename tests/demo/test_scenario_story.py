"""The whole February 2024 story through the real engine and store (the demo's replay, run to the end): what each
line says, when, and with which timeline — the answers a practitioner reads, checked without the web server.

SCENARIO-2024.md is the reference: event numbers below are its rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from monitor.config import Settings, load_config
from monitor.demo.clock import VirtualClock
from monitor.demo.events import Poster
from monitor.demo.run import CONFIG, replay
from monitor.demo.scenario import load_scenario
from monitor.models import ComponentRef, ComponentStatus, Source, State, Transition
from monitor.store import Store
from monitor.store.declaration_store import Declarations
from monitor.web.reactivation_timeline import Step, episodes

ENV = {"TPMON_DEMO_HTTP": "http://127.0.0.1:9", "TPMON_DEMO_TLS": "https://127.0.0.1:9"}
STORY = load_scenario()
END = STORY.story_until + timedelta(days=1)  # 22/02 12:00: the story told, and a day more


def paris(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+01:00")


class Story:
    """The replayed story: every line's transitions, and the statuses at its end."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.statuses: dict[str, ComponentStatus] = store.load_statuses()

    def moves(self, key: str) -> list[Transition]:
        return list(reversed(self.store.transitions(ComponentRef.parse(key))))  # oldest first, as recorded

    def at(self, key: str, moment: datetime) -> Transition:
        """The transition that made `key` what it was at `moment`."""
        before = [t for t in self.moves(key) if t.at <= moment]
        assert before, f"{key} has no state at {moment}"
        return before[-1]

    def lines(self) -> Iterator[str]:
        for name, network in self.settings.networks.items():
            for line in network.lines:
                yield ComponentRef("line", name, line).key


@pytest.fixture(scope="module")
def story() -> Iterator[Story]:
    settings = load_config(CONFIG, environ=ENV)
    whole = STORY.model_copy(update={"live_from": END, "story_until": END + timedelta(days=1)})
    clock = VirtualClock(STORY.history_from)
    with Store.open("sqlite://", clock=clock) as store:
        poster = Poster(store, settings, Declarations(store, settings, clock=clock))
        asyncio.run(replay(settings, whole, store, clock, poster))
        yield Story(store, settings)


CARE = ("kalixia", "santeclair", "itelis", "carte-blanche")


@pytest.mark.parametrize("network", CARE)
def test_care_networks_never_say_possible_while_viamedis_pec_is_down(story: Story, network: str) -> None:
    """Event 6: for members managed by Viamedis, optique and audio tiers payant is impossible."""
    for line in ("optique", "audio"):
        key = f"line:{network}/{line}"
        for moment in (paris("2024-02-01T10:00"), paris("2024-02-08T12:00"), paris("2024-02-13T12:00")):
            shown = story.at(key, moment)
            assert (shown.state, shown.source, shown.detail) == (State.PARTIAL, Source.DEPENDENCY, "viamedis/pec")
        # Viamedis PEC back step by step from 14/02 (event 15): recovering with it, never "possible" before 19/02
        during = story.at(key, paris("2024-02-16T12:00"))
        assert (during.state, during.source) == (State.RECOVERING, Source.DEPENDENCY)
        assert story.statuses[key].state is State.OPERATIONAL
        # back with Viamedis PEC, at the same instant: its timeline is Viamedis' (events 6, 15, 16, 19)
        [episode] = episodes(story.moves(key), paris("2024-01-01T00:00"))
        [pec] = episodes(story.moves("flow:viamedis/pec"), paris("2024-01-01T00:00"))
        assert (episode.started, episode.ended) == (pec.started, pec.ended)
        assert {step.at for step in episode.steps} == {step.at for step in pec.steps}


def test_viamedis_optique_reactivation_is_dated_as_declared(story: Story) -> None:
    """Events 4, 15, 16 (and 18), 19: the timeline's instants are the declarations'."""
    [episode] = [e for e in episodes(story.moves("line:viamedis/optique"), paris("2024-01-01T00:00"))]
    assert episode.steps == [
        Step(paris("2024-01-31T09:00"), State.DOWN, 0.0),
        Step(paris("2024-02-14T09:00"), State.RECOVERING, 0.25),
        Step(paris("2024-02-15T09:00"), State.RECOVERING, 0.5),
        Step(paris("2024-02-16T18:00"), State.RECOVERING, 0.75),
        Step(paris("2024-02-19T09:00"), State.OPERATIONAL, 1.0),
    ]


def test_almerys_reopening_on_13_february_is_in_its_timeline(story: Story) -> None:
    """Events 9, 14, 17: down on 05/02, reopening progressively on 13/02, back on 15/02."""
    for line in ("optique", "audio"):
        [episode] = episodes(story.moves(f"line:almerys/{line}"), paris("2024-01-01T00:00"))
        assert episode.steps[:2] == [
            Step(paris("2024-02-05T10:00"), State.DOWN, 0.0),
            Step(paris("2024-02-13T09:00"), State.RECOVERING, 0.5),
        ]
        assert episode.ended is not None and paris("2024-02-15T14:00") <= episode.ended <= paris("2024-02-15T18:00")


def test_almerys_other_lines_work_as_its_message_says(story: Story) -> None:
    """Event 9: 'Portail PS fermé ; autres services normaux' — no other Almerys line reads as disrupted."""
    for key in story.lines():
        if key.startswith("line:almerys/") and key not in ("line:almerys/optique", "line:almerys/audio"):
            troubled = [t for t in story.moves(key) if t.state is not State.OPERATIONAL and t.at > STORY.history_from]
            assert troubled == [], key


def test_after_the_story_every_line_is_dated_from_the_start_of_its_state(story: Story) -> None:
    """No 'Opérationnel depuis le 29/01' on 22/02: a line's since is its last change, never a stale date."""
    for key in story.lines():
        status = story.statuses[key]
        moves = story.moves(key)
        if moves:
            assert status.since == moves[-1].at, (key, status.since, moves[-1])
            assert status.state is moves[-1].state, key
    pharmacie = story.statuses["line:viamedis/pharmacie"]
    assert (pharmacie.state, pharmacie.since) == (State.OPERATIONAL, paris("2024-02-21T09:00"))  # event 20


def test_viamedis_dentaire_partial_outage_is_in_its_timeline(story: Story) -> None:
    """Events 5 and 19: dental PEC disrupted (partial) from 31/01, restored on 19/02."""
    [episode] = episodes(story.moves("line:viamedis/dentaire"), paris("2024-01-01T00:00"))
    assert episode.steps == [
        Step(paris("2024-01-31T09:00"), State.PARTIAL, 0.0),
        Step(paris("2024-02-19T09:00"), State.OPERATIONAL, 1.0),
    ]


def test_viamedis_lines_that_need_pec_are_not_shown_working_during_the_outage(story: Story) -> None:
    """Hospitalisation needs PEC (and says nothing in the incident): down with it, never 'partiellement'."""
    shown = story.at("line:viamedis/hospitalisation", paris("2024-02-08T12:00"))
    assert (shown.state, shown.source) == (State.DOWN, Source.PROBE)
    pharmacie = story.at("line:viamedis/pharmacie", paris("2024-02-08T12:00"))
    assert (pharmacie.state, pharmacie.detail) == (State.DEGRADED, "viamedis/droits")  # event 3
