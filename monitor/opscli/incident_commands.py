"""`tpmon incident open|update|resolve|list`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from ..declared.incidents import Incident, IncidentUpdate, current_consignes
from ..i18n import format_short
from .inputs import TEXTS, declarations, incident_update, texts_of, when
from .texts import _


def cmd_incident_open(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        incident = ops.open_incident(
            title=texts_of(args, "title"),
            impact=args.impact,
            first=incident_update(args, args.status),
            components=args.component or (),
        )
    opened = _("incident {id} opened ({status}, impact {impact}): {title}")
    print(opened.format(id=incident.id, status=incident.status, impact=incident.impact, title=incident.title.fr))
    _print_declared(incident)
    return 0


def cmd_incident_update(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        before = ops.incident(args.id)
        change = incident_update(args, args.status or before.status)
        incident = ops.update_incident(args.id, change, impact=args.impact)
    updated = _("incident {id} updated ({status}, impact {impact}): {title}")
    print(updated.format(id=incident.id, status=incident.status, impact=incident.impact, title=incident.title.fr))
    _print_declared(incident)
    if warning := outdating(before, change):
        print(_("tpmon: warning: {warning}").format(warning=warning), file=sys.stderr)
    return 0


def outdating(before: Incident, change: IncidentUpdate) -> str:
    """Why the update makes the consignes shown now outdated ("" when it does not): it declares a change of state
    and gives no new consigne to an audience that has one."""
    if change.status == "resolved":
        return ""
    declared = {key: d.state for key, (d, _since) in before.declared().items()}
    changed = [key for key, d in change.statuses.items() if declared.get(key) is not d.state]
    pro, members = current_consignes(before, None)
    stale = [
        who.format(when=format_short(c.at))
        for who, c, renewed in (
            (_("the practitioners' consigne of {when}"), pro, change.practitioner_consigne),
            (_("the members' consigne of {when}"), members, change.member_consigne),
        )
        if c is not None and not renewed
    ]
    if not changed or not stale:
        return ""
    outdated = _(
        "{keys} changes state and no new consigne was given: {consignes} will be shown as outdated (older than "
        "this change); give new ones with --consigne-ps / --consigne-members"
    )
    return outdated.format(keys=", ".join(changed), consignes=_(" and ").join(stale))


def cmd_incident_resolve(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        texts = {field: texts_of(args, stem) for field, stem in TEXTS.items()}
        incident = ops.resolve_incident(args.id, at=when(args), **texts)
    resolved = _("incident {id} resolved at {when}: its declared statuses are cleared")
    print(resolved.format(id=incident.id, when=format_short(incident.resolved_at)))
    return 0


def _print_declared(incident: Incident) -> None:
    for key, (declared, since) in incident.declared().items():
        progress = f" {declared.progress:.0%}" if declared.progress is not None else ""
        line = _("{key} declared {state}{progress} since {since}")
        print("  " + line.format(key=key, state=declared.state.value, progress=progress, since=format_short(since)))


def _incident_json(incident: Incident) -> dict[str, Any]:
    def stamp(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": incident.id,
        "title": {"fr": incident.title.fr, "en": incident.title.en},
        "impact": incident.impact,
        "status": incident.status,
        "components": list(incident.components),
        "created_at": stamp(incident.created_at),
        "resolved_at": stamp(incident.resolved_at),
        "updates": [
            {
                "at": stamp(u.at),
                "status": u.status,
                **{field: {"fr": getattr(u, field).fr, "en": getattr(u, field).en} for field in TEXTS},
                "statuses": {k: {"state": d.state.value, "progress": d.progress} for k, d in u.statuses.items()},
            }
            for u in incident.updates
        ],
    }


def cmd_incident_list(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        found = ops.declarations.incidents(open_only=args.open, limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps([_incident_json(i) for i in found], indent=2, ensure_ascii=False))
        return 0
    heads = _("STATUS"), _("IMPACT"), _("OPENED (Paris)"), _("RESOLVED (Paris)"), _("TITLE")
    print(f"{'ID':>5}  {heads[0]:<13} {heads[1]:<8} {heads[2]:<16} {heads[3]:<16} {heads[4]}")
    for i in found:
        print(
            f"{i.id:>5}  {i.status:<13} {i.impact:<8} {format_short(i.created_at):<16} "
            f"{format_short(i.resolved_at):<16} {i.title.fr}"
        )
    return 0
