"""`tpmon audit list|export`: read the audit trail (never change it), newest first or as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..i18n import format_short
from .inputs import MAX_LIMIT, count

__all__ = ["register_audit_commands"]


def _moment(text: str) -> datetime:
    from ..declared.maintenance import paris_to_utc
    from .inputs import day_date, paris_time

    try:
        return paris_to_utc(paris_time(text))[0]
    except argparse.ArgumentTypeError:
        day = day_date(text)
        return paris_to_utc(datetime(day.year, day.month, day.day))[0]


def cmd_audit_list(args: argparse.Namespace) -> int:
    from ..store import Store, default_url
    from ..store.audit_store import audit_events

    with Store.open(default_url()) as store:
        events = audit_events(
            store,
            since=args.since,
            until=args.until,
            actor=args.actor,
            action=args.action,
            target=args.target,
            limit=args.limit,
        )
    if args.json:
        print(json.dumps([e.as_json() for e in events], indent=2, ensure_ascii=False))
        return 0
    print(f"{'ID':>6}  {'WHEN (Paris)':<16} {'WHO':<24} {'FROM':<7} {'WHAT':<28} TARGET")
    for e in events:
        print(f"{e.id:>6}  {format_short(e.at):<16} {e.actor:<24} {e.listener:<7} {e.action:<28} {e.target}")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from ..store import Store, default_url
    from ..store.audit_store import export_events

    count = 0
    with Store.open(default_url()) as store:
        for event in export_events(store, since=args.since, until=args.until):
            sys.stdout.write(json.dumps(event.as_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    print(f"{count} audit events exported", file=sys.stderr)
    return 0


def register_audit_commands(sub: Any, leaf: Callable[..., argparse.ArgumentParser], parser_class: Any) -> None:
    audit = sub.add_parser(
        "audit", help="read the audit trail of every write", description="The audit trail (append-only)."
    )
    verbs = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True, parser_class=parser_class)
    listed = leaf(verbs, "list", "list audit events, newest first", cmd_audit_list)
    exported = leaf(verbs, "export", "print audit events as JSON lines, oldest first", cmd_audit_export)
    for p in (listed, exported):
        p.add_argument("--since", type=_moment, metavar="WHEN", help="from this Paris date or date-time")
        p.add_argument("--until", type=_moment, metavar="WHEN", help="before this Paris date or date-time")
    listed.add_argument("--actor", help="e.g. user:alice, token:tpm_ab12cd34, cli:root")
    listed.add_argument("--action", help="e.g. incident (every incident.*), token.revoke")
    listed.add_argument("--target", help="e.g. incident:12")
    listed.add_argument("--limit", type=count(1, MAX_LIMIT), default=100, help="at most 10,000")
    listed.add_argument("--json", action="store_true", help="print JSON")
