"""French-first texts: the gettext catalogs (Babel), state and source labels, and Europe/Paris dates, numbers and
percentages formatted by Babel in 24 h.

Messages are written in English in the code and the templates (`_("…")`, `{% trans %}`); `monitor/locale/<lang>/
LC_MESSAGES/messages.po` gives each its French and its English text. The `.po` files are read once, at the first
message asked, and compiled in memory: nothing to compile at install, and the catalogs the site runs with are the
ones in the repository. `bash .ci/catalogs.sh` extracts new messages into both catalogs (README, « Traductions »).

One date format per use, in every page:
- a moment (an update, a consigne, a change of state, the last check): `lun. 12 févr. 2024, 13:00` /
  `Mon 12 Feb 2024, 13:00` (`format_datetime`);
- "since when" in dense places (the first screen's rows, the grid's cells): the same without the year when it is
  the current one, `lun. 12 févr., 13:00` (`format_since`);
- a day (availability bars, an outage's day): `lun. 12 févr. 2024` (`format_date`);
- an hour on a chart's axis: `13:00` (`format_hour`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal as babel_decimal
from babel.numbers import format_percent as babel_percent
from babel.support import Translations

from .models import Source, State

__all__ = [
    "LANGS",
    "LOCALES",
    "N_",
    "PARIS",
    "SOURCE_LABELS",
    "STATE_ICONS",
    "STATE_LABELS",
    "Lang",
    "Text",
    "format_date",
    "format_datetime",
    "format_decimal",
    "format_hour",
    "format_percent",
    "format_short",
    "format_since",
    "literal",
    "pick_lang",
    "said",
    "translate",
    "translate_plural",
    "translations",
    "typeset",
]

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
LOCALES: dict[Lang, str] = {"fr": "fr_FR", "en": "en_GB"}  # en_GB: day before month, 24 h
PARIS = ZoneInfo("Europe/Paris")
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks `message` for the catalogs; it is translated where it is shown (`translate(lang, message)`)."""
    return message


