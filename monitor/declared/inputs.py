"""What incidents and maintenance windows share: bilingual texts and the components ops may name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Settings
from ..errors import IncidentError
from ..i18n import PARIS, Text, said
from ..models import ComponentRef

__all__ = [
    "FUTURE_SLACK",
    "MAX_TEXT",
    "MAX_TITLE",
    "Bilingual",
    "check_components",
    "check_moment",
    "check_not_future",
    "check_text",
]

MAX_TITLE = 200
MAX_TEXT = 5000  # Markdown, stored as written and rendered later through a sanitizer
FUTURE_SLACK = timedelta(minutes=1)  # clocks differ a little; an update dated later than this is refused


@dataclass(frozen=True)
class Bilingual:
    """A text written by ops in French, optionally in English too; Markdown kept as written."""

    fr: str = ""
    en: str = ""

    def __bool__(self) -> bool:
        return bool(self.fr.strip() or self.en.strip())

    def pick(self, lang: str) -> str:
        """The text in `lang`, French when there is no English."""
        return self.en if lang == "en" and self.en.strip() else self.fr

    def falls_back(self, lang: str) -> bool:
        """Whether `pick(lang)` gives French on a page in another language (to mark it `lang="fr"`)."""
        return lang != "fr" and not self.en.strip() and bool(self.fr.strip())


def check_text(name: str, text: Bilingual, *, required: bool, limit: int = MAX_TEXT, line: bool = False) -> None:
    """IncidentError naming `name.fr` or `name.en` if empty when required, English only, too long, or
    (for a `line`) on several lines."""
    if (required or text.en.strip()) and not text.fr.strip():
        why = said("must not be empty") if required else said("is required when the English text is given")
        raise IncidentError(f"{name}.fr", why)
    for lang, value in (("fr", text.fr), ("en", text.en)):
        if len(value) > limit:
            raise IncidentError(
                f"{name}.{lang}", said("is {size:,} characters long; at most {limit:,}", size=len(value), limit=limit)
            )
        if line and ("\n" in value or "\r" in value):
            raise IncidentError(f"{name}.{lang}", said("must be a single line"))
        control = next((c for c in value if (ord(c) < 32 and c not in "\t\n\r") or 127 <= ord(c) < 160), None)
        if control is not None:  # invisible on the page, and not allowed in XML (the feeds)
            raise IncidentError(
                f"{name}.{lang}", said("contains the control character U+{code:04X}", code=ord(control))
            )


def check_moment(name: str, moment: datetime) -> None:
    """IncidentError if `moment` has no time zone (stored instants are aware, UTC)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise IncidentError(name, said("needs a time zone"))


def check_not_future(name: str, moment: datetime, now: datetime) -> None:
    """IncidentError if `moment` (aware) is more than a minute after `now`: what happened is not in the future."""
    if moment > now + FUTURE_SLACK:
        shown = moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")
        raise IncidentError(name, said("{moment} is in the future", moment=shown))


def _problem(key: str, settings: Settings) -> Text | None:
    """Why `key` names no network, flow or line of `settings`; None when it does."""
    try:
        ref = ComponentRef.parse(key)
    except ValueError:
        return said("{key!r} is not a component key like network:x, flow:x/y or line:x/y", key=key)
    if ref.kind == "check":
        return said("{key!r} is a check; declare the status of its flow, line or network", key=key)
    network = settings.networks.get(ref.network)
    if network is None:
        known = ", ".join(settings.networks)
        return said(
            "unknown component {key!r}: no network {network!r} (known: {known})",
            key=key,
            network=ref.network,
            known=known,
        )
    runs = network.flow_names(settings.flows)
    if ref.kind == "flow" and ref.name not in runs:
        flows = ", ".join(runs)
        return said(
            "unknown component {key!r}: {network} runs no flow {flow!r} (its flows: {flows})",
            key=key,
            network=ref.network,
            flow=ref.name,
            flows=flows,
        )
    if ref.kind == "line" and ref.name not in network.lines:
        lines = ", ".join(network.lines)
        return said(
            "unknown component {key!r}: {network} has no line {line!r} (its lines: {lines})",
            key=key,
            network=ref.network,
            line=ref.name,
            lines=lines,
        )
    return None


def check_components(name: str, keys: Iterable[str], settings: Settings) -> tuple[str, ...]:
    """The keys, deduplicated in order; IncidentError naming the first unknown one."""
    seen: dict[str, None] = {}
    for key in keys:
        problem = _problem(key, settings)
        if problem is not None:
            raise IncidentError(name, problem)
        seen[key] = None
    return tuple(seen)
