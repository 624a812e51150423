"""`tpmon maintenance add|list|cancel`."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from ..declared.maintenance import (
    MaintenanceWindow,
    Occurrence,
    Recurrence,
    check_not_over,
    occurrences,
    paris_to_utc,
    upcoming,
)
from ..i18n import PARIS, format_short
from .inputs import declarations, texts_of, utcnow
from .texts import _


def _recurrence(args: argparse.Namespace) -> Recurrence:
    base = Recurrence("weekly", weekdays=args.weekly) if args.weekly else args.monthly or Recurrence()
    return Recurrence(base.frequency, base.weekdays, base.month_day, base.nth, base.weekday, args.until)


def _describe(occurrence: Occurrence) -> str:
    local = occurrence.start.astimezone(PARIS)
    note = {
        "gap": _(" (DST: {wall} does not exist that day; starts at {start})").format(
            wall=f"{occurrence.window.start:%H:%M}", start=f"{local:%H:%M}"
        ),
        "fold": _(" (DST: {wall} occurs twice that day; runs once, at the first, {zone})").format(
            wall=f"{local:%H:%M}", zone=f"{local:%Z}"
        ),
    }.get(occurrence.dst, "")
    if occurrence.dst == "fold":  # the same wall time twice: say which
        start, end = (f"{format_short(t)} {t.astimezone(PARIS):%Z}" for t in (occurrence.start, occurrence.end))
        return f"{start} → {end}{note}"
    return f"{format_short(occurrence.start)} → {format_short(occurrence.end)}{note}"


def cmd_maintenance_add(args: argparse.Namespace) -> int:
    window = MaintenanceWindow(
        None,
        texts_of(args, "title"),
        tuple(args.component or ()),
        args.start,
        args.duration,
        _recurrence(args),
    )
    with declarations(args) as ops:
        check_not_over(window, utcnow())
        saved = ops.add_window(window)
    first = paris_to_utc(saved.start)[0]
    added = _("maintenance window {id} added: {title} ({rule})")
    print(added.format(id=saved.id, title=saved.title.fr, rule=saved.recurrence.describe()))
    for occurrence in occurrences(saved, first, first + timedelta(days=400))[:3]:
        print(f"  {_describe(occurrence)}")
    return 0


def cmd_maintenance_list(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        windows = ops.declarations.windows(include_cancelled=args.all)
    now = utcnow()
    rows = []
    for window in windows:
        running = [o for o in occurrences(window, now, now + timedelta(microseconds=1)) if o.start <= now]
        following = upcoming([window], now, args.horizon)
        shown = running or following
        rows.append((window, _("running") if running else _("next") if following else "", shown[0] if shown else None))
    if args.json:
        out = [
            {
                "id": w.id,
                "title": {"fr": w.title.fr, "en": w.title.en},
                "components": list(w.components),
                "start_local": w.start.isoformat(timespec="minutes"),
                "duration_s": w.duration.total_seconds(),
                "recurrence": w.recurrence.describe(),
                "cancelled": w.cancelled,
                "state": state,
                "occurrence": {"start": o.start.isoformat(), "end": o.end.isoformat(), "dst": o.dst} if o else None,
            }
            for w, state, o in rows
        ]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for w, state, o in rows:
        when = (
            f"{state} {_describe(o)}"
            if o
            else (_("cancelled") if w.cancelled else _("no occurrence within the horizon"))
        )
        print(f"{w.id:>5}  {w.title.fr} [{', '.join(w.components)}] {w.recurrence.describe()}: {when}")
    return 0


def cmd_maintenance_cancel(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        if args.occurrence is not None:
            window = ops.cancel_occurrence(args.id, args.occurrence)
            cancelled = _("maintenance window {id}: the occurrence of {day} is cancelled")
            print(cancelled.format(id=window.id, day=f"{args.occurrence:%d/%m/%Y}"))
            return 0
        window = ops.cancel_window(args.id)
    print(_("maintenance window {id} cancelled: {title}").format(id=window.id, title=window.title.fr))
    return 0
