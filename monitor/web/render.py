"""The public pages' common ground: links (live or exported), the Jinja2 environment, one `render` call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..i18n import (
    SOURCE_LABELS,
    STATE_ICONS,
    STATE_LABELS,
    Lang,
    format_date,
    format_datetime,
    format_percent,
    format_short,
    format_since,
)

__all__ = ["MAIN_OPEN", "Links", "PageArgs", "render", "render_main"]

MAIN_OPEN = '<main id="contenu" tabindex="-1">'  # as base.html opens it

# a page's path parameters (and `page` for a paged list), as the builders receive them
PageArgs = Mapping[str, str]

_ENV = Environment(
    loader=PackageLoader("monitor.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals.update(
    icons=STATE_ICONS,
    state_labels=STATE_LABELS,
    source_labels=SOURCE_LABELS,
    format_datetime=format_datetime,
    format_short=format_short,
    format_since=format_since,
    format_date=format_date,
    format_percent=format_percent,
)


@dataclass(frozen=True)
class Links:
    """Where a page's links point: the live site (language by `?lang=` then cookie) or an exported copy
    (French at `/…/`, English under `/en/…/`, every page a directory with an index.html)."""

    lang: Lang
    exported: bool = False
    subscribe: bool = False  # the live site offers e-mail subscriptions: "Être prévenu" on every page

    def page(self, path: str, lang: Lang | None = None) -> str:
        """The address of an HTML page (`/`, `/reseaux/viamedis`, `/incidents?page=2` …) in `lang`."""
        lang = lang or self.lang
        if not self.exported:
            return path
        path, _, query = path.partition("?")
        if query.startswith("page="):  # exported lists are directories too: /incidents/page/2/
            path = f"{path.rstrip('/')}/page/{query.removeprefix('page=')}"
        prefix = "/en" if lang == "en" else ""
        return prefix + (path.rstrip("/") + "/" if path != "/" else "/")

    def switch(self, path: str) -> str:
        """The same page in the other language."""
        other: Lang = "en" if self.lang == "fr" else "fr"
        if self.exported:
            return self.page(path, other)
        separator = "&" if "?" in path else "?"
        return f"{path}{separator}lang={other}"

    def subscription(self, path: str) -> str:
        """The subscription form for what the page at `path` shows: its line, its network, or everything."""
        parts = [part for part in path.split("?", maxsplit=1)[0].split("/") if part]
        query = ""
        if len(parts) >= 2 and parts[0] in ("reseaux", "assures"):
            query = f"?reseau={parts[1]}" + (
                f"&domaine={parts[2]}" if len(parts) == 3 and parts[0] == "reseaux" else ""
            )
        return "/abonnement" + query

    def file(self, path: str) -> str:
        """A feed, a badge, a JSON document or a stylesheet: one address in both languages."""
        return path


def render(template: str, lang: Lang, links: Links, path: str, **context: Any) -> str:
    """A page in `lang`; `path` is the page's own address (for the language switch and the current nav item)."""
    return _ENV.get_template(template).render(lang=lang, fr=lang == "fr", links=links, path=path, **context)


def render_main(template: str, lang: Lang, links: Links, path: str, **context: Any) -> Markup:
    """The `<main>` of a page (say, the public incident page), rendered by the page's own template: the console's
    preview shows exactly what the public page will say."""
    html = render(template, lang, links, path, **context)
    start = html.index(MAIN_OPEN) + len(MAIN_OPEN)
    return Markup(html[start : html.rindex("</main>")])  # noqa: S704 — the template's own output, autoescaped
