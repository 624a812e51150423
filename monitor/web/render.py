"""The public pages' common ground: links (live or exported), the Jinja2 environment, one `render` call."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import BuiltinFunctionType, FunctionType, MethodType
from typing import Any

from babel.support import Translations
from jinja2 import Environment, PackageLoader, select_autoescape
from jinja2.environment import TemplateModule
from jinja2.runtime import Context
from markupsafe import Markup

from ..i18n import (
    LANGS,
    SOURCE_LABELS,
    STATE_ICONS,
    STATE_LABELS,
    Lang,
    format_date,
    format_datetime,
    format_decimal,
    format_hour,
    format_percent,
    format_since,
    translations,
)
from ..models import State

__all__ = ["MAIN_OPEN", "Links", "PageArgs", "render", "render_macro", "render_main"]

MAIN_OPEN = '<main id="contenu" tabindex="-1">'  # as base.html opens it

# a page's path parameters (and `page` for a paged list), as the builders receive them
PageArgs = Mapping[str, str]


def _iso_minute(moment: datetime) -> str:
    """A `<time datetime>` as precise as the text it dates (the minute), in UTC: `2024-02-14T08:00Z`."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def _gettext(catalog: Translations) -> Callable[..., Markup]:
    """`_()` as the i18n extension's newstyle one says it in an autoescaped template (every template here is HTML):
    the catalog's text as markup, formatted with the (escaped) `variables` even when there are none. Each text is
    looked up once; the extension's own resolved itself and wrapped the text at each call (a page says some 60
    texts, the home page hundreds: a good part of rendering it)."""
    known: dict[str, tuple[Markup, bool]] = {}

    def gettext(__string: str, **variables: Any) -> Markup:
        found = known.get(__string)
        if found is None:
            text = Markup(catalog.gettext(__string))  # noqa: S704 — the catalog's own text, as the extension does
            found = known[__string] = (text, "%" in text)
        text, formatted = found
        return text % variables if formatted or variables else text

    return gettext


class _Context(Context):
    """Jinja's context, calling what cannot ask for the context (`pass_context` and its kin) at once: a page makes
    hundreds of calls (`_()`, `links.page()`, the formats, `isoformat()`…) and Jinja asked each callable, then its
    `__call__`, for a `jinja_pass_arg` by `hasattr` — an exception raised and caught per miss, the largest single
    cost of rendering a line's page (~15 % of it). A builtin cannot carry that attribute; a function or a method
    carries it in its function's `__dict__`; anything else (a macro, a callable object) is asked as Jinja asks."""

    def call(__self, __obj: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kind = type(__obj)
        if kind is BuiltinFunctionType or (
            (kind is FunctionType and "jinja_pass_arg" not in __obj.__dict__)
            or (
                kind is MethodType
                and type(function := __obj.__func__) is FunctionType  # type: ignore[attr-defined]
                and "jinja_pass_arg" not in function.__dict__
            )
        ):
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            try:
                return __obj(*args, **kwargs)
            except StopIteration:
                return __self.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception"
                )
        return super().call(__obj, *args, **kwargs)


def _environment(lang: Lang) -> Environment:
    """The templates in `lang`: `_()`, `ngettext()` and `{% trans %}` read its catalog; the formats take `lang`
    by default."""
    env = Environment(
        loader=PackageLoader("monitor.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.context_class = _Context
    env.policies["ext.i18n.trimmed"] = True  # {% trans %} blocks as one line: the catalog's msgids stay readable
    catalog = translations(lang)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    env.globals["_"] = env.globals["gettext"] = _gettext(catalog)  # `_()` and `{% trans %}`, faster
    env.globals.update(
        State=State,
        icons=STATE_ICONS,
        state_labels=STATE_LABELS,
        source_labels=SOURCE_LABELS,
        format_datetime=lambda moment, *_: format_datetime(moment, lang),
        format_since=lambda moment, now, *_: format_since(moment, now, lang),
        format_date=lambda moment, *_: format_date(moment, lang),
        format_hour=format_hour,
        iso_minute=_iso_minute,
        format_decimal=lambda number, *_: format_decimal(number, lang),
        format_percent=lambda ratio, _lang=lang, digits=2: format_percent(ratio, lang, digits),
    )
    return env


_ENVS: dict[Lang, Environment] = {lang: _environment(lang) for lang in LANGS}


@dataclass(frozen=True)
class Links:
    """Where a page's links point: the live site (language by `?lang=` then cookie) or an exported copy
    (French at `/…/`, English under `/en/…/`, every page a directory with an index.html)."""

    lang: Lang
    exported: bool = False
    subscribe: bool = False  # the live site offers e-mail subscriptions: "Être prévenu" on every page
    checked_at: datetime | None = None  # exported: the last check the snapshot holds, said on every page

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
    return _ENVS[lang].get_template(template).render(lang=lang, fr=lang == "fr", links=links, path=path, **context)


def render_macro(template: str, macro: str, lang: Lang, links: Links, *args: Any) -> Markup:
    """One macro of `template` in `lang`, as a page importing it `with context` renders it: a piece several pages
    show alike, rendered once for all of them (`Fragments`)."""
    html: Markup = getattr(_module(template, lang, links), macro)(*args)
    return html


@functools.lru_cache(maxsize=64)  # a page's links (its snapshot's time) for its fragments: made once, not per call
def _module(template: str, lang: Lang, links: Links) -> TemplateModule:
    return _ENVS[lang].get_template(template).make_module({"lang": lang, "fr": lang == "fr", "links": links})


def render_main(template: str, lang: Lang, links: Links, path: str, **context: Any) -> Markup:
    """The `<main>` of a page (say, the public incident page), rendered by the page's own template: the console's
    preview shows exactly what the public page will say."""
    html = render(template, lang, links, path, **context)
    start = html.index(MAIN_OPEN) + len(MAIN_OPEN)
    return Markup(html[start : html.rindex("</main>")])  # noqa: S704 — the template's own output, autoescaped
