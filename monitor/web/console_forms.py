"""The console's forms, read into the domain: an incident's first update or a later one (declared statuses with a
progress typed as a number or set with a slider), and the choices they offer. Refusals are the domain's own
(IncidentError naming the field, as the API and the CLI name it); the form shows them beside the field."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..config import Settings
from ..declared.incidents import IMPACTS, LIFECYCLE, Declared, Impact, IncidentUpdate, Phase, declare
from ..declared.inputs import Bilingual
from ..errors import IncidentError
from ..i18n import STATE_LABELS, Lang, said
from ..models import State
from ..staff.roles import Principal

__all__ = [
    "DECLARABLE",
    "ROWS",
    "TEXTS",
    "Choice",
    "component_choices",
    "fingerprint",
    "form_text",
    "form_update",
    "impact_of",
    "state_choices",
]

ROWS = 3  # rows of declared statuses a form offers; an update names only the components whose status changes
TEXTS = ("message", "practitioner_consigne", "member_consigne")
DECLARABLE = tuple(s for s in State if s is not State.UNKNOWN)
_IGNORED = {"csrf", "action", "previewed"}


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


def component_choices(settings: Settings, principal: Principal, lang: Lang) -> list[tuple[str, list[Choice]]]:
    """The components this principal may declare a status on, grouped by network: the network, its lines, its
    flows. An editor sees only its own networks: the form offers nothing the write would refuse."""
    groups = []
    line_word, flow_word = ("domaine", "flux") if lang == "fr" else ("line", "flow")
    for name, network in settings.networks.items():
        if not principal.may_write(name):
            continue
        choices = [
            Choice(f"network:{name}", f"{network.name} ({'tout le réseau' if lang == 'fr' else 'whole network'})")
        ]
        for line in network.lines:
            label = getattr(settings.lines[line].label, lang) if line in settings.lines else line
            choices.append(Choice(f"line:{name}/{line}", f"{network.name} — {line_word} {label}"))
        for flow in network.flow_names(settings.flows):
            label = getattr(settings.flows[flow].label, lang) if flow in settings.flows else flow
            choices.append(Choice(f"flow:{name}/{flow}", f"{network.name} — {flow_word} {label}"))
        groups.append((network.name, choices))
    return groups


def state_choices(lang: Lang) -> list[Choice]:
    return [Choice(s.value, STATE_LABELS[s][lang]) for s in DECLARABLE]


def form_text(form: Mapping[str, str], name: str) -> Bilingual:
    """`name.fr` and `name.en` of the form, line ends as typed (\r\n made \n)."""

    def value(lang: str) -> str:
        return form.get(f"{name}.{lang}", "").replace("\r\n", "\n").strip()

    return Bilingual(value("fr"), value("en"))


def _progress(form: Mapping[str, str], row: int, key: str) -> float | None:
    """The row's progress in percent: the number typed, else the slider's value; None when neither is given."""
    typed = form.get(f"progress-{row}", "").strip().replace(",", ".").removesuffix("%").strip()
    slider = form.get(f"progress-{row}-slider", "").strip()
    raw = typed or slider
    if not raw:
        return None
    try:
        percent = float(raw)
    except ValueError:
        problem = said("the progress for {key} must be a number from 0 to 100 (got {raw!r})", key=key, raw=raw[:20])
        raise IncidentError("statuses", problem) from None
    if not (math.isfinite(percent) and 0 <= percent <= 100):
        raise IncidentError(
            "statuses", said("the progress for {key} must be from 0 to 100 % (got {raw})", key=key, raw=raw[:20])
        )
    return percent / 100


def _statuses(form: Mapping[str, str]) -> dict[str, Declared]:
    """The rows whose component is chosen; a state without a component, or one chosen twice, is refused."""
    found: dict[str, Declared] = {}
    for row in range(ROWS):
        key = form.get(f"component-{row}", "").strip()
        state = form.get(f"state-{row}", "").strip()
        if not key:
            if state:
                raise IncidentError("statuses", said("row {row}: a state is chosen but no component", row=row + 1))
            continue
        if key in found:
            raise IncidentError("statuses", said("{key} is chosen twice", key=key))
        if not state:
            raise IncidentError("statuses", said("row {row}: choose the state of {key}", row=row + 1, key=key))
        progress = _progress(form, row, key) if state == State.RECOVERING.value else None
        found[key] = declare(state, progress, key=key)
    return found


def impact_of(form: Mapping[str, str], *, required: bool) -> Impact | None:
    raw = form.get("impact", "").strip()
    if not raw and not required:
        return None
    for impact in IMPACTS:
        if impact == raw:
            return impact
    raise IncidentError("impact", said("{raw!r} is not one of {known}", raw=raw[:40], known=", ".join(IMPACTS)))


def _phase(form: Mapping[str, str], default: Phase) -> Phase:
    raw = form.get("status", "").strip() or default
    for phase in LIFECYCLE:
        if phase == raw:
            return phase
    raise IncidentError("status", said("{raw!r} is not one of {known}", raw=raw[:40], known=", ".join(LIFECYCLE)))


def form_update(form: Mapping[str, str], now: datetime, *, default: Phase = "investigating") -> IncidentUpdate:
    """An incident's update from the form, dated now (the domain validates the rest when it is applied)."""
    return IncidentUpdate(
        now,
        _phase(form, default),
        form_text(form, "message"),
        form_text(form, "practitioner_consigne"),
        form_text(form, "member_consigne"),
        _statuses(form),
    )


def fingerprint(form: Mapping[str, str], extra: Iterable[str] = ()) -> str:
    """What was previewed: a digest of every field but the CSRF token and the buttons. Publishing checks that the
    form still says what its preview showed."""
    items = sorted((k, v.replace("\r\n", "\n").strip()) for k, v in form.items() if k not in _IGNORED)
    text = "\n".join(f"{k}={v}" for k, v in items) + "\n" + "\n".join(extra)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