@cache
def translations(lang: Lang) -> Translations:
    """The catalog of `lang`, read from its `.po` file and compiled in memory once."""
    source = resources.files("monitor") / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with source.open("rb") as po:
        catalog = read_po(po, locale=LOCALES[lang], domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def translate(lang: Lang, message: str) -> str:
    """`message` (English, as written in the code) in `lang`."""
    text: str = translations(lang).gettext(message)
    return text


@dataclass(frozen=True)
class Text:
    """A message of the catalogs and its placeholders' values, said in each language by `render`: written in
    English in the code with named placeholders (`said("cannot resolve {host}", host=host)`), extracted by
    `bash .ci/catalogs.sh`. Config problems (monitor.config.texts) and the errors tpmon's commands show
    (monitor.errors.MonitorError) carry one; `render("en")` is their `str()`. A placeholder's value may itself be
    a `Text`: it is said in the same language."""

    msgid: str
    params: tuple[tuple[str, Any], ...] = ()
    verbatim: bool = False  # not a message of the catalogs: said as it is in every language

    def render(self, lang: str) -> str:
        if self.verbatim:
            return self.msgid
        values = {name: value.render(lang) if isinstance(value, Text) else value for name, value in self.params}
        chosen: Lang = "fr" if lang == "fr" else "en"
        try:
            return translate(chosen, self.msgid).format(**values)
        except (KeyError, IndexError, ValueError):  # a translation whose placeholders are wrong: the English
            return self.msgid.format(**values)


def said(msgid: str, **params: Any) -> Text:
    """`msgid` (English, `{named}` placeholders) with its values, to be said in each language."""
    return Text(msgid, tuple(params.items()))


def literal(text: str) -> Text:
    """A text said as it is in every language (an operating system's reason, a driver's message)."""
    return Text(text, verbatim=True)


def translate_plural(lang: Lang, singular: str, plural: str, count: int) -> str:
    """The singular or plural form of a message in `lang`, as `count` asks."""
    text: str = translations(lang).ngettext(singular, plural, count)
    return text


_STATE_MESSAGES: dict[State, str] = {
    State.OPERATIONAL: N_("Operational"),
    State.DEGRADED: N_("Degraded"),
    State.PARTIAL: N_("Partially unavailable"),
    State.DOWN: N_("Unavailable"),
    State.RECOVERING: N_("Progressive reactivation"),
    State.MAINTENANCE: N_("Maintenance"),
    State.UNKNOWN: N_("Unknown status"),
}
_SOURCE_MESSAGES: dict[Source, str] = {
    Source.PROBE: N_("probe"),
    Source.PUSH: N_("partner signal"),
    Source.DECLARED: N_("declared"),
    Source.MAINTENANCE: N_("planned maintenance"),
    Source.DEPENDENCY: N_("dependency"),
    Source.NONE: N_("no signal"),
}
STATE_LABELS: dict[State, dict[Lang, str]] = {
    state: {lang: translate(lang, message) for lang in LANGS} for state, message in _STATE_MESSAGES.items()
}
SOURCE_LABELS: dict[Source, dict[Lang, str]] = {
    source: {lang: translate(lang, message) for lang in LANGS} for source, message in _SOURCE_MESSAGES.items()
}

# Shapes, not only colours: each state has its own symbol.
STATE_ICONS: dict[State, str] = {
    State.OPERATIONAL: "✓",
    State.DEGRADED: "!",
    State.PARTIAL: "◐",
    State.DOWN: "✕",
    State.RECOVERING: "↻",
    State.MAINTENANCE: "⚙",
    State.UNKNOWN: "?",
}


def _local(moment: datetime) -> datetime:
    return moment.astimezone(PARIS)


def _day(local: date, lang: Lang) -> str:
    """The day of the month as a date pattern: `'1er'` in French (le 1er février), `d` otherwise."""
    return "'1er'" if lang == "fr" and local.day == 1 else "d"


@lru_cache(maxsize=4096)
def _moment(moment: datetime, lang: Lang, year: bool) -> str:
    """A moment in Europe/Paris, with or without its year; remembered (a page of 300 lines shows a few moments,
    each many times)."""
    local = _local(moment)
    pattern = f"EEE {_day(local, lang)} MMM y, HH:mm" if year else f"EEE {_day(local, lang)} MMM, HH:mm"
    text: str = babel_datetime(local, pattern, tzinfo=PARIS, locale=LOCALES[lang])
    return text


def format_datetime(moment: datetime | None, lang: Lang = "fr") -> str:
    """A moment: `lun. 12 févr. 2024, 13:00` / `Mon 12 Feb 2024, 13:00`, in Europe/Paris, 24 h."""
    if moment is None:
        return "—"
    return _moment(moment, lang, True)


def format_since(moment: datetime | None, now: datetime, lang: Lang = "fr") -> str:
    """Since when, in dense places: `lun. 12 févr., 13:00` (the year only when it is not the current one)."""
    if moment is None:
        return "—"
    return _since(moment, _year(now), lang)


@lru_cache(maxsize=4096)
def _since(moment: datetime, year: int, lang: Lang) -> str:
    """`format_since` in a Paris `year`, remembered: the home page and a line's page say hundreds of these, each
    converting both moments to Paris time to compare their years (~30 µs a call on a slow machine)."""
    return _moment(moment, lang, _local(moment).year != year)


@lru_cache(maxsize=64)
def _year(moment: datetime) -> int:
    """The year in Paris of `moment` (a page's `now`), remembered."""
    return _local(moment).year


def format_date(moment: datetime | date | None, lang: Lang = "fr") -> str:
    """A day: `lun. 12 févr. 2024` / `Mon 12 Feb 2024` (a datetime is taken in Europe/Paris)."""
    if moment is None:
        return "—"
    return _format_day(_local(moment).date() if isinstance(moment, datetime) else moment, lang)


@lru_cache(maxsize=4096)
def _format_day(local: date, lang: Lang) -> str:
    """A day in words, remembered (every page of a line shows its 90 days' bars, each day named)."""
    return babel_date(local, f"EEE {_day(local, lang)} MMM y", locale=LOCALES[lang])


def format_hour(moment: datetime) -> str:
    """`13:00`: an hour on a chart's axis, in Europe/Paris (the same in both languages)."""
    return f"{_local(moment):%H:%M}"


def format_short(moment: datetime | None) -> str:
    """`12/02/2024 13:00` in Europe/Paris: for the operators' terminal (the CLI), never on a page."""
    if moment is None:
        return "—"
    return f"{_local(moment):%d/%m/%Y %H:%M}"


@lru_cache(maxsize=4096)
def format_decimal(number: float, lang: Lang = "fr") -> str:
    """`1 234,5` / `1,234.5`; remembered (the same durations and counts on many pages, in both languages)."""
    text: str = babel_decimal(number, locale=LOCALES[lang])
    return text


@cache
def _percent_pattern(lang: Lang, digits: int) -> str:
    """The locale's percent pattern (`#,##0 %` in French) with up to `digits` decimals."""
    pattern: str = Locale.parse(LOCALES[lang]).percent_formats[None].pattern
    return pattern.replace("0", "0." + "#" * digits, 1) if digits else pattern


def format_percent(ratio: float | None, lang: Lang = "fr", digits: int = 2) -> str:
    """`99,95 %` (French: decimal comma, no-break space) or `99.95%`; `—` when unknown. Never rounds up to 100."""
    if ratio is None:
        return "—"
    scale = 10**digits
    floored = int(round(ratio * 100 * scale, 6)) / scale / 100  # floor: 99.999 % is not shown as 100 %
    return _percent(floored, lang, digits)


@lru_cache(maxsize=4096)
def _percent(floored: float, lang: Lang, digits: int) -> str:
    """A percentage in words, remembered (each line's 90 days of bars, on its page and its network's)."""
    text: str = babel_percent(floored, _percent_pattern(lang, digits), locale=LOCALES[lang])
    return text


_BEFORE_HIGH = re.compile(r"(?<=\S) ([:;?!»])")


def typeset(text: str, lang: Lang) -> str:
    """A text written with plain spaces (config, ops), with French typography in French: a no-break space before
    : ; ? ! » and after «. Unchanged in English."""
    if lang != "fr":
        return text
    return _BEFORE_HIGH.sub("\u00a0\\1", text).replace("« ", "«\u00a0")


_QUALITY = re.compile(r"^\s*q\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\s*$", re.IGNORECASE)  # RFC 9110 qvalue


def _accepted(header: str) -> list[str]:
    """The primary language tags of an Accept-Language header, best first (RFC 9110 §12.5.4): by weight, then in
    the order given; `q=0` and malformed weights left out."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, *params = part.split(";")
        tag = tag.strip().lower()
        quality = 1.0
        for param in params:
            if param.strip().lower().startswith("q"):
                found = _QUALITY.match(param)
                quality = float(found.group(1)) if found else -1.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag.split("-")[0]))
    return [tag for _, _, tag in sorted(weighted)]


def pick_lang(query: str | None, cookie: str | None, accept: str | None) -> Lang:
    """`?lang=` over the cookie over Accept-Language (its weights honoured); French by default."""
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate
    for tag in _accepted(accept or ""):
        if tag == "fr":
            return "fr"
        if tag == "en":
            return "en"
    return "fr"
