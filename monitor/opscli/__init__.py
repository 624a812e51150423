"""`tpmon incident …` and `tpmon maintenance …`: what ops declare, validated, in Europe/Paris time; `tpmon user …`,
`tpmon token …` and `tpmon audit …`: staff accounts, machine tokens and the audit trail; `tpmon webhook`,
`tpmon notify` and `tpmon subscribers`: notifications."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

from ..declared.incidents import IMPACTS, LIFECYCLE
from .audit_commands import register_audit_commands
from .incident_commands import cmd_incident_list, cmd_incident_open, cmd_incident_resolve, cmd_incident_update
from .inputs import MAX_ID, MAX_LIMIT, count, day_date, duration, monthly, paris_time, record_id, weekly
from .maintenance_commands import cmd_maintenance_add, cmd_maintenance_cancel, cmd_maintenance_list
from .notify_commands import register as register_notify
from .token_commands import register_token_commands
from .user_commands import register_user_commands

__all__ = ["OneLineParser", "add_ops_commands"]


def _texts(
    parser: argparse.ArgumentParser, stem: str, what: str, *, required: bool = False, form: str = "Markdown, ≤ 5,000"
) -> None:
    for suffix, lang in (("", "French"), ("-en", "English, optional")):
        group = parser.add_mutually_exclusive_group(required=required and not suffix)
        group.add_argument(f"--{stem}{suffix}", metavar="TEXT", help=f"{what} ({lang}; {form} characters)")
        group.add_argument(f"--{stem}{suffix}-file", metavar="FILE", help="read it from FILE ('-': stdin)")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line naming the option, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _leaf(parent: Any, name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", metavar="FILE", help="the YAML config (default: $TPMON_CONFIG or config/example.yaml)")
    p.set_defaults(func=func)
    return p


def add_ops_commands(sub: Any) -> None:
    """Register `incident open|update|resolve|list`, `maintenance add|list|cancel`, `user …`, `token …` and
    `audit …` on `tpmon`'s subparsers."""
    times = "Times are Europe/Paris, 24 h (2024-02-12 13:00 or 12/02/2024 13:00), from 2000 to 2099."
    incident = sub.add_parser("incident", help="declare incidents (statuses, consignes)", description=times)
    verbs = incident.add_subparsers(
        dest="incident_command", metavar="ACTION", required=True, parser_class=OneLineParser
    )
    opened = _leaf(verbs, "open", "open an incident with its first update", cmd_incident_open)
    _texts(opened, "title", "the incident's title", required=True, form="one line, ≤ 200")
    opened.add_argument("--impact", required=True, choices=IMPACTS)
    opened.add_argument("--status", default="investigating", choices=LIFECYCLE[:-1])
    opened.add_argument("--component", action="append", metavar="KEY", help="affected: network:x, flow:x/y, line:x/y")
    updated = _leaf(verbs, "update", "add an update: phase, message, consignes, declared statuses", cmd_incident_update)
    updated.add_argument("id", type=record_id, metavar="ID")
    updated.add_argument("--status", choices=LIFECYCLE, help="the phase (default: unchanged; resolved resolves)")
    updated.add_argument("--impact", choices=IMPACTS, help="change the impact")
    for p in (opened, updated):
        p.add_argument("--declare", action="append", metavar="KEY=STATE[:PROGRESS]", help="e.g. line:x/optique=down")
    resolved = _leaf(verbs, "resolve", "resolve an incident: its declared statuses stop counting", cmd_incident_resolve)
    resolved.add_argument("id", type=record_id, metavar="ID")
    for p, required in ((opened, True), (updated, True), (resolved, False)):
        _texts(p, "message", "the update's message", required=required)
        _texts(p, "consigne-ps", "what practitioners should do meanwhile")
        _texts(p, "consigne-members", "what members should do meanwhile")
        p.add_argument("--at", type=paris_time, metavar="WHEN", help="when it happened, Paris time (default: now)")
    listed = _leaf(verbs, "list", "list incidents, newest first", cmd_incident_list)
    listed.add_argument("--open", action="store_true", help="only open incidents")
    listed.add_argument("--limit", type=count(1, MAX_LIMIT), default=50, help="at most this many (1 to 10,000)")
    listed.add_argument("--offset", type=count(0, MAX_ID), default=0, help="skip this many first")
    listed.add_argument("--json", action="store_true", help="print JSON with every update")

    maintenance = sub.add_parser("maintenance", help="plan maintenance windows", description=times)
    verbs = maintenance.add_subparsers(
        dest="maintenance_command", metavar="ACTION", required=True, parser_class=OneLineParser
    )
    add = _leaf(verbs, "add", "plan a one-off or recurring maintenance window", cmd_maintenance_add)
    _texts(add, "title", "the window's title", required=True, form="one line, ≤ 200")
    add.add_argument("--component", action="append", metavar="KEY", required=True, help="network:x, flow:x/y, line:x/y")
    add.add_argument("--start", type=paris_time, required=True, metavar="WHEN", help="first start, Paris wall time")
    add.add_argument("--duration", type=duration, required=True, help="e.g. 2h, 90m (at most 7d)")
    rule = add.add_mutually_exclusive_group()
    rule.add_argument("--weekly", type=weekly, metavar="DAYS", help="repeat on these days, e.g. sun or mon,thu")
    rule.add_argument("--monthly", type=monthly, metavar="RULE", help="repeat on day 15, or 2-tue, last-sun")
    add.add_argument("--until", type=day_date, metavar="YYYY-MM-DD", help="last day a repeat may start")
    shown = _leaf(verbs, "list", "list windows with their running or next occurrence", cmd_maintenance_list)
    shown.add_argument("--all", action="store_true", help="include cancelled windows")
    shown.add_argument(
        "--horizon", type=duration, default=timedelta(days=90), help="how far ahead (default 90d, at most 3660d)"
    )
    shown.add_argument("--json", action="store_true", help="print JSON")
    cancel = _leaf(verbs, "cancel", "cancel a window, or one occurrence of it", cmd_maintenance_cancel)
    cancel.add_argument("id", type=record_id, metavar="ID")
    cancel.add_argument(
        "--occurrence", type=day_date, metavar="YYYY-MM-DD", help="only the occurrence starting that day (Paris)"
    )
    register_user_commands(sub, _leaf, OneLineParser)
    register_token_commands(sub, _leaf, OneLineParser)
    register_audit_commands(sub, _leaf, OneLineParser)
    register_notify(sub, _leaf)  # webhook, notify, subscribers
