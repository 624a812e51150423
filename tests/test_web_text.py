"""Ops text rendering: Markdown, then an allowlist sanitizer; nothing from the text becomes a script or a style."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup, escape

from monitor.web.ops_markdown import render

# What the page may receive, written out here rather than imported: the test pins the policy.
ALLOWED_TAGS = {"p", "br", "ul", "ol", "li", "strong", "em", "code", "pre", "blockquote", "a"}
ALLOWED_ATTRIBUTES = {"a": {"href", "rel"}}
ALLOWED_SCHEMES = {"http", "https", "mailto"}
REL = "noopener noreferrer nofollow"
FORBIDDEN_IN_TAGS = ("onerror", "javascript:")


class _Audit(HTMLParser):
    """Every element, attribute and link of an HTML fragment, as a browser-like tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.raw_tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.raw_tags.append(self.get_starttag_text() or "")
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"element <{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, set()):
                self.problems.append(f"attribute {name!r} on <{tag}>")
            elif name == "href":
                self._check_href(value or "")
            elif name == "rel" and value != REL:
                self.problems.append(f"rel={value!r}")
        if tag == "a" and dict(attrs).get("rel") != REL:
            self.problems.append("link without the forced rel")

    def _check_href(self, href: str) -> None:
        # the value as the browser reads it (entities decoded); a scheme must be there and allowed
        if href != href.strip() or any(ord(c) < 0x20 or c == "\x7f" for c in href):
            self.problems.append(f"href with whitespace or control characters: {href!r}")
        if urlsplit(href).scheme.lower() not in ALLOWED_SCHEMES:
            self.problems.append(f"href {href!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"end tag </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"unknown declaration {data!r}")


def audit(fragment: str) -> _Audit:
    parser = _Audit()
    parser.feed(fragment)
    parser.close()
    return parser


def visible_text(fragment: str) -> str:
    return " ".join("".join(audit(fragment).text).split())


# OWASP XSS filter evasion cheat sheet style, in the forms ops could type them (Markdown and raw HTML).
XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/xss.js></SCRIPT>",
    "<<script>script>alert(1)<</script>/script>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<svg onload=alert(1)>",
    '"><svg/onload=alert(1)>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](<javascript:alert(1)>)",
    "[x](java\nscript:alert(1))",
    "[x](\x01javascript:alert(1))",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](jav&#x0A;ascript:alert(1))",
    "[x](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](%6A%61%76%61%73%63%72%69%70%74:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](data:image/png;base64,iVBORw0KGgo=)",  # markdown-it lets this one through: the sanitizer drops it
    "[x](vbscript:msgbox(1))",
    "[x](intent://evil.example#Intent;end)",
    "[x](//evil.example/)",
    "[x](\\\\evil.example\\share)",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    '<a href="javascript:alert(1)" onclick="alert(1)">x</a>',
    '<a href="https://ok.example" onclick=alert(1)>x</a>',
    '<a href="&#x6A;avascript:alert(1)">x</a>',
    '<a href="https://ok.example" style="background:url(javascript:alert(1))">x</a>',
    '<iframe src="javascript:alert(1)"></iframe>',
    "*<iframe src=//evil.example>*",
    '<object data="data:text/html,<script>alert(1)</script>"></object>',
    "<embed src=javascript:alert(1)>",
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<!-- <img src=x onerror=alert(1)> -->",
    "<!--><img src=x onerror=alert(1)>-->",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<math href=javascript:alert(1)>x</math>",
    '[x](https://ok.example" onmouseover="alert(1))',
    "[x](https://ok.example 'a\" onerror=\"alert(1)')",
    '[x](https://ok.example "a\\" onerror=\\"alert(1)")',
    "![x](javascript:alert(1))",
    '![x" onerror="alert(1)](https://ok.example/i.png)',
    "![x](https://ok.example/i.png)",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "[x][ref]\n\n[ref]: <javascript:alert(1)>",
    '[x][ref]\n\n[ref]: https://ok.example "t" onclick="alert(1)"',
    "**<b onmouseover=alert(1)>x</b>**",
    "***<i onclick=alert(1)>*x*</i>***",
    "_<em onfocus=alert(1) autofocus>x</em>_",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<details open ontoggle=alert(1)>",
    '<form action="javascript:alert(1)"><button>x</button></form>',
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "`<script>alert(1)</script>`",
    "```html\n<img src=x onerror=alert(1)>\n```",
    "    <img src=x onerror=alert(1)>",
    "> <img src=x onerror=alert(1)>",
    "- <svg onload=alert(1)>\n- [x](javascript:alert(1))",
    "# <img src=x onerror=alert(1)>",
    "[x](https://ok.example)<img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("payload", XSS)
def test_xss_payloads_come_out_within_the_allowlist(payload: str) -> None:
    out = str(render(payload))
    found = audit(out)
    assert found.problems == []
    for tag in found.raw_tags:
        assert not any(word in tag.lower() for word in FORBIDDEN_IN_TAGS), tag


def test_the_corpus_is_large_and_raw_html_stays_visible_text() -> None:
    assert len(XSS) >= 30
    # raw HTML is neither run nor silently eaten: the reader sees what ops typed
    assert str(render("<script>alert(1)</script>")) == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert visible_text(str(render('<img src=x onerror="alert(1)">'))) == '<img src=x onerror="alert(1)">'


def test_links_with_a_refused_target_keep_their_words_but_lose_the_target() -> None:
    for target in ("//evil.example/", "data:image/png;base64,iVBORw0KGgo=", "intent://evil.example", "/incidents/3"):
        out = str(render(f"[signalez ici]({target})"))
        assert out == f'<p><a rel="{REL}">signalez ici</a></p>', target


_MARKDOWN_AND_HTML = "<>\"'&[]()*_#!`\\/:;=-\n \t"
_FRAGMENTS = [
    "javascript:", "JaVaScRiPt:", "data:", "vbscript:", "http://", "https://ok.example/", "mailto:",
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "<svg", "onload=", "onerror=", "<a href=",
    "&#x09;", "&#106;", "&colon;", "&amp;", "](", "![", "<!--", "-->", "**", "\n\n", "    ", "> ", "- ", "1. ",
]  # fmt: skip
_TEXT = st.lists(
    st.one_of(
        st.sampled_from(list(_MARKDOWN_AND_HTML)),
        st.sampled_from(_FRAGMENTS),
        st.characters(codec="utf-8"),
    ),
    max_size=60,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(_TEXT)
def test_any_text_renders_within_the_allowlist(text: str) -> None:
    out = render(text)
    assert isinstance(out, Markup)
    assert audit(str(out)).problems == []
    assert (ET.fromstring(f"<content>{html.escape(str(out))}</content>").text or "") == out  # fits in a feed


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcXYZ019 éèàçôÉ«»’\u00a0<>\"'&.,:;?/", max_size=80))
def test_plain_words_and_symbols_are_shown_as_typed(text: str) -> None:
    # no Markdown syntax here (a word first: a line starting with ">" or "1." would be a quote or a list):
    # every character the text has, the reader sees, spaces aside
    assert visible_text(str(render(f"Note : {text}"))) == " ".join(f"Note : {text}".split())


