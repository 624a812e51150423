"""Ops text rendering: a small Markdown subset, and nothing from the text ever becomes markup."""

from __future__ import annotations

import pytest

from monitor.web.text import render


def test_paragraphs_lists_strong_and_emphasis() -> None:
    text = "**Portail fermé** depuis 13:00.\n\n- PEC impossibles\n- *Avance de frais* probable\n\nFin."
    assert render(text) == (
        "<p><strong>Portail fermé</strong> depuis 13:00.</p>"
        "<ul><li>PEC impossibles</li><li><em>Avance de frais</em> probable</li></ul>"
        "<p>Fin.</p>"
    )
    assert render("ligne 1\nligne 2") == "<p>ligne 1<br>ligne 2</p>"
    assert render("2 * 3 * 4") == "<p>2 * 3 * 4</p>"  # a lone star is not emphasis


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "**<b onmouseover=alert(1)>x</b>**",
        "[clic](javascript:alert(1))",
        '"><svg/onload=alert(1)>',
        "*<iframe src=//evil>*",
    ],
)
def test_xss_payloads_come_out_inert(payload: str) -> None:
    html = str(render(payload))
    assert "<script" not in html
    assert "<img" not in html
    assert "<svg" not in html
    assert "<iframe" not in html
    assert "<b " not in html
    assert "javascript:" not in html or "href" not in html
    assert "&lt;" in html or "javascript" in html
