"""Incidents: validation with one clear message per bad input, the lifecycle, declared statuses, overrides."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from ops_support import AUDIO, HOUR, OPTIQUE, PEC, PORTAIL, SETTINGS, T0, incident, text, update

from monitor.declared.incidents import Declared, Phase, add_update, declare, declared_overrides, open_incident
from monitor.declared.inputs import MAX_TEXT, Bilingual
from monitor.errors import IncidentError, MonitorError
from monitor.models import Source, State


def opened(**fields: Any) -> Any:
    values: dict[str, Any] = {"title": Bilingual("Cyberattaque"), "impact": "major", "first": update()} | fields
    return open_incident(SETTINGS, **values)


def test_open_keeps_what_ops_wrote_and_lists_every_affected_component() -> None:
    markdown = "**Portail fermé.**\n\n- PEC impossibles\n- <b>tel quel</b>"
    first = update(message=markdown, statuses={OPTIQUE: State.DOWN}, practitioner_consigne=text("Attestation papier"))
    title = Bilingual("Cyberattaque", "Cyberattack")
    found = open_incident(SETTINGS, title=title, impact="critical", first=first, components=[PEC, OPTIQUE])
    assert found.title == title  # both languages kept
    assert found.id is None and found.is_open and found.status == "investigating"
    assert found.created_at == T0 and found.resolved_at is None
    assert found.components == (PEC, OPTIQUE)  # deduplicated, in order
    assert found.updates[0].message.fr == markdown  # stored as written; sanitized only when rendered
    assert found.declared() == {OPTIQUE: (Declared(State.DOWN), T0)}


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"title": Bilingual("")}, "title.fr", "must not be empty"),
        ({"title": Bilingual("   ")}, "title.fr", "must not be empty"),
        ({"title": Bilingual("", "Cyberattack")}, "title.fr", "must not be empty"),  # French is required
        ({"title": Bilingual("x" * 201)}, "title.fr", "201 characters long; at most 200"),
        ({"title": Bilingual("deux\nlignes")}, "title.fr", "single line"),
        ({"title": Bilingual("Panne", "y" * 201)}, "title.en", "201 characters long; at most 200"),
        ({"title": Bilingual("Panne", "two\nlines")}, "title.en", "single line"),
        ({"title": Bilingual("Panne", "two\rlines")}, "title.en", "single line"),
        ({"title": Bilingual("Panne\x1b[31m")}, "title.fr", "control character U+001B"),  # breaks the feeds' XML
        ({"first": update(message="copié\x01collé")}, "message.fr", "control character U+0001"),
        ({"impact": "huge"}, "impact", "'huge' is not one of none, minor, major, critical"),
        ({"components": ["line:viamedis/xyz"]}, "components", "unknown component 'line:viamedis/xyz'"),
        ({"components": ["network:nope"]}, "components", "no network 'nope'"),
        ({"components": ["flow:viamedis/nope"]}, "components", "runs no flow 'nope'"),
        ({"components": ["viamedis"]}, "components", "is not a component key"),
        ({"components": ["check:viamedis/pec/pec"]}, "components", "is a check"),
        ({"first": update(statuses={"line:almerys/audio": State.DOWN})}, "statuses", "almerys has no line 'audio'"),
        ({"first": update(message="")}, "message.fr", "must not be empty"),
        ({"first": update(message="x" * (MAX_TEXT + 1))}, "message.fr", "5,001 characters long; at most 5,000"),
        ({"first": update(practitioner_consigne=text("", "only English"))}, "practitioner_consigne.fr", "required"),
        ({"first": update(member_consigne=text("ok", "y" * 6000))}, "member_consigne.en", "6,000 characters"),
        ({"first": update(status="resolved")}, "status", "cannot start resolved"),
        # a phase its type forbids, as a form or the API may send it
        ({"first": update(status="closed")}, "status", "'closed' is not one of investigating"),  # type: ignore[arg-type]
        ({"first": update(at=datetime(2024, 2, 12, 13, 0))}, "at", "needs a time zone"),
        ({"first": update(statuses={OPTIQUE: Declared(State.DOWN, 0.5)})}, "statuses", "only with 'recovering'"),
        ({"first": update(statuses={OPTIQUE: Declared(State.RECOVERING, 1.5)})}, "statuses", "between 0 and 1"),
        ({"first": update(statuses={OPTIQUE: State.UNKNOWN})}, "statuses", "'unknown' for line:viamedis/optique"),
    ],
)
def test_each_bad_input_is_refused_with_one_message_naming_its_field(
    fields: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(IncidentError) as raised:
        opened(**fields)
    assert raised.value.field == field
    assert says in raised.value.problem
    assert str(raised.value) == f"{field}: {raised.value.problem}" and "\n" not in str(raised.value)
    assert isinstance(raised.value, MonitorError)


def test_limits_are_inclusive() -> None:
    title = Bilingual("t" * 200, "e" * 200)
    found = opened(title=title, first=update(message="m" * MAX_TEXT, member_consigne=text("c" * MAX_TEXT)))
    assert found.title == title


@pytest.mark.parametrize(
    ("state", "progress", "says"),
    [
        ("broken", None, "'broken' for line:x is not a state (one of: operational, degraded"),
        ("recovering", math.nan, "between 0 and 1 (got nan)"),
        ("recovering", -0.1, "between 0 and 1 (got -0.1)"),
        ("operational", 1.0, "progress for line:x goes only with 'recovering', not 'operational'"),
    ],
)
def test_declare_refuses_invalid_states_and_progress(state: str, progress: float | None, says: str) -> None:
    with pytest.raises(IncidentError, match=r"^statuses: ") as raised:
        declare(state, progress, key="line:x")
    assert says in str(raised.value)


def test_declare_accepts_recovering_with_or_without_progress() -> None:
    assert declare("recovering", 0.0) == Declared(State.RECOVERING, 0.0)
    assert declare("recovering") == Declared(State.RECOVERING, None)
    assert declare("maintenance") == Declared(State.MAINTENANCE)  # a precautionary closure, declared


def test_lifecycle_moves_forward_or_stays_then_resolves_once() -> None:
    found = incident((OPTIQUE, State.DOWN))
    phases: list[Phase] = ["investigating", "identified", "identified", "monitoring"]
    for step, status in enumerate(phases, start=1):
        found = add_update(found, update(T0 + step * HOUR, status, "suite"), SETTINGS)
    assert [u.status for u in found.updates] == [
        "investigating",
        "investigating",
        "identified",
        "identified",
        "monitoring",
    ]
    with pytest.raises(IncidentError, match=r"^status: incident 1 is monitoring: it cannot go back to identified$"):
        add_update(found, update(T0 + 9 * HOUR, "identified"), SETTINGS)
    resolved = add_update(found, update(T0 + 10 * HOUR, "resolved", "Service rétabli"), SETTINGS, impact="minor")
    assert not resolved.is_open and resolved.resolved_at == T0 + 10 * HOUR and resolved.impact == "minor"
    with pytest.raises(IncidentError, match=r"^id: incident 1 is already resolved; nothing can follow$"):
        add_update(resolved, update(T0 + 11 * HOUR, "resolved", "encore"), SETTINGS)
    with pytest.raises(IncidentError, match="already resolved"):
        add_update(resolved, update(T0 + 11 * HOUR, "monitoring"), SETTINGS)


def test_an_update_is_never_dated_before_the_last_one_and_resolving_declares_nothing() -> None:
    found = incident((OPTIQUE, State.DOWN))
    with pytest.raises(IncidentError, match=r"^at: 2024-02-12T11:59:00\+00:00 is before the last update"):
        add_update(found, update(T0 - HOUR / 60), SETTINGS)
    assert add_update(found, update(T0), SETTINGS).updates[-1].at == T0  # same instant: fine
    with pytest.raises(IncidentError, match=r"^statuses: a resolving update declares no status"):
        add_update(found, update(T0 + HOUR, "resolved", statuses={OPTIQUE: State.OPERATIONAL}), SETTINGS)
    with pytest.raises(IncidentError, match=r"^impact: "):
        add_update(found, update(T0 + HOUR), SETTINGS, impact="enormous")  # type: ignore[arg-type]  # refused at run time


def test_declared_statuses_accumulate_and_keep_their_since_while_the_state_holds() -> None:
    found = incident((OPTIQUE, State.DOWN), (AUDIO, State.DOWN))
    found = add_update(found, update(T0 + HOUR, statuses={OPTIQUE: Declared(State.RECOVERING, 0.2)}), SETTINGS)
    found = add_update(found, update(T0 + 2 * HOUR, statuses={OPTIQUE: Declared(State.RECOVERING, 0.6)}), SETTINGS)
    assert found.declared() == {
        OPTIQUE: (Declared(State.RECOVERING, 0.6), T0 + HOUR),  # since the state began, progress of now
        AUDIO: (Declared(State.DOWN), T0),  # untouched by later updates
    }
    overrides = declared_overrides([found])
    assert overrides[OPTIQUE].state is State.RECOVERING and overrides[OPTIQUE].progress == 0.6
    assert overrides[OPTIQUE].source is Source.DECLARED and overrides[OPTIQUE].since == T0 + HOUR
    assert overrides[OPTIQUE].detail == "incident:1"


def test_resolving_clears_the_declared_statuses() -> None:
    found = incident((OPTIQUE, State.DOWN))
    resolved = add_update(found, update(T0 + HOUR, "resolved", "Rétabli"), SETTINGS)
    assert declared_overrides([found]) != {}
    assert declared_overrides([resolved]) == {}


def test_several_open_incidents_on_one_component_the_most_severe_wins_then_the_latest() -> None:
    down = incident((OPTIQUE, State.DOWN), id=1)
    degraded_later = replace(
        incident((OPTIQUE, State.DEGRADED), id=2), updates=(update(T0 + HOUR, statuses={OPTIQUE: State.DEGRADED}),)
    )
    assert declared_overrides([down, degraded_later])[OPTIQUE].detail == "incident:1"  # down is more severe
    assert declared_overrides([degraded_later, down])[OPTIQUE].detail == "incident:1"  # whatever the order

    same_later = replace(
        incident((OPTIQUE, State.DOWN), id=3), updates=(update(T0 + HOUR, statuses={OPTIQUE: State.DOWN}),)
    )
    chosen = declared_overrides([same_later, down])[OPTIQUE]
    assert chosen.detail == "incident:3" and chosen.since == T0 + HOUR  # tie on severity: the latest declaration
    twin = incident((OPTIQUE, State.DOWN), id=4)
    assert declared_overrides([twin, down])[OPTIQUE].detail == "incident:4"  # full tie: the newest incident
    both = declared_overrides([down, incident((PEC, State.DOWN), (PORTAIL, State.DEGRADED), id=5)])
    assert set(both) == {OPTIQUE, PEC, PORTAIL}


def test_bilingual_pick_falls_back_to_french() -> None:
    assert Bilingual("Rétabli", "Restored").pick("en") == "Restored"
    assert Bilingual("Rétabli").pick("en") == "Rétabli"
    assert not Bilingual("  ", "") and Bilingual("x")
