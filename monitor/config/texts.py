"""Config problems in French and in English (`Text` and `literal` live in monitor.i18n, shared with the errors
of monitor.errors): each message is written in English in the code, marked with `_()`
and named placeholders (`_("unknown flow {name!r}", name=flow)`), and said in each language through the site's
catalogs (monitor/locale, `bash .ci/catalogs.sh`) when the problem is made: a `ConfigProblem` holds its English
message and its French one, the edge that shows it picks (the command line: `cli_lang()`).

A placeholder's value may itself be a `Text` (" from defaults", " (got 'x')"): it is said in the same language.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigProblem
from ..i18n import LANGS, Text, literal, said

__all__ = ["Text", "TextError", "_", "config_problem", "literal", "reason_of"]


def _(msgid: str, **params: Any) -> Text:
    """`msgid` (English, `{named}` placeholders) with its values, to be said in each language."""
    return said(msgid, **params)


class TextError(ValueError):
    """A ValueError whose message is a `Text`: raised by the config's validators, said in each language by
    monitor.config.problems (pydantic keeps the exception in its error's `ctx`)."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.render("en"))
        self.text = text


def config_problem(path: str, message: Text, file: str | None = None, line: int | None = None) -> ConfigProblem:
    """A ConfigProblem with its message in English and its text in every other language."""
    others = tuple((lang, message.render(lang)) for lang in LANGS if lang != "en")
    return ConfigProblem(path, message.render("en"), file, line, others)


def reason_of(exc: Exception) -> Text:
    """What a refused value's exception says, in each language: a TextError's text, else its message as it is."""
    return exc.text if isinstance(exc, TextError) else literal(str(exc))
