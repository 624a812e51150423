"""The exception tree of tpmon, translated only at the edges (CLI, web).

MonitorError
 ├── ConfigError   the YAML config (or a CLI argument) does not validate; holds every problem
 ├── StoreError    the database is unreachable or refused a write
 ├── NotFound      a network, flow, line, check or incident that does not exist
 ├── IncidentError an incident, update or maintenance window refused; names the field at fault
 ├── StaffError    a staff account, password, token or scope refused; names the field at fault
 └── NotAllowed    the account or token may not do this
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

FIELD_SEPARATOR = {"fr": "\u00a0: "}  # between a field and its problem: French typography in French
# The stable, machine-readable kind of a refusal by HTTP status, beside its text said in the request's language (the
# public and the operators' APIs).
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
         413: "too_large", 422: "invalid", 429: "too_many_requests", 503: "unavailable"}  # fmt: skip


class Said(Protocol):
    """A message said in each language (monitor.i18n.Text: this module is below the catalogs)."""

    def render(self, lang: str) -> str: ...


class MonitorError(Exception):
    """Base of every error tpmon raises on purpose. Its message is a `Said` (monitor.i18n's `said()`), or a plain
    text for those said alike in every language; `str()` is English (logs, the admin API), `text(lang)` is what the
    command line shows in its language."""

    def __init__(self, message: str | Said = "") -> None:
        self.said: Said | None = None if isinstance(message, str) else message
        super().__init__(message if isinstance(message, str) else message.render("en"))

    def text(self, lang: str) -> str:
        return str(self) if self.said is None else self.said.render(lang)


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config: where (file, line, field path) and what — `message` in English, and its text in
    other languages in `translated` ((lang, text) pairs, made by monitor.config.texts); `str()` is English."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    translated: tuple[tuple[str, str], ...] = ()

    def text(self, lang: str = "en") -> str:
        """`file:line: field.path: message`, the message in `lang` (English when it has no text in `lang`)."""
        where = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message_in(lang)}"

    def message_in(self, lang: str) -> str:
        return dict(self.translated).get(lang, self.message)

    def __str__(self) -> str:
        return self.text("en")


class ConfigError(MonitorError):
    """A config that does not validate; `problems` lists every error found, in file order. `str()` is English
    (logs); `text(lang)` says the problems in `lang`."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        return "\n".join(problem.text(lang) for problem in self.problems)


class StoreError(MonitorError):
    """The database is unreachable or refused an operation."""


class NotFound(MonitorError):
    """A component or record that does not exist."""


class FieldError(MonitorError):
    """An input that does not validate: `field` names what is wrong, so an edge can name its own option;
    `problem` is English (logs, the web console), `text(lang)` says both in `lang`."""

    def __init__(self, field: str, problem: str | Said) -> None:
        self.field = field
        self.problem_said: Said | None = None if isinstance(problem, str) else problem
        self.problem = problem if isinstance(problem, str) else problem.render("en")
        super().__init__(f"{field}: {self.problem}")

    def problem_in(self, lang: str) -> str:
        return self.problem if self.problem_said is None else self.problem_said.render(lang)

    def text(self, lang: str) -> str:
        return f"{self.field}{FIELD_SEPARATOR.get(lang, ': ')}{self.problem_in(lang)}"


class IncidentError(FieldError):
    """An incident, an incident update or a maintenance window that does not validate (`title`, `statuses`,
    `message.fr`…)."""


class StaffError(FieldError):
    """A staff account, a password, a machine token or a scope that does not validate; `field` names what."""


class NotAllowed(MonitorError):
    """The account or token may not do this (403); the message says what is missing, never more."""
