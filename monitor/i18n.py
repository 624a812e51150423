"""French-first texts and date formats: state and source labels, Europe/Paris dates in 24 h."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from .models import Source, State

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
PARIS = ZoneInfo("Europe/Paris")

STATE_LABELS: dict[State, dict[Lang, str]] = {
    State.OPERATIONAL: {"fr": "Opérationnel", "en": "Operational"},
    State.DEGRADED: {"fr": "Perturbé", "en": "Degraded"},
    State.PARTIAL: {"fr": "Partiellement indisponible", "en": "Partially unavailable"},
    State.DOWN: {"fr": "Indisponible", "en": "Unavailable"},
    State.RECOVERING: {"fr": "Réactivation progressive", "en": "Progressive reactivation"},
    State.MAINTENANCE: {"fr": "Maintenance", "en": "Maintenance"},
    State.UNKNOWN: {"fr": "Statut inconnu", "en": "Unknown status"},
}

SOURCE_LABELS: dict[Source, dict[Lang, str]] = {
    Source.PROBE: {"fr": "sonde", "en": "probe"},
    Source.PUSH: {"fr": "signal partenaire", "en": "partner signal"},
    Source.DECLARED: {"fr": "déclaration", "en": "declared"},
    Source.MAINTENANCE: {"fr": "maintenance planifiée", "en": "planned maintenance"},
    Source.DEPENDENCY: {"fr": "dépendance", "en": "dependency"},
    Source.NONE: {"fr": "aucun signal", "en": "no signal"},
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

_DAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin",
        "juillet", "août", "septembre", "octobre", "novembre", "décembre",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip


def format_datetime(moment: datetime | None, lang: Lang = "fr") -> str:
    """`lundi 12 février 2024 à 13:00` / `Monday 12 February 2024, 13:00`, in Europe/Paris."""
    if moment is None:
        return "—"
    local = moment.astimezone(PARIS)
    day, month = _DAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    if lang == "fr":
        first = "1er" if local.day == 1 else str(local.day)
        return f"{day} {first} {month} {local.year} à {local:%H:%M}"
    return f"{day} {local.day} {month} {local.year}, {local:%H:%M}"


def format_date(moment: datetime | date | None, lang: Lang = "fr") -> str:
    """`lundi 12 février 2024` / `Monday 12 February 2024` (a datetime is taken in Europe/Paris)."""
    if moment is None:
        return "—"
    local = moment.astimezone(PARIS).date() if isinstance(moment, datetime) else moment
    day, month = _DAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    if lang == "fr":
        return f"{day} {'1er' if local.day == 1 else local.day} {month} {local.year}"
    return f"{day} {local.day} {month} {local.year}"


def format_percent(ratio: float | None, lang: Lang = "fr", digits: int = 2) -> str:
    """`99,95 %` (fr: decimal comma, no-break space) or `99.95%` (en); `—` when unknown. Never rounds up to 100."""
    if ratio is None:
        return "—"
    scale = 10**digits
    value = int(round(ratio * 100 * scale, 6)) / scale  # floor: 99.999 % is not shown as 100 %
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text.replace('.', ',')}\u00a0%" if lang == "fr" else f"{text}%"


def format_short(moment: datetime | None, lang: Lang = "fr") -> str:
    """`12/02/2024 13:00` (fr) or `12 Feb 2024 13:00` (en), in Europe/Paris."""
    if moment is None:
        return "—"
    local = moment.astimezone(PARIS)
    if lang == "fr":
        return f"{local:%d/%m/%Y %H:%M}"
    return f"{local.day} {_MONTHS['en'][local.month - 1][:3]} {local.year} {local:%H:%M}"


def format_since(moment: datetime | None, now: datetime, lang: Lang = "fr") -> str:
    """`29/01 16:00` (fr) or `29 Jan 16:00` (en); the year only when it is not the current one. Europe/Paris."""
    if moment is None:
        return "—"
    local = moment.astimezone(PARIS)
    if local.year != now.astimezone(PARIS).year:
        return format_short(moment, lang)
    if lang == "fr":
        return f"{local:%d/%m %H:%M}"
    return f"{local.day} {_MONTHS['en'][local.month - 1][:3]} {local:%H:%M}"


def pick_lang(query: str | None, cookie: str | None, accept: str | None) -> Lang:
    """`?lang=` over the cookie over Accept-Language; French by default."""
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return "fr"
