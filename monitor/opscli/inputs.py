"""Parsing and checking what ops type: Paris times, durations, repeat rules, declarations, texts."""

from __future__ import annotations

import argparse
import errno
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, cast

from ..config import parse_duration
from ..config.texts import TextError
from ..declared.incidents import Declared, IncidentUpdate, Phase, declare
from ..declared.inputs import Bilingual, check_not_future
from ..declared.maintenance import WEEKDAYS, Recurrence, paris_to_utc
from ..errors import IncidentError, MonitorError
from .texts import _, cli_lang

if TYPE_CHECKING:
    from ..operators.audited import AuditedDeclarations

DEFAULT_CONFIG = "config/example.yaml"
TEXTS = {  # domain field → option stem; each has --STEM, --STEM-en, --STEM-file, --STEM-en-file
    "message": "message",
    "practitioner_consigne": "consigne-ps",
    "member_consigne": "consigne-members",
}
OPTIONS = {  # domain field (IncidentError.field) → the option that set it
    **{f"{field}.fr": f"--{stem}" for field, stem in TEXTS.items()},
    **{f"{field}.en": f"--{stem}-en" for field, stem in TEXTS.items()},
    "title": "--title",
    "title.fr": "--title",
    "title.en": "--title-en",
    "impact": "--impact",
    "status": "--status",
    "at": "--at",
    "statuses": "--declare",
    "components": "--component",
    "start": "--start",
    "duration": "--duration",
    "recurrence": "--weekly/--monthly",
    "weekdays": "--weekly",
    "month_day": "--monthly",
    "nth": "--monthly",
    "until": "--until",
    "date": "--occurrence",
    "id": "",  # about the incident or window itself: the message says which
}
_DAYS_FR = ("lun", "mar", "mer", "jeu", "ven", "sam", "dim")
_MONTHLY = re.compile(r"^(?:(\d{1,2})|(last|-1|[1-5])-([a-z]{3}))$")


# What ops may type: dates of this century, durations up to ten years, ids a database integer can hold,
# texts from files of at most TEXT_FILE_MAX bytes (a Markdown text is at most 5,000 characters).
FIRST_YEAR, LAST_YEAR = 2000, 2099
MAX_ID = 2**63 - 1
MAX_LIMIT = 10_000  # rows a listing prints at most
MAX_DURATION = timedelta(days=3660)
TEXT_FILE_MAX = 64 * 1024


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _in_years(moment: date, text: str) -> None:
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        years = _("{text} is not between {first} and {last}")
        raise argparse.ArgumentTypeError(years.format(text=_shown(text), first=FIRST_YEAR, last=LAST_YEAR))


def paris_time(text: str) -> datetime:
    """`2024-03-31 02:30`, `2024-03-31T02:30` or `31/03/2024 02:30`: a naive Europe/Paris wall time, 2000–2099."""
    for pattern in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            moment = datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
        _in_years(moment, text)
        return moment
    wrong = _("{text} is not a Paris date-time like 2024-03-31 02:30 or 31/03/2024 02:30")
    raise argparse.ArgumentTypeError(wrong.format(text=_shown(text)))


def duration(text: str) -> timedelta:
    """A duration (`90m`, `2h`, `1d`…) of at most 3660 days: what a maintenance or a horizon may sensibly span
    is the domain's to say; this only keeps dates computable."""
    try:
        seconds = parse_duration(text)
    except TextError as exc:
        raise argparse.ArgumentTypeError(exc.text.render(cli_lang())) from None
    if seconds > MAX_DURATION.total_seconds():
        longest = _("{text}: must be at most {days}d")
        raise argparse.ArgumentTypeError(longest.format(text=_shown(text), days=MAX_DURATION.days))
    return timedelta(seconds=seconds)


def day_date(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text} is not a date like 2024-12-31").format(text=_shown(text))) from None
    _in_years(day, text)
    return day


def record_id(text: str) -> int:
    """An incident's or a window's id: a whole number from 1 to 2⁶³ − 1 (what the database holds)."""
    try:
        number = int(text.strip())
    except ValueError:
        not_id = _("{text} is not an id (a whole number, see the list)")
        raise argparse.ArgumentTypeError(not_id.format(text=_shown(text))) from None
    if not 1 <= number <= MAX_ID:
        out_of_range = _("{text} is not an id (ids run from 1 to {last})")
        raise argparse.ArgumentTypeError(out_of_range.format(text=_shown(text), last=MAX_ID))
    return number


