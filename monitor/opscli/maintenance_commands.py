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


def _recurrence(args: argparse.Namespace) -> Recurrence:
    base = Recurrence("weekly", weekdays=args.weekly) if args.weekly else args.monthly or Recurrence()
    return Recurrence(base.frequency, base.weekdays, base.month_day, base.nth, base.weekday, args.until)


def _describe(occurrence: Occurrence) -> str:
    local = occurrence.start.astimezone(PARIS)
    note = {
        "gap": f" (DST: {occurrence.window.start:%H:%M} does not exist that day; starts at {local:%H:%M})",
        "fold": f" (DST: {local:%H:%M} occurs twice that day; runs once, at the first, {local:%Z})",
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
    print(f"maintenance window {saved.id} added: {saved.title.fr} ({saved.recurrence.describe()})")
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
        rows.append((window, "running" if running else "next" if following else "", shown[0] if shown else None))
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
        when = f"{state} {_describe(o)}" if o else ("cancelled" if w.cancelled else "no occurrence within the horizon")
        print(f"{w.id:>5}  {w.title.fr} [{', '.join(w.components)}] {w.recurrence.describe()}: {when}")
    return 0


def cmd_maintenance_cancel(args: argparse.Namespace) -> int:
    with declarations(args) as ops:
        if args.occurrence is not None:
            window = ops.cancel_occurrence(args.id, args.occurrence)
            print(f"maintenance window {window.id}: the occurrence of {args.occurrence:%d/%m/%Y} is cancelled")
            return 0
        window = ops.cancel_window(args.id)
    print(f"maintenance window {window.id} cancelled: {window.title.fr}")
    return 0
