"""What the pages show of open incidents and maintenance: the language of each text is told to screen readers."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.declared.incidents import Incident, IncidentUpdate
from monitor.declared.inputs import Bilingual
from monitor.web.incident_view import declarations_view

AT = datetime(2024, 2, 12, 12, tzinfo=UTC)


def incident(title: Bilingual, message: Bilingual) -> Incident:
    update = IncidentUpdate(AT, "identified", message, member_consigne=Bilingual("Gardez la facture.", ""))
    return Incident(1, title, "major", AT, ("line:viamedis/optique",), (update,))


def test_an_english_page_marks_the_french_it_falls_back_to() -> None:
    shown = declarations_view([incident(Bilingual("PEC optique", ""), Bilingual("**Impossible**", ""))], [], AT, "en")
    [view] = shown.incidents
    assert view.title == '<span lang="fr">PEC optique</span>'
    assert view.message == '<div lang="fr"><p><strong>Impossible</strong></p></div>'
    assert view.members.startswith('<div lang="fr">')
    assert view.practitioners == ""  # nothing written: nothing shown, no empty wrapper


def test_texts_in_the_page_language_are_not_marked_and_stay_escaped() -> None:
    bilingual = incident(Bilingual("PEC <b>optique</b>", "Optics <b>approvals</b>"), Bilingual("Message", "Text"))
    [french] = declarations_view([bilingual], [], AT, "fr").incidents
    [english] = declarations_view([bilingual], [], AT, "en").incidents
    assert french.title == "PEC &lt;b&gt;optique&lt;/b&gt;"
    assert english.title == "Optics &lt;b&gt;approvals&lt;/b&gt;"
    assert "lang=" not in english.message
