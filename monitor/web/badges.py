"""`/badge/{network}/{line}.svg`: a small shields-style badge, the state told in words, not only in colour.

Left "{network name} · {line label}", right the state word (French, English with `?lang=en`). The
`<title>` and `aria-label` carry the full sentence for screen readers. White text on every background
with a contrast of at least 4.5:1 (WCAG 2.1 AA; tests/test_badges.py computes it). Built with ElementTree,
so names and labels are escaped. Widths are estimated from the text (Verdana 11 px), no font file needed.
"""

from __future__ import annotations

import functools
import hashlib
import xml.etree.ElementTree as ET

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..config import Settings
from ..i18n import STATE_LABELS, Lang, translate
from ..models import ComponentRef, State
from .affected_text import StatusLookup, explain
from .board_view import board_view
from .fragments import Fragments

__all__ = ["BACKGROUNDS", "FOREGROUND", "LEFT", "badge", "badge_svg", "line_badge", "text_width"]

SVG = "http://www.w3.org/2000/svg"
FOREGROUND = "#ffffff"
LEFT = "#4a4a4a"
BACKGROUNDS: dict[State, str] = {
    State.OPERATIONAL: "#1a7f37",
    State.DEGRADED: "#9a6700",
    State.PARTIAL: "#bc4c00",
    State.DOWN: "#a40e26",
    State.RECOVERING: "#0969da",
    State.MAINTENANCE: "#6639ba",
    State.UNKNOWN: "#57606a",
}
HEIGHT = 20
PADDING = 6  # each side of a text
_NARROW = set("fijlrt.,:;·'!|()[] ")
_WIDE = set("mwMWÆŒ@%")


def text_width(text: str) -> float:
    """An estimate of `text`'s width in Verdana 11 px (generous rather than tight)."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 4.0
        elif char in _WIDE:
            width += 10.5
        elif char.isupper() or char.isdigit():
            width += 7.8
        else:
            width += 7.0
    return width


def _text(parent: ET.Element, content: str, x: float) -> None:
    common = {"x": f"{x:.1f}", "text-anchor": "middle"}
    shadow = ET.SubElement(parent, "text", {**common, "y": "15", "fill": "#010101", "fill-opacity": ".3"})
    shadow.text = content
    shadow.set("aria-hidden", "true")
    main = ET.SubElement(parent, "text", {**common, "y": "14", "fill": FOREGROUND})
    main.text = content


@functools.lru_cache(maxsize=1024)  # a pure function of its words: a line back to a state it had is drawn once
def badge_svg(network: str, line: str, state: State, lang: Lang, affected: str = "") -> bytes:
    """The badge of a line: `network` and `line` are display names, in `lang`; `affected` says for whom a
    dependency fails it (in the accessible text only: the picture stays short)."""
    left = f"{network} · {line}"
    right = STATE_LABELS[state][lang]
    sentence = translate(lang, "%(line)s: %(state)s") % {"line": left, "state": right}
    if affected:
        sentence += f" — {affected}"
    left_width = round(text_width(left) + 2 * PADDING)
    right_width = round(text_width(right) + 2 * PADDING)
    width = left_width + right_width
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG,
            "width": str(width),
            "height": str(HEIGHT),
            "viewBox": f"0 0 {width} {HEIGHT}",
            "role": "img",
            "aria-label": sentence,
            "{http://www.w3.org/XML/1998/namespace}lang": lang,
        },
    )
    ET.SubElement(svg, "title").text = sentence
    # ids are global to a page that inlines several badges: one id per badge, or they share one clip
    clip_id = "tpmon-badge-" + hashlib.sha1(sentence.encode(), usedforsecurity=False).hexdigest()[:10]
    clip = ET.SubElement(ET.SubElement(svg, "clipPath", {"id": clip_id}), "rect")
    clip.attrib.update({"width": str(width), "height": str(HEIGHT), "rx": "3", "fill": "#fff"})
    shapes = ET.SubElement(svg, "g", {"clip-path": f"url(#{clip_id})"})
    ET.SubElement(shapes, "rect", {"width": str(left_width), "height": str(HEIGHT), "fill": LEFT})
    ET.SubElement(
        shapes,
        "rect",
        {"x": str(left_width), "width": str(right_width), "height": str(HEIGHT), "fill": BACKGROUNDS[state]},
    )
    texts = ET.SubElement(
        svg, "g", {"font-family": "Verdana,Geneva,DejaVu Sans,sans-serif", "font-size": "11", "aria-hidden": "true"}
    )
    _text(texts, left, left_width / 2)
    _text(texts, right, left_width + right_width / 2)
    document: bytes = ET.tostring(svg, encoding="utf-8", xml_declaration=True)
    return document


def line_badge(settings: Settings, board: StatusLookup, network_id: str, line_id: str, lang: Lang) -> bytes:
    """The badge of a line of the config, from the board's states."""
    status = board.get(ComponentRef("line", network_id, line_id))
    state = status.state if status is not None else State.UNKNOWN
    label: str = getattr(settings.lines[line_id].label, lang)
    affected = explain(settings, board, network_id, line_id, status, lang)[0]
    return badge_svg(settings.networks[network_id].name, label, state, lang, affected)


async def badge(request: Request) -> Response:
    snapshot = request.state.services.snapshot()
    lang: Lang = "en" if request.query_params.get("lang") == "en" else "fr"
    network_id, line_id = request.path_params["network"], request.path_params["line"]
    network = snapshot.settings.networks.get(network_id)
    if network is None or line_id not in network.lines:
        return PlainTextResponse("Réseau ou ligne inconnu / unknown network or line", status_code=404)
    pieces: Fragments = request.state.services.pages.pieces
    view = next(n for n in board_view(snapshot.settings, snapshot, lang).networks if n.id == network_id)
    # the network's view is kept while none of the statuses it read (the line's, the flows its words name) changes
    body = pieces.keep(
        ("badge", network_id, line_id, lang),
        (snapshot.settings, view),
        lambda: line_badge(snapshot.settings, snapshot, network_id, line_id, lang),
    )
    headers = {"Content-Type": "image/svg+xml; charset=utf-8", "Cache-Control": "max-age=60"}
    return Response(body, headers=headers)