def count(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high` (`--limit`, `--offset`)."""

    def parse(text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(_("{text} is not a whole number").format(text=_shown(text))) from None
        if not low <= number <= high:
            between = _("{text} is not between {low} and {high}")
            raise argparse.ArgumentTypeError(between.format(text=_shown(text), low=low, high=f"{high:,}"))
        return number

    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds above `low` and at most `high` (NaN and infinities refused)."""

    def parse(text: str) -> float:
        try:
            number = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(_("{text} is not a number of seconds").format(text=_shown(text))) from None
        if not low < number <= high:
            bounds = _("{text} is not above {low} and at most {high} seconds")
            raise argparse.ArgumentTypeError(bounds.format(text=_shown(text), low=f"{low:g}", high=f"{high:g}"))
        return number

    return parse


def weekday(text: str) -> int:
    name = text.strip().lower()[:3]
    for names in (WEEKDAYS, _DAYS_FR):
        if name in names:
            return names.index(name)
    raise argparse.ArgumentTypeError(_("{text} is not a day ({days})").format(text=repr(text), days=",".join(WEEKDAYS)))


def weekly(text: str) -> tuple[int, ...]:
    days = tuple(sorted({weekday(part) for part in text.split(",") if part.strip()}))
    if not days:
        raise argparse.ArgumentTypeError(_("name at least one day ({days})").format(days=",".join(WEEKDAYS)))
    return days


def monthly(text: str) -> Recurrence:
    match = _MONTHLY.match(text.strip().lower())
    if not match:
        not_rule = _("{text} is not a day of month (15) or an nth weekday (2-tue, last-sun)")
        raise argparse.ArgumentTypeError(not_rule.format(text=repr(text)))
    if match.group(1):
        return Recurrence("monthly", month_day=int(match.group(1)))
    nth = -1 if match.group(2) in ("last", "-1") else int(match.group(2))
    return Recurrence("monthly", nth=nth, weekday=weekday(match.group(3)))


def declaration(text: str) -> tuple[str, Declared]:
    """`line:viamedis/optique=down`, `flow:viamedis/pec=recovering:0.4` or `…=recovering:40%`."""
    key, sep, value = text.partition("=")
    state, _sep, progress_text = value.partition(":")
    if not sep or not key.strip() or not state.strip():
        expected = _("expected KEY=STATE or KEY=recovering:PROGRESS, got {text}")
        raise IncidentError("statuses", expected.format(text=repr(text)))
    progress = None
    if progress_text:
        try:
            percent = progress_text.endswith("%")
            progress = float(progress_text.removesuffix("%")) / (100 if percent else 1)
        except ValueError:
            not_number = _("progress {text} is not a number like 0.4 or 40%")
            raise IncidentError("statuses", not_number.format(text=repr(progress_text))) from None
    return key.strip(), declare(state.strip(), progress, key=key.strip())


def config_path(args: argparse.Namespace) -> str:
    """--config, else $TPMON_CONFIG, else config/example.yaml."""
    return str(getattr(args, "config", None) or os.environ.get("TPMON_CONFIG") or DEFAULT_CONFIG)


def read_text(option: str, path: str) -> str:
    """A text from a file ('-': stdin), as written; a title (one line) loses the final newline editors add.

    At most TEXT_FILE_MAX bytes are read: a device (/dev/zero), a folder or a socket is refused, a pipe read
    only that far."""
    try:
        data = _read_bounded(path)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _("not a UTF-8 text file")
        raise MonitorError(
            _("{option}: cannot read {path}: {reason}").format(option=option, path=path, reason=reason)
        ) from None
    if len(data) > TEXT_FILE_MAX:
        larger = _("{option}: {path} is larger than {size} KiB")
        raise MonitorError(larger.format(option=option, path=path, size=TEXT_FILE_MAX // 1024))
    return text.rstrip("\r\n") if option.startswith("--title") else text


def _read_bounded(path: str) -> bytes:
    """Up to TEXT_FILE_MAX + 1 bytes of `path` ('-': stdin); OSError for what is not a file or a pipe."""
    if path == "-":
        return sys.stdin.buffer.read(TEXT_FILE_MAX + 1)
    with open(path, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "not a regular file")
        return file.read(TEXT_FILE_MAX + 1)


def texts_of(args: argparse.Namespace, stem: str) -> Bilingual:
    """The French and English texts of `--STEM…`, inline or from their files."""
    found = []
    for suffix in ("", "-en"):
        attr = f"{stem}{suffix}".replace("-", "_")
        inline, file = getattr(args, attr, None), getattr(args, f"{attr}_file", None)
        found.append(read_text(f"--{stem}{suffix}-file", file) if file is not None else inline or "")
    return Bilingual(found[0], found[1])


def utcnow() -> datetime:
    return datetime.now(UTC)


def when(args: argparse.Namespace) -> datetime:
    if getattr(args, "at", None) is None:
        return utcnow()
    at = paris_to_utc(args.at)[0]
    check_not_future("at", at, utcnow())
    return at


@contextmanager
def declarations(args: argparse.Namespace) -> Iterator[AuditedDeclarations]:
    """The store's declarations, validated against the config, each write audited as the operating-system user
    running the command (a shell with the database's credentials may write everything); IncidentError fields
    named as options."""
    from ..config import load_config
    from ..operators.audited import AuditedDeclarations
    from ..staff.audit import cli_actor
    from ..staff.roles import Principal, Scope
    from ..store import Store, default_url

    settings = load_config(config_path(args))
    store = Store.open(default_url())
    principal = Principal(cli_actor(), (Scope("admin"),))
    try:
        yield AuditedDeclarations(store, settings, principal, "cli", clock=utcnow)
    except IncidentError as exc:
        option = OPTIONS.get(exc.field, exc.field)
        problem = exc.problem_said or exc.problem
        raise (IncidentError(option, problem) if option else MonitorError(problem)) from None
    finally:
        store.close()


def incident_update(args: argparse.Namespace, status: str) -> IncidentUpdate:
    message, practitioners, members = (texts_of(args, stem) for stem in TEXTS.values())
    statuses = dict(declaration(item) for item in args.declare or ())
    return IncidentUpdate(when(args), cast(Phase, status), message, practitioners, members, statuses)
