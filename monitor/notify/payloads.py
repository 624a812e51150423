"""Webhook payloads: `{type, timestamp, data}` as Standard Webhooks recommends, documented by the JSON schema
`webhook-payload.schema.json` beside this module (the tests validate real payloads against it)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from ..config import Settings
from ..i18n import LANGS, STATE_LABELS, translate
from ..models import State
from .events import Event
from .scopes import affected_lines

__all__ = ["event_payload", "schema", "test_payload"]


@cache
def schema() -> dict[str, Any]:
    """The JSON schema of every payload."""
    text = resources.files("monitor.notify").joinpath("webhook-payload.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _bilingual(value: Any) -> dict[str, str]:
    value = value if isinstance(value, dict) else {}
    return {"fr": str(value.get("fr", "")), "en": str(value.get("en", ""))}


def event_payload(event: Event, settings: Settings) -> dict[str, Any]:
    """The payload telling one event."""
    base = settings.links_base()
    payload = event.payload
    timestamp = event.at.isoformat()
    if event.kind == "line":
        line = str(payload.get("line", ""))
        network, _, name = line.partition("/")
        label = settings.lines.get(name)
        state = State(payload.get("state", "unknown"))
        data: dict[str, Any] = {
            "kind": "line",
            "event_id": event.id,
            "network": network,
            "line": name,
            "label": {"fr": label.label.fr, "en": label.label.en} if label else {"fr": name, "en": name},
            "state": state.value,
            "state_label": dict(STATE_LABELS[state]),
            "previous": str(payload.get("told_previous", payload.get("previous", "unknown"))),
            "progress": float(payload.get("progress", 0.0)),
            "source": str(payload.get("source", "none")),
            "url": f"{base}/reseaux/{line}",
        }
        return {"type": "line.changed", "timestamp": timestamp, "data": data}
    lines = sorted(affected_lines(event, settings))
    if event.kind == "incident":
        data = {
            "kind": "incident",
            "event_id": event.id,
            "id": int(payload.get("incident") or 0),
            "phase": str(payload.get("phase")),
            "status": str(payload.get("status")),
            "impact": str(payload.get("impact")),
            **{k: _bilingual(payload.get(k)) for k in ("title", "message", "practitioner_consigne", "member_consigne")},
            "components": list(event.components),
            "lines": lines,
            "url": f"{base}/incidents/{payload.get('incident')}",
        }
        return {"type": f"incident.{payload.get('phase')}", "timestamp": timestamp, "data": data}
    data = {
        "kind": "maintenance",
        "event_id": event.id,
        "id": int(payload.get("window") or 0),
        "phase": str(payload.get("phase")),
        "title": _bilingual(payload.get("title")),
        "start_local": str(payload.get("start_local", "")),
        "duration_s": float(payload.get("duration_s", 0.0)),
        "recurrence": str(payload.get("recurrence", "")),
        "components": list(event.components),
        "lines": lines,
        "url": f"{base}/",
    }
    return {"type": f"maintenance.{payload.get('phase')}", "timestamp": timestamp, "data": data}


def test_payload(timestamp: str) -> dict[str, Any]:
    """What `tpmon webhook test` sends."""
    message = " / ".join(translate(lang, "tpmon test: this webhook is set up.") for lang in LANGS)
    return {"type": "test", "timestamp": timestamp, "data": {"kind": "test", "message": message}}
