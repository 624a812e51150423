"""Texts written by ops, rendered safely: everything is escaped first, then only our own tags are added.

A small subset of Markdown: paragraphs (blank lines), line breaks, "- " lists, **strong** and *emphasis*.
Nothing from the text can become markup (no raw HTML, links or attributes), so no script can get in.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

__all__ = ["render"]

_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?=\S)([^*]+?)(?<=\S)\*(?![*\w])")


def _inline(line: str) -> str:
    text = str(escape(line))
    text = _STRONG.sub(r"<strong>\1</strong>", text)
    return _EM.sub(r"<em>\1</em>", text)


def render(text: str) -> Markup:
    """The text as safe HTML."""
    blocks = [b for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if b.strip()]
    out: list[str] = []
    for block in blocks:
        lines = [line.rstrip() for line in block.split("\n")]
        if all(line.lstrip().startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line.lstrip()[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append("<p>" + "<br>".join(_inline(line) for line in lines) + "</p>")
    return Markup("".join(out))  # noqa: S704 - every piece was escaped above
