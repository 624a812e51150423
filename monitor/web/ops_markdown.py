"""Texts written by ops (incident messages, consignes) as safe HTML: Markdown first, then an allowlist sanitizer.

Two steps, and why both:

1. markdown-it-py (CommonMark, raw HTML off) turns the text into HTML. With `html` off, any tag typed by ops
   stays text (`<script>` shows as `&lt;script&gt;`), and its `validateLink` refuses `javascript:`,
   `vbscript:`, `file:` and most `data:` targets. But that is a Markdown renderer, not a sanitizer: it lets
   through every other scheme (`intent:`, `ms-msdt:`…), relative and protocol-relative targets (`//evil`),
   and percent-encoded tricks (`jav&#x09;ascript:` becomes the relative `jav%09ascript:`); it writes
   `title`, `class` and `<img>` of its own; and a later change of options or plugins could let more through.
2. nh3 (ammonia) re-parses that HTML as a browser would and keeps only an explicit allowlist: the tags in
   TAGS, `href` on `a` alone, with an absolute `http`, `https` or `mailto` URL (relative URLs are dropped:
   the same text is read on the page, in feeds and in mail, where they would resolve to different places),
   and `rel="noopener noreferrer nofollow"` forced on every link. It is the last line: whatever step 1
   emits, nothing else can reach the page.

Ops headings (`#`, `##`, setext) become a paragraph in `<strong>`: the text is shown under the page's h2
(notices), h3 (incidents) and h4 (consignes), and in feeds under h3, so no heading level fits everywhere.
Images are not shown (their alternative text is). A single line break is kept as `<br>`, as ops type in a
textarea. Control characters are dropped: they mean nothing in a message and would make the feeds invalid XML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

__all__ = ["LINK_REL", "SCHEMES", "TAGS", "render"]

TAGS = frozenset({"p", "br", "ul", "ol", "li", "strong", "em", "code", "pre", "blockquote", "a"})
SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")  # not allowed in XML 1.0 (DEL: in HTML)


def _heading_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    return "<p><strong>"


def _heading_close(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "</strong></p>\n"


def _image(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    return escapeHtml(renderer.renderInlineAsText(tokens[idx].children or [], options, env))


def _markdown() -> MarkdownIt:
    markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    markdown.add_render_rule("heading_open", _heading_open)
    markdown.add_render_rule("heading_close", _heading_close)
    markdown.add_render_rule("image", _image)
    return markdown


# Both are immutable once built (like a compiled regex), so one of each serves every request.
_MARKDOWN = _markdown()
_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    attributes={"*": set(), "a": {"href"}},  # an empty "*" also drops ammonia's generic lang and title
    strip_comments=True,
    link_rel=LINK_REL,
    url_schemes=set(SCHEMES),
    url_relative="deny",
)


def render(text: str) -> Markup:
    """The ops text (Markdown) as safe HTML: only TAGS, and links to http, https or mailto URLs."""
    if not text.strip():
        return Markup("")
    html = _MARKDOWN.render(_CONTROL.sub("", text))
    return Markup(_CLEANER.clean(html).strip())  # noqa: S704 - sanitized by the allowlist just above
