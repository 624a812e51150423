"""What the pages show of open incidents and maintenance: the language of each text is told to screen readers;
consignes are dated and say whether they still stand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ops_support import SETTINGS, update

from monitor.declared.incidents import Declared, Incident, IncidentUpdate, add_update, consigne_history
from monitor.declared.inputs import Bilingual
from monitor.models import ComponentRef, ComponentStatus, Source, State
from monitor.snapshot import Snapshot
from monitor.web.incident_view import declarations_view

AT = datetime(2024, 2, 12, 12, tzinfo=UTC)
LATER = AT + timedelta(days=2)


def incident(title: Bilingual, message: Bilingual) -> Incident:
    update = IncidentUpdate(AT, "identified", message, member_consigne=Bilingual("Gardez la facture.", ""))
    return Incident(1, title, "major", AT, ("line:viamedis/optique",), (update,))


def snapshot(*incidents: Incident, optique_since: datetime = AT) -> Snapshot:
    ref = ComponentRef("line", "viamedis", "optique")
    status = ComponentStatus(ref, State.DOWN, optique_since, Source.DECLARED)
    return Snapshot(SETTINGS, AT, {ref.key: status}, open_incidents=incidents)


def test_an_english_page_marks_the_french_it_falls_back_to() -> None:
    shown = incident(Bilingual("PEC optique", ""), Bilingual("**Impossible**", ""))
    [view] = declarations_view(snapshot(shown), "en").incidents
    assert view.title == '<span lang="fr">PEC optique</span>'
    assert view.message == '<div lang="fr"><p><strong>Impossible</strong></p></div>'
    assert view.members is not None and view.members.html.startswith('<div lang="fr">')
    assert view.practitioners is None  # nothing written: nothing shown, no empty wrapper


def test_texts_in_the_page_language_are_not_marked_and_stay_escaped() -> None:
    bilingual = incident(Bilingual("PEC <b>optique</b>", "Optics <b>approvals</b>"), Bilingual("Message", "Text"))
    [french] = declarations_view(snapshot(bilingual), "fr").incidents
    [english] = declarations_view(snapshot(bilingual), "en").incidents
    assert french.title == "PEC &lt;b&gt;optique&lt;/b&gt;"
    assert english.title == "Optics &lt;b&gt;approvals&lt;/b&gt;"
    assert "lang=" not in english.message


def test_a_consigne_is_dated_and_outdated_once_its_line_changed_state_after_it() -> None:
    shown = incident(Bilingual("PEC"), Bilingual("Message"))
    [current] = declarations_view(snapshot(shown), "fr").incidents
    assert current.members is not None and current.members.standing == "current"
    assert current.members.note == "Consigne du lun. 12 févr. 2024, 13:00."
    [later] = declarations_view(snapshot(shown, optique_since=LATER), "fr").incidents
    assert later.members is not None and later.members.standing == "outdated"
    assert later.members.note == (
        "Consigne du lun. 12 févr. 2024, 13:00, antérieure au dernier changement d'état"
        " (mer. 14 févr. 2024, 13:00)\u00a0: elle peut ne plus s'appliquer."
    )
    [english] = declarations_view(snapshot(shown, optique_since=LATER), "en").incidents
    assert english.members is not None and english.members.note.startswith(
        "Advice of Mon 12 Feb 2024, 13:00, older than the last change of state"
    )


def test_the_incident_own_declared_change_outdates_an_earlier_consigne_even_before_the_board_shows_it() -> None:
    opened = Incident(
        1,
        Bilingual("PEC"),
        "major",
        AT,
        ("line:viamedis/optique",),
        (update(AT, statuses={"line:viamedis/optique": State.DOWN}, practitioner_consigne=Bilingual("Différez.")),),
    )
    step = update(LATER, "monitoring", statuses={"line:viamedis/optique": Declared(State.RECOVERING, 0.5)})
    recovering = add_update(opened, step, SETTINGS)
    [before] = consigne_history(opened, "practitioner_consigne", AT)
    [after] = consigne_history(recovering, "practitioner_consigne", AT)  # the board still shows the outage
    assert (before.standing, after.standing, after.changed) == ("current", "outdated", LATER)


def test_earlier_consignes_are_replaced_and_all_are_withdrawn_once_resolved() -> None:
    first = update(AT, practitioner_consigne=Bilingual("Différez."))
    opened = Incident(1, Bilingual("PEC"), "major", AT, (), (first,))
    renewed = add_update(opened, update(LATER, "monitoring", practitioner_consigne=Bilingual("Réessayez.")), SETTINGS)
    old, new = consigne_history(renewed, "practitioner_consigne", None)
    assert (old.standing, old.replaced_at, new.standing) == ("replaced", LATER, "current")
    resolved = add_update(renewed, update(LATER + timedelta(hours=1), "resolved"), SETTINGS)
    assert {c.standing for c in consigne_history(resolved, "practitioner_consigne", None)} == {"withdrawn"}
    assert consigne_history(resolved, "member_consigne", None) == []