def test_paragraphs_lists_strong_and_emphasis() -> None:
    text = "**Portail fermé** depuis 13:00.\n\n- PEC impossibles\n- *Avance de frais* probable\n\nFin."
    assert render(text) == (
        "<p><strong>Portail fermé</strong> depuis 13:00.</p>\n"
        "<ul>\n<li>PEC impossibles</li>\n<li><em>Avance de frais</em> probable</li>\n</ul>\n"
        "<p>Fin.</p>"
    )
    assert render("ligne 1\nligne 2") == "<p>ligne 1<br>\nligne 2</p>"  # one line break, as typed in a textarea
    assert render("2 * 3 * 4") == "<p>2 * 3 * 4</p>"  # a lone star is not emphasis
    assert render("1. Appelez\n2. Patientez") == "<ol>\n<li>Appelez</li>\n<li>Patientez</li>\n</ol>"
    assert render("> Message de Viamedis") == "<blockquote>\n<p>Message de Viamedis</p>\n</blockquote>"
    assert render("Code `PEC-42`") == "<p>Code <code>PEC-42</code></p>"


def test_ops_headings_become_strong_paragraphs_below_the_pages_own_headings() -> None:
    assert render("# Portail fermé\n\n## Que faire\n\nTexte") == (
        "<p><strong>Portail fermé</strong></p>\n<p><strong>Que faire</strong></p>\n<p>Texte</p>"
    )
    assert render("Titre\n=====") == "<p><strong>Titre</strong></p>"


def test_links_carry_the_forced_rel_and_allowed_schemes_only() -> None:
    out = render("Signalez sur https://www.cybermalveillance.gouv.fr ou [écrivez-nous](mailto:support@example.fr).")
    assert out == (
        "<p>Signalez sur https://www.cybermalveillance.gouv.fr ou "  # no linkify: a bare URL stays text
        f'<a href="mailto:support@example.fr" rel="{REL}">écrivez-nous</a>.</p>'
    )
    assert render("<https://www.cybermalveillance.gouv.fr>") == (
        f'<p><a href="https://www.cybermalveillance.gouv.fr" rel="{REL}">https://www.cybermalveillance.gouv.fr</a></p>'
    )
    # a title, and a rel of ops' own, are dropped
    assert render('[site](http://example.fr "titre")') == f'<p><a href="http://example.fr" rel="{REL}">site</a></p>'


def test_images_show_their_alternative_text_only() -> None:
    assert render("Voir ![la carte des réseaux](https://example.fr/carte.png).") == "<p>Voir la carte des réseaux.</p>"


def test_french_text_with_accents_and_guillemets_is_intact() -> None:
    text = "« Portail fermé » : réouverture à 13 h — ça dépend d’Almerys ; PEC optique/audio à l’étude ?"
    assert render(text) == f"<p>{text}</p>"
    spaced = "«\u00a0Opérationnel\u00a0» depuis\u202f12:00\u00a0!"  # French non-breaking spaces
    assert html.unescape(str(render(spaced))) == f"<p>{spaced}</p>"


def test_ampersands_are_escaped_once() -> None:
    assert render("Viamedis & Almerys") == "<p>Viamedis &amp; Almerys</p>"
    out = str(render("[suivi](https://example.fr/?reseau=alpha&ligne=optique) & AT&T"))
    assert (
        out
        == f'<p><a href="https://example.fr/?reseau=alpha&amp;ligne=optique" rel="{REL}">suivi</a> &amp; AT&amp;T</p>'
    )
    assert "&amp;amp;" not in out
    assert escape(render("A & B")) == render("A & B")  # Markup: Jinja will not escape it a second time


def test_control_characters_are_dropped_so_feeds_stay_well_formed_xml() -> None:
    out = str(render("PEC\x01 optique\x1b[31m\x7f fermées\ufffe\tici"))
    assert out == "<p>PEC optique[31m fermées\tici</p>"
    element = ET.Element("content")
    element.text = out
    assert ET.fromstring(ET.tostring(element, encoding="unicode")).text == out


def test_empty_text_is_empty_markup() -> None:
    for text in ("", "   ", "\n\n\t\n"):
        out = render(text)
        assert isinstance(out, Markup)
        assert out == ""
